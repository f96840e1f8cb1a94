//! No token, secret or stack trace in any answer of the gateway's own or in any line it
//! logs: refusals of every kind are provoked with known values, then the answers and the
//! gateway's log are searched for them.

use base64::Engine as _;

use super::{bearer, now, send, world, CLIENT_SECRET, INTROSPECTION_SECRET, SECRET};
use crate::support::Raw;

/// Text that gives away an internal error.
const TRACES: &[&str] = &[
    "panicked",
    "stack backtrace",
    "RUST_BACKTRACE",
    ".rs:",
    "src/",
    "os error",
    "Connection refused",
    "called `Option::unwrap()`",
    "called `Result::unwrap()`",
];

/// The distinctive parts of a token: itself, and each of its dot-separated parts that is
/// long enough to be recognizable (the signature above all).
fn parts(token: &str) -> Vec<String> {
    let mut v = vec![token.to_owned()];
    v.extend(
        token
            .split('.')
            .filter(|p| p.len() >= 16)
            .map(str::to_owned),
    );
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_secret_or_stack_trace_in_any_refusal_or_log_line() {
    let w = world().await;
    let t = now();
    let tp = &w.tp;
    let sign = |claims: serde_json::Value| w.key.sign(&claims);
    let marker = format!("leak-{}", t);
    let valid_wrong_client = w.token("shipping-service", "orders:read");
    let expired = sign(tp.service_claims("billing-service", "orders:read", t - 4000, 300));
    let mut wrong_aud = tp.service_claims("billing-service", "orders:read", t, 300);
    wrong_aud["aud"] = serde_json::json!("someone-else");
    let wrong_aud = sign(wrong_aud);
    let mut unknown_iss = tp.service_claims("billing-service", "", t, 300);
    unknown_iss["iss"] = serde_json::json!(format!("https://{marker}.example.com"));
    let unknown_iss = sign(unknown_iss);
    let mut bad_sig = w.token("billing-service", "orders:read").into_bytes();
    let last = bad_sig.len() - 3;
    bad_sig[last] = if bad_sig[last] == b'A' { b'B' } else { b'A' };
    let bad_sig = String::from_utf8(bad_sig).unwrap();
    let opaque = format!("opaque-{marker}-0123456789abcdefghijklmnop");
    let huge = format!("{}.{}.{}", "e".repeat(6000), "f".repeat(6000), marker);
    let password = format!("basic-password-{marker}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"))
    );
    let code = format!("code-{marker}-0123456789");
    let logout_token = sign(serde_json::json!({"iss": tp.issuer(), "sub": "x", "marker": marker}));
    let session_cookie = format!("_portcullis=forged-{marker}-session-value");
    let tokens = [
        &valid_wrong_client,
        &expired,
        &wrong_aud,
        &unknown_iss,
        &bad_sig,
        &opaque,
        &huge,
        &logout_token,
    ];

    let mut answers: Vec<(String, Raw)> = Vec::new();
    for token in tokens {
        let auth = bearer(token);
        for path in [
            "/api/x",
            "/admin/x",
            "/orders/1",
            "/any/x",
            "/_portcullis/userinfo",
        ] {
            for accept in ["application/json", "text/html"] {
                let r = send(
                    w.addr(),
                    "GET",
                    path,
                    &[
                        ("Authorization", &auth),
                        ("Accept", accept),
                        ("Sec-Fetch-Mode", "navigate"),
                    ],
                )
                .await;
                answers.push((format!("{path} {accept}"), r));
            }
        }
        let r = send(
            w.addr(),
            "GET",
            "/_portcullis/auth",
            &[
                ("Authorization", &auth),
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/admin/x"),
            ],
        )
        .await;
        answers.push(("forward-auth".into(), r));
    }
    for (what, r) in [
        (
            "basic",
            send(w.addr(), "GET", "/api/x", &[("Authorization", &basic)]).await,
        ),
        (
            "query token",
            send(
                w.addr(),
                "GET",
                &format!("/api/x?access_token={opaque}"),
                &[],
            )
            .await,
        ),
        (
            "callback",
            send(
                w.addr(),
                "GET",
                &format!("/_portcullis/callback?code={code}&state=s-{marker}"),
                &[("Accept", "text/html")],
            )
            .await,
        ),
        (
            "callback error",
            send(
                w.addr(),
                "GET",
                &format!(
                    "/_portcullis/callback?error={marker}&error_description={password}&state=x"
                ),
                &[],
            )
            .await,
        ),
        (
            "forged session",
            send(w.addr(), "GET", "/app/x", &[("Cookie", &session_cookie)]).await,
        ),
        ("dead upstream", send(w.addr(), "GET", "/dead/x", &[]).await),
    ] {
        answers.push((what.into(), r));
    }
    let body = format!("logout_token={logout_token}");
    let req = format!(
        "POST /_portcullis/backchannel-logout HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    answers.push((
        "back-channel logout".into(),
        crate::support::raw(w.addr(), req.as_bytes()).await,
    ));

    let mut secrets: Vec<String> = vec![
        SECRET.into(),
        CLIENT_SECRET.into(),
        INTROSPECTION_SECRET.into(),
        password.clone(),
        code.clone(),
        format!("forged-{marker}-session-value"),
    ];
    for t in tokens {
        secrets.extend(parts(t));
    }
    let mut failures = Vec::new();
    for (what, r) in &answers {
        if r.echo().is_some() {
            // A token that is valid for the route reached its backend, as it should: what
            // a backend answers is not the gateway's to police.
            continue;
        }
        let text = format!("{}\n{}", r.head, r.body);
        for s in &secrets {
            if text.contains(s.as_str()) {
                failures.push(format!(
                    "{what}: the answer holds {}…",
                    &s[..s.len().min(24)]
                ));
            }
        }
        for t in TRACES {
            if text.contains(t) {
                failures.push(format!("{what}: the answer says {t:?}: {}", r.body));
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = w.gw.log();
    for line in log.lines() {
        for s in &secrets {
            if line.contains(s.as_str()) {
                failures.push(format!(
                    "a log line holds {}…: {line}",
                    &s[..s.len().min(24)]
                ));
            }
        }
        if line.contains("panicked") || line.contains("stack backtrace") {
            failures.push(format!("a log line: {line}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
