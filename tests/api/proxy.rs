//! A TCP proxy the tests can cut and restore, to take Postgres or Redis away from one server
//! without touching the shared service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use authd::{Secret, Settings};
use authd_postgres::testing::TestDatabase;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::redis_address;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `upstream` ("host:port") until cut.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        actix_web::rt::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused in effect
                }
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                // Only cuts from now on end this connection, not the ones already made.
                cuts.borrow_and_update();
                actix_web::rt::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    /// A proxy in front of the test Postgres, with `settings` pointed at `database` through it.
    pub async fn for_database(settings: &mut Settings, database: &TestDatabase) -> Self {
        let proxy = Self::start("127.0.0.1:5432".into()).await;
        let url = database
            .url
            .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
        assert_ne!(
            url, database.url,
            "test database URL is not on 127.0.0.1:5432: {}",
            database.url
        );
        settings.database_url = Some(Secret::new(url));
        proxy
    }

    /// A proxy in front of the test Redis, with `settings` pointed at it through the proxy.
    pub async fn for_redis(settings: &mut Settings) -> Self {
        let proxy = Self::start(redis_address()).await;
        settings.redis_url = Some(Secret::new(format!("redis://127.0.0.1:{}", proxy.port)));
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
