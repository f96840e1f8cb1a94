//! Sessions on Redis scaled out: Sentinel (a primary, a replica, three Sentinels) and a
//! Cluster of three primaries, all real Debian processes on loopback, behind two gateway
//! instances and the look-alike provider. What is prevented: a failover that loses the
//! sessions or answers anything but the session or a 503 while it happens; a logout that a
//! failover undoes; instances that do not share sessions; a session whose keys, in
//! different hash slots, the Cluster refuses to store together.

#[path = "../support/mod.rs"]
mod support;

mod topology;

use std::time::{Duration, Instant};

use support::browser::{self, Browser};
use support::servers::Provider;
use support::Gateway;
use topology::{Cluster, Sentinels, DATA_PASSWORD};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// How long a Sentinel failover may take, from the crash to sessions served again: the
/// primary is down after 1 s, then a majority agrees, elects a leader and promotes.
const FAILOVER_WITHIN: Duration = Duration::from_secs(30);

/// A gateway in front of an echo backend with a `login` route on `/app/`, sessions as
/// `session` says, ready (discovery and keys loaded).
async fn gateway(provider: &Provider, session: &str) -> Gateway {
    let up = support::echo().await;
    let rest = format!(
        r#"
[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"

[session]
secrets = ["{SECRET}"]
{session}

[[routes]]
name = "app"
path = "/app/"
upstream = "http://{up}"
auth = "login"
"#,
        issuer = provider.issuer,
    );
    let gw = Gateway::start("", &rest).await;
    let ready = format!("http://{}/readyz", gw.admin);
    topology::until("the gateway is ready", Duration::from_secs(15), || async {
        support::client()
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    gw
}

/// `user` logs in through `gw`; the `Cookie` header that carries the session.
async fn log_in(gw: &Gateway, user: &str) -> String {
    let mut b = Browser::new();
    let landed = b
        .log_in(&gw.url("/app/"), user, &format!("{user}-password"))
        .await;
    assert_eq!(
        landed.status,
        302,
        "the callback sends the browser back: {}\n{}",
        landed.body,
        gw.log()
    );
    let cookie = b.cookie_header(&gw.url("/"));
    assert!(
        cookie.contains("_portcullis="),
        "a session cookie: {cookie}"
    );
    cookie
}

/// What `gw` answers an API call with `cookie`: the status, and the user the backend was
/// told of (on a 200) or the error (on a refusal).
async fn answer(gw: &Gateway, cookie: &str) -> (u16, String) {
    let r = support::client()
        .get(gw.url("/app/x"))
        .header("Cookie", cookie)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("the gateway answers");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    let said = if status == 200 {
        support::echoed(&body, "x-auth-request-user").join(",")
    } else {
        body["error"].as_str().unwrap_or_default().to_owned()
    };
    (status, said)
}

/// A logout on `gw` with `cookie` (the browser is sent on).
async fn log_out(gw: &Gateway, cookie: &str) {
    let r = support::client()
        .get(gw.url("/_portcullis/logout?rd=/app/"))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(r.status(), 302, "{}", gw.log());
}

/// Until `gw`'s log holds `line` at least `n` times.
async fn logged(gw: &Gateway, line: &str, n: usize) {
    topology::until(
        &format!("the gateway logs {n} x {line:?}"),
        Duration::from_secs(15),
        || async { gw.log().matches(line).count() >= n },
    )
    .await;
}

/// Two instances on one store: a login on one is a session on the other, and a logout on
/// one ends it on the other.
async fn instances_share_sessions(a: &Gateway, b: &Gateway, user: &str) {
    let cookie = log_in(a, user).await;
    assert_eq!(
        answer(a, &cookie).await,
        (200, user.to_owned()),
        "{}",
        a.log()
    );
    assert_eq!(
        answer(b, &cookie).await,
        (200, user.to_owned()),
        "{}",
        b.log()
    );
    log_out(b, &cookie).await;
    assert_eq!(
        answer(a, &cookie).await.0,
        401,
        "a logout on one instance ends the session on the other"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_sentinel_sessions_survive_a_primary_crash_and_the_switch_answers_only_503() {
    let p = Provider::start().await;
    let mut redis = Sentinels::start(3).await;
    let a = gateway(&p, &redis.session_config()).await;
    let b = gateway(&p, &redis.session_config()).await;
    instances_share_sessions(&a, &b, "bob").await;

    let cookie = log_in(&a, "alice").await;
    assert_eq!(answer(&b, &cookie).await, (200, "alice".to_owned()));
    redis.wait_replicated().await;
    redis.kill_primary();
    let crashed = Instant::now();
    let (mut served, mut unavailable) = (0, 0);
    loop {
        let (x, y) = tokio::join!(answer(&a, &cookie), answer(&b, &cookie));
        for (gw, got) in [(&a, &x), (&b, &y)] {
            match got {
                (200, user) if user == "alice" => served += 1,
                (503, error) if error == "temporarily_unavailable" => unavailable += 1,
                other => panic!(
                    "during the failover: {other:?}, neither alice's session nor the documented 503\n{}\n{}",
                    gw.log(),
                    redis.logs()
                ),
            }
        }
        if x.0 == 200 && y.0 == 200 {
            break;
        }
        assert!(
            crashed.elapsed() < FAILOVER_WITHIN,
            "sessions not served again within {FAILOVER_WITHIN:?} of the crash\n{}\n{}",
            a.log(),
            redis.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = crashed.elapsed();
    let mut promoted = false;
    for i in 0..redis.sentinels.len() {
        promoted |= redis.primary_named_by(i).await == Some(redis.replica.port);
    }
    assert!(promoted, "the replica is the primary now\n{}", redis.logs());
    eprintln!(
        "failover: sessions served again after {took:?} ({unavailable} answers 503, {served} 200)"
    );
    // The new primary takes writes: logins and logouts work on both instances again.
    instances_share_sessions(&b, &a, "bob").await;
    assert_eq!(answer(&a, &cookie).await, (200, "alice".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_sentinel_a_logout_right_after_a_failover_is_not_undone_when_the_old_primary_rejoins()
{
    let p = Provider::start().await;
    let redis = Sentinels::start(3).await;
    let a = gateway(&p, &redis.session_config()).await;
    let b = gateway(&p, &redis.session_config()).await;
    let cookie = log_in(&a, "alice").await;
    assert_eq!(answer(&b, &cookie).await, (200, "alice".to_owned()));
    for gw in [&a, &b] {
        logged(
            gw,
            "watching the Sentinel for a new Redis primary",
            redis.sentinels.len(),
        )
        .await;
    }
    redis.wait_replicated().await;
    // The last Sentinel the gateways know fails over; the others hear of it only later.
    let last = redis.sentinels.len() - 1;
    redis.fail_over_by(last).await;
    let (old, new) = (redis.primary_port, redis.replica.port);
    topology::until(
        "the Sentinel promotes the replica",
        FAILOVER_WITHIN,
        || async { redis.primary_named_by(last).await == Some(new) },
    )
    .await;
    for gw in [&a, &b] {
        logged(gw, "a Sentinel announced a new Redis primary", 1).await;
    }
    assert_eq!(
        topology::role(old).await.as_deref(),
        Some("master"),
        "the old primary is still up and still takes writes (Sentinel demotes it seconds later)"
    );
    log_out(&a, &cookie).await;
    // Sentinel demotes the old primary; it copies the new one's data over its own.
    topology::until(
        "the old primary rejoins as a replica",
        FAILOVER_WITHIN,
        || topology::replicating(old),
    )
    .await;
    for gw in [&a, &b] {
        assert_eq!(
            answer(gw, &cookie).await.0,
            401,
            "the logout holds after the old primary rejoined\n{}\n{}",
            gw.log(),
            redis.logs()
        );
    }
    let left: Vec<String> = topology::query(
        new,
        DATA_PASSWORD,
        redis::cmd("KEYS").arg("portcullis:session:*"),
    )
    .await
    .expect("the new primary lists its keys");
    assert!(
        left.is_empty(),
        "the session was deleted on the new primary: {left:?}"
    );
    // And the new primary takes the writes of both instances.
    instances_share_sessions(&b, &a, "bob").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_cluster_a_sessions_keys_in_three_slots_serve_both_instances_and_logouts_end_it_everywhere(
) {
    let p = Provider::start().await;
    let cluster = Cluster::start().await;
    let a = gateway(&p, &cluster.session_config()).await;
    let b = gateway(&p, &cluster.session_config()).await;
    // The provider puts `sid` in ID tokens once a back-channel logout URI is registered.
    let uri = a.url("/_portcullis/backchannel-logout");
    p.test_endpoint(
        "/__test/backchannel-logout-uri",
        serde_json::json!({ "uri": uri }),
    )
    .await;
    let cookie = log_in(&a, "alice").await;
    assert_eq!(
        answer(&b, &cookie).await,
        (200, "alice".to_owned()),
        "{}",
        b.log()
    );
    // The session, its provider session (sid) and its user (sub): three keys, three slots.
    let keys = cluster.keys().await;
    let kinds: Vec<&str> = keys
        .iter()
        .map(|(k, _)| k.split(':').nth(1).unwrap_or(""))
        .collect();
    for kind in ["session", "sid", "sub"] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            1,
            "one {kind} key: {keys:?}"
        );
    }
    let mut slots = Vec::new();
    for (k, _) in &keys {
        slots.push(cluster.slot(k).await);
    }
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 3, "the keys lie in three slots: {keys:?}");
    log_out(&b, &cookie).await;
    assert_eq!(
        answer(&a, &cookie).await.0,
        401,
        "a logout on b ends the session on a"
    );

    // A back-channel logout received by a finds the session through its sid index, in
    // another slot, and ends it on b too.
    let mut browser = Browser::new();
    browser
        .log_in(&b.url("/app/"), "alice", "alice-password")
        .await;
    let cookie = browser.cookie_header(&b.url("/"));
    assert_eq!(answer(&a, &cookie).await, (200, "alice".to_owned()));
    let logout = format!(
        "{}/protocol/openid-connect/logout?client_id=portcullis",
        p.issuer
    );
    let confirm = browser.open(&logout).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let (action, fields) = browser::hidden_form(&confirm.body);
    let done = browser
        .send(browser.http.post(&action).form(&fields), &action)
        .await;
    assert!(done.status < 400, "{}", done.body);
    topology::until(
        "the back-channel logout ends the session on b",
        Duration::from_secs(10),
        || async { answer(&b, &cookie).await.0 == 401 },
    )
    .await;
    let left: Vec<String> = cluster
        .keys()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("portcullis:session:"))
        .collect();
    assert!(
        left.is_empty(),
        "no session is left in the cluster: {left:?}"
    );
}
