//! The introspection cache (the Ory Oathkeeper CVE-2026-33496 and GHSA-qvp4-rpmr-xwrr
//! class): an answer is kept for the token it was about, under the settings of the issuer
//! that gave it, and every request is still judged by its own route's rules. (That an
//! answer is kept at most `introspection_cache` and never past `exp` is
//! `tests/token_matrix.rs`.)

use std::sync::atomic::Ordering;

use serde_json::json;

use super::{bearer, now, send, INTROSPECTION_SECRET};
use crate::support::provider::{SigningKey, TestProvider};
use crate::support::Gateway;

struct Two {
    gw: Gateway,
    a: TestProvider,
    b: TestProvider,
}

/// A gateway asking issuer `a` (audiences `portcullis`, cache 60 s), then `b` (audiences
/// `inventory`, cache 2 s), about opaque tokens.
async fn two_issuers() -> Two {
    let key = SigningKey::rsa("rsa-1");
    let a = TestProvider::start(&[&key], None).await;
    let b = TestProvider::start(&[&key], None).await;
    let up = crate::support::echo().await;
    let rest = format!(
        r#"
[provider]
issuer = "{a}"
client_id = "portcullis"
client_secret = "{INTROSPECTION_SECRET}"
audiences = ["portcullis"]
introspection_cache = "60s"

[[issuers]]
issuer = "{b}"
client_id = "portcullis"
client_secret = "{INTROSPECTION_SECRET}"
audiences = ["inventory"]
introspection_cache = "2s"

[[routes]]
name = "orders"
path = "/orders/"
upstream = "http://{up}"
auth = "bearer"
scopes = {{ read = ["orders:read"], write = ["orders:write"] }}

[[routes]]
name = "billing"
path = "/billing/"
upstream = "http://{up}"
auth = "bearer"
allow = {{ clients = ["billing-service"] }}
"#,
        a = a.issuer(),
        b = b.issuer(),
    );
    let gw = Gateway::start("", &rest).await;
    gw.wait_ready().await;
    Two { gw, a, b }
}

fn active(client: &str, scope: &str, aud: &str) -> serde_json::Value {
    json!({
        "active": true, "client_id": client, "sub": client, "scope": scope,
        "aud": aud, "exp": now() + 300, "token_type": "Bearer"
    })
}

fn knows(p: &TestProvider, token: &str, answer: serde_json::Value) {
    p.state
        .opaque
        .lock()
        .unwrap()
        .insert(token.to_owned(), answer);
}

fn asked(p: &TestProvider) -> usize {
    p.state.introspections.load(Ordering::SeqCst)
}

async fn status(gw: &Gateway, method: &str, path: &str, token: &str) -> u16 {
    send(
        gw.addr,
        method,
        path,
        &[("Authorization", &bearer(token)), ("Content-Length", "0")],
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_cache_never_serves_one_tokens_answer_for_another() {
    let t = two_issuers().await;
    let good = format!("opaque-{}-good", "x".repeat(40));
    knows(
        &t.a,
        &good,
        active("billing-service", "orders:read", "portcullis"),
    );
    assert_eq!(status(&t.gw, "GET", "/billing/x", &good).await, 200);
    let before = asked(&t.a);
    assert_eq!(status(&t.gw, "GET", "/billing/x", &good).await, 200);
    assert_eq!(
        asked(&t.a),
        before,
        "the second use is answered from the cache"
    );
    // Tokens close to the cached one — a prefix, an extension, another case, one changed
    // character — are each asked about, and refused.
    let mut near = vec![
        good[..good.len() - 1].to_owned(),
        format!("{good}x"),
        good.to_ascii_uppercase(),
        good.replacen("good", "goof", 1),
        format!("{good}="),
    ];
    near.push(good[1..].to_owned());
    for other in &near {
        let asked_before = asked(&t.a);
        assert_eq!(
            status(&t.gw, "GET", "/billing/x", other).await,
            401,
            "{other}"
        );
        assert!(
            asked(&t.a) > asked_before,
            "{other} was answered without asking"
        );
    }
    // The cached token is still itself.
    assert_eq!(status(&t.gw, "GET", "/billing/x", &good).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_introspection_answer_is_judged_again_by_each_routes_rules() {
    // Oathkeeper cached an introspection that passed one rule's scope check and served it
    // to a rule requiring another scope. Here the cache holds who the caller is; each route
    // still checks its own scopes and clients.
    let t = two_issuers().await;
    let token = format!("opaque-{}-reader", "r".repeat(40));
    knows(
        &t.a,
        &token,
        active("shipping-service", "orders:read", "portcullis"),
    );
    assert_eq!(status(&t.gw, "GET", "/orders/1", &token).await, 200);
    let before = asked(&t.a);
    assert_eq!(
        status(&t.gw, "POST", "/orders/1", &token).await,
        403,
        "write needs orders:write"
    );
    assert_eq!(status(&t.gw, "DELETE", "/orders/1", &token).await, 403);
    assert_eq!(
        status(&t.gw, "GET", "/billing/x", &token).await,
        403,
        "not billing-service"
    );
    assert_eq!(status(&t.gw, "GET", "/orders/2", &token).await, 200);
    assert_eq!(asked(&t.a), before, "all of it from the cache");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_issuers_introspection_answer_never_vouches_under_another_issuers_settings() {
    let t = two_issuers().await;
    // `a` says active, for an audience only `b` accepts; `b` does not know the token. An
    // answer is judged with the audiences of the issuer that gave it: refused.
    let cross = format!("opaque-{}-cross", "c".repeat(40));
    knows(
        &t.a,
        &cross,
        active("billing-service", "orders:read", "inventory"),
    );
    assert_eq!(status(&t.gw, "GET", "/billing/x", &cross).await, 401);
    assert_eq!(
        status(&t.gw, "GET", "/billing/x", &cross).await,
        401,
        "nor cached as active"
    );
    // `b` says active for its own audience: accepted, and kept for b's 2 s, not a's 60 s.
    let by_b = format!("opaque-{}-by-b", "b".repeat(40));
    knows(
        &t.b,
        &by_b,
        active("billing-service", "orders:read", "inventory"),
    );
    assert_eq!(status(&t.gw, "GET", "/billing/x", &by_b).await, 200);
    let before = asked(&t.b);
    assert_eq!(status(&t.gw, "GET", "/billing/x", &by_b).await, 200);
    assert_eq!(asked(&t.b), before, "cached");
    t.gw.advance_clock(3).await;
    // b has since forgotten the token: after b's cache time it is asked again, and refused.
    knows(&t.b, &by_b, json!({"active": false}));
    assert_eq!(status(&t.gw, "GET", "/billing/x", &by_b).await, 401);
    assert!(
        asked(&t.b) > before,
        "asked again after b's introspection_cache"
    );
    // Both know a token: the first issuer's answer is the caller, and only it.
    let both = format!("opaque-{}-both", "d".repeat(40));
    knows(
        &t.a,
        &both,
        active("billing-service", "orders:read", "portcullis"),
    );
    knows(
        &t.b,
        &both,
        active("mallory-service", "orders:read orders:write", "inventory"),
    );
    assert_eq!(status(&t.gw, "GET", "/billing/x", &both).await, 200);
    assert_eq!(
        status(&t.gw, "POST", "/orders/1", &both).await,
        403,
        "a's scopes, not b's"
    );
    let info = send(
        t.gw.addr,
        "GET",
        "/_portcullis/userinfo",
        &[("Authorization", &bearer(&both))],
    )
    .await;
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(info["client"], "billing-service", "{info}");
}
