//! Browser login against the real oidc-provider realm, driven by an HTTP client that keeps
//! cookies per origin and follows nothing by itself: every redirect the gateway sends is
//! inspected before it is followed.

mod support;

use std::time::Duration;

use support::browser::{hidden_form, Answer, Browser};
use support::servers::{Provider, Redis};
use support::Gateway;

impl Browser {
    /// Follows `a` through the provider's login until it answers the implicit flow with its
    /// self-submitting `form_post` page; posts that form to the gateway as a browser would.
    async fn through_form_post(&mut self, mut a: Answer, user: &str, password: &str) -> Answer {
        for _ in 0..10 {
            let Some(loc) = a.location.clone() else {
                let (action, fields) = hidden_form(&a.body);
                assert!(action.contains("/_portcullis/callback"), "{}", a.body);
                let form = self.http.post(&action).form(&fields);
                return self.send(form, &action).await;
            };
            if loc.contains("/login-actions/") && a.status == 303 {
                self.open(&loc).await;
                let form = self
                    .http
                    .post(&loc)
                    .form(&[("username", user), ("password", password)]);
                a = self.send(form, &loc).await;
                continue;
            }
            a = self.open(&loc).await;
        }
        panic!("too many redirects");
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn gateway(provider: &Provider) -> (Gateway, std::net::SocketAddr) {
    gateway_with(provider, "", "").await
}

/// A gateway whose provider is `issuer`, reachable or not.
async fn gateway_for(issuer: &str) -> (Gateway, std::net::SocketAddr) {
    gateway_at(issuer, "", "").await
}

/// A gateway in front of an echo backend, with lines added to `[provider]` and `[session]`.
async fn gateway_with(
    provider: &Provider,
    provider_extra: &str,
    session_extra: &str,
) -> (Gateway, std::net::SocketAddr) {
    gateway_at(&provider.issuer, provider_extra, session_extra).await
}

async fn gateway_at(
    issuer: &str,
    provider_extra: &str,
    session_extra: &str,
) -> (Gateway, std::net::SocketAddr) {
    let up = support::echo().await;
    let rest = format!(
        r#"
[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"
{provider_extra}

[session]
secrets = ["{SECRET}"]
{session_extra}

[[routes]]
name = "app"
path = "/app/"
upstream = "http://{up}"
auth = "login"
allow = {{ roles = ["minio-user"] }}

[[routes]]
name = "any"
path = "/any/"
upstream = "http://{up}"
auth = "any"
"#,
    );
    let gw = Gateway::start("", &rest).await;
    // Ready once discovery and keys are loaded.
    let c = support::client();
    for _ in 0..100 {
        if c.get(format!("http://{}/readyz", gw.admin))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (gw, up)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_lands_on_the_exact_url_first_asked_for_with_the_users_identity() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    let start = gw.url("/app/page?x=1&y=%2Fz");
    let done = b.log_in(&start, "alice", "alice-password").await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(start.as_str()),
        "back to the exact URL, path and query intact"
    );
    let page = b.open(&start).await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, gw.log());
    let echo: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(echo["uri"], "/app/page?x=1&y=%2Fz");
    assert_eq!(support::echoed(&echo, "x-auth-request-user"), ["alice"]);
    assert_eq!(
        support::echoed(&echo, "x-auth-request-email"),
        ["alice@example.com"]
    );
    assert_eq!(
        support::echoed(&echo, "x-auth-request-roles"),
        ["admin,minio-user,offline_access"]
    );
    assert_eq!(
        support::echoed(&echo, "x-auth-request-groups"),
        ["/minio-users,/staff"]
    );
    assert!(
        support::echoed(&echo, "cookie")
            .iter()
            .all(|c| !c.contains("_portcullis")),
        "the session cookie never reaches the backend"
    );
    // userinfo answers for the session.
    let info = b
        .send(b.http.get(gw.url("/_portcullis/userinfo")), &gw.url("/"))
        .await;
    assert_eq!(info.status, 200);
    assert!(info.body.contains("\"user\":\"alice\""), "{}", info.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_the_role_gets_403_not_a_login_loop() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    let done = b.log_in(&gw.url("/app/"), "bob", "bob-password").await;
    assert_eq!(done.status, 302);
    let page = b.open(&gw.url("/app/")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_spa_request_without_a_session_gets_401_json_never_a_redirect() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    for headers in [
        vec![("Sec-Fetch-Mode", "cors"), ("Accept", "application/json")],
        vec![
            ("X-Requested-With", "XMLHttpRequest"),
            ("Accept", "text/html"),
        ],
        vec![],
    ] {
        let mut req = b.http.get(gw.url("/app/api/list"));
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let a = b.send(req, &gw.url("/")).await;
        assert_eq!(a.status, 401, "{headers:?}");
        assert!(a.location.is_none(), "{headers:?}");
        assert!(a.body.contains("authentication is required"), "{}", a.body);
    }
    // On an `any` route, a page load goes to log in and an API call is challenged.
    assert_eq!(b.open(&gw.url("/any/x")).await.status, 302);
    let a = b.send(b.http.get(gw.url("/any/x")), &gw.url("/")).await;
    assert_eq!(a.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_with_a_missing_wrong_or_replayed_state_makes_no_session() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    // No login started: no state cookie.
    let a = b
        .open(&gw.url("/_portcullis/callback?code=abc&state=forged"))
        .await;
    assert!((400..500).contains(&a.status), "{}", a.status);
    // A real login, its callback replayed afterwards.
    let first = b.open(&gw.url("/app/x")).await;
    let callback = b.through_login(first, "alice", "alice-password").await;
    // Wrong state in an otherwise real callback.
    let wrong = callback.replace("state=", "state=x");
    let a = b.open(&wrong).await;
    assert!((400..500).contains(&a.status));
    assert_eq!(
        b.open(&gw.url("/app/x")).await.status,
        302,
        "still no session"
    );
    assert_eq!(
        b.open(&callback).await.status,
        302,
        "the real callback works once"
    );
    let replay = b.open(&callback).await;
    assert!(
        (400..500).contains(&replay.status),
        "a replayed callback is refused: {}",
        replay.status
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_or_tampered_session_cookies_are_no_session() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    let origin = Browser::origin(&gw.url("/"));
    let real = b.jar[&origin]["_portcullis"].clone();
    let mut tampered = real.clone().into_bytes();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    for value in [
        String::from_utf8(tampered).unwrap(),
        "{\"identity\":{\"user\":\"admin\"}}".to_owned(),
        String::new(),
    ] {
        let mut evil = Browser::new();
        evil.jar
            .entry(origin.clone())
            .or_default()
            .insert("_portcullis".into(), value);
        let a = evil.open(&gw.url("/app/")).await;
        assert_eq!(a.status, 302, "sent to log in, not let in");
    }
    // A cookie planted before a login is replaced by the login's new session.
    let mut victim = Browser::new();
    victim
        .jar
        .entry(origin.clone())
        .or_default()
        .insert("_portcullis".into(), real.clone());
    victim
        .log_in(
            &gw.url("/_portcullis/login?rd=/app/"),
            "bob",
            "bob-password",
        )
        .await;
    assert_ne!(victim.jar[&origin]["_portcullis"], real);
    assert_eq!(
        victim.open(&gw.url("/app/")).await.status,
        403,
        "bob's session, not alice's planted one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session_here_and_at_the_provider() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    assert_eq!(b.open(&gw.url("/app/")).await.status, 200);
    let out = b.open(&gw.url("/_portcullis/logout?rd=/app/")).await;
    assert_eq!(out.status, 302);
    let loc = out.location.unwrap();
    assert!(
        loc.starts_with(&p.issuer)
            && loc.contains("id_token_hint=")
            && loc.contains("client_id=portcullis"),
        "{loc}"
    );
    assert!(
        loc.contains(&format!(
            "post_logout_redirect_uri={}",
            urlencode(&gw.url("/app/"))
        )),
        "{loc}"
    );
    assert_eq!(
        b.open(&gw.url("/app/")).await.status,
        302,
        "the session is gone"
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tabs_logging_in_at_once_both_succeed() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    // Both tabs start before either finishes: two attempts, two state cookies.
    let tab1 = b.open(&gw.url("/app/one")).await;
    let tab2 = b.open(&gw.url("/app/two")).await;
    let origin = Browser::origin(&gw.url("/"));
    assert_eq!(
        b.jar[&origin]
            .keys()
            .filter(|k| k.starts_with("_portcullis_state_"))
            .count(),
        2
    );
    for (tab, want) in [(tab2, "/app/two"), (tab1, "/app/one")] {
        let callback = b.through_login(tab, "alice", "alice-password").await;
        let landed = b.open(&callback).await.location;
        assert_eq!(landed, Some(gw.url(want)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_redirect_corpus_never_yields_an_off_origin_location() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    let corpus = [
        "//evil.example.com",
        "/\\evil.example.com",
        "/%09/evil.example.com",
        "https://evil.example.com",
        "javascript:alert(1)",
        "/%2F%2Fevil.example.com",
        "%2F%2Fevil.example.com",
    ];
    for rd in corpus {
        for endpoint in ["login", "logout"] {
            let a = b
                .open(&gw.url(&format!("/_portcullis/{endpoint}?rd={}", urlencode(rd))))
                .await;
            assert_eq!(a.status, 400, "{endpoint} {rd}");
            assert!(a.location.is_none(), "{endpoint} {rd}");
        }
    }
    // A good rd starts a login toward the provider, and comes back to it.
    let done = b
        .log_in(
            &gw.url("/_portcullis/login?rd=%2Fapp%2Fhere%3Fq%3D1"),
            "alice",
            "alice-password",
        )
        .await;
    assert_eq!(done.location, Some(gw.url("/app/here?q=1")));
}

/// The user logs out at the provider itself (another app's logout button, say): its
/// confirmation form carries logout=yes, ending the whole provider session, and the provider
/// then tells the clients' back-channel logout URIs.
async fn log_out_at_provider(b: &mut Browser, p: &Provider) {
    let logout = format!(
        "{}/protocol/openid-connect/logout?client_id=portcullis",
        p.issuer
    );
    let confirm = b.open(&logout).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let (action, fields) = hidden_form(&confirm.body);
    let done = b.send(b.http.post(&action).form(&fields), &action).await;
    assert!(done.status < 400, "{}", done.body);
}

/// Polls `status` for up to 3 s until it answers `want`; returns the last answer.
async fn eventually<F, Fut>(want: u16, mut status: F) -> u16
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut last = 0;
    for _ in 0..30 {
        last = status().await;
        if last == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// The session cookie a browser holds for the gateway.
fn session_cookie(b: &Browser, gw: &Gateway) -> String {
    b.jar[&Browser::origin(&gw.url("/"))]["_portcullis"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_outlive_their_access_token_by_refreshing_without_a_new_login() {
    let p = Provider::start_args(&["--access-ttl", "4"]).await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    let first = session_cookie(&b, &gw);
    // Past the token's lifetime: the next request renews it instead of logging in again.
    for round in 0..2 {
        gw.advance_clock(5).await;
        let page = b.open(&gw.url("/app/page")).await;
        assert_eq!(
            page.status,
            200,
            "round {round}: {}\n{}",
            page.body,
            gw.log()
        );
        let echo: serde_json::Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(support::echoed(&echo, "x-auth-request-user"), ["alice"]);
    }
    assert_ne!(
        session_cookie(&b, &gw),
        first,
        "the renewed session was handed back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_of_a_due_session_refresh_once_even_with_rotating_refresh_tokens() {
    // With rotation, a second refresh with the same refresh token is refused (and the
    // provider revokes the grant): one refresh per session is what keeps it alive.
    let p = Provider::start_args(&["--access-ttl", "4", "--rotate-refresh-tokens"]).await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    gw.advance_clock(5).await;
    let cookie = b.cookie_header(&gw.url("/"));
    let requests = (0..12).map(|i| {
        let url = gw.url(&format!("/app/burst/{i}"));
        let req = b.http.get(url).header("Cookie", cookie.clone());
        async move {
            let r = req.send().await.unwrap();
            let renewed = r.headers().get_all("set-cookie").iter().count();
            let cache = r
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), renewed, cache)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    for (status, renewed, cache) in &answers {
        assert_eq!(*status, 200, "{answers:?}\n{}", gw.log());
        assert!(*renewed > 0, "every answer hands back the renewed session");
        assert_eq!(
            cache.as_deref(),
            Some("private, no-cache"),
            "an answer carrying a session is never stored by a shared cache"
        );
    }
    // The renewed session renews again later: the grant was not revoked by a reuse.
    let page = b.open(&gw.url("/app/page")).await;
    assert_eq!(page.status, 200);
    gw.advance_clock(5).await;
    let page = b.open(&gw.url("/app/page")).await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_refresh_ends_the_session_cleanly_never_a_loop() {
    let mut p = Provider::start_args(&["--access-ttl", "4"]).await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    // The provider forgets every grant: the refresh token is refused.
    p.restart(&["--access-ttl", "4"]).await;
    gw.advance_clock(5).await;
    let api = b.fetch(&gw.url("/app/api")).await;
    assert_eq!(api.status, 401, "{}\n{}", api.body, gw.log());
    assert!(
        !b.jar[&Browser::origin(&gw.url("/"))].contains_key("_portcullis"),
        "the ended session's cookie is cleared"
    );
    // A page load now starts one new login, toward the provider (not back to the app).
    let page = b.open(&gw.url("/app/page")).await;
    assert_eq!(page.status, 302);
    assert!(page.location.unwrap().starts_with(&p.issuer));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_implicit_flow_logs_in_by_form_post_and_lands_on_the_url_asked_for() {
    let p = Provider::start().await;
    let (gw, _) = gateway_with(&p, r#"login_flow = "implicit""#, "").await;
    let mut b = Browser::new();
    let start = gw.url("/app/page?x=1");
    let first = b.open(&start).await;
    let to = first.location.clone().unwrap();
    assert!(
        to.contains("response_type=id_token+token") && to.contains("response_mode=form_post"),
        "{to}"
    );
    assert!(!to.contains("code_challenge"), "{to}");
    let landed = b.through_form_post(first, "alice", "alice-password").await;
    assert_eq!(landed.status, 302, "{}\n{}", landed.body, gw.log());
    assert_eq!(landed.location.as_deref(), Some(start.as_str()));
    let page = b.open(&start).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(support::echoed(&echo, "x-auth-request-user"), ["alice"]);
    assert_eq!(
        support::echoed(&echo, "x-auth-request-roles"),
        ["admin,minio-user,offline_access"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_implicit_callback_with_a_swapped_access_token_or_a_code_makes_no_session() {
    let p = Provider::start().await;
    let (gw, _) = gateway_with(&p, r#"login_flow = "implicit""#, "").await;
    let mut b = Browser::new();
    let mut first = b.open(&gw.url("/app/x")).await;
    // Through the provider by hand, to tamper with the form_post before it is sent.
    let page = loop {
        let loc = first.location.clone().unwrap();
        if loc.contains("/login-actions/") && first.status == 303 {
            b.open(&loc).await;
            let form = b
                .http
                .post(&loc)
                .form(&[("username", "alice"), ("password", "alice-password")]);
            first = b.send(form, &loc).await;
        } else {
            first = b.open(&loc).await;
        }
        if first.location.is_none() {
            break first;
        }
    };
    let (action, fields) = hidden_form(&page.body);
    let swapped: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| match k.as_str() {
            "access_token" => (k.clone(), format!("{v}x")),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let a = b.send(b.http.post(&action).form(&swapped), &action).await;
    assert_eq!(a.status, 400, "at_hash binds the access token: {}", a.body);
    // A code where the attempt expects the implicit flow's tokens.
    let state = fields.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    let code = [("code", "abc"), ("state", state.as_str())];
    let a = b.send(b.http.post(&action).form(&code), &action).await;
    assert!((400..500).contains(&a.status), "{}", a.status);
    assert_eq!(
        b.open(&gw.url("/app/x")).await.status,
        302,
        "still no session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backchannel_logout_from_the_provider_ends_the_session_here() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let uri = gw.url("/_portcullis/backchannel-logout");
    p.test_endpoint(
        "/__test/backchannel-logout-uri",
        serde_json::json!({ "uri": uri }),
    )
    .await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    assert_eq!(b.open(&gw.url("/app/")).await.status, 200);
    // The user logs out at the provider (another app's logout button, say): the gateway
    // only hears of it by the back channel, and keeps its cookie.
    let cookie = b.cookie_header(&gw.url("/"));
    log_out_at_provider(&mut b, &p).await;
    let status = eventually(401, || api_status(&gw, "/app/", &cookie)).await;
    assert_eq!(
        status,
        401,
        "the session was ended by the back channel\n{}",
        gw.log()
    );
    assert!(gw.log().contains("back-channel logout"), "{}", gw.log());
    assert_eq!(
        b.open(&gw.url("/app/")).await.status,
        302,
        "a page load logs in again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backchannel_logout_refuses_anything_but_a_verified_logout_token() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let c = support::client();
    let url = gw.url("/_portcullis/backchannel-logout");
    let get = c.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);
    // A live session, which none of the refused requests below may end.
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    for body in [
        "logout_token=".to_owned(),
        "logout_token=abc.def.ghi".to_owned(),
        "nothing=here".to_owned(),
        format!("logout_token={}", "a".repeat(70 * 1024)),
    ] {
        let r = c
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            status == 400 || status == 413,
            "{status} for {}",
            &body[..body.len().min(40)]
        );
    }
    assert_eq!(
        b.open(&gw.url("/app/")).await.status,
        200,
        "no session was ended"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logged_out_cookie_replayed_on_this_instance_is_no_session() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    b.log_in(&gw.url("/app/"), "alice", "alice-password").await;
    let copy = b.cookie_header(&gw.url("/"));
    b.open(&gw.url("/_portcullis/logout?rd=/app/")).await;
    let replay = support::client()
        .get(gw.url("/app/"))
        .header("Cookie", copy)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
}

fn redis_session(r: &Redis) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"",
        r.port
    )
}

/// `path` on `gw` with `cookie`, as an API call (401 rather than a redirect without a session).
async fn api_status(gw: &Gateway, path: &str, cookie: &str) -> u16 {
    support::client()
        .get(gw.url(path))
        .header("Cookie", cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_sessions_carry_only_a_handle_and_serve_every_instance() {
    let p = Provider::start().await;
    let r = Redis::start().await;
    let (a, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let (b, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let mut browser = Browser::new();
    browser
        .log_in(&a.url("/app/"), "alice", "alice-password")
        .await;
    let cookie = browser.cookie_header(&a.url("/"));
    assert!(
        cookie.len() < 300,
        "only a handle in the cookie: {} bytes",
        cookie.len()
    );
    assert_eq!(api_status(&a, "/app/x", &cookie).await, 200, "{}", a.log());
    assert_eq!(api_status(&b, "/app/x", &cookie).await, 200, "{}", b.log());
    // Logging out on one instance ends the session on the other.
    let out = support::client()
        .get(a.url("/_portcullis/logout?rd=/app/"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    assert_eq!(api_status(&b, "/app/x", &cookie).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_a_backchannel_logout_received_by_one_instance_ends_the_session_on_all() {
    let p = Provider::start().await;
    let r = Redis::start().await;
    let (a, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let (b, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let uri = a.url("/_portcullis/backchannel-logout");
    p.test_endpoint(
        "/__test/backchannel-logout-uri",
        serde_json::json!({ "uri": uri }),
    )
    .await;
    let mut browser = Browser::new();
    browser
        .log_in(&a.url("/app/"), "alice", "alice-password")
        .await;
    let cookie = browser.cookie_header(&a.url("/"));
    assert_eq!(api_status(&b, "/app/x", &cookie).await, 200);
    log_out_at_provider(&mut browser, &p).await;
    let status = eventually(401, || api_status(&b, "/app/x", &cookie)).await;
    assert_eq!(
        status,
        401,
        "instance b honours a logout that instance a received\n{}",
        a.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_in_an_unreachable_redis_get_503_never_a_pass_or_a_login_loop() {
    let p = Provider::start().await;
    let r = Redis::start().await;
    let (gw, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let mut browser = Browser::new();
    browser
        .log_in(&gw.url("/app/"), "alice", "alice-password")
        .await;
    let cookie = browser.cookie_header(&gw.url("/"));
    assert_eq!(api_status(&gw, "/app/x", &cookie).await, 200);
    drop(r);
    assert_eq!(api_status(&gw, "/app/x", &cookie).await, 503);
    let page = browser.open(&gw.url("/app/x")).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("try again"), "{}", page.body);
}

/// A logout that Redis did not answer was a 302 that cleared the cookie, while the session
/// stayed in Redis, usable by anyone else holding the cookie: the browser was told it was
/// logged out and it was not.
#[tokio::test(flavor = "multi_thread")]
async fn a_logout_redis_does_not_record_is_a_503_that_keeps_the_cookie_to_try_again() {
    let p = Provider::start().await;
    let r = Redis::start().await;
    let (a, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let (b, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let mut browser = Browser::new();
    browser
        .log_in(&a.url("/app/"), "alice", "alice-password")
        .await;
    let cookie = browser.cookie_header(&a.url("/"));
    assert_eq!(api_status(&b, "/app/x", &cookie).await, 200);
    let log_out = || {
        support::client()
            .get(a.url("/_portcullis/logout?rd=/app/"))
            .header("Cookie", &cookie)
            .header("Accept", "application/json")
            .send()
    };
    // Redis stops answering (the process is stopped): its commands time out.
    let signal = |sig| {
        // SAFETY: kill(2) on the redis-server this test started.
        let rc = unsafe { libc::kill(r.proc.pid() as i32, sig) };
        assert_eq!(rc, 0, "signal {sig} to redis-server");
    };
    signal(libc::SIGSTOP);
    let out = log_out().await.unwrap();
    let status = out.status().as_u16();
    let set_cookies: Vec<String> = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    let body: serde_json::Value = out.json().await.unwrap_or_default();
    signal(libc::SIGCONT);
    assert_eq!(status, 503, "{body}\n{}", a.log());
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        set_cookies.is_empty(),
        "the cookie is kept to log out again: {set_cookies:?}"
    );
    assert_eq!(
        api_status(&b, "/app/x", &cookie).await,
        200,
        "the 503 said so: the session was not ended"
    );
    // Tried again with Redis back, the logout ends it on every instance.
    let out = log_out().await.unwrap();
    assert_eq!(out.status(), 302, "{}", a.log());
    assert_eq!(api_status(&b, "/app/x", &cookie).await, 401);
    assert_eq!(api_status(&a, "/app/x", &cookie).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_sessions_refresh_and_keep_their_handle() {
    let p = Provider::start_args(&["--access-ttl", "4", "--rotate-refresh-tokens"]).await;
    let r = Redis::start().await;
    let (a, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let (b, _) = gateway_with(&p, "", &redis_session(&r)).await;
    let mut browser = Browser::new();
    browser
        .log_in(&a.url("/app/"), "alice", "alice-password")
        .await;
    let cookie = browser.cookie_header(&a.url("/"));
    a.advance_clock(5).await;
    b.advance_clock(5).await;
    // Both instances at once: one refreshes, the other waits for its result.
    let (x, y) = tokio::join!(
        api_status(&a, "/app/x", &cookie),
        api_status(&b, "/app/y", &cookie)
    );
    assert_eq!((x, y), (200, 200), "{}\n{}", a.log(), b.log());
    b.advance_clock(5).await;
    assert_eq!(api_status(&b, "/app/z", &cookie).await, 200, "{}", b.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_down_at_the_callback_gets_a_503_page_that_says_so_and_no_session() {
    let mut p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    let first = b.open(&gw.url("/app/x")).await;
    let callback = b.through_login(first, "alice", "alice-password").await;
    p.kill();
    let page = b.open(&callback).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        page.body.contains("<html") && page.body.contains("could not be reached"),
        "{}",
        page.body
    );
    assert!(!b.jar[&Browser::origin(&gw.url("/"))].contains_key("_portcullis"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_that_cannot_start_without_discovery_gets_a_503_page_not_a_broken_redirect() {
    // A provider that was never there: discovery never loads.
    let dead = format!("http://127.0.0.1:{}/realms/internal", support::free_port());
    let (gw, _) = gateway_for(&dead).await;
    let mut b = Browser::new();
    let page = b.open(&gw.url("/app/x")).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("cannot be reached"), "{}", page.body);
    let api = b.fetch(&gw.url("/app/x")).await;
    assert_eq!(
        api.status, 401,
        "an API call without a session is still a plain 401"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_original_url_still_completes_the_login_and_lands_on_it() {
    // SPAs such as Kibana keep their state in query strings of several KB: the login
    // attempt then needs several cookies, and every one of them must reach the browser.
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    let state: String = (0..7_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let start = gw.url(&format!("/app/discover?_a={state}&x=1"));
    let done = b.log_in(&start, "alice", "alice-password").await;
    assert_eq!(done.status, 302, "{}\n{}", done.body, gw.log());
    assert_eq!(done.location.as_deref(), Some(start.as_str()));
    let page = b.open(&start).await;
    assert_eq!(page.status, 200, "{}", gw.log());
    // The attempt's cookies were all cleared on the callback.
    let jar = &b.jar[&Browser::origin(&gw.url("/"))];
    assert!(
        jar.keys().all(|k| !k.contains("_state_")),
        "attempt cookies left behind: {:?}",
        jar.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_original_url_too_long_to_return_to_gets_414_not_a_crash() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    for len in [9_000, 50_000] {
        let long: String = "q".repeat(len);
        let page = b.open(&gw.url(&format!("/app/x?{long}"))).await;
        // 414 from the gateway, or 431 where the request line is over what pingora reads;
        // never a dropped connection (a panicking worker answers nothing).
        assert!(
            matches!(page.status, 414 | 431),
            "{len}: {} {}",
            page.status,
            page.body
        );
        assert!(page.location.is_none());
    }
    // And the gateway still answers.
    assert_eq!(b.open(&gw.url("/app/x")).await.status, 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_xhr_that_accepts_html_gets_a_json_401_never_an_html_page() {
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    for headers in [
        [
            ("X-Requested-With", "XMLHttpRequest"),
            ("Accept", "text/html"),
        ],
        [("Sec-Fetch-Mode", "cors"), ("Accept", "text/html,*/*")],
    ] {
        let mut req = b.http.get(gw.url("/app/api/list"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let a = b.send(req, &gw.url("/")).await;
        assert_eq!(a.status, 401, "{headers:?}");
        let v: serde_json::Value = serde_json::from_str(&a.body)
            .unwrap_or_else(|e| panic!("{headers:?}: not JSON ({e}): {}", a.body));
        assert_eq!(v["error"], "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_without_the_forwarded_method_or_uri_decides_nothing() {
    // Without X-Forwarded-Method the decision would be for the subrequest's own GET, and
    // without X-Forwarded-Uri for `/`: a DELETE could pass as a GET.
    let p = Provider::start().await;
    let (gw, _) = gateway(&p).await;
    for headers in [
        vec![("X-Forwarded-Uri", "/app/x")],
        vec![("X-Forwarded-Method", "GET")],
        vec![],
    ] {
        let r = support::get(gw.addr, "/_portcullis/auth", &headers).await;
        assert_eq!(r.status, 400, "{headers:?}: {}", r.body);
        assert!(r.body.contains("X-Forwarded-"), "{}", r.body);
    }
    // With both, it decides: no session on a login route.
    let r = support::get(
        gw.addr,
        "/_portcullis/auth",
        &[("X-Forwarded-Uri", "/app/x"), ("X-Forwarded-Method", "GET")],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
}
