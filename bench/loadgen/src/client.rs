//! A minimal HTTP/1.1 keep-alive client: one connection per simulated client, no pooling, no
//! redirects, and no retries but one (a kept-alive connection the server closed while idle).
//! It does exactly what the benchmark needs and costs the load generator's core as little as
//! possible, so the server, not the client, is what is measured.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response: the status, the `name=value` of every `Set-Cookie`, and the body.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub cookies: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of cookie `name` if the response set it (an empty value clears it).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(cookie, _)| cookie == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A keep-alive connection to the server under test.
pub struct Connection {
    address: String,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            stream: None,
            buffer: Vec::with_capacity(8192),
        }
    }

    /// Sends one complete request and reads its response. An I/O error drops the connection;
    /// the next request opens a new one. A kept-alive connection the server closed while it
    /// was idle (actix closes them after 5 s: `recovery`'s clients wait that long for their
    /// turn) fails before any byte of an answer: the request is sent again on a new one, once.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        let reused = self.stream.is_some();
        let mut outcome = self.exchange(request).await;
        if reused && outcome.as_ref().is_err_and(closed_before_answering) && self.buffer.is_empty()
        {
            self.stream = None;
            outcome = self.exchange(request).await;
        }
        if outcome.is_err() {
            self.stream = None;
        }
        outcome
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buffer.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        stream.write_all(request).await?;

        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            read_more(stream, &mut self.buffer).await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])
            .map_err(|_| invalid("response head is not UTF-8"))?;
        let (response, body_length, close) = parse_head(head)?;
        while self.buffer.len() < head_end + body_length {
            read_more(stream, &mut self.buffer).await?;
        }
        let body = self.buffer[head_end..head_end + body_length].to_vec();
        self.buffer.drain(..head_end + body_length);
        if close {
            self.stream = None;
        }
        Ok(Response { body, ..response })
    }
}

fn closed_before_answering(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    let read = stream.read(&mut chunk).await?;
    if read == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

/// Status, cookies, body length and whether the server closes the connection.
fn parse_head(head: &str) -> io::Result<(Response, usize, bool)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut response = Response {
        status,
        ..Response::default()
    };
    let (mut length, mut close) = (0, false);
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("bad header"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| invalid("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("set-cookie") {
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((cookie, cookie_value)) = pair.split_once('=') {
                response
                    .cookies
                    .push((cookie.trim().to_owned(), cookie_value.trim().to_owned()));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked responses are not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok((response, length, close))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// `GET path` with extra header lines (each ending in `\r\n`).
pub fn get(host: &str, path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n").into_bytes()
}

/// `POST path` with a body of `content_type` and extra header lines.
pub fn post(host: &str, path: &str, headers: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers one request per connection and then closes it without saying so,
    /// as a server closing an idle kept-alive connection does.
    async fn one_answer_per_connection() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buffer = Vec::new();
                while find(&buffer, b"\r\n\r\n").is_none() {
                    read_more(&mut stream, &mut buffer).await.unwrap();
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await
                    .unwrap();
            }
        });
        address
    }

    #[tokio::test]
    async fn a_kept_alive_connection_closed_by_the_server_is_opened_again() {
        let address = one_answer_per_connection().await;
        let mut connection = Connection::new(&address);
        for _ in 0..3 {
            let response = connection.send(&get(&address, "/", "")).await.unwrap();
            assert_eq!(response.status, 200);
            // Let the close arrive before the next request.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn the_head_gives_status_cookies_length_and_close() {
        let head = "HTTP/1.1 204 No Content\r\nset-cookie: access_token=abc; HttpOnly; Path=/\r\n\
                    Set-Cookie: refresh_token=; Max-Age=0\r\ncontent-length: 12\r\n\
                    connection: close\r\n\r\n";
        let (response, length, close) = parse_head(head).unwrap();
        assert_eq!(response.status, 204);
        assert_eq!(response.cookie("access_token"), Some("abc"));
        assert_eq!(response.cookie("refresh_token"), Some(""));
        assert_eq!(response.cookie("other"), None);
        assert_eq!((length, close), (12, true));
    }

    #[test]
    fn chunked_and_garbled_heads_are_errors() {
        assert!(parse_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head("garbage\r\n\r\n").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_err());
    }
}
