//! The simulated clients and what each scenario asks of them.

use std::io;
use std::time::{Duration, Instant};

use crate::client::{Connection, Response, get, post};
use crate::stats::{NO_RESPONSE, Recorder};

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Health,
    MeBearer,
    MeCookie,
    Refresh,
    Login,
    Signup,
}

/// A scenario: one kind of request, or the mix (90 % me, 9 % refresh, 1 % login). Without
/// `--scenarios`, all run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Health,
    Me,
    MeCookie,
    Refresh,
    Mixed,
    Login,
    Signup,
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
            Scenario::Login => "login",
            Scenario::Signup => "signup",
        }
    }

    fn pick(self, client: &mut Client) -> Request {
        match self {
            Scenario::Health => Request::Health,
            Scenario::Me => Request::MeBearer,
            Scenario::MeCookie => Request::MeCookie,
            Scenario::Refresh => Request::Refresh,
            Scenario::Login => Request::Login,
            Scenario::Signup => Request::Signup,
            Scenario::Mixed => match client.next_random() % 100 {
                0 => Request::Login,
                1..=9 => Request::Refresh,
                _ => Request::MeBearer,
            },
        }
    }
}

/// A simulated user: its own connection, account and session.
pub struct Client {
    connection: Connection,
    host: String,
    email: String,
    password: String,
    access_token: String,
    refresh_token: String,
    random: u64,
    signups: u64,
}

impl Client {
    /// Signs up a fresh user and logs it in.
    pub async fn enrol(address: &str, run: &str, index: usize) -> anyhow::Result<Self> {
        let mut client = Self {
            connection: Connection::new(address),
            host: address.to_owned(),
            email: format!("bench-{run}-{index}@example.com"),
            password: format!("bench-password-{index}"),
            access_token: String::new(),
            refresh_token: String::new(),
            random: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
            signups: 0,
        };
        let body = format!(
            r#"{{"email":"{}","password":"{}"}}"#,
            client.email, client.password
        );
        let request = post(
            &client.host,
            "/api/access/signup",
            "",
            "application/json",
            &body,
        );
        let response = client.connection.send(&request).await?;
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

    /// Runs `scenario` until `end`, recording what completes after `measure_from`.
    pub async fn run(
        mut self,
        scenario: Scenario,
        measure_from: Instant,
        end: Instant,
    ) -> (Self, Recorder) {
        let mut recorder = Recorder::default();
        loop {
            let request = scenario.pick(&mut self);
            let started = Instant::now();
            let status = self.send(request).await.unwrap_or(NO_RESPONSE);
            let finished = Instant::now();
            if finished >= end {
                break;
            }
            if finished >= measure_from {
                recorder.record(status, finished - started);
            }
            if status == NO_RESPONSE {
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        (self, recorder)
    }

    /// Sends one request and keeps the tokens a successful login or refresh sets.
    async fn send(&mut self, request: Request) -> io::Result<u16> {
        let bytes = self.build(request);
        let response = self.connection.send(&bytes).await?;
        if matches!(request, Request::Login | Request::Refresh) && response.status == 204 {
            self.keep_tokens(&response);
        }
        Ok(response.status)
    }

    fn build(&mut self, request: Request) -> Vec<u8> {
        let host = &self.host;
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
            Request::Signup => {
                self.signups += 1;
                self.signup(&self.email.replace('@', &format!("-{}@", self.signups)))
            }
        }
    }

    fn signup(&self, email: &str) -> Vec<u8> {
        let body = format!(r#"{{"email":"{email}","password":"{}"}}"#, self.password);
        post(
            &self.host,
            "/api/access/signup",
            "",
            "application/json",
            &body,
        )
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
