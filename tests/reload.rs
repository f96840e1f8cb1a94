//! Live reload (SIGHUP) of the real gateway binary, under load, against the real provider
//! look-alike (`tests/e2e/provider/server.js`): routes, rules, issuers and session secrets
//! change without a failed request; a broken file is refused and the old one goes on; a
//! request in flight ends with the configuration it began with.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::browser::Browser;
use support::servers::Provider;
use support::Gateway;

const SECRET_A: &str = "reload-suite-session-secret-A-0123456789";
const SECRET_B: &str = "reload-suite-session-secret-B-0123456789";
const CLIENT_SECRET: &str = "portcullis-secret-0123456789abcdef";

/// What changes from one configuration to the next.
struct Version<'a> {
    secrets: &'a [&'a str],
    /// The users the `staff` route allows.
    staff: &'a str,
    /// An extra `[[routes]]` path (public), which a reload adds or takes away.
    extra_route: &'a str,
    /// A second issuer of bearer tokens, or none.
    other_issuer: Option<&'a str>,
}

/// The whole gateway.toml of `v` (listeners as `support::Gateway` made them).
fn config(gw_port: u16, admin: SocketAddr, issuer: &str, up: SocketAddr, v: &Version) -> String {
    let secrets: Vec<String> = v.secrets.iter().map(|s| format!("\"{s}\"")).collect();
    let other = v.other_issuer.map_or(String::new(), |i| {
        format!("[[issuers]]\nissuer = \"{i}\"\naudiences = [\"portcullis\"]\n")
    });
    format!(
        r#"[server]
listen = ["127.0.0.1:{gw_port}"]
public_url = "http://127.0.0.1:{gw_port}"
threads = 2
shutdown_grace = "1s"

[admin]
listen = "{admin}"

[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "{CLIENT_SECRET}"

{other}
[session]
secrets = [{}]

[[routes]]
name = "keep"
path = "/keep/"
upstream = "http://{up}"
auth = "public"

[[routes]]
name = "api"
path = "/api/"
upstream = "http://{up}"
auth = "bearer"
scopes = {{ GET = ["orders:read"] }}

[[routes]]
name = "app"
path = "/app/"
upstream = "http://{up}"
auth = "login"

[[routes]]
name = "staff"
path = "/staff/"
upstream = "http://{up}"
auth = "login"
allow = {{ users = [{}] }}

[[routes]]
name = "extra"
path = "{}"
upstream = "http://{up}"
auth = "public"
"#,
        secrets.join(", "),
        v.staff,
        v.extra_route,
    )
}

/// A client-credentials token of `billing-service` from the provider at `token_url`.
async fn service_token(token_url: &str) -> String {
    let r = support::client()
        .post(token_url)
        .basic_auth("billing-service", Some("billing-secret-0123456789abcdef"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The gateway of these tests and what it needs to be reloaded.
struct Reloadable {
    gw: Gateway,
    issuer: String,
    up: SocketAddr,
}

impl Reloadable {
    async fn start(issuer: &str, v: &Version<'_>) -> Reloadable {
        let up = support::echo().await;
        let (port, admin_port) = (support::free_port(), support::free_port());
        let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        let text = config(port, admin, issuer, up, v);
        let dir = tempfile::tempdir().unwrap();
        let gw = Gateway::spawn(dir, &text, port, admin_port, &[]).await;
        gw.wait_ready().await;
        Reloadable {
            gw,
            issuer: issuer.to_owned(),
            up,
        }
    }

    async fn reload_with(&self, text: &str) -> bool {
        reload_file(&self.gw, text).await
    }

    async fn reload(&self, v: &Version<'_>) -> bool {
        let admin = self.gw.admin;
        let text = config(self.gw.addr.port(), admin, &self.issuer, self.up, v);
        self.reload_with(&text).await
    }
}

/// Writes `text` over `gw`'s gateway.toml, sends SIGHUP, and waits for the gateway to say
/// it reloaded (`true`) or refused the file (`false`).
async fn reload_file(gw: &Gateway, text: &str) -> bool {
    let before = outcomes(gw);
    std::fs::write(gw.dir.path().join("gateway.toml"), text).unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = outcomes(gw);
        if now.0 > before.0 {
            return true;
        }
        if now.1 > before.1 {
            return false;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload outcome logged after SIGHUP:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many reloads the log records: (done, refused).
fn outcomes(gw: &Gateway) -> (usize, usize) {
    let log = gw.log();
    (
        log.matches("configuration reloaded").count(),
        log.matches("the configuration was not reloaded").count(),
    )
}

/// Requests that must each get their expected status all along: a public route, a bearer
/// token, a browser session; over kept-alive connections and fresh ones.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(gw: &Gateway, token: &str, cookie: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
            let (url, header, value) = match worker % 3 {
                0 => (gw.url("/keep/x"), "x-unused", String::new()),
                1 => (
                    gw.url("/api/orders"),
                    "authorization",
                    format!("Bearer {token}"),
                ),
                _ => (gw.url("/app/page"), "cookie", cookie.to_owned()),
            };
            // Even workers keep their connections, odd ones open one per request.
            let fresh = worker % 2 == 1;
            tasks.push(tokio::spawn(async move {
                let kept = support::client();
                while !stop.load(Ordering::Relaxed) {
                    let client = if fresh {
                        reqwest::Client::builder()
                            .redirect(reqwest::redirect::Policy::none())
                            .pool_max_idle_per_host(0)
                            .build()
                            .unwrap()
                    } else {
                        kept.clone()
                    };
                    let r = client
                        .get(&url)
                        .header(header, &value)
                        .header("accept", "application/json")
                        .send()
                        .await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{url}: {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(format!("{url}: {e}")),
                    }
                }
            }));
        }
        Load {
            stop,
            sent,
            failures,
            tasks,
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests were sent.
    async fn go_on_for(&self, more: usize) {
        let target = self.sent() + more;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.sent() < target {
            assert!(tokio::time::Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the load; every failure it met.
    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let sent = self.sent.load(Ordering::Relaxed);
        (sent, self.failures.lock().unwrap().clone())
    }
}

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut r = support::client()
        .get(url)
        .header("accept", "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_routes_rules_issuers_and_secrets_without_failing_a_request() {
    let p = Provider::start().await;
    let other = Provider::start_args(&["--realm", "other"]).await;
    let v1 = Version {
        secrets: &[SECRET_A],
        staff: "\"alice\"",
        extra_route: "/old/",
        other_issuer: None,
    };
    let r = Reloadable::start(&p.issuer, &v1).await;
    let gw = &r.gw;

    let mut alice = Browser::new();
    let landed = alice
        .log_in(&gw.url("/app/page"), "alice", "alice-password")
        .await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let cookie = alice.cookie_header(&gw.url("/"));
    let token = service_token(&p.token_url()).await;
    let other_token = service_token(&other.token_url()).await;
    assert_eq!(
        status(&gw.url("/staff/"), &[("cookie", &cookie)]).await,
        200
    );
    assert_eq!(status(&gw.url("/old/"), &[]).await, 200);
    assert_eq!(status(&gw.url("/new/"), &[]).await, 404);
    let other_bearer = format!("Bearer {other_token}");
    assert_eq!(
        status(&gw.url("/api/o"), &[("authorization", &other_bearer)]).await,
        401,
        "the other realm is no issuer yet"
    );

    let load = Load::start(gw, &token, &cookie);
    load.go_on_for(200).await;
    // A new route instead of an old one, a rule that now lets bob in instead of alice, a
    // second issuer, and a new session secret with the old one kept to open cookies.
    let v2 = Version {
        secrets: &[SECRET_B, SECRET_A],
        staff: "\"bob\"",
        extra_route: "/new/",
        other_issuer: Some(&other.issuer),
    };
    assert!(r.reload(&v2).await, "{}", gw.log());
    load.go_on_for(200).await;
    assert_eq!(
        status(&gw.url("/old/"), &[]).await,
        404,
        "the route is gone"
    );
    assert_eq!(status(&gw.url("/new/"), &[]).await, 200, "the route is new");
    assert_eq!(
        status(&gw.url("/staff/"), &[("cookie", &cookie)]).await,
        403,
        "the rule changed"
    );
    assert_eq!(
        status(&gw.url("/api/o"), &[("authorization", &other_bearer)]).await,
        200,
        "the new issuer's tokens verify"
    );

    // A broken file: refused, logged with where it is wrong, the last good one serves on.
    let broken = "[server]\nlisten = [\"127.0.0.1:1\"\n";
    assert!(!r.reload_with(broken).await);
    load.go_on_for(200).await;
    assert!(
        gw.log().contains("gateway.toml:"),
        "the refusal names the file and line: {}",
        gw.log()
    );
    assert_eq!(status(&gw.url("/new/"), &[]).await, 200);
    let (sent, failures) = load.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed across the reloads: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );

    // The old secret dropped: cookies sealed with it no longer open.
    let v3 = Version {
        secrets: &[SECRET_B],
        ..v2
    };
    assert!(r.reload(&v3).await);
    assert_eq!(
        status(&gw.url("/app/page"), &[("cookie", &cookie)]).await,
        401,
        "a session sealed with a secret no longer configured is no session"
    );
    println!("reloads under load: {sent} requests, 0 failed");
}

/// An upstream that answers each request only when the test lets it.
async fn held_upstream() -> (
    SocketAddr,
    Arc<tokio::sync::Notify>,
    Arc<tokio::sync::Notify>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let (a, rel) = (arrived.clone(), release.clone());
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let _ = s.read(&mut buf).await.unwrap();
        a.notify_one();
        rel.notified().await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow")
            .await
            .unwrap();
    });
    (addr, arrived, release)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_during_a_reload_ends_with_the_configuration_it_began_with() {
    let (slow, arrived, release) = held_upstream().await;
    let up = support::echo().await;
    let gw = Gateway::start(
        "",
        &format!("[[routes]]\nname = \"keep\"\npath = \"/\"\nupstream = \"http://{up}\"\nauth = \"public\"\n\n[[routes]]\nname = \"slow\"\npath = \"/slow/\"\nupstream = \"http://{slow}\"\nauth = \"public\"\n"),
    )
    .await;
    let url = gw.url("/slow/x");
    let in_flight = tokio::spawn(async move { support::client().get(url).send().await });
    arrived.notified().await;

    // The route is taken away while its request waits for the upstream.
    let path = gw.dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let without = text[..text.rfind("[[routes]]").unwrap()].to_owned();
    assert!(reload_file(&gw, &without).await, "{}", gw.log());
    let after = support::get(gw.addr, "/slow/y", &[]).await;
    assert_eq!(after.status, 200, "{}", after.head);
    assert!(
        after.echo().is_some(),
        "new requests go by the new routes: to the echo behind `/`"
    );

    release.notify_one();
    let answer = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "slow");
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_a_reload_cannot_change_stay_as_they_were_with_a_warning() {
    let up = support::echo().await;
    let gw = Gateway::start(
        "",
        &format!("[[routes]]\nname = \"a\"\npath = \"/\"\nupstream = \"http://{up}\"\nauth = \"public\"\n"),
    )
    .await;
    let path = gw.dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let other_port = support::free_port();
    let moved = text.replace(
        &format!("listen = [\"127.0.0.1:{}\"]", gw.addr.port()),
        &format!("listen = [\"127.0.0.1:{other_port}\"]"),
    );
    assert_ne!(moved, text);
    assert!(reload_file(&gw, &moved).await, "{}", gw.log());
    assert!(
        gw.log().contains("only change with a restart") && gw.log().contains("server.listen"),
        "{}",
        gw.log()
    );
    assert_eq!(
        status(&gw.url("/x"), &[]).await,
        200,
        "still on the old address"
    );
}
