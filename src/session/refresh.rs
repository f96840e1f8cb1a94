//! Renewing a session's tokens when they are due — once per session, however many
//! requests arrive at the same moment with the same cookie.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use super::builder::SessionBuilder;
use super::model::SessionData;
use super::token_endpoint::{TokenClient, TokenError};
use crate::auth::issuer::Issuer;

/// How long the outcome of a refresh is kept for requests that still carry the cookie it
/// replaced (sent before the browser saw the new one). With rotating refresh tokens, a
/// second refresh with the old token would be refused, and some providers then revoke the
/// whole grant.
const SETTLED_FOR: Duration = Duration::from_secs(60);

type Outcome = Result<Arc<SessionData>, TokenError>;

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
    pub async fn once<F, Fut>(&self, key: String, refresh: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<SessionData, TokenError>>,
    {
        let cell = self
            .inflight
            .get_with(key.clone(), || Arc::new(OnceCell::new()));
        let outcome = cell
            .get_or_init(|| async { refresh().await.map(Arc::new) })
            .await
            .clone();
        if matches!(outcome, Err(TokenError::Unreachable)) {
            self.inflight.invalidate(&key);
        }
        outcome
    }
}

/// Renews `old`'s tokens with its refresh token at `token_endpoint`.
pub async fn refresh(
    http: &reqwest::Client,
    tokens: &TokenClient,
    builder: &SessionBuilder,
    provider: &Arc<Issuer>,
    token_endpoint: &url::Url,
    old: &SessionData,
    now: u64,
) -> Result<SessionData, TokenError> {
    let Some(refresh_token) = old.refresh_token.as_deref() else {
        return Err(TokenError::Refused);
    };
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", tokens.client_id.as_str()),
    ];
    let answer = tokens.request(http, token_endpoint, &form).await?;
    builder.renewed(provider, old, answer, now).await
}

/// The first characters of a session id: enough to follow one in the logs, useless to
/// anyone else.
pub fn short(id: &str) -> &str {
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
                    Err(TokenError::Unreachable)
                })
                .await;
            assert!(matches!(r, Err(TokenError::Unreachable)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        for _ in 0..3 {
            let r = gate
                .once("r".into(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(TokenError::Refused)
                })
                .await;
            assert!(matches!(r, Err(TokenError::Refused)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4, "a refusal is not retried");
    }
}
