//! Browser login against the real oidc-provider realm, driven by an HTTP client that keeps
//! cookies per origin and follows nothing by itself: every redirect the gateway sends is
//! inspected before it is followed.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::Gateway;

/// The real provider (tests/e2e/provider/server.js), killed on drop.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider() -> Provider {
    use std::io::BufRead as _;
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("node")
        .args([
            &format!("{root}/tests/e2e/provider/server.js"),
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is installed (make test installs tests/e2e)");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let json = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("provider did not start: {line}"));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    Provider {
        child,
        issuer: v["issuer"].as_str().unwrap().to_owned(),
    }
}

/// A browser-like client: a cookie jar per host:port, no automatic redirects.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Self {
        Browser {
            http: support::client(),
            jar: BTreeMap::new(),
        }
    }

    fn origin(url: &str) -> String {
        let u = url::Url::parse(url).unwrap();
        format!(
            "{}:{}",
            u.host_str().unwrap(),
            u.port_or_known_default().unwrap()
        )
    }

    fn cookie_header(&self, url: &str) -> String {
        self.jar
            .get(&Self::origin(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn keep(&mut self, url: &str, resp: &reqwest::Response) {
        let jar = self.jar.entry(Self::origin(url)).or_default();
        for sc in resp.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            let expired = c.max_age().is_some_and(|a| a.is_zero()) || c.value().is_empty();
            if expired {
                jar.remove(c.name());
            } else {
                jar.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
    }

    /// A page load (what a browser sends when the user opens a URL).
    async fn open(&mut self, url: &str) -> Answer {
        self.send(
            self.http
                .get(url)
                .header("Accept", "text/html")
                .header("Sec-Fetch-Mode", "navigate"),
            url,
        )
        .await
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Answer {
        let resp = req
            .header("Cookie", self.cookie_header(url))
            .send()
            .await
            .unwrap();
        self.keep(url, &resp);
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| {
            let l = l.to_str().unwrap();
            url::Url::parse(url).unwrap().join(l).unwrap().to_string()
        });
        Answer {
            status,
            location,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// Follows `a` through the provider (its login form included) until the provider sends
    /// the browser back to the gateway's callback; returns that URL, not yet opened.
    async fn to_callback(&mut self, mut a: Answer, user: &str, password: &str) -> String {
        for _ in 0..10 {
            let loc = a.location.clone().expect("a redirect");
            if loc.contains("/login-actions/") && a.status == 303 {
                let page = self.open(&loc).await;
                assert!(
                    page.body.contains("name=\"username\""),
                    "no login form: {}",
                    page.body
                );
                let form = self
                    .http
                    .post(&loc)
                    .form(&[("username", user), ("password", password)]);
                a = self.send(form, &loc).await;
                continue;
            }
            if loc.contains("/_portcullis/callback") {
                return loc;
            }
            a = self.open(&loc).await;
        }
        panic!("too many redirects");
    }

    /// Opens `start` and, if sent to log in, logs in and opens the callback.
    async fn log_in(&mut self, start: &str, user: &str, password: &str) -> Answer {
        let first = self.open(start).await;
        if first.location.is_none() {
            return first;
        }
        let callback = self.to_callback(first, user, password).await;
        self.open(&callback).await
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn gateway(provider: &Provider) -> (Gateway, std::net::SocketAddr) {
    let up = support::echo().await;
    let rest = format!(
        r#"
[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"

[session]
secrets = ["{SECRET}"]

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
        issuer = provider.issuer
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
    let p = start_provider();
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
    let p = start_provider();
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
    let p = start_provider();
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
    let p = start_provider();
    let (gw, _) = gateway(&p).await;
    let mut b = Browser::new();
    // No login started: no state cookie.
    let a = b
        .open(&gw.url("/_portcullis/callback?code=abc&state=forged"))
        .await;
    assert!((400..500).contains(&a.status), "{}", a.status);
    // A real login, its callback replayed afterwards.
    let first = b.open(&gw.url("/app/x")).await;
    let callback = b.to_callback(first, "alice", "alice-password").await;
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
    let p = start_provider();
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
    let p = start_provider();
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
    let p = start_provider();
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
        let callback = b.to_callback(tab, "alice", "alice-password").await;
        let landed = b.open(&callback).await.location;
        assert_eq!(landed, Some(gw.url(want)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_redirect_corpus_never_yields_an_off_origin_location() {
    let p = start_provider();
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
