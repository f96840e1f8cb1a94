//! The Redis servers of this suite, on loopback, from Debian's `redis-server`, `redis-sentinel` and
//! `redis-cli`: a primary with one replica watched by Sentinels ([`Sentinels`]), and a
//! Cluster of three primaries ([`Cluster`]). Every server asks for a password (the
//! Sentinels for another one), so the gateway's `redis_password` and the credentials in its
//! Sentinel URLs are used for real. Each process is a [`Proc`]: killed with the test.
//!
//! Every wait is bounded and polls the servers' own view (`INFO replication`, `SENTINEL
//! REPLICAS`, `CLUSTER INFO`), never a fixed sleep.

use std::process::Command;
use std::time::{Duration, Instant};

use redis::{IntoConnectionInfo as _, RedisConnectionInfo};

use crate::support::process::{wait_listening, Proc};

/// The password of every server that holds sessions.
pub const DATA_PASSWORD: &str = "data-password-for-tests-only";
/// The password of the Sentinels.
pub const SENTINEL_PASSWORD: &str = "sentinel-password-for-tests-only";
/// The name the Sentinels monitor the primary under.
pub const MASTER: &str = "portcullis-sessions";
/// How long the servers may take to agree (replication, Sentinels, the cluster bus).
pub const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// One server process on its port.
pub struct Node {
    pub proc: Proc,
    pub port: u16,
}

/// `redis-server` on `port` with `args`, persistence off, its files in `dir`.
async fn redis_server(dir: &std::path::Path, port: u16, args: &[String]) -> Node {
    let mut cmd = Command::new("redis-server");
    cmd.current_dir(dir)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--dbfilename", &format!("dump-{port}.rdb")])
        .args([
            "--requirepass",
            DATA_PASSWORD,
            "--masterauth",
            DATA_PASSWORD,
        ])
        .args(args);
    let log = dir.join(format!("redis-{port}.log"));
    let mut proc = Proc::spawn(&format!("redis-server :{port}"), cmd, &log, false);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(&mut proc, &[addr], Duration::from_secs(15)).await;
    Node { proc, port }
}

/// A connection to the server on `port` that logs in with `password`.
pub async fn connect(
    port: u16,
    password: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), port)
        .into_connection_info()?
        .set_redis_settings(RedisConnectionInfo::default().set_password(password));
    redis::Client::open(info)?
        .get_multiplexed_async_connection()
        .await
}

/// Runs `cmd` on the server on `port`.
pub async fn query<T: redis::FromRedisValue>(
    port: u16,
    password: &str,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let mut conn = connect(port, password).await?;
    cmd.query_async(&mut conn).await
}

/// `field:value` of an `INFO` answer.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `within`.
pub async fn until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The role (`master`, `slave`) the server on `port` says it has, if it answers.
pub async fn role(port: u16) -> Option<String> {
    let info: String = query(port, DATA_PASSWORD, redis::cmd("INFO").arg("replication"))
        .await
        .ok()?;
    info_field(&info, "role")
}

/// Whether the server on `port` is a replica whose link to its primary is up and synced.
pub async fn replicating(port: u16) -> bool {
    let Ok(info) =
        query::<String>(port, DATA_PASSWORD, redis::cmd("INFO").arg("replication")).await
    else {
        return false;
    };
    info_field(&info, "role").as_deref() == Some("slave")
        && info_field(&info, "master_link_status").as_deref() == Some("up")
        && info_field(&info, "master_sync_in_progress").as_deref() == Some("0")
}

/// A primary, one replica and `n` Sentinels (quorum: a majority) watching them, quick to
/// act: a primary is down after 1 s without an answer.
pub struct Sentinels {
    /// The first primary; `None` once killed.
    pub primary: Option<Node>,
    pub primary_port: u16,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Sentinels {
    pub async fn start(n: usize) -> Sentinels {
        let dir = tempfile::tempdir().expect("a temp dir");
        let primary = redis_server(dir.path(), crate::support::free_port(), &[]).await;
        let replica = redis_server(
            dir.path(),
            crate::support::free_port(),
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port.to_string(),
            ],
        )
        .await;
        // Sentinels find the replica in the primary's INFO: start them once it is attached.
        let port = replica.port;
        until("the replica syncs with the primary", SETTLE_WITHIN, || {
            replicating(port)
        })
        .await;
        let mut sentinels = Vec::new();
        for _ in 0..n {
            let port = crate::support::free_port();
            let conf = dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary} {quorum}\n\
                     sentinel auth-pass {MASTER} {DATA_PASSWORD}\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 10000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir = dir.path().display(),
                    primary = primary.port,
                    quorum = n / 2 + 1,
                ),
            )
            .expect("the Sentinel's config can be written");
            let mut cmd = Command::new("redis-sentinel");
            cmd.current_dir(dir.path()).arg(&conf);
            let log = dir.path().join(format!("sentinel-{port}.log"));
            let mut proc = Proc::spawn(&format!("redis-sentinel :{port}"), cmd, &log, false);
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            wait_listening(&mut proc, &[addr], Duration::from_secs(15)).await;
            sentinels.push(Node { proc, port });
        }
        let setup = Sentinels {
            primary_port: primary.port,
            primary: Some(primary),
            replica,
            sentinels,
            dir,
        };
        setup.wait_settled().await;
        setup
    }

    /// Until every Sentinel knows the replica and every other Sentinel: then a majority can
    /// agree that the primary is down and promote the replica.
    async fn wait_settled(&self) {
        let others = self.sentinels.len() - 1;
        for s in &self.sentinels {
            let port = s.port;
            until(
                &format!("Sentinel :{port} sees the replica and {others} other Sentinels"),
                SETTLE_WITHIN,
                || async move {
                    let replicas: redis::RedisResult<
                        Vec<std::collections::HashMap<String, String>>,
                    > = query(
                        port,
                        SENTINEL_PASSWORD,
                        redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER),
                    )
                    .await;
                    let peers: redis::RedisResult<Vec<std::collections::HashMap<String, String>>> =
                        query(
                            port,
                            SENTINEL_PASSWORD,
                            redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER),
                        )
                        .await;
                    let replica_up = replicas.is_ok_and(|r| {
                        r.iter()
                            .any(|f| f.get("flags").is_some_and(|fl| fl == "slave"))
                    });
                    replica_up && peers.is_ok_and(|p| p.len() == others)
                },
            )
            .await;
        }
    }

    /// `[session]` lines for a gateway on these Sentinels.
    pub fn session_config(&self) -> String {
        let urls: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("\"redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}\"", s.port))
            .collect();
        format!(
            "store = \"redis\"\nredis_sentinels = [{}]\nredis_sentinel_master = \"{MASTER}\"\nredis_password = \"{DATA_PASSWORD}\"\n",
            urls.join(", ")
        )
    }

    /// The port of the primary Sentinel `i` names.
    pub async fn primary_named_by(&self, i: usize) -> Option<u16> {
        let addr: Option<(String, String)> = query(
            self.sentinels[i].port,
            SENTINEL_PASSWORD,
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER),
        )
        .await
        .ok()?;
        addr?.1.parse().ok()
    }

    /// Until the replica has every write the primary took (before a failover loses none).
    pub async fn wait_replicated(&self) {
        let (primary, replica) = (self.primary_port, self.replica.port);
        until(
            "the replica has every write of the primary",
            SETTLE_WITHIN,
            || async move {
                let offset = |port: u16, field: &'static str| async move {
                    let info: String =
                        query(port, DATA_PASSWORD, redis::cmd("INFO").arg("replication"))
                            .await
                            .ok()?;
                    info_field(&info, field)
                };
                let (p, r) = tokio::join!(
                    offset(primary, "master_repl_offset"),
                    offset(replica, "slave_repl_offset")
                );
                p.is_some() && p == r
            },
        )
        .await;
    }

    /// SIGKILL to the primary, as a crash.
    pub fn kill_primary(&mut self) {
        if let Some(mut p) = self.primary.take() {
            p.proc.kill();
        }
    }

    /// Asks Sentinel `i` to fail over now, the old primary still up (`SENTINEL FAILOVER`).
    pub async fn fail_over_by(&self, i: usize) {
        let ok: String = query(
            self.sentinels[i].port,
            SENTINEL_PASSWORD,
            redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER),
        )
        .await
        .expect("the Sentinel starts a failover");
        assert_eq!(ok, "OK");
    }

    /// Every server's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    path.display(),
                    lines[lines.len().saturating_sub(15)..].join("\n")
                ));
            }
        }
        out
    }
}

/// A Redis Cluster of three primaries (no replicas), made with `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let (port, bus) = (crate::support::free_port(), crate::support::free_port());
            let args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus.to_string(),
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            nodes.push(redis_server(dir.path(), port, &args).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .args([
                    "-a",
                    DATA_PASSWORD,
                    "--no-auth-warning",
                    "--cluster",
                    "create",
                ])
                .args(&addrs)
                .arg("--cluster-yes")
                .output()
        })
        .await
        .expect("redis-cli does not panic")
        .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        for n in &nodes {
            let port = n.port;
            until(
                &format!("cluster node :{port} says the cluster is ok"),
                SETTLE_WITHIN,
                || async move {
                    query::<String>(port, DATA_PASSWORD, redis::cmd("CLUSTER").arg("INFO"))
                        .await
                        .is_ok_and(|i| info_field(&i, "cluster_state").as_deref() == Some("ok"))
                },
            )
            .await;
        }
        Cluster { nodes, _dir: dir }
    }

    /// `[session]` lines for a gateway on this cluster (any node will do; the password
    /// comes from `redis_password`, not the URLs).
    pub fn session_config(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"redis://127.0.0.1:{}\"", n.port))
            .collect();
        format!(
            "store = \"redis\"\nredis_cluster = [{}]\nredis_password = \"{DATA_PASSWORD}\"\n",
            urls.join(", ")
        )
    }

    /// Every key under `portcullis:` with the port of the node that holds it.
    pub async fn keys(&self) -> Vec<(String, u16)> {
        let mut all = Vec::new();
        for n in &self.nodes {
            let keys: Vec<String> = query(
                n.port,
                DATA_PASSWORD,
                redis::cmd("KEYS").arg("portcullis:*"),
            )
            .await
            .expect("the node lists its keys");
            all.extend(keys.into_iter().map(|k| (k, n.port)));
        }
        all
    }

    /// The hash slot of `key`.
    pub async fn slot(&self, key: &str) -> u16 {
        query(
            self.nodes[0].port,
            DATA_PASSWORD,
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
        )
        .await
        .expect("the node names the slot")
    }
}
