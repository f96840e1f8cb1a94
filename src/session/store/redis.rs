//! Sessions in Redis (`store = "redis"`), with only a sealed handle in the cookie: for
//! tokens too large for cookies, and so that a logout or back-channel logout ends a
//! session on every instance.
//!
//! What Redis holds is sealed with the session secrets like a cookie, so a copy of the
//! database reveals no token. Keys: `portcullis:session:<id>` (expires with the session),
//! `portcullis:sid:<sid>` and `portcullis:sub:<sub>` (the session ids of a provider session
//! and of a user, for back-channel logout), `portcullis:refresh:<id>` (a short lock: one
//! refresh per session across instances).

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{Refresh, Sealed, SessionStore, StoreUnavailable};
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

/// What the cookie carries when the session lives in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Handle {
    id: String,
}

/// Sessions in Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// Seals what Redis holds.
    codec: Codec,
    /// Seals the handle into the cookie.
    cookie: Codec,
    /// How long the sid/sub indexes are kept: the longest a session lives.
    lifetime: Duration,
}

impl RedisStore {
    /// A store for `url` (checked by the configuration); nothing is connected until the
    /// first request.
    pub fn new(
        url: &str,
        cookie: Codec,
        secrets: &[Secret],
        lifetime: Duration,
    ) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(RedisStore {
            client,
            conn: tokio::sync::OnceCell::new(),
            codec: Codec::new("portcullis-redis-session", secrets),
            cookie,
            lifetime,
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreUnavailable> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(1);
                self.client.get_connection_manager_lazy(config)
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot set up the Redis session store");
                StoreUnavailable
            })?;
        Ok(conn.clone())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreUnavailable> {
        let mut conn = self.conn().await?;
        pipe.query_async(&mut conn).await.map_err(|e| {
            tracing::error!(error = %e, what, "Redis session store failed");
            StoreUnavailable
        })
    }

    fn key(kind: &str, id: &str) -> String {
        format!("{PREFIX}:{kind}:{id}")
    }

    /// Stores `data` until its end, and indexes it by `sid` and `sub`.
    async fn put(&self, data: &SessionData, now: u64) -> Result<(), StoreUnavailable> {
        let ttl = data.exp.saturating_sub(now).max(1);
        let index_ttl = self.lifetime.as_secs().max(ttl) as i64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(
                Self::key("session", &data.id),
                self.codec.seal_one(data),
                ttl,
            )
            .ignore();
        if let Some(sid) = &data.sid {
            let k = Self::key("sid", sid);
            pipe.sadd(&k, &data.id)
                .ignore()
                .expire(&k, index_ttl)
                .ignore();
        }
        if let Some(sub) = &data.identity.subject {
            let k = Self::key("sub", sub);
            pipe.sadd(&k, &data.id)
                .ignore()
                .expire(&k, index_ttl)
                .ignore();
        }
        self.run::<()>("put", &pipe).await
    }

    /// The session `id`, if it is stored (and opens).
    async fn get(&self, id: &str) -> Result<Option<SessionData>, StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.get(Self::key("session", id));
        let (sealed,): (Option<String>,) = self.run("get", &pipe).await?;
        Ok(sealed.and_then(|s| self.codec.open_one(&s)))
    }

    async fn delete(&self, id: &str) -> Result<(), StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.del(Self::key("session", id)).ignore();
        self.run::<()>("delete", &pipe).await
    }

    /// Deletes every session of a provider session (`sid`) or of a user (`sub`).
    async fn end_all(&self, ended: &Ended) -> Result<usize, StoreUnavailable> {
        let index = match ended {
            Ended::Sid(sid) => Self::key("sid", sid),
            Ended::Sub(sub) => Self::key("sub", sub),
        };
        let mut pipe = redis::pipe();
        pipe.smembers(&index);
        let (ids,): (Vec<String>,) = self.run("end", &pipe).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in &ids {
            pipe.del(Self::key("session", id)).ignore();
        }
        pipe.del(&index).ignore();
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
                Ok(Some(d)) if d.tokens_at > tokens_at => return Some(d),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn open(
        &self,
        cookies: &[(&str, &str)],
    ) -> Result<Option<SessionData>, StoreUnavailable> {
        match self.cookie.open::<Handle>(cookies.iter().copied()) {
            Some(handle) => self.get(&handle.id).await,
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

    async fn discard(&self, id: &str) {
        // Unreachable: the local mark still holds here, and the entry expires.
        let _ = self.delete(id).await;
    }

    async fn end(&self, ended: &Ended) -> Result<usize, StoreUnavailable> {
        self.end_all(ended).await
    }
}
