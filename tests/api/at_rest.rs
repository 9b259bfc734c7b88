//! What the database holds at rest: a dump alone yields no token, and nothing a token can be
//! made or unsealed from. Postgres only: the in-memory store has no dump.

use std::time::Duration;

use authd_application::ports::TokenIssuer as _;
use authd_crypto::{JoseTokenCodec, KeyRing, SigningKey, TokenSettings};
use authd_domain::SessionId;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    Backend, Body, Browser, PASSWORD, TestApp, base64url_decode, base64url_encode, spawn_with,
};
use crate::login::decode_claims;

/// Every row of every table of the app's database, each as `(table, row as a JSON object)`.
async fn dump(app: &TestApp) -> Vec<(String, Value)> {
    let database = app.database.as_ref().unwrap();
    let tables = database
        .texts(
            "SELECT table_name::text AS value FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .await
        .unwrap();
    assert!(
        ["users", "sessions", "roles"]
            .iter()
            .all(|table| tables.iter().any(|found| found == table)),
        "{tables:?}"
    );
    let mut rows = Vec::new();
    for table in tables {
        let sql = format!("SELECT row_to_json(t)::text AS value FROM \"{table}\" AS t");
        for row in database.texts(&sql).await.unwrap() {
            rows.push((table.clone(), serde_json::from_str(&row).unwrap()));
        }
    }
    rows
}

/// Every value of a dumped row as text (strings as they are, anything else as JSON).
fn values(row: &Value) -> Vec<String> {
    row.as_object()
        .unwrap()
        .values()
        .filter(|value| !value.is_null())
        .map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The JOSE headers of everything in `text` shaped like a compact JWS or JWE: a base64url
/// segment decoding to a JSON object with an `alg`, followed by a dot.
fn jose_headers(text: &str) -> Vec<Value> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .flat_map(|piece| {
            let segments: Vec<&str> = piece.split('.').collect();
            let last = segments.len().saturating_sub(1);
            segments[..last]
                .iter()
                .filter_map(|segment| {
                    let header: Value = serde_json::from_slice(&base64url_decode(segment)?).ok()?;
                    header.get("alg").is_some().then_some(header)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the compact JWE opens with this 256-bit key (`dir`, as the sealed ids are made).
fn opens_with(sealed: &str, key: &[u8]) -> bool {
    josekit::jwe::Dir
        .decrypter_from_bytes(key)
        .ok()
        .and_then(|decrypter| josekit::jwe::deserialize_compact(sealed, &decrypter).ok())
        .is_some()
}

/// The codec of the app's key, to open a sealed pair the way the server does.
fn codec(app: &TestApp) -> JoseTokenCodec {
    let key = std::fs::read(&app.settings.jwt_key_files[0]).unwrap();
    JoseTokenCodec::new(
        KeyRing::new(vec![SigningKey::from_jwk_bytes(&key).unwrap()]).unwrap(),
        TokenSettings {
            issuer: app.settings.issuer.clone(),
            audience: app.settings.audience.clone(),
            leeway: chrono::TimeDelta::seconds(60),
        },
    )
}

fn session_of(browser: &Browser) -> SessionId {
    let sid = decode_claims(&browser.cookie("access_token").unwrap())["sid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    SessionId::from_uuid(sid)
}

/// The session's sealed successor pair as stored, if any; the profile it was signed for is
/// stored exactly when it is.
async fn sealed(app: &TestApp, session: SessionId) -> Option<String> {
    let database = app.database.as_ref().unwrap();
    let id = session.as_uuid();
    let unpaired = format!(
        "SELECT id::text AS value FROM sessions WHERE id = '{id}' \
         AND (signed_for IS NULL) <> (sealed_successor IS NULL)"
    );
    assert_eq!(
        database.texts(&unpaired).await.unwrap(),
        Vec::<String>::new(),
        "the signed profile is stored and cleared with the pair"
    );
    let pair = format!("SELECT sealed_successor AS value FROM sessions WHERE id = '{id}'");
    database.texts(&pair).await.unwrap().pop()
}

/// Logins, rotations, a repeat inside the grace window, a logout and a password change on the
/// real Postgres; then the whole database, read as a dump would, holds no token in clear, no
/// hash that stands for one, and no sealed pair that opens with a key made from what is stored.
#[actix_web::test]
async fn a_database_dump_yields_no_token() {
    // No delivery runs after the first (at start, before anyone signs up): the sign-ups'
    // verification emails stay queued with their sealed tokens, in the dump below.
    let app = spawn_with(Backend::Real, |settings| {
        settings.email.poll = Duration::from_secs(60 * 60);
    })
    .await;
    let mut tokens = Vec::new();
    let keep = |browser: &Browser, tokens: &mut Vec<String>| {
        tokens.push(browser.cookie("access_token").unwrap());
        tokens.push(browser.cookie("refresh_token").unwrap());
    };

    // Ada rotates twice; another tab repeats her last exchange inside the window.
    let (ada, _) = app.logged_in().await;
    keep(&ada, &mut tokens);
    assert_eq!(ada.refresh().await.status, 204);
    keep(&ada, &mut tokens);
    let presented = ada.cookie("refresh_token").unwrap();
    assert_eq!(ada.refresh().await.status, 204);
    keep(&ada, &mut tokens);
    let tab = app.browser();
    tab.set_cookie("refresh_token", &presented);
    assert_eq!(tab.refresh().await.status, 204);
    assert_eq!(tab.cookie("refresh_token"), ada.cookie("refresh_token"));
    let ada_session = session_of(&ada);
    let ada_pair = ada.tokens();

    // Bob rotates, then logs out: revocation clears his pair at once.
    let (bob, _) = app.logged_in().await;
    assert_eq!(bob.refresh().await.status, 204);
    keep(&bob, &mut tokens);
    let bob_session = session_of(&bob);
    assert!(sealed(&app, bob_session).await.is_some());
    assert_eq!(bob.logout().await.status, 204);
    assert_eq!(sealed(&app, bob_session).await, None);

    // Cleo rotates, then changes her password, which ends every session of hers.
    let (cleo, _) = app.logged_in().await;
    assert_eq!(cleo.refresh().await.status, 204);
    keep(&cleo, &mut tokens);
    let cleo_session = session_of(&cleo);
    let new_password = "a brand new passphrase 9";
    let change = serde_json::json!({"current_password": PASSWORD, "new_password": new_password});
    let changed = cleo
        .send("PATCH", "/api/access/password", &[], Body::Json(change))
        .await;
    assert_eq!(changed.status, 204);
    assert_eq!(sealed(&app, cleo_session).await, None);

    // What would stand for a token: the token, its signature, SHA-256 of it (the key that
    // sealed pairs before HKDF), in hex and base64url.
    let mut equivalents = Vec::new();
    for token in &tokens {
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        equivalents.extend([
            token.clone(),
            token.rsplit('.').next().unwrap().to_owned(),
            hex,
            base64url_encode(&digest),
        ]);
    }
    let passwords = [PASSWORD, new_password];
    // The detectors detect: a token in a longer text, and a pair sealed under a known key.
    let embedded = format!("{{\"note\":\"{}\"}}", tokens[0]);
    assert!(
        jose_headers(&embedded)
            .iter()
            .any(|header| header.get("enc").is_none())
    );
    let mut control = josekit::jwe::JweHeader::new();
    control.set_content_encryption("A256GCM");
    let encrypter = josekit::jwe::Dir.encrypter_from_bytes([7; 32]).unwrap();
    let control = josekit::jwe::serialize_compact(b"pair", &control, &encrypter).unwrap();
    assert!(opens_with(&control, &[7; 32]) && !opens_with(&control, &[8; 32]));

    let codec = codec(&app);
    let rows = dump(&app).await;
    let everything: Vec<String> = rows.iter().flat_map(|(_, row)| values(row)).collect();
    let mut sealed_rows = 0;
    let mut sealed_emails = 0;
    for (table, row) in &rows {
        for value in values(row) {
            for secret in equivalents.iter().map(String::as_str).chain(passwords) {
                assert!(
                    !value.contains(secret),
                    "{table} holds a token or its equivalent: {row}"
                );
            }
            for header in jose_headers(&value) {
                // A JWS anywhere is a token; a JWE only as a sealed pair, or as the sealed
                // token of an email not yet sent.
                assert!(
                    header.get("enc").is_some(),
                    "{table} holds a JWT ({header}): {row}"
                );
                let sealed_column = match table.as_str() {
                    "sessions" => "sealed_successor",
                    "outbox" => "sealed_token",
                    _ => "(none)",
                };
                assert!(
                    row.get(sealed_column).and_then(Value::as_str) == Some(value.as_str()),
                    "{table} holds a JWE outside its sealed column: {row}"
                );
                assert_eq!(header, serde_json::json!({"alg": "dir", "enc": "A256GCM"}));
            }
        }
        if let Some(sealed) = row.get("sealed_token").and_then(Value::as_str) {
            sealed_emails += 1;
            // An email's token is sealed with a key derived from the signing key, which is
            // not in the database: nothing stored opens it.
            for candidate in everything.iter().map(String::as_str).chain([""]) {
                assert!(
                    !opens_with(sealed, &Sha256::digest(candidate.as_bytes())),
                    "SHA-256 of {candidate:?} opens the email token of {row}"
                );
            }
        }
        let Some(sealed) = row.get("sealed_successor").and_then(Value::as_str) else {
            continue;
        };
        sealed_rows += 1;
        let session = SessionId::from_uuid(row["id"].as_str().unwrap().parse().unwrap());
        // Keys made from nothing, or from anything stored (this row's ids, jtis, times, user
        // agent; any other row's values): SHA-256 of it, or the server's own derivation with it
        // in the place of the token.
        for candidate in everything.iter().map(String::as_str).chain([""]) {
            assert!(
                !opens_with(sealed, &Sha256::digest(candidate.as_bytes())),
                "SHA-256 of {candidate:?} opens the pair of {row}"
            );
            assert!(
                codec.unseal(sealed, candidate, session).is_none(),
                "the stored {candidate:?} opens the pair of {row}"
            );
        }
        // Only the refresh token it replaced opens it (the check above would pass on garbage).
        assert_eq!(session, ada_session, "{row}");
        let ids = codec.unseal(sealed, &presented, session).unwrap();
        let (access, refresh) = (decode_claims(&ada_pair.0), decode_claims(&ada_pair.1));
        assert_eq!(ids.access.to_string(), access["jti"], "{access}");
        assert_eq!(ids.refresh.to_string(), refresh["jti"], "{refresh}");
        assert_eq!(ids.issued_at.timestamp(), refresh["iat"], "{refresh}");
    }
    assert_eq!(sealed_rows, 1, "only Ada's live session holds a pair");
    assert!(
        sealed_emails >= 3,
        "the sign-ups' emails were checked: {sealed_emails}"
    );
}

/// Once the grace window is over, the purge (here the run a starting instance makes at once)
/// clears the pair; the session itself lives on.
#[actix_web::test]
async fn the_purge_clears_a_sealed_pair_past_the_grace_window() {
    let app = spawn_with(Backend::Real, |settings| {
        settings.refresh_grace = Duration::from_secs(1);
    })
    .await;
    let (browser, _) = app.logged_in().await;
    assert_eq!(browser.refresh().await.status, 204);
    let session = session_of(&browser);
    assert!(sealed(&app, session).await.is_some());
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    let _purging = app.sibling().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sealed(&app, session).await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pair outlived its window"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.me().await.status, 200);
    assert_eq!(browser.refresh().await.status, 204);
}
