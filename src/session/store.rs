//! Where sessions live: a [`SessionStore`]. [`CookieStore`] keeps the whole session sealed
//! in the browser's cookies (`store = "cookie"`, the default, stateless); [`RedisStore`]
//! keeps it in Redis with only a sealed handle in the cookie (`store = "redis"`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::codec::Codec;
use super::model::SessionData;
use super::revocation::Ended;
use super::token_endpoint::TokenError;
use crate::auth::verifier::{cache_key, Verified};

mod redis;

pub use self::redis::RedisStore;

/// The store could not be reached (or answered with an error): the request gets a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session store cannot be reached")]
pub struct StoreUnavailable;

/// What the session cookie carries, sealed: (name, value) of the cookie or of its chunks.
pub type Sealed = Vec<(String, String)>;

/// A session as its store opened it, and the caller it stands for (made once): shared, so
/// that the cookie store hands the same one to every request that carries the same cookie.
#[derive(Debug, Clone)]
pub struct Opened {
    pub data: Arc<SessionData>,
    pub caller: Arc<Verified>,
}

impl From<SessionData> for Opened {
    fn from(data: SessionData) -> Opened {
        Opened {
            caller: Arc::new(data.verified()),
            data: Arc::new(data),
        }
    }
}

/// A refresh of a session's tokens, to be run by [`SessionStore::refresh_once`].
pub type Refresh<'a> = Pin<Box<dyn Future<Output = Result<SessionData, TokenError>> + Send + 'a>>;

/// Keeps sessions between requests.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// The session the request's `cookies` carry, if there is one and it opens (expiry and
    /// revocation are the caller's to check).
    async fn open(&self, cookies: &[(&str, &str)]) -> Result<Option<Opened>, StoreUnavailable>;

    /// Keeps `data` (until its end); returns what the cookie carries from now on.
    async fn save(&self, data: &SessionData, now: u64) -> Result<Sealed, StoreUnavailable>;

    /// After a refresh that [`SessionStore::refresh_once`] ran: what the cookie carries
    /// from now on, or `None` when it stays as it is.
    async fn renewed(
        &self,
        data: &SessionData,
        now: u64,
    ) -> Result<Option<Sealed>, StoreUnavailable>;

    /// Runs `refresh` for session `data` — once across every instance that shares the
    /// store — and keeps its outcome.
    async fn refresh_once<'a>(
        &'a self,
        data: &'a SessionData,
        now: u64,
        refresh: Refresh<'a>,
    ) -> Result<SessionData, TokenError>;

    /// Forgets session `id` (a logout); an error when the store could not be told.
    async fn discard(&self, id: &str) -> Result<(), StoreUnavailable>;

    /// Forgets every session a back-channel logout names; how many it held.
    async fn end(&self, ended: &Ended) -> Result<usize, StoreUnavailable>;

    /// Whether the store answers now (`/readyz`); cookies always do.
    async fn reachable(&self) -> bool {
        true
    }
}

/// `value` sealed into the session cookie, or nothing (logged) when it does not fit.
fn seal_or_log<T: Serialize>(codec: &Codec, value: &T) -> Sealed {
    codec.seal(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the session does not fit in cookies");
        Vec::new()
    })
}

/// What sealed values opened to, by the SHA-256 of the sealed value: the same value again
/// (a browser sends its cookie with every request; Redis answers the same bytes until the
/// session changes) is not decrypted and parsed again. Only values that opened are kept,
/// and a sealed value only ever opens to one thing under the secrets of its store, so
/// nothing is served that opening would not give. A reload makes new stores: a secret taken
/// out of `session.secrets` opens nothing from then on.
pub(super) struct OpenedCache<T> {
    kept: moka::sync::Cache<[u8; 32], Kept<T>>,
}

/// What a sealed value opened to, and its size as the cache counts it.
#[derive(Clone)]
struct Kept<T> {
    opened: T,
    bytes: u32,
}

/// How many bytes of sealed values each cache of opened ones stands for (the opened values
/// take about as much).
const OPENED_BYTES: u64 = 32 * 1024 * 1024;
/// A value not seen again for this long leaves the cache.
const OPENED_IDLE: Duration = Duration::from_secs(300);

impl<T: Clone + Send + Sync + 'static> OpenedCache<T> {
    pub(super) fn new() -> OpenedCache<T> {
        let kept = moka::sync::Cache::builder()
            .max_capacity(OPENED_BYTES)
            .weigher(|_: &[u8; 32], kept: &Kept<T>| kept.bytes)
            .time_to_idle(OPENED_IDLE)
            .build();
        OpenedCache { kept }
    }

    /// What `sealed` opens to: kept from an earlier opening, or `open(sealed)`.
    pub(super) fn open(&self, sealed: &str, open: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        let key = cache_key(sealed);
        if let Some(kept) = self.kept.get(&key) {
            return Some(kept.opened);
        }
        let opened = open(sealed)?;
        let bytes = u32::try_from(sealed.len() + 512).unwrap_or(u32::MAX);
        self.kept.insert(
            key,
            Kept {
                opened: opened.clone(),
                bytes,
            },
        );
        Some(opened)
    }
}

/// Sessions sealed whole in the browser's cookies: nothing is kept on the gateway, so a
/// logout elsewhere is known only through the revocation marks of each instance. What a
/// cookie opened to is kept ([`OpenedCache`]); the session's end and its revocation are
/// checked on every request all the same (`Sessions::open`).
pub struct CookieStore {
    codec: Codec,
    opened: OpenedCache<Opened>,
}

impl CookieStore {
    pub fn new(codec: Codec) -> CookieStore {
        CookieStore {
            codec,
            opened: OpenedCache::new(),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for CookieStore {
    async fn open(&self, cookies: &[(&str, &str)]) -> Result<Option<Opened>, StoreUnavailable> {
        let Some(sealed) = self.codec.sealed_in(cookies.iter().copied()) else {
            return Ok(None);
        };
        Ok(self.opened.open(&sealed, |sealed| {
            self.codec.open_one::<SessionData>(sealed).map(Opened::from)
        }))
    }

    async fn save(&self, data: &SessionData, _now: u64) -> Result<Sealed, StoreUnavailable> {
        Ok(seal_or_log(&self.codec, data))
    }

    async fn renewed(
        &self,
        data: &SessionData,
        _now: u64,
    ) -> Result<Option<Sealed>, StoreUnavailable> {
        Ok(Some(seal_or_log(&self.codec, data)))
    }

    async fn refresh_once<'a>(
        &'a self,
        _data: &'a SessionData,
        _now: u64,
        refresh: Refresh<'a>,
    ) -> Result<SessionData, TokenError> {
        refresh.await
    }

    async fn discard(&self, _id: &str) -> Result<(), StoreUnavailable> {
        Ok(())
    }

    async fn end(&self, _ended: &Ended) -> Result<usize, StoreUnavailable> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_is_opened_once_and_one_that_does_not_open_is_tried_again() {
        let cache: OpenedCache<Arc<str>> = OpenedCache::new();
        let opened = std::cell::Cell::new(0);
        let open = |s: &str| {
            opened.set(opened.get() + 1);
            s.starts_with("good").then(|| Arc::from(s))
        };
        assert_eq!(cache.open("good-1", open).as_deref(), Some("good-1"));
        assert_eq!(cache.open("good-1", open).as_deref(), Some("good-1"));
        assert_eq!(opened.get(), 1, "the same value again is not opened again");
        assert_eq!(cache.open("good-2", open).as_deref(), Some("good-2"));
        assert_eq!(opened.get(), 2, "another value is opened");
        assert_eq!(cache.open("bad", open), None);
        assert_eq!(cache.open("bad", open), None);
        assert_eq!(opened.get(), 4, "what does not open is never kept");
    }
}
