//! End-to-end tests: the real server on a random port, driven over HTTP. Every scenario runs
//! twice, on Postgres + Redis and on the in-memory adapters (see `both!`).

// Test helpers outside #[test] functions: clippy.toml's test allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;
mod proxy;
mod smtp;

mod access_conventions;
mod at_rest;
mod browsers;
mod cli;
mod device_cookies;
mod fuzz;
mod hostile_input;
mod hostile_traffic;
mod login;
mod logout;
mod me;
mod ops;
mod password;
mod real_browser;
mod recovery;
mod refresh;
mod resilience;
mod roles;
mod sessions;
mod signup;
mod token_types;
mod users;
