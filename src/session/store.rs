//! Where sessions live: sealed in the browser's cookies (`store = "cookie"`, the default,
//! stateless), or in Redis (`store = "redis"`) with only a sealed handle in the cookie —
//! for tokens too large for cookies, and so that a logout or back-channel logout ends a
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

use super::codec::Codec;
use super::login::SessionData;
use super::revocation::Ended;
use crate::secret::Secret;

const PREFIX: &str = "portcullis";
/// How long one instance may hold a session's refresh lock.
const REFRESH_LOCK: Duration = Duration::from_secs(10);
/// How long another instance waits for that refresh to land.
const REFRESH_WAIT: Duration = Duration::from_secs(5);

/// The store could not be reached (or answered with an error): the request gets a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session store cannot be reached")]
pub struct StoreUnavailable;

/// What the cookie carries when the session lives in Redis.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handle {
    pub id: String,
}

/// Sessions in Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    codec: Codec,
    /// How long the sid/sub indexes are kept: the longest a session lives.
    lifetime: Duration,
}

impl RedisStore {
    /// A store for `url` (checked by the configuration); nothing is connected until the
    /// first request.
    pub fn new(url: &str, secrets: &[Secret], lifetime: Duration) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(RedisStore {
            client,
            conn: tokio::sync::OnceCell::new(),
            codec: Codec::new("portcullis-redis-session", secrets),
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
    pub async fn put(&self, data: &SessionData, now: u64) -> Result<(), StoreUnavailable> {
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
    pub async fn get(&self, id: &str) -> Result<Option<SessionData>, StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.get(Self::key("session", id));
        let (sealed,): (Option<String>,) = self.run("get", &pipe).await?;
        Ok(sealed.and_then(|s| self.codec.open_one(&s)))
    }

    pub async fn delete(&self, id: &str) -> Result<(), StoreUnavailable> {
        let mut pipe = redis::pipe();
        pipe.del(Self::key("session", id)).ignore();
        self.run::<()>("delete", &pipe).await
    }

    /// Deletes every session of a provider session (`sid`) or of a user (`sub`).
    pub async fn end(&self, ended: &Ended) -> Result<usize, StoreUnavailable> {
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
    pub async fn lock_refresh(&self, id: &str) -> Result<bool, StoreUnavailable> {
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

    pub async fn unlock_refresh(&self, id: &str) {
        let mut pipe = redis::pipe();
        pipe.del(Self::key("refresh", id)).ignore();
        let _ = self.run::<()>("unlock", &pipe).await;
    }

    /// Waits for the refresh another instance is doing: the stored session's tokens newer
    /// than `tokens_at`. `None` when it does not land in time, or the session is gone.
    pub async fn refreshed_elsewhere(&self, id: &str, tokens_at: u64) -> Option<SessionData> {
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

impl super::login::Sessions {
    /// Saves a session: the `Set-Cookie` values that carry it (or its handle).
    /// `cookies` are the request's: an old session's cookies it carried are cleared.
    pub async fn save(
        &self,
        data: &SessionData,
        now: u64,
        cookies: &[(&str, &str)],
    ) -> Result<Vec<String>, StoreUnavailable> {
        match &self.redis {
            None => Ok(self.cookies_for(data, data.exp, now, cookies)),
            Some(redis) => {
                redis.put(data, now).await?;
                let handle = Handle {
                    id: data.id.clone(),
                };
                Ok(self.cookies_for(&handle, data.exp, now, cookies))
            }
        }
    }

    /// The session a request carries, if it opens, has not expired and was not ended.
    pub async fn open(
        &self,
        cookies: &[(&str, &str)],
        now: u64,
    ) -> Result<
        Option<(SessionData, std::sync::Arc<crate::auth::verifier::Verified>)>,
        StoreUnavailable,
    > {
        let data = match &self.redis {
            None => self.codec.open::<SessionData>(cookies.iter().copied()),
            Some(redis) => match self.codec.open::<Handle>(cookies.iter().copied()) {
                Some(handle) => redis.get(&handle.id).await?,
                None => None,
            },
        };
        Ok(data
            .filter(|d| d.exp > now)
            .and_then(|d| self.verified(&d).map(|v| (d, v))))
    }

    /// Ends one session (a logout here): the `Set-Cookie` values that clear it. A copy of
    /// the cookie is worthless afterwards — on this instance, and with Redis on all.
    pub async fn discard(
        &self,
        data: &SessionData,
        now: u64,
        cookies: &[(&str, &str)],
    ) -> Vec<String> {
        self.revocations.end_session(&data.id, now);
        if let Some(redis) = &self.redis {
            // Unreachable: the local mark still holds here, and the entry expires.
            let _ = redis.delete(&data.id).await;
        }
        self.clear(cookies)
    }

    /// Ends every session a back-channel logout names: on this instance, and with Redis on
    /// every instance.
    pub async fn end_everywhere(&self, ended: &Ended, now: u64) -> Result<(), StoreUnavailable> {
        self.revocations.end(ended, now);
        if let Some(redis) = &self.redis {
            let n = redis.end(ended).await?;
            tracing::debug!(sessions = n, "ended in the Redis session store");
        }
        Ok(())
    }
}
