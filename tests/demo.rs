//! `portcullis demo`, end to end: the real binary with its development provider and echo
//! backend, driven like a browser (cookies kept per host:port, every redirect inspected
//! before it is followed). The provider's protocol rules are also checked on their own,
//! in-process, with a gateway client secret the test knows.

#![cfg(feature = "demo")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use support::browser::{Answer, Browser};
use support::process::Server;

/// A running `portcullis demo`, killed on drop.
struct Demo {
    server: Server,
    url: String,
    issuer: String,
    /// Everything it printed up to its ready line.
    banner: String,
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

impl Demo {
    fn start() -> Demo {
        let [listen, provider, backend, admin] = [(); 4].map(|_| support::free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args([
            "demo",
            "--listen",
            &loopback(listen),
            "--provider",
            &loopback(provider),
        ])
        .args(["--backend", &loopback(backend), "--admin", &loopback(admin)]);
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(
            "portcullis demo",
            cmd,
            "demo ready: ",
            Duration::from_secs(30),
            dir,
        );
        let banner = server.stdout();
        let url = format!("http://{}", loopback(listen));
        assert!(banner.contains(&format!("demo ready: {url}/")), "{banner}");
        Demo {
            server,
            url,
            issuer: format!("http://{}/realms/demo", loopback(provider)),
            banner,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn log(&self) -> String {
        self.server.log()
    }

    /// The bearer token of the printed `curl` line.
    fn printed_token(&self) -> String {
        let line = self
            .banner
            .lines()
            .find(|l| l.trim_start().starts_with("curl "))
            .unwrap();
        let token = line.split("Authorization: Bearer ").nth(1).unwrap();
        token.trim_end_matches('\'').to_owned()
    }

    /// The arguments of the printed `portcullis token` line.
    fn printed_token_command(&self) -> Vec<String> {
        let line = self
            .banner
            .lines()
            .find(|l| l.trim_start().starts_with("portcullis token "))
            .unwrap();
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    }
}

impl Answer {
    fn echo(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not the echo backend: {}", self.body))
    }

    /// The pending-request id the provider's login form carries.
    fn form_request(&self) -> String {
        let marker = "name=\"request\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no login form: {}", self.body));
        let rest = &self.body[start + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    fn error(&self) -> Value {
        serde_json::from_str::<Value>(&self.body).unwrap()["error"].clone()
    }
}

impl Browser {
    /// Posts the provider's login form (its action is the authorization endpoint).
    async fn submit(&mut self, issuer: &str, request: &str, user: &str, password: &str) -> Answer {
        let action = format!("{issuer}/protocol/openid-connect/auth");
        let form = self.http.post(&action).form(&[
            ("request", request),
            ("username", user),
            ("password", password),
        ]);
        self.send(form, &action).await
    }

    /// Opens `start` on the gateway, logs in at the provider, and opens the callback;
    /// returns the gateway's answer to the callback.
    async fn log_in_to_demo(
        &mut self,
        demo: &Demo,
        start: &str,
        user: &str,
        password: &str,
    ) -> Answer {
        let first = self.open(start).await;
        assert_eq!(
            first.status,
            302,
            "sent to log in: {}\n{}",
            first.body,
            demo.log()
        );
        let authorize = first.location.unwrap();
        assert!(
            authorize.starts_with(&format!("{}/protocol/openid-connect/auth?", demo.issuer)),
            "{authorize}"
        );
        let form = self.open(&authorize).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let back = self
            .submit(&demo.issuer, &form.form_request(), user, password)
            .await;
        assert_eq!(back.status, 302, "{}", back.body);
        let callback = back.location.unwrap();
        assert!(
            callback.starts_with(&demo.url("/_portcullis/callback?code=")),
            "{callback}"
        );
        self.open(&callback).await
    }
}

fn header(echo: &Value, name: &str) -> String {
    support::echoed(echo, name).join("|")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demo_login_lands_on_the_page_first_asked_for_with_alices_identity_and_roles() {
    let demo = Demo::start();
    assert!(demo
        .banner
        .contains("NOT FOR PRODUCTION: built-in development provider with fixed passwords"));
    let mut b = Browser::new();
    let start = demo.url("/app?x=1");
    let done = b
        .log_in_to_demo(&demo, &start, "alice", "alice-password")
        .await;
    assert_eq!(done.status, 302, "{}\n{}", done.body, demo.log());
    assert_eq!(
        done.location.as_deref(),
        Some(start.as_str()),
        "back to the exact URL"
    );
    let page = b.open(&start).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<th>user (x-auth-request-user)</th><td>alice</td>"),
        "a page load gets the backend's page: {}",
        page.body
    );
    let echo = b.fetch(&start).await.echo();
    assert_eq!(echo["uri"], "/app?x=1");
    assert_eq!(header(&echo, "x-auth-request-user"), "alice");
    assert_eq!(header(&echo, "x-auth-request-email"), "alice@example.com");
    assert_eq!(
        header(&echo, "x-auth-request-roles"),
        "admin,editor,user",
        "realm roles and the gateway client's roles, from the access token"
    );
    assert_eq!(header(&echo, "x-auth-request-groups"), "/staff");
    assert_eq!(
        b.open(&demo.url("/admin")).await.status,
        200,
        "alice has the admin role"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bob_without_the_admin_role_gets_403_on_admin_not_a_login_loop() {
    let demo = Demo::start();
    let mut b = Browser::new();
    let done = b
        .log_in_to_demo(&demo, &demo.url("/admin"), "bob", "bob-password")
        .await;
    assert_eq!(done.status, 302);
    let page = b.open(&demo.url("/admin")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none());
    let app = b.fetch(&demo.url("/app")).await;
    assert_eq!(header(&app.echo(), "x-auth-request-roles"), "user");
}

/// Where `needle` is in `page`, or a failure that shows the page.
fn at(page: &str, needle: &str) -> usize {
    page.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not on the page:\n{page}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_backend_shows_a_browser_the_identity_first_as_text_and_api_clients_json() {
    let demo = Demo::start();
    let mut b = Browser::new();
    b.log_in_to_demo(&demo, &demo.url("/app"), "alice", "alice-password")
        .await;
    let url = demo.url("/app/page?x=1");
    let hostile = "<script>alert(1)</script>";
    let load = b
        .http
        .get(&url)
        .header("Accept", "text/html")
        .header("Sec-Fetch-Mode", "navigate")
        .header("X-Note", hostile);
    let page = b.send(load, &url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let html = page.body.as_str();
    assert!(
        html.starts_with("<!doctype html>"),
        "a page, not JSON: {html}"
    );
    assert!(html.contains("<code>GET /app/page?x=1</code>"), "{html}");
    // The identity the gateway set comes first, in reading order, then every other header.
    let identity = [
        "<th>user (x-auth-request-user)</th><td>alice</td>",
        "<th>email (x-auth-request-email)</th><td>alice@example.com</td>",
        "<th>roles (x-auth-request-roles)</th><td>admin,editor,user</td>",
        "<th>groups (x-auth-request-groups)</th><td>/staff</td>",
    ];
    let places: Vec<usize> = identity.iter().map(|n| at(html, n)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{html}");
    let rest = at(html, "Every other request header");
    assert!(places.iter().all(|&p| p < rest), "identity first: {html}");
    assert!(at(html, "<th>x-forwarded-for</th>") > rest, "{html}");
    // A header value is text on the page, never markup.
    assert!(!html.contains(hostile), "{html}");
    assert!(
        html.contains("<th>x-note</th><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "{html}"
    );
    for link in [
        "href=\"/admin\"",
        "href=\"/_portcullis/userinfo\"",
        "href=\"/_portcullis/logout",
    ] {
        at(html, link);
    }
    // The gateway's session cookie is no header the backend saw.
    assert!(!html.contains("_portcullis="), "{html}");

    // A fetch, and a client that names no Accept, get the JSON they always got.
    let echo = b.fetch(&url).await.echo();
    assert_eq!(echo["uri"], "/app/page?x=1");
    assert_eq!(header(&echo, "x-auth-request-user"), "alice");
    let api = support::client()
        .get(demo.url("/public/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.headers()["content-type"], "application/json");
    let echo: Value = api.json().await.unwrap();
    assert_eq!(echo["uri"], "/public/x");
    assert!(echo["headers"].is_array() && echo["body_bytes"] == 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_shows_a_browser_a_page_and_gives_api_clients_the_json() {
    let demo = Demo::start();
    let mut b = Browser::new();
    b.log_in_to_demo(&demo, &demo.url("/app"), "alice", "alice-password")
        .await;
    let url = demo.url("/_portcullis/userinfo");
    let page = b.open(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let html = page.body.as_str();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    let fields = [
        "<th>user</th><td>alice</td>",
        "<th>email</th><td>alice@example.com</td>",
        "<th>roles</th><td>admin,editor,user</td>",
        "<th>groups</th><td>/staff</td>",
    ];
    let places: Vec<usize> = fields.iter().map(|n| at(html, n)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{html}");
    at(html, "href=\"/_portcullis/logout\"");

    let who = b.fetch(&url).await;
    assert_eq!(who.status, 200, "{}", who.body);
    let who: Value = serde_json::from_str(&who.body).unwrap();
    assert_eq!(who["user"], "alice");
    assert_eq!(who["roles"], serde_json::json!(["admin", "editor", "user"]));
    for key in [
        "email",
        "groups",
        "subject",
        "client",
        "scopes",
        "expires_at",
    ] {
        assert!(who.get(key).is_some(), "{key} in {who}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_printed_service_token_opens_the_api_and_a_read_only_service_cannot_write() {
    let demo = Demo::start();
    let http = support::client();
    let api = demo.url("/api/orders");
    let token = demo.printed_token();
    let resp = http.get(&api).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(header(&echo, "x-auth-request-client"), "billing-service");
    assert_eq!(
        header(&echo, "x-auth-request-scopes"),
        "orders:read,orders:write"
    );
    assert_eq!(
        header(&echo, "x-auth-request-user"),
        "service-account-billing-service"
    );
    assert_eq!(
        http.get(&api).send().await.unwrap().status(),
        401,
        "no token"
    );

    // The printed `portcullis token` line works, and with the read-only service's
    // credentials gives a token that may read but not write.
    let args = demo.printed_token_command();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = support::run_cli(&args);
    assert_eq!(code, 0, "{err}");
    let status = http
        .post(&api)
        .bearer_auth(out.trim())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "billing-service may write");
    let reporting: Vec<&str> = args
        .iter()
        .map(|a| match *a {
            "billing-service" => "reporting-service",
            "billing-secret" => "reporting-secret",
            a => a,
        })
        .collect();
    let (code, out, err) = support::run_cli(&reporting);
    assert_eq!(code, 0, "{err}");
    let read_only = out.trim();
    assert_eq!(
        http.get(&api)
            .bearer_auth(read_only)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let write = http.post(&api).bearer_auth(read_only).send().await.unwrap();
    assert_eq!(write.status(), 403);
    assert!(write.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // The public route needs nothing.
    assert_eq!(
        http.get(demo.url("/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_shows_the_form_again_and_issues_no_code() {
    let demo = Demo::start();
    let mut b = Browser::new();
    let first = b.open(&demo.url("/app")).await;
    let form = b.open(first.location.as_deref().unwrap()).await;
    let request = form.form_request();
    for (user, password) in [
        ("alice", "bob-password"),
        ("alice", ""),
        ("mallory", "alice-password"),
    ] {
        let again = b.submit(&demo.issuer, &request, user, password).await;
        assert_eq!(again.status, 200, "{user}/{password}");
        assert!(again.location.is_none());
        assert!(
            again.body.contains("Invalid username or password"),
            "{}",
            again.body
        );
        assert_eq!(again.form_request(), request, "the same login goes on");
    }
    let right = b
        .submit(&demo.issuer, &request, "alice", "alice-password")
        .await;
    assert_eq!(
        right.status, 302,
        "the right password still works after typos"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_provider_session_too_so_the_next_login_asks_for_the_password() {
    let demo = Demo::start();
    let mut b = Browser::new();
    b.log_in_to_demo(&demo, &demo.url("/app"), "alice", "alice-password")
        .await;
    // While logged in at the provider, another login skips the form.
    let again = b.open(&demo.url("/_portcullis/login?rd=/app/2")).await;
    let skipped = b.open(again.location.as_deref().unwrap()).await;
    assert_eq!(
        skipped.status, 302,
        "no form while the provider session lasts"
    );
    assert!(skipped
        .location
        .unwrap()
        .starts_with(&demo.url("/_portcullis/callback?code=")));

    let out = b
        .open(&demo.url("/_portcullis/logout?rd=/public/bye"))
        .await;
    assert_eq!(out.status, 302, "{}", out.body);
    let at_provider = out.location.unwrap();
    assert!(
        at_provider.starts_with(&format!("{}/protocol/openid-connect/logout?", demo.issuer)),
        "{at_provider}"
    );
    let back = b.open(&at_provider).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(
        back.location.as_deref(),
        Some(demo.url("/public/bye").as_str())
    );

    let first = b.open(&demo.url("/app")).await;
    assert_eq!(first.status, 302, "no session at the gateway");
    let form = b.open(first.location.as_deref().unwrap()).await;
    assert_eq!(form.status, 200, "the password is asked again");
    form.form_request();
}

#[test]
fn a_non_loopback_address_is_refused_with_exit_2_and_a_port_in_use_with_exit_1_naming_its_flag() {
    let (code, _, err) = support::run_cli(&["demo", "--listen", "0.0.0.0:8080"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--listen") && err.contains("loopback"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let others = [(); 3].map(|_| loopback(support::free_port()));
    let (code, _, err) = support::run_cli(&[
        "demo",
        "--listen",
        &others[0],
        "--provider",
        &taken_addr,
        "--backend",
        &others[1],
        "--admin",
        &others[2],
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&taken_addr) && err.contains("--provider"),
        "names the flag to change: {err}"
    );
}

// The provider's own rules, in-process, with a gateway client secret the test knows.

const GATEWAY_SECRET: &str = "test-gateway-secret";
const GATEWAY: &str = "http://127.0.0.1:1";
const CALLBACK: &str = "http://127.0.0.1:1/_portcullis/callback";

async fn provider() -> (std::sync::Arc<portcullis::demo::provider::Provider>, String) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (p, _task) = portcullis::demo::provider::start(
        addr,
        &url::Url::parse(GATEWAY).unwrap(),
        portcullis::secret::Secret::new(GATEWAY_SECRET.into()),
    )
    .await
    .unwrap();
    let issuer = p.issuer().to_owned();
    (p, issuer)
}

fn s256(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Logs alice in with a code flow of the test's own making; returns the code.
async fn code_for(b: &mut Browser, issuer: &str, verifier: &str) -> String {
    let mut auth = url::Url::parse(&format!("{issuer}/protocol/openid-connect/auth")).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", "portcullis")
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("state", "st")
        .append_pair("code_challenge", &s256(verifier))
        .append_pair("code_challenge_method", "S256");
    let form = b.open(auth.as_str()).await;
    let back = if form.status == 200 {
        b.submit(issuer, &form.form_request(), "alice", "alice-password")
            .await
    } else {
        form
    };
    assert_eq!(back.status, 302, "{}", back.body);
    let q = query(back.location.as_deref().unwrap());
    assert_eq!(q["state"], "st");
    q["code"].clone()
}

async fn token(http: &reqwest::Client, issuer: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .basic_auth("portcullis", Some(GATEWAY_SECRET))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn a_code_is_single_use_and_only_with_the_verifier_of_its_challenge() {
    let (_p, issuer) = provider().await;
    let mut b = Browser::new();
    let http = support::client();
    let exchange = |code: String, verifier: &'static str| {
        let (http, issuer) = (http.clone(), issuer.clone());
        async move {
            token(
                &http,
                &issuer,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let code = code_for(&mut b, &issuer, VERIFIER).await;
    let wrong = "another-verifier-of-at-least-forty-three-characters-0123";
    let (status, body) = exchange(code.clone(), wrong).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = exchange(code, VERIFIER).await;
    assert_eq!(
        status, 400,
        "a code tried once with a wrong verifier is burnt"
    );

    let code = code_for(&mut b, &issuer, VERIFIER).await;
    let (status, tokens) = exchange(code.clone(), VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (id["aud"].as_str(), id["iss"].as_str()),
        (Some("portcullis"), Some(issuer.as_str()))
    );
    assert_eq!(id["sid"], access["sid"]);
    assert!(access["aud"]
        .as_array()
        .unwrap()
        .contains(&"portcullis".into()));
    assert_eq!(
        access["realm_access"]["roles"],
        serde_json::json!(["user", "admin"])
    );
    assert_eq!(
        access["resource_access"]["portcullis"]["roles"],
        serde_json::json!(["editor"])
    );
    let (status, body) = exchange(code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "replayed code"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_rotates_and_a_logout_ends_the_new_one() {
    let (_p, issuer) = provider().await;
    let mut b = Browser::new();
    let http = support::client();
    let code = code_for(&mut b, &issuer, VERIFIER).await;
    let (_, tokens) = token(
        &http,
        &issuer,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = token(
        &http,
        &issuer,
        &[("grant_type", "refresh_token"), ("refresh_token", first)],
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    let second = renewed["refresh_token"].as_str().unwrap();
    assert_ne!(first, second);
    assert!(renewed["id_token"].is_string() && renewed["access_token"].is_string());
    let (status, body) = token(
        &http,
        &issuer,
        &[("grant_type", "refresh_token"), ("refresh_token", first)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the old one is spent"
    );

    let mut logout = url::Url::parse(&format!("{issuer}/protocol/openid-connect/logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", renewed["id_token"].as_str().unwrap())
        .append_pair("client_id", "portcullis")
        .append_pair("post_logout_redirect_uri", &format!("{GATEWAY}/bye"));
    let out = b.open(logout.as_str()).await;
    assert_eq!(
        out.location.as_deref(),
        Some(format!("{GATEWAY}/bye").as_str())
    );
    let (status, _) = token(
        &http,
        &issuer,
        &[("grant_type", "refresh_token"), ("refresh_token", second)],
    )
    .await;
    assert_eq!(status, 400, "a logout ends the session's refresh tokens");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_implicit_flow_posts_an_id_token_bound_to_its_access_token_and_nonce() {
    let (_p, issuer) = provider().await;
    let mut b = Browser::new();
    let mut auth = url::Url::parse(&format!("{issuer}/protocol/openid-connect/auth")).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", "portcullis")
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "id_token token")
        .append_pair("response_mode", "form_post")
        .append_pair("scope", "openid")
        .append_pair("state", "s\"<x>")
        .append_pair("nonce", "n-123");
    let form = b.open(auth.as_str()).await;
    let page = b
        .submit(&issuer, &form.form_request(), "bob", "bob-password")
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("action=\"{CALLBACK}\"")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"s&quot;&lt;x&gt;\""),
        "state escaped: {}",
        page.body
    );
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let rest = &page.body[page.body.find(&marker).unwrap() + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    };
    let (id, access) = (claims(&field("id_token")), field("access_token"));
    assert_eq!(id["nonce"], "n-123");
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    let at_hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16]);
    assert_eq!(id["at_hash"], at_hash.as_str());
    assert_eq!(field("token_type"), "Bearer");

    // Without a nonce, or with the fragment response mode, the implicit flow is refused.
    for (k, v) in [("nonce", ""), ("response_mode", "fragment")] {
        let mut bad = auth.clone();
        let pairs: Vec<(String, String)> = auth
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == k {
                    v.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        bad.query_pairs_mut().clear().extend_pairs(pairs);
        let a = b.open(bad.as_str()).await;
        assert_eq!(
            (a.status, a.error()),
            (400, "invalid_request".into()),
            "{k}={v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_or_wrong_requests_get_oauth_errors_never_a_redirect_elsewhere() {
    let (_p, issuer) = provider().await;
    let http = support::client();
    let mut b = Browser::new();
    let auth = format!("{issuer}/protocol/openid-connect/auth");
    let cases = [
        "client_id=portcullis&redirect_uri=http://evil.example/cb&response_type=code&scope=openid&code_challenge=x&code_challenge_method=S256",
        "client_id=other&redirect_uri=http://127.0.0.1:1/_portcullis/callback&response_type=code&scope=openid&code_challenge=x&code_challenge_method=S256",
        "client_id=portcullis&redirect_uri=http://127.0.0.1:1/_portcullis/callback&response_type=code&scope=openid",
        "client_id=portcullis&redirect_uri=http://127.0.0.1:1/_portcullis/callback&response_type=code&scope=openid&code_challenge=x&code_challenge_method=plain",
        "client_id=portcullis&redirect_uri=http://127.0.0.1:1/_portcullis/callback&response_type=code&scope=email&code_challenge=x&code_challenge_method=S256",
        "client_id=portcullis&client_id=portcullis&redirect_uri=http://127.0.0.1:1/_portcullis/callback&response_type=token",
        "%zz=%80",
    ];
    for q in cases {
        let a = b.open(&format!("{auth}?{q}")).await;
        assert_eq!(a.status, 400, "{q}: {}", a.body);
        assert!(a.location.is_none());
        assert!(a.error().is_string(), "{q}: {}", a.body);
    }
    // Client authentication.
    let token_url = format!("{issuer}/protocol/openid-connect/token");
    let cc = [("grant_type", "client_credentials")];
    let wrong = http
        .post(&token_url)
        .basic_auth("billing-service", Some("nope"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let none = http.post(&token_url).form(&cc).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let scope = [
        ("grant_type", "client_credentials"),
        ("scope", "orders:write"),
    ];
    let too_much = http
        .post(&token_url)
        .basic_auth("reporting-service", Some("reporting-secret"))
        .form(&scope)
        .send()
        .await
        .unwrap();
    assert_eq!(
        too_much.status(),
        400,
        "a read-only service cannot ask for write"
    );
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", "reporting-service"),
        ("client_secret", "reporting-secret"),
    ];
    let ok = http.post(&token_url).form(&post).send().await.unwrap();
    assert_eq!(ok.status(), 200, "client_secret_post");
    let service: Value = ok.json().await.unwrap();
    let access = service["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["azp"], "reporting-service");
    let (status, body) = token(&http, &issuer, &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    // userinfo takes access tokens, not ID tokens or garbage; unknown paths are 404.
    let userinfo = format!("{issuer}/protocol/openid-connect/userinfo");
    let who = http
        .get(&userinfo)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    for bad in ["x.y.z", "", "\u{7f}"] {
        let r = http
            .get(&userinfo)
            .header("Authorization", format!("Bearer {bad}"))
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 401, "{bad:?}");
        }
    }
    assert_eq!(
        http.get(format!("{issuer}/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{issuer}/protocol/openid-connect/token"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Logout returns only to the gateway's origin.
    for target in [
        "http://evil.example/",
        "http://127.0.0.1:10/",
        "//evil.example/",
    ] {
        let url = format!("{issuer}/protocol/openid-connect/logout?client_id=portcullis&post_logout_redirect_uri={}", urlencode(target));
        let a = b.open(&url).await;
        assert_eq!(a.status, 400, "{target}");
        assert!(a.location.is_none());
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_and_keys_are_what_the_gateway_and_keycloak_clients_expect() {
    let (_p, issuer) = provider().await;
    let http = support::client();
    let d: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], issuer.as_str());
    assert_eq!(
        d["token_endpoint"],
        format!("{issuer}/protocol/openid-connect/token")
    );
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let keys: Value = http
        .get(d["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &keys["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert!(key["kid"].is_string() && key["x"].is_string() && key["y"].is_string());
}
