//! Browser sessions: what a logged-in browser carries, sealed in cookies only the gateway
//! can read, and the small rules around logins (return targets, page loads).
//!
//! [`Sessions`] is the one door the proxy uses. Behind it, each in a file of its own and
//! depending one way: `model` (what a session is), `codec` and `cookies` (sealed values and
//! their `Set-Cookie`s), `store` (the [`store::SessionStore`] trait: cookies or Redis),
//! `token_endpoint` (the gateway's client at the provider), `builder` (sessions made from
//! tokens), `login` (code and implicit flows), `refresh` (renewal, once per session) and
//! `revocation` (logouts).

use std::sync::Arc;

use crate::auth::issuer::Issuer;
use crate::auth::verifier::Verified;
use crate::config::{Claims, LoginFlow, Provider, Session as SessionConfig, Store};

pub mod browser;
pub mod builder;
pub mod codec;
pub mod cookies;
pub mod login;
pub mod model;
pub mod refresh;
pub mod revocation;
pub mod store;
pub mod target;
pub mod token_endpoint;

use builder::SessionBuilder;
use codec::Codec;
use cookies::CookieJar;
use login::{Attempt, Login, LoginError};
use model::SessionData;
use refresh::{short, RefreshGate};
use revocation::{Ended, Revocations};
use store::{CookieStore, Opened, RedisStore, SessionStore, StoreUnavailable};
use token_endpoint::{TokenClient, TokenError, Tokens};

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

/// How many used login states are remembered (each about 100 bytes): far more logins than
/// an instance sees in an attempt's lifetime.
const USED_STATES: u64 = 100_000;

/// Browser sessions of one gateway.
pub struct Sessions {
    /// `session.refresh`.
    refresh: bool,
    jar: CookieJar,
    login: Login,
    store: Box<dyn SessionStore>,
    gate: Arc<RefreshGate>,
    revocations: Arc<Revocations>,
    /// The `state` of every login attempt a callback used on this instance, kept as long
    /// as an attempt lives: a state works once (the attempt cookie alone cannot say so).
    used_states: Arc<moka::sync::Cache<String, ()>>,
    /// The public URL without its trailing slash (logout's return address).
    pub public_url: String,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("jar", &self.jar)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(
        config: SessionConfig,
        provider: &Provider,
        public_url: &url::Url,
        claims: Claims,
        keep_access_token: bool,
        previous: Option<&Sessions>,
    ) -> Result<Sessions, String> {
        let origin = public_url.as_str().trim_end_matches('/').to_owned();
        let cookie_codec = || Codec::new(&config.cookie, &config.secrets);
        let store: Box<dyn SessionStore> = match (config.store, &config.redis) {
            (Store::Redis, Some(redis)) => Box::new(
                RedisStore::new(redis, cookie_codec(), &config.secrets, config.lifetime)
                    .map_err(|e| format!("session: Redis: {e}"))?,
            ),
            _ => Box::new(CookieStore::new(cookie_codec())),
        };
        let builder = SessionBuilder {
            claims,
            client_id: provider.client_id.clone(),
            refresh: config.refresh,
            lifetime: config.lifetime,
            keep_access_token,
        };
        let login = Login::new(
            &config.cookie,
            &config.secrets,
            format!("{origin}/_portcullis/callback"),
            provider.scopes.join(" "),
            provider.login_flow == LoginFlow::Implicit,
            TokenClient::new(provider.client_id.clone(), provider.client_secret.clone()),
            builder,
        );
        Ok(Sessions {
            refresh: config.refresh,
            jar: CookieJar::new(
                cookie_codec(),
                config.same_site,
                config.domain.clone(),
                public_url.scheme() == "https",
            ),
            login,
            store,
            // A reload keeps what the previous sessions knew: which sessions were ended
            // here, and which refreshes are under way.
            gate: previous.map_or_else(Default::default, |p| p.gate.clone()),
            revocations: previous.map_or_else(
                || Arc::new(Revocations::new(config.lifetime)),
                |p| p.revocations.clone(),
            ),
            used_states: previous.map_or_else(
                || {
                    Arc::new(
                        moka::sync::Cache::builder()
                            .max_capacity(USED_STATES)
                            .time_to_live(login::ATTEMPT_TTL)
                            .build(),
                    )
                },
                |p| p.used_states.clone(),
            ),
            public_url: origin,
        })
    }

    /// The gateway's client id at the provider.
    pub fn client_id(&self) -> &str {
        self.login.client_id()
    }

    /// Starts a login: the provider URL to redirect to, and the attempt's cookies.
    pub fn start(
        &self,
        authorization_endpoint: &url::Url,
        rd: &str,
        now: u64,
    ) -> Result<(String, Vec<String>), LoginError> {
        self.login.start(&self.jar, authorization_endpoint, rd, now)
    }

    /// Opens the attempt a callback's `state` names, and the cookies that clear it.
    pub fn attempt(
        &self,
        state: &str,
        cookies: &[(&str, &str)],
        now: u64,
    ) -> Result<(Attempt, Vec<String>), LoginError> {
        let opened = self.login.attempt(&self.jar, state, cookies, now)?;
        // Marked used before the code is exchanged: a second callback with this state —
        // a replay, even with a fresh code — is refused like an unknown one.
        let first = self
            .used_states
            .entry(opened.0.state.clone())
            .or_insert(())
            .is_fresh();
        if !first {
            return Err(LoginError::UnknownState);
        }
        Ok(opened)
    }

    /// Completes a code-flow login: the new session.
    pub async fn finish(
        &self,
        http: &reqwest::Client,
        provider: &Arc<Issuer>,
        token_endpoint: &url::Url,
        attempt: &Attempt,
        code: &str,
        now: u64,
    ) -> Result<SessionData, LoginError> {
        self.login
            .finish_code(http, provider, token_endpoint, attempt, code, now)
            .await
    }

    /// Completes an implicit login with the tokens the provider posted: the new session.
    pub async fn finish_implicit(
        &self,
        provider: &Arc<Issuer>,
        attempt: &Attempt,
        tokens: Tokens,
        now: u64,
    ) -> Result<SessionData, LoginError> {
        self.login
            .finish_implicit(provider, attempt, tokens, now)
            .await
    }

    /// Saves a session: the `Set-Cookie` values that carry it (or its handle).
    /// `cookies` are the request's: an old session's cookies it carried are cleared.
    pub async fn save(
        &self,
        data: &SessionData,
        now: u64,
        cookies: &[(&str, &str)],
    ) -> Result<Vec<String>, StoreUnavailable> {
        let sealed = self.store.save(data, now).await?;
        Ok(self.jar.carrying(&sealed, data.exp, now, cookies))
    }

    /// The session a request carries, if it opens, has not expired and was not ended.
    pub async fn open(
        &self,
        cookies: &[(&str, &str)],
        now: u64,
    ) -> Result<Option<Opened>, StoreUnavailable> {
        Ok(self
            .store
            .open(cookies)
            .await?
            .filter(|o| o.data.exp > now && !self.revocations.is_ended(&o.data)))
    }

    /// Takes up the session that `cookies` carry, renewing its tokens when due.
    pub async fn resume(
        &self,
        cookies: &[(&str, &str)],
        http: &reqwest::Client,
        provider: Option<&Arc<Issuer>>,
        now: u64,
    ) -> Resumed {
        let Opened {
            data,
            caller: verified,
        } = match self.open(cookies, now).await {
            Ok(Some(found)) => found,
            Ok(None) => return Resumed::None,
            Err(StoreUnavailable) => return Resumed::StoreUnavailable,
        };
        if !self.refresh || !data.refresh_due(now) {
            return Resumed::Valid {
                verified,
                set_cookies: Vec::new(),
            };
        }
        let token_endpoint = provider.and_then(|p| p.discovery()?.token_endpoint.clone());
        let (Some(provider), Some(token_endpoint)) = (provider, token_endpoint) else {
            return keep_or_unavailable(&data, verified, now);
        };
        let key = format!("{}:{}", data.id, data.tokens_at);
        let outcome = self
            .gate
            .once(key, || {
                let refresh = refresh::refresh(
                    http,
                    &self.login.tokens,
                    &self.login.builder,
                    provider,
                    &token_endpoint,
                    &data,
                    now,
                );
                self.store.refresh_once(&data, now, Box::pin(refresh))
            })
            .await;
        match outcome {
            Ok(renewed) => {
                tracing::debug!(session = %short(&renewed.id), "session tokens renewed");
                let set_cookies = match self.store.renewed(&renewed, now).await {
                    Ok(Some(sealed)) => self.jar.carrying(&sealed, renewed.exp, now, cookies),
                    Ok(None) => Vec::new(),
                    Err(StoreUnavailable) => return Resumed::StoreUnavailable,
                };
                match self.verified(&renewed) {
                    Some(verified) => Resumed::Valid {
                        verified,
                        set_cookies,
                    },
                    None => Resumed::Ended {
                        clear: self.jar.clear(cookies),
                    },
                }
            }
            Err(TokenError::Refused) => {
                tracing::info!(
                    user = data.identity.user.as_deref().unwrap_or("-"),
                    "the provider refused to renew the session: it is over"
                );
                Resumed::Ended {
                    clear: self.jar.clear(cookies),
                }
            }
            Err(TokenError::Unreachable) => keep_or_unavailable(&data, verified, now),
        }
    }

    /// Ends one session (a logout here): the `Set-Cookie` values that clear it. A copy of
    /// the cookie is worthless afterwards — on this instance, and with Redis on all.
    pub async fn discard(
        &self,
        data: &SessionData,
        now: u64,
        cookies: &[(&str, &str)],
    ) -> Result<Vec<String>, StoreUnavailable> {
        // The store first: marked ended here before the store forgot it, the session would
        // no longer open on this instance, and a logout tried again could not end it there.
        self.store.discard(&data.id).await?;
        self.revocations.end_session(&data.id, now);
        Ok(self.jar.clear(cookies))
    }

    /// `Set-Cookie` values that clear every session cookie the request carried.
    pub fn clear(&self, cookies: &[(&str, &str)]) -> Vec<String> {
        self.jar.clear(cookies)
    }

    /// Ends every session a back-channel logout names: on this instance, and with Redis on
    /// every instance.
    pub async fn end_everywhere(&self, ended: &Ended, now: u64) -> Result<(), StoreUnavailable> {
        self.revocations.end(ended, now);
        let n = self.store.end(ended).await?;
        tracing::debug!(sessions = n, "ended in the session store");
        Ok(())
    }

    /// Verifies a back-channel logout token (see [`Revocations::verify_logout_token`]).
    /// Whether the session store answers now (`/readyz`).
    pub async fn store_reachable(&self) -> bool {
        self.store.reachable().await
    }

    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The caller a session stands for (`None` when it was ended).
    fn verified(&self, data: &SessionData) -> Option<Arc<Verified>> {
        if self.revocations.is_ended(data) {
            return None;
        }
        Some(Arc::new(data.verified()))
    }
}

/// While its access token lasts, a session outlives a provider outage.
fn keep_or_unavailable(data: &SessionData, verified: Arc<Verified>, now: u64) -> Resumed {
    if data.tokens_expired(now) {
        Resumed::ProviderUnavailable
    } else {
        Resumed::Valid {
            verified,
            set_cookies: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::StoredIdentity;
    use super::*;

    const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
public_url = "http://127.0.0.1:8080"
[provider]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"
[session]
secrets = ["0123456789abcdef0123456789abcdef0123456789abcdef"]
[[routes]]
name = "app"
path = "/"
upstream = "http://127.0.0.1:9"
auth = "login"
"#;

    fn sessions() -> Sessions {
        let c = crate::config::parse(CONFIG, std::path::Path::new("t.toml")).unwrap();
        let (s, p) = (c.session.clone().unwrap(), c.provider.as_ref().unwrap());
        Sessions::new(s, p, &c.server.public_url, c.claims.clone(), false, None).unwrap()
    }

    fn alice(exp: u64) -> SessionData {
        SessionData {
            id: "session-of-alice".into(),
            identity: StoredIdentity {
                user: Some("alice".into()),
                email: None,
                email_verified: false,
                groups: vec!["/staff".into()],
                roles: vec![],
                subject: Some("a1".into()),
                scopes: vec![],
            },
            exp,
            created: 1_000,
            sid: None,
            id_token: None,
            refresh_token: None,
            tokens_at: 1_000,
            tokens_exp: None,
            access_token: None,
        }
    }

    /// The (name, value) pairs a browser sends back for `Set-Cookie` values.
    fn sent(set_cookies: &[String]) -> Vec<(String, String)> {
        set_cookies
            .iter()
            .filter_map(|c| c.split(';').next()?.split_once('='))
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[tokio::test]
    async fn a_cookie_opened_before_is_not_decrypted_again_and_opens_the_same() {
        let s = sessions();
        let cookies = sent(&s.save(&alice(5_000), 1_000, &[]).await.unwrap());
        let first = s.open(&pairs(&cookies), 1_000).await.unwrap().unwrap();
        let again = s.open(&pairs(&cookies), 1_001).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first.data, &again.data), "opened once");
        assert_eq!(again.caller.identity.user.as_deref(), Some("alice"));
        assert_eq!(again.caller.identity.groups, ["/staff"]);
    }

    #[tokio::test]
    async fn a_session_kept_opened_still_ends_at_its_end() {
        let s = sessions();
        let cookies = sent(&s.save(&alice(5_000), 1_000, &[]).await.unwrap());
        assert!(s.open(&pairs(&cookies), 4_999).await.unwrap().is_some());
        assert!(s.open(&pairs(&cookies), 5_000).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_session_kept_opened_opens_no_more_once_logged_out() {
        let s = sessions();
        let cookies = sent(&s.save(&alice(5_000), 1_000, &[]).await.unwrap());
        let opened = s.open(&pairs(&cookies), 1_000).await.unwrap().unwrap();
        s.discard(&opened.data, 1_010, &pairs(&cookies))
            .await
            .unwrap();
        assert!(s.open(&pairs(&cookies), 1_020).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_flipped_byte_never_opens_though_the_real_cookie_was_opened() {
        let s = sessions();
        let cookies = sent(&s.save(&alice(5_000), 1_000, &[]).await.unwrap());
        assert!(s.open(&pairs(&cookies), 1_000).await.unwrap().is_some());
        let (name, value) = &cookies[0];
        let mut bytes = value.clone().into_bytes();
        bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        let opened = s.open(&[(name.as_str(), flipped.as_str())], 1_000).await;
        assert!(opened.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_cookie_sealed_with_a_secret_no_longer_configured_does_not_open_after_a_reload() {
        let s = sessions();
        let cookies = sent(&s.save(&alice(5_000), 1_000, &[]).await.unwrap());
        assert!(s.open(&pairs(&cookies), 1_000).await.unwrap().is_some());
        let rotated = CONFIG.replace(
            "0123456789abcdef0123456789abcdef0123456789abcdef",
            "fedcba9876543210fedcba9876543210fedcba9876543210",
        );
        let c = crate::config::parse(&rotated, std::path::Path::new("t.toml")).unwrap();
        let (sc, p) = (c.session.clone().unwrap(), c.provider.as_ref().unwrap());
        let reloaded = Sessions::new(
            sc,
            p,
            &c.server.public_url,
            c.claims.clone(),
            false,
            Some(&s),
        )
        .unwrap();
        assert!(reloaded
            .open(&pairs(&cookies), 1_000)
            .await
            .unwrap()
            .is_none());
    }
}
