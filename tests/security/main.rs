//! The security suite: hostile requests against the real gateway binary, each test named
//! after the class of advisory it stops.
//!
//! Most tests share one gateway (the [`World`]): the test OpenID provider of
//! `tests/e2e/provider` for browser logins, the in-process provider of `tests/support` for
//! bearer tokens minted at will, and one echo backend per route, so the backend that
//! answered tells which route the gateway chose. Tests that need a configuration of their
//! own (introspection, smuggling, upgrades, floods) start their own gateway.
//!
//! The JWT matrix (`alg: none`, HS256 keyed with the public key, foreign keys under a known
//! `kid`, `jku`/`x5u`/`jwk`, expiry, issuer and audience mismatches, unknown `kid` fetch
//! limits) is `tests/token_matrix.rs`, and is not repeated here.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod headers;
mod introspection;
mod leaks;
mod panics;
mod paths;
mod redirects;
mod sessions;
mod smuggling;
mod target;
mod upgrade;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::browser::{Answer, Browser};
use support::provider::{SigningKey, TestProvider};
use support::servers::Provider;
use support::{Gateway, Raw};

pub const SECRET: &str = "security-suite-session-secret-0123456789";
/// The gateway's secret at the test provider of `tests/e2e/provider`.
pub const CLIENT_SECRET: &str = "portcullis-secret-0123456789abcdef";
/// The gateway's introspection secret at the in-process provider.
pub const INTROSPECTION_SECRET: &str = "security-introspection-secret-0123456789";

/// The routes of the shared gateway: name, `host`, path prefix, and the rest of the route.
pub const ROUTES: &[(&str, Option<&str>, &str, &str)] = &[
    ("public", None, "/", "auth = \"public\""),
    (
        "api",
        None,
        "/api/",
        "auth = \"bearer\"\nallow = { clients = [\"billing-service\"] }",
    ),
    (
        "orders",
        None,
        "/orders/",
        "auth = \"bearer\"\nscopes = { read = [\"orders:read\"], write = [\"orders:write\"], DELETE = [\"orders:admin\"] }",
    ),
    (
        "admin",
        None,
        "/admin/",
        "auth = \"bearer\"\nallow = { clients = [\"admin-service\"] }",
    ),
    ("app", None, "/app/", "auth = \"login\""),
    ("any", None, "/any/", "auth = \"any\""),
    (
        "admin-host",
        Some("admin.test"),
        "/",
        "auth = \"bearer\"\nallow = { clients = [\"admin-service\"] }",
    ),
    ("public-host", Some("public.test"), "/", "auth = \"public\""),
];

/// The shared gateway and what stands behind it. Started once, on a runtime of its own that
/// lives as long as the test binary; its processes die with the binary.
pub struct World {
    pub gw: Gateway,
    /// The test OpenID provider of `tests/e2e/provider`: logins.
    pub op: Provider,
    /// The in-process provider: bearer tokens with any claims, introspection.
    pub tp: TestProvider,
    pub key: SigningKey,
    /// Route name → the echo backend behind it.
    pub echoes: BTreeMap<&'static str, SocketAddr>,
    /// A route whose upstream never answers.
    pub dead: u16,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// The shared world, started on first use (blocking: call from a blocking context, or
/// through [`world`]).
pub fn world_blocking() -> &'static World {
    WORLD.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("security-world".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                let w = rt.block_on(World::start());
                let _ = tx.send(w);
                rt.block_on(std::future::pending::<()>());
            })
            .expect("the world thread starts");
        rx.recv().expect("the shared gateway starts")
    })
}

/// The shared world, from an async test.
pub async fn world() -> &'static World {
    tokio::task::spawn_blocking(world_blocking)
        .await
        .expect("the shared gateway starts")
}

impl World {
    async fn start() -> World {
        let op = Provider::start().await;
        let key = SigningKey::rsa("rsa-1");
        let tp = TestProvider::start(&[&key], None).await;
        let mut echoes = BTreeMap::new();
        let mut routes = String::new();
        for (name, host, path, rest) in ROUTES {
            let up = support::echo().await;
            echoes.insert(*name, up);
            let host = host
                .map(|h| format!("host = \"{h}\"\n"))
                .unwrap_or_default();
            routes.push_str(&format!(
                "[[routes]]\nname = \"{name}\"\n{host}path = \"{path}\"\nupstream = \"http://{up}\"\n{rest}\n\n"
            ));
        }
        let dead = support::free_port();
        routes.push_str(&format!(
            "[[routes]]\nname = \"dead\"\npath = \"/dead/\"\nupstream = \"http://127.0.0.1:{dead}\"\nauth = \"public\"\n"
        ));
        let rest = format!(
            r#"
[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "{CLIENT_SECRET}"

[[issuers]]
issuer = "{tp}"
client_id = "portcullis"
client_secret = "{INTROSPECTION_SECRET}"
audiences = ["portcullis"]

[session]
secrets = ["{SECRET}"]

{routes}"#,
            issuer = op.issuer,
            tp = tp.issuer(),
        );
        let gw = Gateway::start("", &rest).await;
        gw.wait_ready().await;
        World {
            gw,
            op,
            tp,
            key,
            echoes,
            dead,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.gw.addr
    }

    pub fn url(&self, path: &str) -> String {
        self.gw.url(path)
    }

    /// A service token of the in-process provider, valid for 5 minutes.
    pub fn token(&self, client: &str, scope: &str) -> String {
        self.key
            .sign(&self.tp.service_claims(client, scope, now(), 300))
    }

    /// Which route's backend answered, if one did.
    pub fn route_of(&self, r: &Raw) -> Option<&'static str> {
        let echo = r.echo()?;
        let server = echo["server"].as_str()?;
        self.echoes
            .iter()
            .find(|(_, a)| a.to_string() == server)
            .map(|(n, _)| *n)
    }

    /// A browser logged in as `user` (alice or bob).
    pub async fn logged_in(&self, user: &str) -> Browser {
        let mut b = Browser::new();
        let start = self.url("/_portcullis/login?rd=/app/");
        let first = b.open(&start).await;
        let callback = through_login(&mut b, first, user, &format!("{user}-password")).await;
        let done = b.open(&callback).await;
        assert_eq!(
            done.status, 302,
            "the login of {user} completes: {}",
            done.body
        );
        b
    }

    /// The `Cookie` header of a browser for this gateway.
    pub fn cookies(&self, b: &Browser) -> String {
        b.cookie_header(&self.url("/"))
    }
}

/// Follows `a` through the provider (its login form included) until the provider sends the
/// browser back to the gateway's callback; returns that URL, not yet opened.
pub async fn through_login(b: &mut Browser, mut a: Answer, user: &str, password: &str) -> String {
    for _ in 0..10 {
        let loc = a.location.clone().expect("a redirect");
        if loc.contains("/login-actions/") && a.status == 303 {
            b.open(&loc).await;
            let form = b
                .http
                .post(&loc)
                .form(&[("username", user), ("password", password)]);
            a = b.send(form, &loc).await;
            continue;
        }
        if loc.contains("/_portcullis/callback") {
            return loc;
        }
        a = b.open(&loc).await;
    }
    panic!("too many redirects");
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `METHOD target` with header lines, through `support::raw`; `Host` is the gateway's
/// address unless given.
pub async fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Raw {
    let mut req = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    req.push_str("Connection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    support::raw(addr, req.as_bytes()).await
}

/// The values of a response header (names compared case-insensitively).
pub fn header(r: &Raw, name: &str) -> Vec<String> {
    r.head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// `Authorization: Bearer` for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Writes `bytes` on a fresh connection and reads until the gateway closes it or stays
/// silent for `idle`; returns everything read.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], idle: Duration) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(idle, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The status codes of every response in `bytes` (answers to pipelined requests).
pub fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| {
            let line = &text[i..];
            let code = line.get(9..12)?;
            (line.as_bytes().get(8) == Some(&b' ')).then_some(())?;
            code.parse().ok()
        })
        .collect()
}

/// The gateway's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
