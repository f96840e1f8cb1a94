//! Browser sessions: what taking up the session a request's cookie carries costs — opened
//! for the first time (decrypt, parse, check), and again for a cookie seen before (what a
//! cache of opened sessions would save).
//!
//!   cargo bench --bench sessions

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use portcullis::config;
use portcullis::session::model::{SessionData, StoredIdentity};
use portcullis::session::Sessions;

const NOW: u64 = 1_800_000_000;

fn sessions() -> Sessions {
    let text = "[server]\nlisten = [\"127.0.0.1:8080\"]\npublic_url = \"http://127.0.0.1:8080\"\n\n\
        [provider]\nissuer = \"http://127.0.0.1:1/realms/internal\"\nclient_id = \"portcullis\"\n\
        client_secret = \"portcullis-secret-0123456789abcdef\"\n\n\
        [session]\nsecrets = [\"bench-only-session-secret-0123456789abcdef\"]\n\n\
        [[routes]]\nname = \"app\"\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"login\"\n";
    let cfg = config::parse(text, Path::new("bench.toml")).expect("the bench config");
    Sessions::new(
        cfg.session.clone().unwrap(),
        cfg.provider.as_ref().unwrap(),
        &cfg.server.public_url,
        cfg.claims.clone(),
        false,
        None,
    )
    .unwrap()
}

/// alice's session as a login through the look-alike provider leaves it: her identity, an
/// ID token for logout and a refresh token (about 2 KB sealed, one cookie).
fn alice(id: u64) -> SessionData {
    SessionData {
        id: format!("bench-session-{id:016x}"),
        identity: StoredIdentity {
            user: Some("alice".into()),
            email: Some("alice@example.com".into()),
            email_verified: true,
            groups: vec!["/staff".into(), "/minio-users".into()],
            roles: vec!["minio-user".into(), "offline_access".into(), "admin".into()],
            subject: Some("6a1f3c2e-0000-4000-8000-00000000a11c".into()),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
        },
        exp: NOW + 8 * 3600,
        created: NOW - 60,
        sid: Some("f3b2c1d0-0000-4000-8000-000000000001".into()),
        id_token: Some(format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.{}",
            "e".repeat(700),
            "s".repeat(342)
        )),
        refresh_token: Some("r".repeat(43)),
        tokens_at: NOW - 60,
        tokens_exp: Some(NOW + 3600),
        access_token: None,
    }
}

/// The `name=value` pairs a browser sends back for these `Set-Cookie` values.
fn cookie_pairs(set_cookies: &[String]) -> Vec<(String, String)> {
    set_cookies
        .iter()
        .filter_map(|c| {
            let pair = c.split(';').next()?;
            let (n, v) = pair.split_once('=')?;
            (!v.is_empty()).then(|| (n.to_owned(), v.to_owned()))
        })
        .collect()
}

fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the cookie store waited"),
    }
}

/// How long does `Sessions::open` take for a cookie session (`store = "cookie"`): cold, a
/// cookie never opened before (each iteration gets a new session, sealed outside the
/// measurement); cached, the same cookie at every request, as a browser sends it?
fn session_open(c: &mut Criterion) {
    let s = sessions();
    let seal = |id: u64| cookie_pairs(&ready(s.save(&alice(id), NOW, &[])).unwrap());
    let first = seal(0);
    let bytes: usize = first.iter().map(|(n, v)| n.len() + 1 + v.len()).sum();
    let mut g = c.benchmark_group(format!("session open ({bytes}-byte cookie)"));
    let mut next = 1u64;
    g.bench_function("cold", |b| {
        b.iter_batched(
            || {
                next += 1;
                seal(next)
            },
            |pairs| {
                let cookies: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                ready(s.open(&cookies, NOW))
                    .unwrap()
                    .expect("the session opens")
            },
            BatchSize::SmallInput,
        )
    });
    let cookies: Vec<(&str, &str)> = first
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    g.bench_function("cached (the same cookie again)", |b| {
        b.iter(|| {
            ready(s.open(&cookies, NOW))
                .unwrap()
                .expect("the session opens")
        })
    });
    g.finish();
}

criterion_group!(benches, session_open);
criterion_main!(benches);
