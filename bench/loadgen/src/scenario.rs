//! The simulated clients and what each scenario asks of them.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Connection, Response, get, post};
use crate::smtp::Mailbox;
use crate::stats::{NO_RESPONSE, Recorder};

/// The longest `recovery` waits for a reset email: well past the outbox's poll.
const MAIL_WAIT: Duration = Duration::from_secs(30);

/// In `two-instances`, one step in this many (by default) is a logout and its check rather
/// than a `me`. Each check costs a login afterwards: one Argon2 hash, about 25 ms of the one
/// server core, as much as some 400 `me` requests. At 1 in 50 the scenario would spend about
/// 90 % of the core on Argon2 and measure that; at 1 in 1,000 logins take about a third of
/// it, and a 10 s window at some 10,000 req/s still makes about 100 checks.
pub const LOGOUT_EVERY: u64 = 1_000;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Health,
    MeBearer,
    MeCookie,
    Refresh,
    Login,
    Signup,
    Logout,
    AskReset,
    ConfirmReset,
}

/// A scenario: one kind of request, or the mix (90 % me, 9 % refresh, 1 % login), or
/// `two-instances`: `me` alternating between two servers on one Postgres and one Redis, with
/// now and then a logout on one and a check that the other refuses the token at once; or
/// `recovery`: a password reset asked for, its email read from the SMTP server, and confirmed,
/// each time on a fresh account (authd sends one reset email per account per minute). Without
/// `--scenarios`, all run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Health,
    Me,
    MeCookie,
    Refresh,
    Mixed,
    TwoInstances,
    Login,
    Signup,
    Recovery,
}

/// The mix's parts in percent: me, refresh, login (as drawn by `Scenario::pick`).
pub const MIX: [(Scenario, f64); 3] = [
    (Scenario::Me, 90.0),
    (Scenario::Refresh, 9.0),
    (Scenario::Login, 1.0),
];

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::Me => "me",
            Scenario::MeCookie => "me-cookie",
            Scenario::Refresh => "refresh",
            Scenario::Mixed => "mixed",
            Scenario::TwoInstances => "two-instances",
            Scenario::Login => "login",
            Scenario::Signup => "signup",
            Scenario::Recovery => "recovery",
        }
    }

    fn pick(self, client: &mut Client) -> Request {
        match self {
            Scenario::Health => Request::Health,
            Scenario::Me | Scenario::TwoInstances => Request::MeBearer,
            Scenario::MeCookie => Request::MeCookie,
            Scenario::Refresh => Request::Refresh,
            Scenario::Login => Request::Login,
            Scenario::Signup => Request::Signup,
            // `Client::recover` runs the exchange; this is its first step.
            Scenario::Recovery => Request::AskReset,
            Scenario::Mixed => match client.next_random() % 100 {
                0 => Request::Login,
                1..=9 => Request::Refresh,
                _ => Request::MeBearer,
            },
        }
    }
}

/// The instants a scenario's requests count between: after the warm-up, before the end.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Instant,
    pub end: Instant,
}

impl Window {
    fn holds(&self, finished: Instant) -> bool {
        finished >= self.from && finished < self.end
    }
}

/// One server the client talks to, over a keep-alive connection of its own.
struct Instance {
    connection: Connection,
    host: String,
}

impl Instance {
    fn new(address: &str) -> Self {
        Self {
            connection: Connection::new(address),
            host: address.to_owned(),
        }
    }
}

/// A simulated user: its own account and session, and one connection per server (the second
/// only for `two-instances`).
pub struct Client {
    instances: Vec<Instance>,
    /// The instance of the next `two-instances` request.
    turn: usize,
    email: String,
    password: String,
    access_token: String,
    refresh_token: String,
    random: u64,
    signups: u64,
    /// Accounts of this client's that no reset was asked for yet (`recovery`).
    spares: Vec<String>,
    /// The account of the reset in progress, and its token once emailed.
    recovery_email: String,
    reset_token: String,
    /// Where the reset emails arrive (`recovery` only).
    mailbox: Option<Arc<Mailbox>>,
}

impl Client {
    /// Signs up a fresh user and logs it in.
    pub async fn enrol(address: &str, run: &str, index: usize) -> anyhow::Result<Self> {
        let mut client = Self {
            instances: vec![Instance::new(address)],
            turn: 0,
            email: format!("bench-{run}-{index}@example.com"),
            password: format!("bench-password-{index}"),
            access_token: String::new(),
            refresh_token: String::new(),
            random: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
            signups: 0,
            spares: Vec::new(),
            recovery_email: String::new(),
            reset_token: String::new(),
            mailbox: None,
        };
        let body = format!(
            r#"{{"email":"{}","password":"{}"}}"#,
            client.email, client.password
        );
        let request = post(address, "/api/access/signup", "", "application/json", &body);
        let response = client.instances[0].connection.send(&request).await?;
        anyhow::ensure!(
            response.status == 201,
            "signup of {} answered {}: {}",
            client.email,
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        let status = client.send(Request::Login).await?;
        anyhow::ensure!(status == 204, "login of {} answered {status}", client.email);
        Ok(client)
    }

    /// Signs up `count` more accounts of this client's for `recovery`, whose resets arrive in
    /// `mailbox`.
    pub async fn enrol_spares(
        &mut self,
        count: usize,
        mailbox: Arc<Mailbox>,
    ) -> anyhow::Result<()> {
        for spare in 0..count {
            let email = self.email.replace('@', &format!("-spare{spare}@"));
            let request = self.signup(&self.instances[0].host, &email);
            let response = self.instances[0].connection.send(&request).await?;
            anyhow::ensure!(
                response.status == 201,
                "signup of {email} answered {}",
                response.status
            );
            self.spares.push(email);
        }
        self.mailbox = Some(mailbox);
        Ok(())
    }

    /// Adds a second server (`two-instances`): the account and session are the same, and the
    /// client keeps a keep-alive connection to each.
    pub fn add_instance(&mut self, address: &str) {
        self.instances.push(Instance::new(address));
    }

    /// Runs `scenario` until the window's end, recording what completes inside the window. In
    /// `two-instances`, one step in `logout_every` (about) is a logout and its check.
    pub async fn run(
        mut self,
        scenario: Scenario,
        logout_every: u64,
        window: Window,
    ) -> (Self, Recorder) {
        let mut recorder = Recorder::default();
        loop {
            let (status, finished) = if scenario == Scenario::TwoInstances
                && self.next_random() % logout_every.max(1) == 0
            {
                self.log_out_and_check(window, &mut recorder).await
            } else if scenario == Scenario::Recovery {
                self.recover(window, &mut recorder).await
            } else {
                let request = scenario.pick(&mut self);
                let at = self.instance_for(scenario);
                self.timed(at, request, window, &mut recorder).await
            };
            if finished >= window.end {
                break;
            }
            if status == NO_RESPONSE {
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        (self, recorder)
    }

    /// Logs out on one instance, then at once sends `me` with the same, now revoked, access
    /// token to the other, which must refuse it (401: recorded as a check, not as an error);
    /// then logs in again to carry on. The three run through even past the window's end, so
    /// the client always ends with a live session. Gives the login's status and end.
    async fn log_out_and_check(
        &mut self,
        window: Window,
        recorder: &mut Recorder,
    ) -> (u16, Instant) {
        let here = self.next_turn();
        let (logged_out, _) = self.timed(here, Request::Logout, window, recorder).await;
        // Only a logout that took effect revoked the token; any other status is an error.
        if logged_out == 204 {
            let other = self.next_turn();
            let started = Instant::now();
            let status = self
                .send_to(other, Request::MeBearer)
                .await
                .unwrap_or(NO_RESPONSE);
            let finished = Instant::now();
            if window.holds(finished) {
                recorder.record_check(other, status, finished - started);
            }
        }
        let at = self.next_turn();
        self.timed(at, Request::Login, window, recorder).await
    }

    /// One password reset on a spare account: asked for (`202`), its token read from the
    /// email, confirmed (`204`). Both requests are recorded; the wait for the email is not, as
    /// it is mostly the outbox's poll. At most 8 clients are between a request and its email
    /// (see `smtp::Mailbox::resets`). An email that never comes is recorded as an error, and
    /// so is running out of spare accounts, which ends the client's run.
    async fn recover(&mut self, window: Window, recorder: &mut Recorder) -> (u16, Instant) {
        let (Some(email), Some(mailbox)) = (self.spares.pop(), self.mailbox.clone()) else {
            recorder.record_on(0, NO_RESPONSE, Duration::ZERO);
            return (NO_RESPONSE, window.end);
        };
        // Only closed with the mailbox, which outlives every client.
        let Ok(permit) = mailbox.resets.acquire().await else {
            return (NO_RESPONSE, window.end);
        };
        let delivered = mailbox.expect(&email);
        self.recovery_email = email;
        let (asked, finished) = self.timed(0, Request::AskReset, window, recorder).await;
        if asked != 202 {
            return (asked, finished);
        }
        let Ok(Ok(token)) = tokio::time::timeout(MAIL_WAIT, delivered).await else {
            let now = Instant::now();
            if window.holds(now) {
                recorder.record_on(0, NO_RESPONSE, now - finished);
            }
            return (NO_RESPONSE, now);
        };
        drop(permit);
        mailbox.waited(finished.elapsed());
        self.reset_token = token;
        self.timed(0, Request::ConfirmReset, window, recorder).await
    }

    /// Sends one request to instance `at` and records it when it completes inside the
    /// window. Gives its status and when it completed.
    async fn timed(
        &mut self,
        at: usize,
        request: Request,
        window: Window,
        recorder: &mut Recorder,
    ) -> (u16, Instant) {
        let started = Instant::now();
        let status = self.send_to(at, request).await.unwrap_or(NO_RESPONSE);
        let finished = Instant::now();
        if window.holds(finished) {
            recorder.record_on(at, status, finished - started);
        }
        (status, finished)
    }

    /// The instance of the next request: alternating in `two-instances`, else the first.
    fn instance_for(&mut self, scenario: Scenario) -> usize {
        if scenario == Scenario::TwoInstances {
            self.next_turn()
        } else {
            0
        }
    }

    fn next_turn(&mut self) -> usize {
        let at = self.turn;
        self.turn = (at + 1) % self.instances.len();
        at
    }

    /// Sends one request to the first instance.
    async fn send(&mut self, request: Request) -> io::Result<u16> {
        self.send_to(0, request).await
    }

    /// Sends one request to instance `at` and keeps the tokens a successful login or refresh
    /// sets. A logout's cleared cookies are not kept: the check reuses the revoked token.
    async fn send_to(&mut self, at: usize, request: Request) -> io::Result<u16> {
        let bytes = self.build(at, request);
        let response = self.instances[at].connection.send(&bytes).await?;
        if matches!(request, Request::Login | Request::Refresh) && response.status == 204 {
            self.keep_tokens(&response);
        }
        Ok(response.status)
    }

    fn build(&mut self, at: usize, request: Request) -> Vec<u8> {
        if request == Request::Signup {
            self.signups += 1;
        }
        let host = &self.instances[at].host;
        match request {
            Request::Health => get(host, "/health", ""),
            Request::MeBearer => get(
                host,
                "/api/access/me",
                &format!("Authorization: Bearer {}\r\n", self.access_token),
            ),
            Request::MeCookie => get(
                host,
                "/api/access/me",
                &format!("Cookie: access_token={}\r\n", self.access_token),
            ),
            Request::Refresh => post(
                host,
                "/api/access/refresh",
                &format!("Cookie: refresh_token={}\r\n", self.refresh_token),
                "application/x-www-form-urlencoded",
                "",
            ),
            Request::Login => post(
                host,
                "/api/access/login",
                "",
                "application/x-www-form-urlencoded",
                &format!(
                    "username={}&password={}",
                    self.email.replace('@', "%40"),
                    self.password
                ),
            ),
            Request::Logout => post(
                host,
                "/api/access/logout",
                &format!("Authorization: Bearer {}\r\n", self.access_token),
                "application/x-www-form-urlencoded",
                "",
            ),
            Request::Signup => self.signup(
                host,
                &self.email.replace('@', &format!("-{}@", self.signups)),
            ),
            Request::AskReset => post(
                host,
                "/api/access/password-reset",
                "",
                "application/json",
                &format!(r#"{{"email":"{}"}}"#, self.recovery_email),
            ),
            Request::ConfirmReset => post(
                host,
                "/api/access/password-reset/confirm",
                "",
                "application/json",
                &format!(
                    r#"{{"token":"{}","new_password":"{}-reset"}}"#,
                    self.reset_token, self.password
                ),
            ),
        }
    }

    fn signup(&self, host: &str, email: &str) -> Vec<u8> {
        let body = format!(r#"{{"email":"{email}","password":"{}"}}"#, self.password);
        post(host, "/api/access/signup", "", "application/json", &body)
    }

    fn keep_tokens(&mut self, response: &Response) {
        if let Some(access) = response.cookie("access_token") {
            self.access_token = access.to_owned();
        }
        if let Some(refresh) = response.cookie("refresh_token") {
            self.refresh_token = refresh.to_owned();
        }
    }

    /// xorshift64: a cheap, reproducible per-client sequence for the mix.
    fn next_random(&mut self) -> u64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// The tokens logged out, shared by the stand-ins as authd shares Redis and Postgres.
    type Revoked = Arc<Mutex<HashSet<String>>>;

    /// A stand-in for authd: a login issues a fresh token, a logout revokes its Bearer token,
    /// and `me` refuses a revoked token with 401, unless this one `forgets` (the bug the
    /// check is there to catch: a server that does not see the other's logout).
    async fn stand_in(revoked: Revoked, forgets: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(stream, revoked.clone(), forgets));
            }
        });
        address
    }

    async fn serve(mut stream: TcpStream, revoked: Revoked, forgets: bool) {
        static ISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            while buffer.len() < end + 4 + length {
                let read = stream.read(&mut chunk).await.unwrap();
                buffer.extend_from_slice(&chunk[..read]);
            }
            buffer.drain(..end + 4 + length);
            let token = header(&head, "authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            let path = head.split(' ').nth(1).unwrap_or_default();
            let response = match path {
                "/api/access/login" => {
                    let n = ISSUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    format!("204 No Content\r\nSet-Cookie: access_token=t{n}; Path=/")
                }
                "/api/access/logout" => {
                    revoked.lock().unwrap().insert(token);
                    "204 No Content\r\nSet-Cookie: access_token=; Max-Age=0".to_owned()
                }
                _ if !forgets && revoked.lock().unwrap().contains(&token) => {
                    "401 Unauthorized".to_owned()
                }
                _ => "200 OK".to_owned(),
            };
            let bytes = format!("HTTP/1.1 {response}\r\ncontent-length: 0\r\n\r\n");
            stream.write_all(bytes.as_bytes()).await.unwrap();
        }
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// A logged-in client of the two stand-ins, the second one forgetful or not.
    async fn client_of_two(second_forgets: bool) -> Client {
        let revoked = Revoked::default();
        let first = stand_in(revoked.clone(), false).await;
        let second = stand_in(revoked, second_forgets).await;
        let mut client = Client {
            instances: vec![Instance::new(&first)],
            turn: 0,
            email: "ada@example.com".to_owned(),
            password: "secret".to_owned(),
            access_token: String::new(),
            refresh_token: String::new(),
            random: 1,
            signups: 0,
            spares: Vec::new(),
            recovery_email: String::new(),
            reset_token: String::new(),
            mailbox: None,
        };
        client.add_instance(&second);
        assert_eq!(client.send(Request::Login).await.unwrap(), 204);
        client
    }

    /// Runs two-instances against the stand-ins for a short window, a logout every ~4 steps.
    fn two_instances_run(second_forgets: bool) -> crate::stats::Summary {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = client_of_two(second_forgets).await;
            let now = Instant::now();
            let window = Window {
                from: now,
                end: now + Duration::from_secs(1),
            };
            let (_, recorder) = client.run(Scenario::TwoInstances, 4, window).await;
            recorder.summarize(Duration::from_secs(1))
        })
    }

    #[test]
    fn two_instances_alternates_and_the_other_instance_refuses_a_logged_out_token() {
        let summary = two_instances_run(false);
        // A loaded machine may get through few steps in the window; two checks are enough.
        assert!(summary.checks_made() >= 2, "{}", summary.checks_text());
        assert_eq!(summary.revoked_accepted(), 0);
        assert_eq!(
            summary.checks_text(),
            format!("401×{}", summary.checks_made())
        );
        assert_eq!(summary.errors, 0, "{}", summary.statuses_text());
        // Every request goes to the other instance than the one before, the checks too.
        let [first, second] = summary.per_instance;
        assert!(first.abs_diff(second) <= 1, "{first} {second}");
    }

    #[test]
    fn two_instances_catches_an_instance_that_accepts_a_logged_out_token() {
        let summary = two_instances_run(true);
        // Half the checks land on the forgetful second instance.
        assert!(summary.revoked_accepted() >= 1, "{}", summary.checks_text());
        assert!(
            summary.checks_text().contains("401×"),
            "{}",
            summary.checks_text()
        );
        assert_eq!(summary.errors, 0, "{}", summary.statuses_text());
    }

    #[test]
    fn only_two_instances_alternates_between_the_servers() {
        let mut client = Client {
            instances: vec![Instance::new("a:1"), Instance::new("b:2")],
            turn: 0,
            email: "ada@example.com".to_owned(),
            password: "secret".to_owned(),
            access_token: "token".to_owned(),
            refresh_token: String::new(),
            random: 1,
            signups: 0,
            spares: Vec::new(),
            recovery_email: String::new(),
            reset_token: String::new(),
            mailbox: None,
        };
        let turns: Vec<_> = (0..4)
            .map(|_| client.instance_for(Scenario::TwoInstances))
            .collect();
        assert_eq!(turns, [0, 1, 0, 1]);
        assert_eq!(client.instance_for(Scenario::Me), 0);
        assert_eq!(client.instance_for(Scenario::Mixed), 0);
        let logout = String::from_utf8(client.build(1, Request::Logout)).unwrap();
        assert!(
            logout.starts_with("POST /api/access/logout HTTP/1.1\r\nHost: b:2\r\n"),
            "{logout}"
        );
        assert!(
            logout.contains("Authorization: Bearer token\r\n"),
            "{logout}"
        );
    }

    #[test]
    fn the_window_holds_from_its_start_up_to_its_end() {
        let from = Instant::now();
        let window = Window {
            from,
            end: from + Duration::from_secs(1),
        };
        assert!(window.holds(from));
        assert!(window.holds(from + Duration::from_millis(999)));
        assert!(!window.holds(from + Duration::from_secs(1)));
    }
}
