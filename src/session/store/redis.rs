//! Sessions in Redis (`store = "redis"`), with only a sealed handle in the cookie: for
//! tokens too large for cookies, and so that a logout or back-channel logout ends a
//! session on every instance.
//!
//! What Redis holds is sealed with the session secrets like a cookie, so a copy of the
//! database reveals no token. Keys: `portcullis:session:<id>` (expires with the session),
//! `portcullis:sid:<sid>` and `portcullis:sub:<sub>` (the session ids of a provider session
//! and of a user, for back-channel logout), `portcullis:refresh:<id>` (a short lock: one
//! refresh per session across instances).
//!
//! The servers are one `redis-server` (`redis_url`), the primary that Redis Sentinel names
//! ([`sentinel`], `redis_sentinels`), or a Redis Cluster (`redis_cluster`). Every command
//! and every transaction touches one key, because Cluster refuses a transaction — and the
//! redis crate a pipeline — across hash slots, and a session's three keys lie in three
//! slots. Hash tags cannot put them in one: the `sid` and `sub` indexes are shared by many
//! sessions, and a back-channel logout names only a `sid` or only a `sub`, so no tag could
//! be known to every reader short of one tag for everything (one slot, one primary: no
//! Cluster left). What the one transaction gave, the order of the writes keeps: a session
//! is indexed before it is stored, and deleted before it leaves its index, so every stored
//! session can be found by a back-channel logout; a write cut short leaves at most an index
//! entry that names nothing. The same code runs in the three modes.

mod sentinel;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::IntoConnectionInfo as _;
use serde::{Deserialize, Serialize};

use super::{Opened, OpenedCache, Refresh, Sealed, SessionStore, StoreUnavailable};
use crate::config::{Redis, RedisServers};
use crate::secret::Secret;
use crate::session::codec::Codec;
use crate::session::model::SessionData;
use crate::session::revocation::Ended;
use crate::session::token_endpoint::TokenError;

const PREFIX: &str = "portcullis";
/// How long one instance may hold a session's refresh lock.
const REFRESH_LOCK: Duration = Duration::from_secs(10);
/// How long another instance waits for that refresh to land.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How long a connection to a Redis server (or a Sentinel) may take to open.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);
/// How long Redis may take to answer a command; past it, the request gets a 503.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// What the cookie carries when the session lives in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Handle {
    id: String,
}

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Sentinel(#[from] sentinel::Error),
    #[error("no connection within {0:?}")]
    Timeout(Duration),
}

/// The connection to the servers that hold sessions. One per store, so the size of its
/// largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Link {
    /// One server: a connection manager that reconnects by itself.
    One {
        client: redis::Client,
        conn: tokio::sync::OnceCell<ConnectionManager>,
    },
    /// The primary that Sentinel names, found again after a failover.
    Sentinel(Arc<sentinel::Primary>),
    /// A Cluster: the crate's cluster connection follows slots and redirections.
    Cluster {
        client: ClusterClient,
        conn: tokio::sync::OnceCell<ClusterConnection>,
    },
}

impl Link {
    fn new(redis: &Redis) -> Result<Link, String> {
        let e = |e: redis::RedisError| e.to_string();
        Ok(match &redis.servers {
            RedisServers::One(url) => {
                let info = url.as_str().into_connection_info().map_err(e)?;
                let settings = with_auth(info.redis_settings().clone(), redis);
                Link::One {
                    client: redis::Client::open(info.set_redis_settings(settings)).map_err(e)?,
                    conn: tokio::sync::OnceCell::new(),
                }
            }
            RedisServers::Sentinel { sentinels, master } => {
                let sentinels = sentinels
                    .iter()
                    .map(|u| u.as_str().into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Link::Sentinel(Arc::new(sentinel::Primary::new(
                    sentinels,
                    master.clone(),
                    with_auth(redis::RedisConnectionInfo::default(), redis),
                    connection_config(),
                )))
            }
            RedisServers::Cluster(nodes) => {
                let mut builder = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_WITHIN)
                    .response_timeout(ANSWER_WITHIN);
                if let Some(user) = &redis.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &redis.password {
                    builder = builder.password(password.expose());
                }
                Link::Cluster {
                    client: builder.build().map_err(e)?,
                    conn: tokio::sync::OnceCell::new(),
                }
            }
        })
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, LinkError> {
        match self {
            Link::One { client, conn } => {
                let mut conn = conn
                    .get_or_try_init(|| async {
                        let config = redis::aio::ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(CONNECT_WITHIN))
                            .set_response_timeout(Some(ANSWER_WITHIN))
                            .set_number_of_retries(1);
                        client.get_connection_manager_lazy(config)
                    })
                    .await?
                    .clone();
                Ok(pipe.query_async(&mut conn).await?)
            }
            Link::Sentinel(primary) => Ok(primary.query(pipe).await?),
            Link::Cluster { client, conn } => {
                let within = CONNECT_WITHIN + ANSWER_WITHIN;
                let mut conn = conn
                    .get_or_try_init(|| async {
                        tokio::time::timeout(within, client.get_async_connection())
                            .await
                            .map_err(|_| LinkError::Timeout(within))?
                            .map_err(LinkError::from)
                    })
                    .await?
                    .clone();
                Ok(pipe.query_async(&mut conn).await?)
            }
        }
    }
}

/// `settings` with `redis_username` and `redis_password`, where they are set.
fn with_auth(
    mut settings: redis::RedisConnectionInfo,
    redis: &Redis,
) -> redis::RedisConnectionInfo {
    if let Some(user) = &redis.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &redis.password {
        settings = settings.set_password(password.expose());
    }
    settings
}

/// Timeouts for the connections this module opens itself (Sentinels, the primary).
fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_WITHIN))
        .set_response_timeout(Some(ANSWER_WITHIN))
}

/// Sessions in Redis.
pub struct RedisStore {
    link: Link,
    /// Seals what Redis holds.
    codec: Codec,
    /// Seals the handle into the cookie.
    cookie: Codec,
    /// The session ids handle cookies opened to.
    handles: OpenedCache<Arc<str>>,
    /// The sessions Redis's values opened to: Redis is asked at every request, and only
    /// the same bytes as before are not decrypted again.
    sessions: OpenedCache<Opened>,
    /// How long the sid/sub indexes are kept: the longest a session lives.
    lifetime: Duration,
}

impl RedisStore {
    /// A store on the servers of `redis` (checked by the configuration); nothing is
    /// connected until the first request.
    pub fn new(
        redis: &Redis,
        cookie: Codec,
        secrets: &[Secret],
        lifetime: Duration,
    ) -> Result<RedisStore, String> {
        Ok(RedisStore {
            link: Link::new(redis)?,
            codec: Codec::new("portcullis-redis-session", secrets),
            cookie,
            handles: OpenedCache::new(),
            sessions: OpenedCache::new(),
            lifetime,
        })
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreUnavailable> {
        self.link.query(pipe).await.map_err(|e| {
            tracing::error!(error = %e, what, "Redis session store failed");
            StoreUnavailable
        })
    }

    fn key(kind: &str, id: &str) -> String {
        format!("{PREFIX}:{kind}:{id}")
    }

    /// Adds session `id` to the index `key`, kept for `ttl` seconds (one key, one slot).
    async fn index(&self, key: &str, id: &str, ttl: i64) -> Result<(), StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(key, id)
            .ignore()
            .expire(key, ttl)
            .ignore();
        self.run::<()>("index", &pipe).await
    }

    /// Stores `data` until its end, indexed by `sid` and `sub` first.
    async fn put(&self, data: &SessionData, now: u64) -> Result<(), StoreUnavailable> {
        let ttl = data.exp.saturating_sub(now).max(1);
        let index_ttl = self.lifetime.as_secs().max(ttl) as i64;
        let sid = data.sid.as_ref().map(|sid| Self::key("sid", sid));
        let sub = data
            .identity
            .subject
            .as_ref()
            .map(|sub| Self::key("sub", sub));
        let (by_sid, by_sub) = tokio::join!(
            async {
                match &sid {
                    Some(k) => self.index(k, &data.id, index_ttl).await,
                    None => Ok(()),
                }
            },
            async {
                match &sub {
                    Some(k) => self.index(k, &data.id, index_ttl).await,
                    None => Ok(()),
                }
            }
        );
        by_sid?;
        by_sub?;
        let mut pipe = redis::pipe();
        pipe.set_ex(
            Self::key("session", &data.id),
            self.codec.seal_one(data),
            ttl,
        )
        .ignore();
        self.run::<()>("put", &pipe).await
    }

    /// The session `id`, if it is stored (and opens).
    async fn get(&self, id: &str) -> Result<Option<Opened>, StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.get(Self::key("session", id));
        let (sealed,): (Option<String>,) = self.run("get", &pipe).await?;
        Ok(sealed.and_then(|s| {
            self.sessions.open(&s, |s| {
                self.codec.open_one::<SessionData>(s).map(Opened::from)
            })
        }))
    }

    async fn delete(&self, id: &str) -> Result<(), StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.del(Self::key("session", id)).ignore();
        self.run::<()>("delete", &pipe).await
    }

    /// Deletes every session of a provider session (`sid`) or of a user (`sub`), then
    /// takes those — and only those — out of the index: a session indexed meanwhile stays
    /// findable.
    async fn end_all(&self, ended: &Ended) -> Result<usize, StoreUnavailable> {
        let index = match ended {
            Ended::Sid(sid) => Self::key("sid", sid),
            Ended::Sub(sub) => Self::key("sub", sub),
        };
        let mut pipe = redis::pipe();
        pipe.smembers(&index);
        let (ids,): (Vec<String>,) = self.run("end", &pipe).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        for id in &ids {
            self.delete(id).await?;
        }
        let mut pipe = redis::pipe();
        pipe.srem(&index, &ids).ignore();
        self.run::<()>("end", &pipe).await?;
        Ok(ids.len())
    }

    /// Takes the refresh lock of session `id`; `false` when another instance holds it.
    async fn lock_refresh(&self, id: &str) -> Result<bool, StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(Self::key("refresh", id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(REFRESH_LOCK.as_millis() as u64);
        let (set,): (Option<String>,) = self.run("lock", &pipe).await?;
        Ok(set.is_some())
    }

    async fn unlock_refresh(&self, id: &str) {
        let mut pipe = redis::pipe();
        pipe.del(Self::key("refresh", id)).ignore();
        let _ = self.run::<()>("unlock", &pipe).await;
    }

    /// Waits for the refresh another instance is doing: the stored session's tokens newer
    /// than `tokens_at`. `None` when it does not land in time, or the session is gone.
    async fn refreshed_elsewhere(&self, id: &str, tokens_at: u64) -> Option<SessionData> {
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.get(id).await {
                Ok(Some(o)) if o.data.tokens_at > tokens_at => return Some((*o.data).clone()),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn open(&self, cookies: &[(&str, &str)]) -> Result<Option<Opened>, StoreUnavailable> {
        let Some(sealed) = self.cookie.sealed_in(cookies.iter().copied()) else {
            return Ok(None);
        };
        let id = self.handles.open(&sealed, |sealed| {
            let handle = self.cookie.open_one::<Handle>(sealed)?;
            Some(Arc::from(handle.id))
        });
        match id {
            Some(id) => self.get(&id).await,
            None => Ok(None),
        }
    }

    async fn save(&self, data: &SessionData, now: u64) -> Result<Sealed, StoreUnavailable> {
        self.put(data, now).await?;
        let handle = Handle {
            id: data.id.clone(),
        };
        Ok(super::seal_or_log(&self.cookie, &handle))
    }

    async fn renewed(
        &self,
        _data: &SessionData,
        _now: u64,
    ) -> Result<Option<Sealed>, StoreUnavailable> {
        // `refresh_once` stored it; the handle in the cookie stays as it is.
        Ok(None)
    }

    /// One instance refreshes (under a lock) and stores the result; another that finds the
    /// lock taken waits for that result.
    async fn refresh_once<'a>(
        &'a self,
        data: &'a SessionData,
        now: u64,
        refresh: Refresh<'a>,
    ) -> Result<SessionData, TokenError> {
        match self.lock_refresh(&data.id).await {
            Err(StoreUnavailable) => return Err(TokenError::Unreachable),
            Ok(false) => {
                return self
                    .refreshed_elsewhere(&data.id, data.tokens_at)
                    .await
                    .ok_or(TokenError::Unreachable)
            }
            Ok(true) => {}
        }
        let renewed = refresh.await;
        let stored = match &renewed {
            Ok(d) => self.put(d, now).await,
            Err(TokenError::Refused) => self.delete(&data.id).await,
            Err(TokenError::Unreachable) => Ok(()),
        };
        self.unlock_refresh(&data.id).await;
        match stored {
            Ok(()) => renewed,
            Err(StoreUnavailable) => Err(TokenError::Unreachable),
        }
    }

    async fn discard(&self, id: &str) -> Result<(), StoreUnavailable> {
        self.delete(id).await
    }

    async fn end(&self, ended: &Ended) -> Result<usize, StoreUnavailable> {
        self.end_all(ended).await
    }

    async fn reachable(&self) -> bool {
        let mut ping = redis::pipe();
        ping.cmd("PING");
        match self.link.query::<Vec<String>>(&ping).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "not ready: the Redis session store does not answer");
                false
            }
        }
    }
}
