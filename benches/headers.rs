//! What the backend is told: the strip of client-sent identity headers and of the gateway's
//! cookies, `X-Forwarded-*`, and the identity headers set for an authenticated caller — the
//! header work every proxied request does.
//!
//!   cargo bench --bench headers

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pingora::http::RequestHeader;
use portcullis::config::Headers;
use portcullis::headers::{set_forwarded, set_identity, strip_client_identity, OwnCookies, Peer};
use portcullis::identity::Identity;

/// A browser's request as it reaches a `login` route: a dozen ordinary headers and a
/// `Cookie` holding the 2 KB session cookie between two of the site's own.
fn browser_request(spoofed: bool) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/app/orders/12345?page=2", None).unwrap();
    let session: String = "A".repeat(2096);
    for (k, v) in [
        ("host", "app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://app.example.com/app/orders"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("upgrade-insecure-requests", "1"),
        ("connection", "keep-alive"),
    ] {
        r.append_header(k, v).unwrap();
    }
    r.append_header(
        "cookie",
        format!("theme=dark; _portcullis={session}; lang=en"),
    )
    .unwrap();
    if spoofed {
        r.append_header("x-auth-request-user", "mallory").unwrap();
        r.append_header("X_Auth_Request_Roles", "admin").unwrap();
        r.append_header("x-forwarded-for", "203.0.113.7").unwrap();
    }
    r
}

fn alice() -> Identity {
    Identity {
        user: Some("alice".into()),
        email: Some("alice@example.com".into()),
        email_verified: true,
        groups: vec!["/staff".into(), "/minio-users".into()],
        roles: vec!["minio-user".into(), "offline_access".into(), "admin".into()],
        subject: Some("6a1f3c2e-0000-4000-8000-00000000a11c".into()),
        client: Some("portcullis".into()),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        expires_at: Some(4_102_444_800),
        access_token: None,
    }
}

/// How long do the strip (identity headers in any spelling, headers named by `Connection`,
/// the gateway's cookies out of `Cookie`), `X-Forwarded-*` and the identity headers take on a
/// browser's request, with and without spoofed identity headers? Each iteration gets a fresh
/// copy of the request (the copy is not measured).
fn strip_and_set(c: &mut Criterion) {
    let names = Headers::default();
    let cookies = OwnCookies {
        base: "_portcullis".to_owned(),
    };
    let who = alice();
    let peer = Peer {
        client: Some("127.0.0.1".parse().unwrap()),
        scheme: "http",
    };
    let mut g = c.benchmark_group("identity headers");
    for (label, spoofed) in [
        ("strip and set", false),
        ("strip and set, spoofed headers", true),
    ] {
        let template = browser_request(spoofed);
        g.bench_function(label, |b| {
            b.iter_batched(
                || template.clone(),
                |mut req| {
                    strip_client_identity(&mut req, &names, &cookies);
                    set_forwarded(&mut req, peer, &[]);
                    set_identity(&mut req, &who, &names);
                    req
                },
                BatchSize::SmallInput,
            )
        });
    }
    let template = browser_request(false);
    g.bench_function("strip only", |b| {
        b.iter_batched(
            || template.clone(),
            |mut req| {
                strip_client_identity(&mut req, &names, &cookies);
                req
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, strip_and_set);
criterion_main!(benches);
