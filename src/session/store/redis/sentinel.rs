//! The primary that Redis Sentinel names (`redis_sentinels`, `redis_sentinel_master`),
//! followed through failovers.
//!
//! Found as the Sentinel client guidelines say, with one addition: every Sentinel is asked
//! (`SENTINEL MASTER <name>`) and the answer of the newest configuration epoch wins,
//! because a Sentinel that has not yet heard of a failover still names the old primary,
//! and that one may be up and still taking writes; the server named must then say it is a
//! primary (`ROLE`). The connection is kept until a command on it fails (the primary
//! crashed, or Sentinel disconnected the clients of a server it reconfigured) or until a
//! Sentinel announces a new primary (`+switch-master`, watched on every Sentinel): so a
//! failover with the old primary still up — `SENTINEL FAILOVER`, a partition — moves the
//! writes at once, not seconds later when Sentinel demotes the old one and its last writes
//! (a logout, say) are lost. A command that fails is tried once more on the primary found
//! afresh; while none is found, requests get a 503, and a failed search is not repeated for
//! [`PAUSE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo as _, RedisConnectionInfo};

/// How long a search for the primary may take.
const FIND_WITHIN: Duration = Duration::from_secs(3);
/// After a search found no primary, requests get a 503 at once for this long.
const PAUSE: Duration = Duration::from_millis(200);
/// How long subscribing to a Sentinel's announcements may take.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(2);
/// The longest wait before subscribing again to a Sentinel that went away.
const RESUBSCRIBE_AT_MOST: Duration = Duration::from_secs(10);

/// Why the primary gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("no Redis primary: {0}")]
    NoPrimary(String),
    #[error("no Redis primary found within {0:?}")]
    Timeout(Duration),
}

/// The primary of one Sentinel-monitored master, and the connection to it.
pub struct Primary {
    sentinels: Vec<ConnectionInfo>,
    /// The name the Sentinels monitor it under.
    name: String,
    /// How to log in to the primary (`redis_username`, `redis_password`).
    auth: RedisConnectionInfo,
    config: AsyncConnectionConfig,
    /// The connection in use, with its generation; `None` until found (again).
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    /// Held while searching: one search at a time.
    search: tokio::sync::Mutex<Search>,
    watching: Once,
}

#[derive(Default)]
struct Search {
    failed_at: Option<Instant>,
    /// The primary last found, `ip:port`.
    found: Option<String>,
}

/// A primary as one Sentinel sees it.
struct Named {
    ip: String,
    port: u16,
    epoch: u64,
}

impl Primary {
    pub fn new(
        sentinels: Vec<ConnectionInfo>,
        name: String,
        auth: RedisConnectionInfo,
        config: AsyncConnectionConfig,
    ) -> Primary {
        Primary {
            sentinels,
            name,
            auth,
            config,
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            search: tokio::sync::Mutex::new(Search::default()),
            watching: Once::new(),
        }
    }

    /// Runs `pipe` on the primary: once more on the primary found afresh when it fails.
    pub async fn query<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        pipe: &redis::Pipeline,
    ) -> Result<T, Error> {
        self.watch();
        let (generation, mut conn) = self.connection().await?;
        let first = match pipe.query_async::<T>(&mut conn).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        self.forget(generation);
        if !worth_another_try(&first) {
            return Err(first.into());
        }
        tracing::debug!(error = %first, master = %self.name, "the Redis primary failed a command: finding it again");
        let (generation, mut conn) = self.connection().await?;
        pipe.query_async::<T>(&mut conn).await.map_err(|e| {
            self.forget(generation);
            Error::from(e)
        })
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops the connection of `generation`, unless a newer one replaced it.
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }

    /// The connection to the primary, found through the Sentinels when there is none.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), Error> {
        if let Some(found) = self.current() {
            return Ok(found);
        }
        let mut search = self.search.lock().await;
        if let Some(found) = self.current() {
            return Ok(found);
        }
        if search.failed_at.is_some_and(|t| t.elapsed() < PAUSE) {
            return Err(Error::NoPrimary(format!(
                "none of the Sentinels named a reachable primary for `{}` a moment ago",
                self.name
            )));
        }
        let found = tokio::time::timeout(FIND_WITHIN, self.find())
            .await
            .unwrap_or(Err(Error::Timeout(FIND_WITHIN)));
        let (addr, conn) = match found {
            Ok(found) => found,
            Err(e) => {
                search.failed_at = Some(Instant::now());
                return Err(e);
            }
        };
        search.failed_at = None;
        if search.found.as_deref() != Some(addr.as_str()) {
            tracing::info!(primary = %addr, master = %self.name, "Redis primary found through Sentinel");
            search.found = Some(addr);
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Asks every Sentinel; connects to the primary of the newest epoch that says it is one.
    async fn find(&self) -> Result<(String, MultiplexedConnection), Error> {
        let mut asks = tokio::task::JoinSet::new();
        for sentinel in &self.sentinels {
            asks.spawn(ask(
                sentinel.clone(),
                self.name.clone(),
                self.config.clone(),
            ));
        }
        let mut named = Vec::new();
        let mut why = Vec::new();
        while let Some(answer) = asks.join_next().await {
            match answer {
                Ok(Ok(Some(n))) => named.push(n),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => why.push(e.to_string()),
                Err(e) => why.push(e.to_string()),
            }
        }
        named.sort_by_key(|n| std::cmp::Reverse(n.epoch));
        let mut tried = Vec::new();
        for n in named {
            let addr = format!("{}:{}", n.ip, n.port);
            if tried.contains(&addr) {
                continue;
            }
            match self.connect(&n).await {
                Ok(conn) => return Ok((addr, conn)),
                Err(e) => why.push(format!("{addr}: {e}")),
            }
            tried.push(addr);
        }
        if why.is_empty() {
            why.push("no Sentinel names a primary that is up".to_owned());
        }
        Err(Error::NoPrimary(format!(
            "`{}`: {}",
            self.name,
            why.join("; ")
        )))
    }

    /// A connection to `n`, if it says it is a primary.
    async fn connect(&self, n: &Named) -> Result<MultiplexedConnection, Error> {
        let info = redis::ConnectionAddr::Tcp(n.ip.clone(), n.port)
            .into_connection_info()?
            .set_redis_settings(self.auth.clone());
        let mut conn = redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await?;
        let primary = match &role {
            redis::Value::Array(items) => matches!(
                items.first(),
                Some(redis::Value::BulkString(b)) if b.as_slice() == b"master"
            ),
            _ => false,
        };
        if primary {
            Ok(conn)
        } else {
            Err(Error::NoPrimary("it says it is not a primary".to_owned()))
        }
    }

    /// A Sentinel announced a new primary: the next command looks for it at once.
    async fn switched(&self) {
        let mut search = self.search.lock().await;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        search.failed_at = None;
    }

    /// Starts watching every Sentinel's announcements, once (on the first command: the
    /// watchers run on the runtime that serves requests).
    fn watch(self: &Arc<Self>) {
        self.watching.call_once(|| {
            for sentinel in &self.sentinels {
                tokio::spawn(watch(
                    Arc::downgrade(self),
                    sentinel.clone(),
                    self.name.clone(),
                ));
            }
        });
    }
}

/// Whether a failed command may succeed on the primary found afresh: the connection broke,
/// or the server is no longer the primary.
fn worth_another_try(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// The primary one Sentinel names, unless it thinks it down (an error when the Sentinel
/// does not know the name).
async fn ask(
    sentinel: ConnectionInfo,
    name: String,
    config: AsyncConnectionConfig,
) -> Result<Option<Named>, Error> {
    let mut conn = redis::Client::open(sentinel)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let fields: HashMap<String, String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(&name)
        .query_async(&mut conn)
        .await?;
    // Not `disconnected`: right after a `+switch-master` every Sentinel flags the new
    // primary so until its own link to it is up, and `ROLE` tells anyway.
    let flags = fields.get("flags").map_or("", String::as_str);
    if flags.split(',').any(|f| matches!(f, "s_down" | "o_down")) {
        return Ok(None);
    }
    let (Some(ip), Some(port)) = (
        fields.get("ip"),
        fields.get("port").and_then(|p| p.parse().ok()),
    ) else {
        return Ok(None);
    };
    Ok(Some(Named {
        ip: ip.clone(),
        port,
        epoch: fields
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
    }))
}

/// Follows one Sentinel's `+switch-master` announcements for `name` while the store lives,
/// subscribing again (with a growing pause) whenever the Sentinel goes away.
async fn watch(primary: Weak<Primary>, sentinel: ConnectionInfo, name: String) {
    let at = sentinel.addr().to_string();
    let mut pause = Duration::from_secs(1);
    loop {
        match subscribe(&sentinel).await {
            Ok(pubsub) => {
                tracing::info!(sentinel = %at, master = %name, "watching the Sentinel for a new Redis primary");
                pause = Duration::from_secs(1);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    // "<name> <old ip> <old port> <new ip> <new port>"
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    if text.split(' ').next() != Some(name.as_str()) {
                        continue;
                    }
                    let Some(primary) = primary.upgrade() else {
                        return;
                    };
                    tracing::info!(sentinel = %at, announced = %text, "a Sentinel announced a new Redis primary");
                    primary.switched().await;
                }
                tracing::warn!(sentinel = %at, "lost the Sentinel's announcements: subscribing again");
            }
            Err(e) => {
                tracing::debug!(sentinel = %at, error = %e, "cannot subscribe to the Sentinel's announcements");
            }
        }
        if primary.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RESUBSCRIBE_AT_MOST);
    }
}

async fn subscribe(sentinel: &ConnectionInfo) -> Result<redis::aio::PubSub, Error> {
    let subscribing = async {
        let mut pubsub = redis::Client::open(sentinel.clone())?
            .get_async_pubsub()
            .await?;
        pubsub.subscribe("+switch-master").await?;
        Ok::<_, Error>(pubsub)
    };
    tokio::time::timeout(SUBSCRIBE_WITHIN, subscribing)
        .await
        .unwrap_or(Err(Error::Timeout(SUBSCRIBE_WITHIN)))
}
