//! Where sessions live: a [`SessionStore`]. [`CookieStore`] keeps the whole session sealed
//! in the browser's cookies (`store = "cookie"`, the default, stateless); [`RedisStore`]
//! keeps it in Redis with only a sealed handle in the cookie (`store = "redis"`).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use super::codec::Codec;
use super::model::SessionData;
use super::revocation::Ended;
use super::token_endpoint::TokenError;

mod redis;

pub use self::redis::RedisStore;

/// The store could not be reached (or answered with an error): the request gets a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session store cannot be reached")]
pub struct StoreUnavailable;

/// What the session cookie carries, sealed: (name, value) of the cookie or of its chunks.
pub type Sealed = Vec<(String, String)>;

/// A refresh of a session's tokens, to be run by [`SessionStore::refresh_once`].
pub type Refresh<'a> = Pin<Box<dyn Future<Output = Result<SessionData, TokenError>> + Send + 'a>>;

/// Keeps sessions between requests.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// The session the request's `cookies` carry, if there is one and it opens (expiry and
    /// revocation are the caller's to check).
    async fn open(&self, cookies: &[(&str, &str)])
        -> Result<Option<SessionData>, StoreUnavailable>;

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

/// Sessions sealed whole in the browser's cookies: nothing is kept on the gateway, so a
/// logout elsewhere is known only through the revocation marks of each instance.
pub struct CookieStore {
    codec: Codec,
}

impl CookieStore {
    pub fn new(codec: Codec) -> CookieStore {
        CookieStore { codec }
    }
}

#[async_trait::async_trait]
impl SessionStore for CookieStore {
    async fn open(
        &self,
        cookies: &[(&str, &str)],
    ) -> Result<Option<SessionData>, StoreUnavailable> {
        Ok(self.codec.open(cookies.iter().copied()))
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
