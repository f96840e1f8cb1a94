//! Taking up a session at each request: open the cookie, see that it has not been ended,
//! and renew its tokens when they are due — once per session, however many requests
//! arrive at the same moment with the same cookie.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use super::login::{RefreshError, SessionData, Sessions};
use super::store::StoreUnavailable;
use crate::auth::issuer::Issuer;
use crate::auth::verifier::Verified;

/// How long the outcome of a refresh is kept for requests that still carry the cookie it
/// replaced (sent before the browser saw the new one). With rotating refresh tokens, a
/// second refresh with the old token would be refused, and some providers then revoke the
/// whole grant.
const SETTLED_FOR: Duration = Duration::from_secs(60);

type Outcome = Result<Arc<SessionData>, RefreshError>;

/// One refresh at a time per session (and per generation of its tokens).
pub struct RefreshGate {
    inflight: moka::sync::Cache<String, Arc<OnceCell<Outcome>>>,
}

impl Default for RefreshGate {
    fn default() -> Self {
        RefreshGate {
            inflight: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SETTLED_FOR)
                .build(),
        }
    }
}

impl RefreshGate {
    /// Runs `refresh` for `key` unless a run for it is under way or just finished: then its
    /// outcome is shared. A provider that could not be reached is tried again next time.
    async fn once<F, Fut>(&self, key: String, refresh: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<SessionData, RefreshError>>,
    {
        let cell = self
            .inflight
            .get_with(key.clone(), || Arc::new(OnceCell::new()));
        let outcome = cell
            .get_or_init(|| async { refresh().await.map(Arc::new) })
            .await
            .clone();
        if matches!(outcome, Err(RefreshError::Unreachable)) {
            self.inflight.invalidate(&key);
        }
        outcome
    }
}

/// A request's session, once taken up.
pub enum Resumed {
    /// No session cookie, or one that does not open, has expired or was ended.
    None,
    /// A session; `set_cookies` (`Set-Cookie` values) carry renewed tokens, if any.
    Valid {
        verified: Arc<Verified>,
        set_cookies: Vec<String>,
    },
    /// The provider refused to renew the tokens: the session is over, and these
    /// `Set-Cookie` values clear it.
    Ended { clear: Vec<String> },
    /// The tokens have run out and the provider cannot be reached to renew them.
    ProviderUnavailable,
    /// Sessions live in Redis, and it cannot be reached.
    StoreUnavailable,
}

impl Sessions {
    /// Takes up the session that `cookies` carry, renewing its tokens when due.
    pub async fn resume(
        &self,
        cookies: &[(&str, &str)],
        http: &reqwest::Client,
        provider: Option<&Arc<Issuer>>,
        now: u64,
    ) -> Resumed {
        let (data, verified) = match self.open(cookies, now).await {
            Ok(Some(found)) => found,
            Ok(None) => return Resumed::None,
            Err(StoreUnavailable) => return Resumed::StoreUnavailable,
        };
        if !self.config.refresh || !data.refresh_due(now) {
            return Resumed::Valid {
                verified,
                set_cookies: Vec::new(),
            };
        }
        let token_endpoint = provider.and_then(|p| p.discovery()?.token_endpoint.clone());
        let (Some(provider), Some(token_endpoint)) = (provider, token_endpoint) else {
            return self.keep_or_unavailable(&data, verified, now);
        };
        let key = format!("{}:{}", data.id, data.tokens_at);
        let outcome = self
            .gate
            .once(key, || {
                self.refresh_once(http, provider, &token_endpoint, &data, now)
            })
            .await;
        match outcome {
            Ok(renewed) => {
                tracing::debug!(session = %short(&renewed.id), "session tokens renewed");
                // With Redis the handle in the cookie stays as it is.
                let set_cookies = match &self.redis {
                    None => self.cookies_for(&*renewed, renewed.exp, now, cookies),
                    Some(_) => Vec::new(),
                };
                match self.verified(&renewed) {
                    Some(verified) => Resumed::Valid {
                        verified,
                        set_cookies,
                    },
                    None => Resumed::Ended {
                        clear: self.clear(cookies),
                    },
                }
            }
            Err(RefreshError::Refused) => {
                tracing::info!(
                    user = data.identity.user.as_deref().unwrap_or("-"),
                    "the provider refused to renew the session: it is over"
                );
                Resumed::Ended {
                    clear: self.clear(cookies),
                }
            }
            Err(RefreshError::Unreachable) => self.keep_or_unavailable(&data, verified, now),
        }
    }

    /// The refresh itself. With Redis, one instance refreshes (under a lock) and stores the
    /// result; another that finds the lock taken waits for that result.
    async fn refresh_once(
        &self,
        http: &reqwest::Client,
        provider: &Arc<Issuer>,
        token_endpoint: &url::Url,
        data: &SessionData,
        now: u64,
    ) -> Result<SessionData, RefreshError> {
        let Some(redis) = &self.redis else {
            return self
                .refresh(http, provider, token_endpoint, data, now)
                .await;
        };
        match redis.lock_refresh(&data.id).await {
            Err(StoreUnavailable) => return Err(RefreshError::Unreachable),
            Ok(false) => {
                return redis
                    .refreshed_elsewhere(&data.id, data.tokens_at)
                    .await
                    .ok_or(RefreshError::Unreachable)
            }
            Ok(true) => {}
        }
        let renewed = self
            .refresh(http, provider, token_endpoint, data, now)
            .await;
        let stored = match &renewed {
            Ok(d) => redis.put(d, now).await,
            Err(RefreshError::Refused) => redis.delete(&data.id).await,
            Err(RefreshError::Unreachable) => Ok(()),
        };
        redis.unlock_refresh(&data.id).await;
        match stored {
            Ok(()) => renewed,
            Err(StoreUnavailable) => Err(RefreshError::Unreachable),
        }
    }

    /// While its access token lasts, a session outlives a provider outage.
    fn keep_or_unavailable(
        &self,
        data: &SessionData,
        verified: Arc<Verified>,
        now: u64,
    ) -> Resumed {
        if data.tokens_expired(now) {
            Resumed::ProviderUnavailable
        } else {
            Resumed::Valid {
                verified,
                set_cookies: Vec::new(),
            }
        }
    }
}

/// The first characters of a session id: enough to follow one in the logs, useless to
/// anyone else.
fn short(id: &str) -> &str {
    id.get(..6).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn data() -> SessionData {
        serde_json::from_value(serde_json::json!({
            "id": "s1", "identity": {"user": "alice", "email": null, "email_verified": true,
            "groups": [], "roles": [], "subject": "a", "scopes": []},
            "exp": 10, "created": 1, "sid": null, "id_token": null, "tokens_at": 1,
            "tokens_exp": 5
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn concurrent_requests_of_one_session_refresh_once() {
        let gate = Arc::new(RefreshGate::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (gate, calls) = (gate.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                gate.once("s1:1".into(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(data())
                })
                .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_tried_again_but_a_refusal_is_final() {
        let gate = RefreshGate::default();
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let r = gate
                .once("k".into(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(RefreshError::Unreachable)
                })
                .await;
            assert!(matches!(r, Err(RefreshError::Unreachable)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        for _ in 0..3 {
            let r = gate
                .once("r".into(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(RefreshError::Refused)
                })
                .await;
            assert!(matches!(r, Err(RefreshError::Refused)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4, "a refusal is not retried");
    }
}
