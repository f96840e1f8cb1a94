//! Sessions and logins: fixation, state replay, login CSRF, cookie tampering, and floods
//! of cookie chunks (the mod_auth_openidc CVE-2024-24814 class). (The basic callback
//! checks — no state, a wrong one, the same callback twice — are `tests/e2e_login.rs`.)

use std::time::{Duration, Instant};

use super::{header, rss_kib, send, through_login, world, SECRET};
use crate::support::browser::Browser;
use crate::support::servers::Redis;
use crate::support::{Gateway, Raw};

/// `GET /_portcullis/userinfo` with `cookie`: the session's user, if any.
async fn user_of(gw: std::net::SocketAddr, cookie: &str) -> Option<String> {
    let r = send(gw, "GET", "/_portcullis/userinfo", &[("Cookie", cookie)]).await;
    (r.status == 200).then(|| {
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["user"].as_str().unwrap_or_default().to_owned()
    })
}

/// The gateway's cookies in a browser's jar, for `origin`.
fn session_cookies(b: &Browser, origin: &str) -> Vec<(String, String)> {
    b.jar
        .get(origin)
        .map(|c| {
            c.iter()
                .filter(|(k, _)| k.starts_with("_portcullis") && !k.contains("_state_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn session_fixation_a_planted_session_is_not_the_victims_after_login() {
    let w = world().await;
    let origin = Browser::origin(&w.url("/"));
    // The attacker's own session, planted in the victim's browser before it logs in.
    let attacker = w.logged_in("bob").await;
    let planted = w.cookies(&attacker);
    let mut victim = Browser::new();
    for (k, v) in session_cookies(&attacker, &origin) {
        victim.jar.entry(origin.clone()).or_default().insert(k, v);
    }
    let first = victim.open(&w.url("/_portcullis/login?rd=/app/")).await;
    let callback = through_login(&mut victim, first, "alice", "alice-password").await;
    assert_eq!(victim.open(&callback).await.status, 302);
    let after = w.cookies(&victim);
    assert_ne!(after, planted, "the login replaced the planted cookie");
    assert_eq!(user_of(w.addr(), &after).await.as_deref(), Some("alice"));
    // The planted cookie did not become the victim's session: it is still bob's.
    assert_eq!(user_of(w.addr(), &planted).await.as_deref(), Some("bob"));
}

#[tokio::test(flavor = "multi_thread")]
async fn session_fixation_with_redis_a_planted_handle_never_carries_the_victims_login() {
    // Server-side sessions are the classic fixation target: the cookie is only a handle,
    // and a login that kept the handle would hand the attacker the victim's session.
    let w = world().await;
    let redis = Redis::start().await;
    let up = crate::support::echo().await;
    let rest = format!(
        r#"
[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "{secret}"

[session]
secrets = ["{SECRET}"]
store = "redis"
redis_url = "{url}"

[[routes]]
name = "app"
path = "/app/"
upstream = "http://{up}"
auth = "login"
"#,
        issuer = w.op.issuer,
        secret = super::CLIENT_SECRET,
        url = redis.url(),
    );
    let gw = Gateway::start("", &rest).await;
    gw.wait_ready().await;
    let origin = Browser::origin(&gw.url("/"));
    let mut attacker = Browser::new();
    log_in(&gw, &mut attacker, "bob").await;
    let planted = attacker.cookie_header(&gw.url("/"));
    let mut victim = Browser::new();
    for (k, v) in session_cookies(&attacker, &origin) {
        victim.jar.entry(origin.clone()).or_default().insert(k, v);
    }
    log_in(&gw, &mut victim, "alice").await;
    let after = victim.cookie_header(&gw.url("/"));
    assert_ne!(after, planted, "a login issues a new handle");
    assert_eq!(user_of(gw.addr, &after).await.as_deref(), Some("alice"));
    assert_eq!(
        user_of(gw.addr, &planted).await.as_deref(),
        Some("bob"),
        "the planted handle was not taken over by the victim's login"
    );
    // A handle the store never issued is no session, and is not adopted by a login either.
    let mut forged = Browser::new();
    let name = session_cookies(&attacker, &origin)[0].0.clone();
    forged
        .jar
        .entry(origin.clone())
        .or_default()
        .insert(name.clone(), "attacker-chosen-handle".into());
    log_in(&gw, &mut forged, "alice").await;
    let value = &forged.jar[&origin][&name];
    assert_ne!(value, "attacker-chosen-handle");
    assert_eq!(
        user_of(gw.addr, &format!("{name}=attacker-chosen-handle")).await,
        None
    );
}

/// Logs `b` in as `user` at `gw`.
async fn log_in(gw: &Gateway, b: &mut Browser, user: &str) {
    let first = b.open(&gw.url("/_portcullis/login?rd=/app/")).await;
    let callback = through_login(b, first, user, &format!("{user}-password")).await;
    assert_eq!(b.open(&callback).await.status, 302);
}

/// Starts a login in `b` for `rd`; returns the provider URL it was sent to and a copy of the
/// attempt's cookies.
async fn start_login(
    b: &mut Browser,
    w: &super::World,
    rd: &str,
) -> (String, Vec<(String, String)>) {
    let first = b.open(&w.url(&format!("/_portcullis/login?rd={rd}"))).await;
    assert_eq!(first.status, 302);
    let origin = Browser::origin(&w.url("/"));
    let attempt = b.jar[&origin]
        .iter()
        .filter(|(k, _)| k.contains("_state_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (first.location.unwrap(), attempt)
}

fn cookie_header(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread")]
async fn state_replay_a_used_callback_with_its_saved_attempt_cookie_makes_no_session() {
    // An attacker who captured a finished login's callback URL and attempt cookie replays
    // both: the attempt is single-use, and the code with it.
    let w = world().await;
    let mut b = Browser::new();
    let (authorize, saved) = start_login(&mut b, w, "/app/").await;
    let first = crate::support::browser::Answer {
        status: 302,
        location: Some(authorize),
        body: String::new(),
    };
    let callback = through_login(&mut b, first, "alice", "alice-password").await;
    assert_eq!(
        b.open(&callback).await.status,
        302,
        "the real callback works once"
    );
    let path = callback.strip_prefix(&w.url("")).unwrap();
    let replay = send(w.addr(), "GET", path, &[("Cookie", &cookie_header(&saved))]).await;
    assert!((400..500).contains(&replay.status), "{replay:?}");
    assert!(
        header(&replay, "set-cookie")
            .iter()
            .all(|c| !c.starts_with("_portcullis=")),
        "a replay set a session: {}",
        replay.head
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn state_replay_a_used_state_with_a_fresh_code_makes_no_session() {
    let w = world().await;
    let mut b = Browser::new();
    let (authorize, saved) = start_login(&mut b, w, "/app/").await;
    let first = crate::support::browser::Answer {
        status: 302,
        location: Some(authorize.clone()),
        body: String::new(),
    };
    let callback = through_login(&mut b, first, "alice", "alice-password").await;
    assert_eq!(
        b.open(&callback).await.status,
        302,
        "the real callback works once"
    );
    // The same authorization request again: the provider, where the user is still logged
    // in, answers at once with a new code for the same state.
    let again = b.open(&authorize).await;
    let second = through_login(&mut b, again, "alice", "alice-password").await;
    assert_ne!(second, callback, "a new code");
    let path = second.strip_prefix(&w.url("")).unwrap();
    let replay = send(w.addr(), "GET", path, &[("Cookie", &cookie_header(&saved))]).await;
    assert!(
        (400..500).contains(&replay.status),
        "a used state was accepted a second time: {replay:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_csrf_a_callback_without_its_attempt_cookie_makes_no_session() {
    // The attacker logs in as themself, stops before the callback, and sends the victim
    // the callback URL: the victim's browser never started that login.
    let w = world().await;
    let mut attacker = Browser::new();
    let first = attacker.open(&w.url("/_portcullis/login?rd=/app/")).await;
    let callback = through_login(&mut attacker, first, "bob", "bob-password").await;
    let path = callback.strip_prefix(&w.url("")).unwrap().to_owned();
    // A victim with no cookies, and a victim logged in as alice.
    let alice = w.logged_in("alice").await;
    for cookie in [String::new(), w.cookies(&alice)] {
        let r = send(
            w.addr(),
            "GET",
            &path,
            &[("Cookie", &cookie), ("Accept", "text/html")],
        )
        .await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(header(&r, "location").is_empty(), "{}", r.head);
        assert!(
            header(&r, "set-cookie")
                .iter()
                .all(|c| !c.starts_with("_portcullis=")),
            "{}",
            r.head
        );
        if !cookie.is_empty() {
            assert_eq!(user_of(w.addr(), &cookie).await.as_deref(), Some("alice"));
        }
    }
    // The attacker's own browser can still finish it: the refusal was the victim's alone.
    assert_eq!(attacker.open(&callback).await.status, 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_csrf_a_callback_with_another_browsers_attempt_cookie_makes_no_session() {
    let w = world().await;
    let origin = Browser::origin(&w.url("/"));
    let mut attacker = Browser::new();
    let first = attacker.open(&w.url("/_portcullis/login?rd=/app/")).await;
    let callback = through_login(&mut attacker, first, "bob", "bob-password").await;
    let path = callback.strip_prefix(&w.url("")).unwrap().to_owned();
    // The victim has a login of its own under way.
    let mut victim = Browser::new();
    let (_, victims) = start_login(&mut victim, w, "/app/").await;
    assert!(!victims.is_empty());
    let r = send(
        w.addr(),
        "GET",
        &path,
        &[("Cookie", &cookie_header(&victims))],
    )
    .await;
    assert_eq!(r.status, 400, "another attempt's cookie: {r:?}");
    // The victim's attempt cookie, renamed to the one the attacker's state names: the name
    // is sealed into the value, so it opens under no other name.
    let attackers: Vec<String> = attacker.jar[&origin]
        .keys()
        .filter(|k| k.contains("_state_"))
        .cloned()
        .collect();
    assert!(!attackers.is_empty());
    let renamed: Vec<(String, String)> = attackers
        .iter()
        .zip(victims.iter().map(|(_, v)| v.clone()).cycle())
        .map(|(k, v)| (k.clone(), v))
        .collect();
    let r = send(
        w.addr(),
        "GET",
        &path,
        &[("Cookie", &cookie_header(&renamed))],
    )
    .await;
    assert_eq!(r.status, 400, "a renamed attempt cookie: {r:?}");
    assert!(header(&r, "set-cookie")
        .iter()
        .all(|c| !c.starts_with("_portcullis=")));
    // And the victim's own login is untouched by the refusals.
    let first = victim.open(&w.url("/_portcullis/login?rd=/app/")).await;
    let own = through_login(&mut victim, first, "alice", "alice-password").await;
    assert_eq!(victim.open(&own).await.status, 302);
}

/// Status, body and whether a cookie is set: what a client can tell apart.
fn observable(r: &Raw) -> (u16, String, bool) {
    (
        r.status,
        r.body.clone(),
        !header(r, "set-cookie").is_empty(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_tampering_every_flipped_byte_of_a_session_cookie_gets_the_same_refusal() {
    let w = world().await;
    let b = w.logged_in("alice").await;
    let origin = Browser::origin(&w.url("/"));
    let cookies = session_cookies(&b, &origin);
    let (name, value) = cookies
        .iter()
        .find(|(k, _)| k == "_portcullis")
        .cloned()
        .unwrap_or_else(|| cookies[0].clone());
    assert_eq!(
        user_of(w.addr(), &format!("{name}={value}"))
            .await
            .as_deref(),
        Some("alice")
    );
    let ask = |v: String| {
        let addr = w.addr();
        let cookie = format!("{name}={v}");
        async move {
            send(
                addr,
                "GET",
                "/app/x",
                &[("Cookie", &cookie), ("Accept", "application/json")],
            )
            .await
        }
    };
    let reference = observable(&ask("garbage".into()).await);
    assert_eq!(reference.0, 401, "{reference:?}");
    let mut variants: Vec<String> = Vec::new();
    let bytes = value.as_bytes();
    for i in 0..bytes.len() {
        let mut v = bytes.to_vec();
        v[i] = if v[i] == b'A' { b'B' } else { b'A' };
        variants.push(String::from_utf8(v).unwrap());
    }
    for len in [0, 1, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        variants.push(value[..len].to_owned());
    }
    variants.push(format!("{value}A"));
    variants.push(format!("A{value}"));
    let started = Instant::now();
    let mut differing = Vec::new();
    for chunk in variants.chunks(16) {
        let answers = futures_util::future::join_all(chunk.iter().cloned().map(ask)).await;
        for (v, r) in chunk.iter().zip(answers) {
            if observable(&r) != reference {
                differing.push(format!("{v}: {:?}", observable(&r)));
            }
        }
    }
    assert!(
        differing.is_empty(),
        "{} of {} variants answered differently from a garbage cookie:\n{}",
        differing.len(),
        variants.len(),
        differing.join("\n")
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // The real cookie still works: tampering with copies ended nothing.
    assert_eq!(
        user_of(w.addr(), &format!("{name}={value}"))
            .await
            .as_deref(),
        Some("alice")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_chunk_floods_are_refused_in_bounded_time_and_memory() {
    // mod_auth_openidc trusted a chunk count from the cookie and allocated by it. Here:
    // tens of thousands of chunk cookies, absurd chunk numbers, a megabyte of Cookie, a
    // thousand attempt cookies on the callback — each answered at once and clearly, with
    // memory back where it was.
    let w = world().await;
    let pid = w.gw.pid();
    let base = rss_kib(pid);
    let many_chunks: String = (1..=20_000)
        .map(|i| format!("_portcullis_{i}=AAAAAAAAAAAAAAAA"))
        .collect::<Vec<_>>()
        .join("; ");
    let absurd: String = [
        "_portcullis_0=A",
        "_portcullis_-1=A",
        "_portcullis_01=A",
        "_portcullis_+1=A",
        "_portcullis_18446744073709551616=A",
        "_portcullis_99999999999999999999999999=A",
        "_portcullis_4294967296=A",
        "_portcullis_17=A",
        "_portcullis_1_1=A",
    ]
    .join("; ");
    let big_chunks: String = (1..=16)
        .map(|i| format!("_portcullis_{i}={}", "B".repeat(60_000)))
        .collect::<Vec<_>>()
        .join("; ");
    let states: String = (0..2_000)
        .map(|i| format!("_portcullis_state_{i:016}=AAAA{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let cases: Vec<(&str, String, &str)> = vec![
        ("20,000 chunks", many_chunks.clone(), "/app/x"),
        ("20,000 chunks on a public route", many_chunks, "/page"),
        ("absurd chunk numbers", absurd, "/app/x"),
        ("16 chunks of 60 KB", big_chunks, "/app/x"),
        (
            "2,000 attempt cookies",
            states.clone(),
            "/_portcullis/callback?code=x&state=0000000000000001",
        ),
        (
            "2,000 attempt cookies on userinfo",
            states,
            "/_portcullis/userinfo",
        ),
    ];
    for (what, cookie, path) in &cases {
        let rounds = futures_util::future::join_all((0..8).map(|_| {
            let addr = w.addr();
            let cookie = cookie.clone();
            async move {
                let t = Instant::now();
                let r = send(
                    addr,
                    "GET",
                    path,
                    &[("Cookie", &cookie), ("Accept", "application/json")],
                )
                .await;
                (t.elapsed(), r)
            }
        }))
        .await;
        for (took, r) in rounds {
            assert!(
                matches!(r.status, 400 | 401 | 413 | 431)
                    || (r.status == 200 && r.echo().is_some() && *path == "/page"),
                "{what}: {} {}",
                r.status,
                &r.body[..r.body.len().min(300)]
            );
            assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
            if let Some(echo) = r.echo() {
                let sent = crate::support::echoed(&echo, "cookie").join("; ");
                assert!(
                    !sent.contains("_portcullis"),
                    "{what}: the gateway's cookies reached the backend"
                );
            }
        }
    }
    // 300 separate Cookie lines (more header lines than the gateway reads): a clear refusal.
    let mut req = format!(
        "GET /app/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        w.addr()
    );
    for i in 0..300 {
        req.push_str(&format!("Cookie: _portcullis_{}=A\r\n", i % 16 + 1));
    }
    req.push_str("\r\n");
    let r = crate::support::raw(w.addr(), req.as_bytes()).await;
    assert!(
        matches!(r.status, 400 | 401 | 431),
        "300 Cookie lines: {r:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss_kib(pid).saturating_sub(base);
    assert!(grown < 200 * 1024, "the gateway grew by {grown} KiB");
    assert_eq!(
        send(w.addr(), "GET", "/page", &[]).await.status,
        200,
        "still serving"
    );
}
