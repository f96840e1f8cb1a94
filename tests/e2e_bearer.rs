//! End to end: bearer tokens issued by REAL servers, verified by the real gateway binary.
//!
//! Every test starts its own servers on free loopback ports and kills them when it ends:
//! - `tests/e2e/provider/server.js`: npm `oidc-provider` set up as a Keycloak realm (JWT
//!   access tokens, RS256 and ES256, JWKS with discovery, key rotation at `/__test/rotate`);
//! - `tests/e2e/dot/run.py`: django-oauth-toolkit (opaque tokens, RFC 7662 introspection,
//!   RFC 7009 revocation);
//! - the gateway (`support::Gateway`) in front of an in-process echo backend that answers
//!   with the headers it received.
//!
//! Tokens come from the real token endpoints with the client-credentials grant. Each test is
//! named after what it prevents. Nothing leaves 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use support::process::Server;
use support::servers::{Provider, READY_WITHIN, ROOT};
use support::{echoed, get, raw, Gateway, Raw};

// ------------------------------------------------------------------ servers

/// The test OpenID provider (Keycloak look-alike) with this suite's token helpers.
trait ProviderExt {
    async fn token(&self, client: &str, scope: &str) -> String;
    async fn rotate(&self) -> Value;
}

impl ProviderExt for Provider {
    /// A client-credentials access token for one of the realm's service clients.
    async fn token(&self, client: &str, scope: &str) -> String {
        token_at(&self.token_url(), client, scope).await
    }

    /// `POST /__test/rotate`: a new RS256 key signs from now on; the old ones stay published.
    async fn rotate(&self) -> Value {
        self.test_endpoint("/__test/rotate", Value::Null).await
    }
}

/// The django-oauth-toolkit server (opaque tokens).
struct Dot {
    /// Kept for its guard: the server stops when the test drops it.
    #[allow(dead_code)]
    server: Server,
    ready: Value,
}

impl Dot {
    async fn start() -> Dot {
        tokio::task::spawn_blocking(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = Command::new(format!("{ROOT}/tests/e2e/dot/.venv/bin/python"));
            cmd.current_dir(ROOT)
                .args(["tests/e2e/dot/run.py", "--port", "0"])
                // Its sqlite database lives (and dies) with this test.
                .env("DOT_DATA_DIR", dir.path());
            let server = Server::start("django-oauth-toolkit", cmd, "READY ", READY_WITHIN, dir);
            let ready = server.ready_json();
            Dot { server, ready }
        })
        .await
        .unwrap()
    }

    fn url(&self, key: &str) -> String {
        self.ready[key].as_str().unwrap().to_owned()
    }

    fn issuer(&self) -> String {
        self.url("issuer")
    }

    /// A client-credentials token; DOT grants the client's default scopes when none is asked.
    async fn token(&self, client: &str) -> String {
        token_at(&self.url("token"), client, "").await
    }

    /// RFC 7009 revocation by the token's own client.
    async fn revoke(&self, client: &str, token: &str) {
        let r = http()
            .post(self.url("revoke"))
            .basic_auth(client, Some(secret(client)))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("revoke");
        assert_eq!(r.status(), 200, "DOT revocation");
    }

    /// What DOT's introspection says about `token` (with the gateway's credentials).
    async fn introspect(&self, token: &str) -> Value {
        http()
            .post(self.url("introspect"))
            .basic_auth("portcullis", Some("portcullis-introspect-0123456789abcdef"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspect")
            .json()
            .await
            .unwrap()
    }
}

fn secret(client: &str) -> &'static str {
    match client {
        "billing-service" => "billing-secret-0123456789abcdef",
        "shipping-service" => "shipping-secret-0123456789abcdef",
        "reporting-service" => "reporting-secret-0123456789abcdef",
        "opaque-service" => "opaque-secret-0123456789abcdef",
        "es256-service" => "es256-secret-0123456789abcdef",
        "other-audience-service" => "other-audience-secret-0123456789abcdef",
        "inventory-service" => "inventory-secret-0123456789abcdef",
        "audit-service" => "audit-secret-0123456789abcdef",
        other => panic!("no secret known for {other}"),
    }
}

/// An HTTP client for the token servers: loopback only, no proxy, no redirects.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The client-credentials grant at `url` (client_secret_basic); `scope` may be empty.
async fn token_at(url: &str, client: &str, scope: &str) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        form.push(("scope", scope));
    }
    let r = http()
        .post(url)
        .basic_auth(client, Some(secret(client)))
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("token request for {client} at {url}: {e}"));
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "token for {client}: {body}");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token for {client}: {body}"))
        .to_owned()
}

// ------------------------------------------------------------------ tokens

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn kid(token: &str) -> String {
    jwt_part(token, 0)["kid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ------------------------------------------------------------------ the gateway

/// The gateway config of these tests: the provider, optionally DOT as a second issuer, two
/// bearer routes and a public one, all to `echo`. `provider_extra` goes into `[provider]`.
fn config(issuer: &str, dot: Option<&Dot>, echo: SocketAddr, provider_extra: &str) -> String {
    let issuers = match dot {
        Some(d) => format!(
            r#"
[[issuers]]
issuer = "{iss}"
discovery = false
introspection_endpoint = "{introspect}"
client_id = "portcullis"
client_secret = "portcullis-introspect-0123456789abcdef"
introspection_cache = "60s"
"#,
            iss = d.issuer(),
            introspect = d.url("introspect"),
        ),
        None => String::new(),
    };
    format!(
        r#"
[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"
{provider_extra}
{issuers}
[[routes]]
name = "orders-api"
path = "/api/orders/"
upstream = "http://{echo}"
auth = "bearer"
allow = {{ clients = ["billing-service", "reporting-service"] }}
scopes = {{ read = ["orders:read"], write = ["orders:write"], DELETE = ["orders:admin"] }}

[[routes]]
name = "inventory"
path = "/api/inventory/"
upstream = "http://{echo}"
auth = "bearer"
scopes = {{ read = ["inventory:read"], write = ["inventory:write"] }}

[[routes]]
name = "public"
path = "/"
upstream = "http://{echo}"
auth = "public"
"#
    )
}

/// Starts the gateway for `op` (and `dot`) and waits until `/readyz` says the keys are loaded.
async fn gateway(op: &Provider, dot: Option<&Dot>) -> Gateway {
    gateway_with(op, dot, "").await
}

async fn gateway_with(op: &Provider, dot: Option<&Dot>, provider_extra: &str) -> Gateway {
    let echo = support::echo().await;
    let gw = Gateway::start("", &config(&op.issuer, dot, echo, provider_extra)).await;
    assert!(
        wait_ready(&gw, Duration::from_secs(20)).await,
        "/readyz never answered 200 with the provider up; gateway log:\n{}",
        gw.log()
    );
    gw
}

async fn readyz(gw: &Gateway) -> u16 {
    get(gw.admin, "/readyz", &[]).await.status
}

async fn wait_ready(gw: &Gateway, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if readyz(gw).await == 200 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `METHOD path` (sent byte for byte, so a lower-case method stays lower-case).
async fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !matches!(method, "GET" | "HEAD") {
        req.push_str("Content-Length: 0\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

/// `method path` with `Authorization: Bearer token`.
async fn with_token(gw: &Gateway, method: &str, path: &str, token: &str) -> Raw {
    call(gw.addr, method, path, &[("Authorization", &bearer(token))]).await
}

/// The values of a response header (case-insensitive name).
fn header(r: &Raw, name: &str) -> Vec<String> {
    r.head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

fn challenge(r: &Raw) -> String {
    header(r, "www-authenticate").join(" | ")
}

/// 200 from the backend itself; returns its view of the request.
#[track_caller]
fn reached(r: &Raw, what: &str) -> Value {
    assert_eq!(
        r.status, 200,
        "{what}: expected 200 from the backend, got {r:#?}"
    );
    r.echo()
        .unwrap_or_else(|| panic!("{what}: 200 but not from the backend: {r:#?}"))
}

/// Refused with `status` by the gateway; the backend never saw it.
#[track_caller]
fn refused(r: &Raw, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: expected {status}, got {r:#?}");
    assert!(
        r.echo().is_none(),
        "{what}: the backend was reached: {r:#?}"
    );
}

/// 401 with `WWW-Authenticate: Bearer realm="portcullis", error="invalid_token", …`.
#[track_caller]
fn invalid_token(r: &Raw, what: &str) {
    refused(r, 401, what);
    let c = challenge(r);
    assert!(
        c.starts_with("Bearer ")
            && c.contains(r#"realm="portcullis""#)
            && c.contains(r#"error="invalid_token""#),
        "{what}: WWW-Authenticate should say error=\"invalid_token\": {c:?}"
    );
}

/// 403 with `WWW-Authenticate: Bearer …, error="insufficient_scope", scope="<needed>"`.
#[track_caller]
fn insufficient_scope(r: &Raw, needed: &str, what: &str) {
    refused(r, 403, what);
    let c = challenge(r);
    assert!(
        c.contains(r#"realm="portcullis""#)
            && c.contains(r#"error="insufficient_scope""#)
            && c.contains(&format!(r#"scope="{needed}""#)),
        "{what}: WWW-Authenticate should say insufficient_scope, scope=\"{needed}\": {c:?}"
    );
}

/// The one value of an identity header the backend received.
#[track_caller]
fn one(echo: &Value, name: &str) -> String {
    let v = echoed(echo, name);
    assert_eq!(
        v.len(),
        1,
        "the backend should get exactly one {name}: {v:?}\n{echo:#}"
    );
    v[0].clone()
}

/// A list in a userinfo answer: a JSON array, or a string of space/comma separated values.
fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    }
}

async fn userinfo(gw: &Gateway, token: &str) -> Raw {
    get(
        gw.addr,
        "/_portcullis/userinfo",
        &[("Authorization", &bearer(token))],
    )
    .await
}

#[track_caller]
fn userinfo_json(r: &Raw, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: userinfo should be 200: {r:#?}");
    serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{what}: userinfo is not JSON ({e}): {r:#?}"))
}

/// `expires_at` is the token's `exp`: Unix seconds (number or numeric string), or a date.
#[track_caller]
fn assert_expires_at(info: &Value, exp: u64, what: &str) {
    match &info["expires_at"] {
        Value::Number(n) => assert_eq!(n.as_u64(), Some(exp), "{what}: expires_at {info}"),
        Value::String(s) if s.parse::<u64>().is_ok() => {
            assert_eq!(s.parse::<u64>().unwrap(), exp, "{what}: expires_at {info}")
        }
        Value::String(s) => assert!(s.starts_with("20"), "{what}: expires_at is no date: {info}"),
        _ => panic!("{what}: no expires_at in {info}"),
    }
}

// ------------------------------------------------------------------ 1. identity upstream

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_service_token_reaches_the_backend_with_its_identity_and_no_forgery() {
    let op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let token = op
        .token("billing-service", "orders:read orders:write")
        .await;
    let auth = bearer(&token);

    let r = get(
        gw.addr,
        "/api/orders/1",
        &[
            ("Authorization", &auth),
            ("X-Auth-Request-User", "admin"),
            ("x-auth-request-client", "reporting-service"),
            ("X_Auth_Request_Scopes", "orders:admin"),
            ("X-Auth-Request-Roles", "orders-admin"),
            ("X-Auth-Request-Email", "root@example.com"),
            ("X-Auth-Request-Groups", "/admins"),
            ("X-Auth-Request-Subject", "root"),
        ],
    )
    .await;
    let echo = reached(&r, "billing-service GET /api/orders/1");
    assert_eq!(echo["uri"], "/api/orders/1");
    assert_eq!(one(&echo, "x-auth-request-client"), "billing-service");
    assert_eq!(
        one(&echo, "x-auth-request-scopes"),
        "orders:read,orders:write"
    );
    // realm_access.roles ["service"] + resource_access.portcullis.roles ["orders-writer"]
    assert_eq!(one(&echo, "x-auth-request-roles"), "orders-writer,service");
    assert_eq!(
        one(&echo, "x-auth-request-user"),
        "service-account-billing-service"
    );
    assert_eq!(one(&echo, "x-auth-request-subject"), "billing-service");
    // A service token has no email and no groups: the forged ones are gone, none replaced them.
    assert!(echoed(&echo, "x-auth-request-email").is_empty(), "{echo:#}");
    assert!(
        echoed(&echo, "x-auth-request-groups").is_empty(),
        "{echo:#}"
    );
    for (name, _) in echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap(), p[1].as_str().unwrap()))
    {
        assert!(
            !name.starts_with("x_auth_request"),
            "{name} reached the backend"
        );
    }
    assert_eq!(
        echoed(&echo, "authorization"),
        std::slice::from_ref(&auth),
        "the bearer token is passed on unchanged"
    );

    // The same token on the same route again: still the same identity (no state leaks).
    let echo = reached(
        &with_token(&gw, "GET", "/api/orders/2?x=1", &token).await,
        "again",
    );
    assert_eq!(echo["uri"], "/api/orders/2?x=1");
    assert_eq!(one(&echo, "x-auth-request-client"), "billing-service");

    // A public route: the forged identity is stripped there too.
    let r = get(
        gw.addr,
        "/public",
        &[("Authorization", &auth), ("X-Auth-Request-User", "admin")],
    )
    .await;
    let echo = reached(&r, "public route");
    assert!(
        !echoed(&echo, "x-auth-request-user").contains(&"admin".to_owned()),
        "{echo:#}"
    );
}

// ------------------------------------------------------------------ 2. refusals

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_valid_allowed_token_never_reach_the_backend() {
    let (op, dot) = tokio::join!(Provider::start(), Dot::start());
    let gw = gateway(&op, Some(&dot)).await;
    let (billing, shipping) = tokio::join!(
        op.token("billing-service", "orders:read orders:write"),
        op.token("shipping-service", "orders:read"),
    );

    // A valid token of a client that is not on the allow-list.
    let r = with_token(&gw, "GET", "/api/orders/1", &shipping).await;
    refused(&r, 403, "shipping-service is not in allow.clients");

    // No token at all, or credentials that are not a bearer token.
    for (what, headers, path) in [
        ("no Authorization", vec![], "/api/orders/1"),
        (
            "Basic credentials",
            vec![("Authorization", "Basic YmlsbGluZzpzZWNyZXQ=")],
            "/api/orders/1",
        ),
    ] {
        let r = get(gw.addr, path, &headers).await;
        refused(&r, 401, what);
        let c = challenge(&r);
        assert!(
            c.contains(r#"Bearer realm="portcullis""#) && !c.contains("error="),
            "{what}: expected WWW-Authenticate: Bearer realm=\"portcullis\" with no error: {c:?}"
        );
    }
    let r = get(
        gw.addr,
        &format!("/api/orders/1?access_token={billing}"),
        &[],
    )
    .await;
    refused(&r, 401, "a token in the query counts as none");

    // Garbage and forgeries.
    let mut payload = jwt_part(&billing, 1);
    payload["azp"] = "reporting-service".into();
    payload["client_id"] = "reporting-service".into();
    payload["scope"] = "orders:read orders:write orders:admin".into();
    let sig = billing.split('.').nth(2).unwrap();
    let head = billing.split('.').next().unwrap();
    let resigned = format!("{head}.{}.{sig}", b64(&payload));
    let mut none_header = jwt_part(&billing, 0);
    none_header["alg"] = "none".into();
    let alg_none = format!(
        "{}.{}.",
        b64(&none_header),
        billing.split('.').nth(1).unwrap()
    );
    let mut unknown_kid = jwt_part(&billing, 0);
    unknown_kid["kid"] = "rs256-0000000000000000".into();
    let unknown_kid = format!(
        "{}.{}.{sig}",
        b64(&unknown_kid),
        billing.split('.').nth(1).unwrap()
    );
    for (what, token) in [
        ("garbage", "garbage-token".to_owned()),
        ("a changed payload under the original signature", resigned),
        ("alg none", alg_none),
        ("an unknown kid", unknown_kid),
        (
            "a truncated signature",
            billing[..billing.len() - 8].to_owned(),
        ),
    ] {
        let r = with_token(&gw, "GET", "/api/orders/1", &token).await;
        invalid_token(&r, what);
        if token.len() > 20 {
            assert!(
                !r.body.contains(&token) && !r.head.contains(&token),
                "{what}: the refusal echoes the token"
            );
        }
    }
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &billing).await,
        "the genuine token still works",
    );
}

// ------------------------------------------------------------------ 3. scopes by method

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_scope_a_method_needs_is_refused_with_insufficient_scope() {
    let op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let (billing, reporting) = tokio::join!(
        op.token("billing-service", "orders:read orders:write"),
        op.token("reporting-service", "orders:read orders:admin"),
    );

    // billing-service: orders:read orders:write.
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &billing).await,
        "billing GET (read)",
    );
    reached(
        &with_token(&gw, "POST", "/api/orders/1", &billing).await,
        "billing POST (write)",
    );
    let r = with_token(&gw, "DELETE", "/api/orders/1", &billing).await;
    insufficient_scope(&r, "orders:admin", "billing DELETE needs orders:admin");

    // reporting-service: orders:read orders:admin.
    let echo = reached(
        &with_token(&gw, "DELETE", "/api/orders/1", &reporting).await,
        "reporting DELETE",
    );
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(
        one(&echo, "x-auth-request-scopes"),
        "orders:admin,orders:read"
    );
    assert_eq!(one(&echo, "x-auth-request-roles"), "orders-admin,service");
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &reporting).await,
        "reporting GET (read)",
    );
    // A HEAD answer has no body to read the echo from: the backend's JSON content type shows it.
    let r = with_token(&gw, "HEAD", "/api/orders/1", &reporting).await;
    assert_eq!(r.status, 200, "reporting HEAD (read): {r:#?}");
    assert_eq!(
        header(&r, "content-type"),
        ["application/json"],
        "HEAD from the backend: {}",
        r.head
    );
    let r = with_token(&gw, "PUT", "/api/orders/1", &reporting).await;
    insufficient_scope(&r, "orders:write", "reporting PUT needs orders:write");

    // Methods are matched as sent, and a method not in capitals needs the scopes of its
    // capitalized spelling too (Django acts on `get` as GET): `get` needs `write` and `read`,
    // PROPFIND is no GET and needs `write`.
    let r = with_token(&gw, "get", "/api/orders/1", &reporting).await;
    insufficient_scope(
        &r,
        "orders:write orders:read",
        "lower-case `get` needs the write scopes and GET's",
    );
    let r = with_token(&gw, "PROPFIND", "/api/orders/1", &reporting).await;
    insufficient_scope(&r, "orders:write", "PROPFIND needs the write scopes");
    let echo = reached(
        &with_token(&gw, "get", "/api/orders/1", &billing).await,
        "billing `get` (write)",
    );
    assert_eq!(one(&echo, "x-auth-request-client"), "billing-service");
}

// ------------------------------------------------------------------ 4. audience, issuer

#[tokio::test(flavor = "multi_thread")]
async fn tokens_for_another_audience_or_from_another_issuer_are_refused() {
    let (op, stranger) = tokio::join!(Provider::start(), Provider::start());
    let gw = gateway(&op, None).await;
    let (other_aud, foreign) = tokio::join!(
        op.token("other-audience-service", "orders:read orders:write"),
        // Same realm, clients and keys (the key pool's first), another issuer URL: a valid
        // signature, so only the issuer check can refuse it.
        stranger.token("billing-service", "orders:read orders:write"),
    );
    assert_eq!(
        jwt_part(&other_aud, 1)["aud"],
        "account",
        "the realm gives this client aud=account"
    );

    for (what, token) in [
        ("aud without portcullis", &other_aud),
        ("another issuer", &foreign),
    ] {
        invalid_token(&with_token(&gw, "GET", "/api/orders/1", token).await, what);
        invalid_token(
            &with_token(&gw, "GET", "/api/inventory/1", token).await,
            what,
        );
        let r = userinfo(&gw, token).await;
        assert_eq!(r.status, 401, "{what}: userinfo {r:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refused_once_past_its_exp_and_the_clock_skew() {
    let op = Provider::start_with(0, None, &["--access-ttl", "4"]).await;
    let gw = gateway_with(&op, None, r#"clock_skew = "1s""#).await;
    let token = op
        .token("billing-service", "orders:read orders:write")
        .await;
    let exp = jwt_part(&token, 1)["exp"].as_u64().unwrap();
    assert!(
        exp <= now() + 5,
        "the provider honours --access-ttl: exp {exp}, now {}",
        now()
    );
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &token).await,
        "before exp",
    );

    // Past exp + clock_skew (1 s), with a margin for whole-second rounding: the gateway's
    // clock moves instead of the test waiting.
    gw.advance_clock((exp + 1 + 2).saturating_sub(now())).await;
    invalid_token(
        &with_token(&gw, "GET", "/api/orders/1", &token).await,
        "expired token",
    );
    let r = userinfo(&gw, &token).await;
    assert_eq!(r.status, 401, "userinfo, expired token: {r:#?}");
}

// ------------------------------------------------------------------ 5. ES256, userinfo

#[tokio::test(flavor = "multi_thread")]
async fn es256_and_rs256_tokens_are_both_verified_and_userinfo_tells_who_called() {
    let op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let (es, rs) = tokio::join!(
        op.token("es256-service", "orders:read orders:write"),
        op.token("billing-service", "orders:read orders:write"),
    );
    assert_eq!(jwt_part(&es, 0)["alg"], "ES256");
    assert_eq!(jwt_part(&rs, 0)["alg"], "RS256");

    for (token, client, roles) in [
        (&es, "es256-service", vec!["orders-writer", "service"]),
        (&rs, "billing-service", vec!["orders-writer", "service"]),
    ] {
        let info = userinfo_json(&userinfo(&gw, token).await, client);
        assert_eq!(info["client"], client, "{info}");
        let mut scopes = list(&info["scopes"]);
        scopes.sort();
        assert_eq!(scopes, ["orders:read", "orders:write"], "{info}");
        let mut got_roles = list(&info["roles"]);
        got_roles.sort();
        assert_eq!(got_roles, roles, "{info}");
        assert_eq!(info["user"], format!("service-account-{client}"), "{info}");
        let exp = jwt_part(token, 1)["exp"].as_u64().unwrap();
        assert_expires_at(&info, exp, client);
    }
    // The ES256 token is valid: its client is refused by the allow-list (403), not as an
    // invalid token (401).
    refused(
        &with_token(&gw, "GET", "/api/orders/1", &es).await,
        403,
        "es256-service not allowed",
    );
    // And an ES256 token with its signature broken is invalid.
    let broken = format!("{}AAAA", &es[..es.len() - 4]);
    invalid_token(
        &with_token(&gw, "GET", "/api/orders/1", &broken).await,
        "broken ES256 signature",
    );

    let r = get(gw.addr, "/_portcullis/userinfo", &[]).await;
    refused(&r, 401, "userinfo without a token");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opaque_token_of_the_provider_is_introspected_not_refused_or_trusted_blindly() {
    let op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let opaque = op.token("opaque-service", "orders:read orders:write").await;
    assert!(
        !opaque.contains('.'),
        "opaque-service gets an opaque token: {opaque}"
    );

    let info = userinfo_json(&userinfo(&gw, &opaque).await, "opaque-service");
    assert_eq!(info["client"], "opaque-service", "{info}");
    let mut scopes = list(&info["scopes"]);
    scopes.sort();
    assert_eq!(scopes, ["orders:read", "orders:write"], "{info}");
    // Verified, but not on the orders allow-list.
    refused(
        &with_token(&gw, "GET", "/api/orders/1", &opaque).await,
        403,
        "opaque-service not allowed",
    );
    // An opaque-looking token the provider never issued.
    invalid_token(
        &with_token(
            &gw,
            "GET",
            "/api/orders/1",
            "k3ElhyrpwEn0cvS6NN7ZLhjQXTWkbKuaxS9nGYvuGY5",
        )
        .await,
        "unknown opaque token",
    );
}

// ------------------------------------------------------------------ 6. opaque tokens at DOT

#[tokio::test(flavor = "multi_thread")]
async fn opaque_tokens_from_a_second_issuer_are_introspected_and_their_scopes_enforced() {
    let (op, dot) = tokio::join!(Provider::start(), Dot::start());
    let gw = gateway(&op, Some(&dot)).await;
    let (inventory, audit) =
        tokio::join!(dot.token("inventory-service"), dot.token("audit-service"));
    assert_eq!(dot.introspect(&inventory).await["active"], true);

    let echo = reached(
        &with_token(&gw, "GET", "/api/inventory/x", &inventory).await,
        "inventory GET",
    );
    assert_eq!(echo["uri"], "/api/inventory/x");
    assert_eq!(one(&echo, "x-auth-request-client"), "inventory-service");
    assert_eq!(
        one(&echo, "x-auth-request-scopes"),
        "inventory:read,inventory:write"
    );
    assert_eq!(echoed(&echo, "authorization"), [bearer(&inventory)]);
    reached(
        &with_token(&gw, "POST", "/api/inventory/x", &inventory).await,
        "inventory POST",
    );

    // audit-service: inventory:read only.
    let echo = reached(
        &with_token(&gw, "GET", "/api/inventory/x", &audit).await,
        "audit GET",
    );
    assert_eq!(one(&echo, "x-auth-request-client"), "audit-service");
    assert_eq!(one(&echo, "x-auth-request-scopes"), "inventory:read");
    let r = with_token(&gw, "POST", "/api/inventory/x", &audit).await;
    insufficient_scope(&r, "inventory:write", "audit POST");

    // A DOT token is not on the orders allow-list.
    refused(
        &with_token(&gw, "GET", "/api/orders/1", &inventory).await,
        403,
        "inventory on orders",
    );
    let info = userinfo_json(&userinfo(&gw, &inventory).await, "inventory-service");
    assert_eq!(info["client"], "inventory-service", "{info}");
    // A token neither issuer knows.
    invalid_token(
        &with_token(
            &gw,
            "GET",
            "/api/inventory/x",
            "AbCdEfGhIjKlMnOpQrStUvWxYz0123",
        )
        .await,
        "unknown opaque token",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_opaque_token_is_refused_once_the_introspection_cache_expires() {
    let (op, dot) = tokio::join!(Provider::start(), Dot::start());
    let gw = gateway(&op, Some(&dot)).await;
    let token = dot.token("inventory-service").await;

    for i in 0..3 {
        reached(
            &with_token(&gw, "GET", "/api/inventory/x", &token).await,
            &format!("before revoking, #{i}"),
        );
    }
    dot.revoke("inventory-service", &token).await;
    assert_eq!(
        dot.introspect(&token).await,
        serde_json::json!({"active": false})
    );
    // introspection_cache = "60s": the answer is kept that long, so the revocation is not
    // seen yet; once the gateway's clock passes it, the next use asks again and is refused.
    reached(
        &with_token(&gw, "GET", "/api/inventory/x", &token).await,
        "revoked, while the introspection answer is cached",
    );
    gw.advance_clock(30).await;
    reached(
        &with_token(&gw, "GET", "/api/inventory/x", &token).await,
        "revoked, 30 s into the 60 s cache",
    );
    gw.advance_clock(31).await;
    invalid_token(
        &with_token(&gw, "GET", "/api/inventory/x", &token).await,
        "revoked token once the cache ended",
    );
    invalid_token(
        &with_token(&gw, "GET", "/api/inventory/x", &token).await,
        "revoked token, again",
    );
    // Another token of the same client is unaffected.
    let fresh = dot.token("inventory-service").await;
    reached(
        &with_token(&gw, "GET", "/api/inventory/x", &fresh).await,
        "a fresh token",
    );
}

// ------------------------------------------------------------------ 7. key rotation

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
struct Attempt {
    ms: u128,
    kid: String,
    status: u16,
    reason: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotation_at_the_provider_fails_no_request() {
    let op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let started = Instant::now();
    let old = op
        .token("billing-service", "orders:read orders:write")
        .await;
    let old_kid = kid(&old);
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &old).await,
        "before rotation",
    );

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let mut workers = vec![];
    for _ in 0..2 {
        let (stop, attempts, url, addr) = (stop.clone(), attempts.clone(), op.token_url(), gw.addr);
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let token = token_at(&url, "billing-service", "orders:read orders:write").await;
                let r = call(
                    addr,
                    "GET",
                    "/api/orders/1",
                    &[("Authorization", &bearer(&token))],
                )
                .await;
                let ok = r.status == 200 && r.echo().is_some();
                attempts.lock().unwrap().push(Attempt {
                    ms: started.elapsed().as_millis(),
                    kid: kid(&token),
                    status: if ok { 200 } else { r.status },
                    reason: if ok {
                        String::new()
                    } else {
                        format!("{} {}", challenge(&r), r.body)
                    },
                });
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }

    // Rotate more than 10 s (the gateway's clock) after it loaded the keys, so that even a
    // gateway that counts its start-up fetch against "at most one JWKS fetch per 10 s" may
    // fetch now.
    gw.advance_clock(11).await;
    let keys = op.rotate().await;
    let new_kid = keys["signing_kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(
        keys["kids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == &old_kid),
        "old key still published"
    );

    // Keep going until plenty of requests carried the new kid.
    let deadline = Instant::now() + Duration::from_secs(20);
    while attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.kid == new_kid)
        .count()
        < 20
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let attempts = std::mem::take(&mut *attempts.lock().unwrap());
    let with_new = attempts.iter().filter(|a| a.kid == new_kid).count();
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 200).collect();
    eprintln!(
        "rotation: {} requests, {} with the old kid {old_kid}, {with_new} with the new kid {new_kid}",
        attempts.len(),
        attempts.iter().filter(|a| a.kid == old_kid).count()
    );
    assert!(
        with_new >= 20,
        "too few tokens with the new kid were tried: {with_new}"
    );
    assert!(
        failed.is_empty(),
        "{} requests failed around the rotation: {:#?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );

    // Tokens signed with the old key are still good: it is still published.
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &old).await,
        "old token after rotation",
    );
}

// ------------------------------------------------------------------ 8. provider outage

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_outage_stops_no_token_whose_key_is_cached() {
    let mut op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let (first, second, reporting) = tokio::join!(
        op.token("billing-service", "orders:read orders:write"),
        op.token("billing-service", "orders:read"),
        op.token("reporting-service", "orders:read orders:admin"),
    );
    assert_eq!(kid(&first), kid(&second));
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &first).await,
        "while the provider is up",
    );
    let ready_before = readyz(&gw).await;
    assert_eq!(ready_before, 200);

    op.kill();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", op.port))
            .await
            .is_err(),
        "the provider is down"
    );

    // Tokens never seen before, signed with the cached key.
    let echo = reached(
        &with_token(&gw, "GET", "/api/orders/1", &second).await,
        "new token, provider down",
    );
    assert_eq!(one(&echo, "x-auth-request-scopes"), "orders:read");
    reached(
        &with_token(&gw, "DELETE", "/api/orders/1", &reporting).await,
        "reporting, provider down",
    );
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &first).await,
        "first token again, provider down",
    );
    // Scope rules and refusals still hold.
    insufficient_scope(
        &with_token(&gw, "POST", "/api/orders/1", &second).await,
        "orders:write",
        "provider down",
    );
    // A forged JWT under a cached kid is still invalid. (An opaque token cannot be
    // introspected now: 401 or 503 will do, as long as it goes no further.)
    let mut payload = jwt_part(&second, 1);
    payload["scope"] = "orders:read orders:write orders:admin".into();
    let parts: Vec<&str> = second.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    invalid_token(
        &with_token(&gw, "DELETE", "/api/orders/1", &forged).await,
        "forged, provider down",
    );
    let r = with_token(&gw, "GET", "/api/orders/1", "garbage").await;
    assert!(
        matches!(r.status, 401 | 503) && r.echo().is_none(),
        "garbage, provider down: {r:#?}"
    );
    for _ in 0..5 {
        assert_eq!(
            readyz(&gw).await,
            ready_before,
            "/readyz changed when the provider went down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reached(&get(gw.addr, "/", &[]).await, "public route");
}

// ------------------------------------------------------------------ 9. started while down

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_started_while_the_provider_is_down_lets_nothing_unverified_through_and_recovers()
{
    // A token, and the provider's keys, from a provider on the port the gateway will use.
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = keys_dir.path().join("op-keys.json");
    let port = support::free_port();
    let mut op = Provider::start_with(port, Some(keys.clone()), &[]).await;
    let issuer = op.issuer.clone();
    let token = op
        .token("billing-service", "orders:read orders:write")
        .await;
    op.kill();
    drop(op);

    let echo = support::echo().await;
    let gw = Gateway::start("", &config(&issuer, None, echo, "")).await;
    reached(
        &get(gw.addr, "/", &[]).await,
        "public route with the provider down",
    );
    assert_eq!(
        readyz(&gw).await,
        503,
        "/readyz while discovery never succeeded"
    );
    for (method, path) in [
        ("GET", "/api/orders/1"),
        ("DELETE", "/api/orders/1"),
        ("GET", "/api/inventory/1"),
    ] {
        let r = with_token(&gw, method, path, &token).await;
        assert!(
            matches!(r.status, 401 | 503) && r.echo().is_none(),
            "{method} {path} with the provider down must be refused (401 or 503): {r:#?}"
        );
    }
    let r = get(
        gw.addr,
        "/_portcullis/userinfo",
        &[("Authorization", &bearer(&token))],
    )
    .await;
    assert!(
        matches!(r.status, 401 | 503),
        "userinfo with the provider down: {r:#?}"
    );

    // The provider comes up on its port with the same keys.
    let op = Provider::start_with(port, Some(keys), &[]).await;
    assert_eq!(op.issuer, issuer);
    let up = Instant::now();
    assert!(
        wait_ready(&gw, Duration::from_secs(15)).await,
        "/readyz still not 200 15 s after the provider came up; gateway log:\n{}",
        gw.log()
    );
    eprintln!(
        "ready {} ms after the provider came up",
        up.elapsed().as_millis()
    );
    let echo = reached(
        &with_token(&gw, "GET", "/api/orders/1", &token).await,
        "the earlier token, provider up",
    );
    assert_eq!(one(&echo, "x-auth-request-client"), "billing-service");
    let fresh = op
        .token("billing-service", "orders:read orders:write")
        .await;
    reached(
        &with_token(&gw, "GET", "/api/orders/1", &fresh).await,
        "a fresh token",
    );
}

// ------------------------------------------------------------------ 10. forward-auth

#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_decides_with_the_bearer_and_never_redirects() {
    let op = Provider::start().await;
    let gw = gateway(&op, None).await;
    let (billing, shipping) = tokio::join!(
        op.token("billing-service", "orders:read orders:write"),
        op.token("shipping-service", "orders:read"),
    );
    let (addr, host) = (gw.addr, gw.addr.to_string());
    let ask =
        |method: &'static str, token: Option<String>, extra: Vec<(&'static str, &'static str)>| {
            let host = host.clone();
            async move {
                let auth = token.map(|t| bearer(&t));
                let mut headers: Vec<(&str, &str)> = vec![
                    ("X-Forwarded-Method", method),
                    ("X-Forwarded-Host", &host),
                    ("X-Forwarded-Uri", "/api/orders/1"),
                ];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a));
                }
                headers.extend(extra);
                get(addr, "/_portcullis/auth", &headers).await
            }
        };

    let r = ask(
        "GET",
        Some(billing.clone()),
        vec![("X-Auth-Request-Client", "reporting-service")],
    )
    .await;
    assert_eq!(r.status, 200, "forward-auth with a good token: {r:#?}");
    assert_eq!(
        header(&r, "x-auth-request-client"),
        ["billing-service"],
        "{}",
        r.head
    );
    assert_eq!(
        header(&r, "x-auth-request-scopes"),
        ["orders:read,orders:write"],
        "{}",
        r.head
    );
    assert_eq!(
        header(&r, "x-auth-request-user"),
        ["service-account-billing-service"],
        "{}",
        r.head
    );

    let r = ask("DELETE", Some(billing.clone()), vec![]).await;
    insufficient_scope(&r, "orders:admin", "forward-auth DELETE");
    let r = ask("GET", Some(shipping), vec![]).await;
    refused(&r, 403, "forward-auth, client not allowed");
    for (what, extra) in [
        ("no bearer", vec![]),
        (
            "no bearer, a browser",
            vec![("Accept", "text/html"), ("Sec-Fetch-Mode", "navigate")],
        ),
    ] {
        let r = ask("GET", None, extra).await;
        assert_eq!(r.status, 401, "forward-auth, {what}: {r:#?}");
        assert!(
            header(&r, "location").is_empty(),
            "forward-auth must never redirect: {}",
            r.head
        );
        assert!(header(&r, "x-auth-request-client").is_empty(), "{}", r.head);
    }
    let r = ask("GET", Some("garbage".into()), vec![]).await;
    invalid_token(&r, "forward-auth, garbage token");
}
