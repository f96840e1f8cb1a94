//! Browser login — the authorization code flow with PKCE (S256), or the implicit flow with
//! `form_post` — and the session it leaves behind.
//!
//! Each login attempt keeps its `state`, `nonce`, PKCE verifier and return target in a
//! short-lived sealed cookie of its own (`<cookie>_state_<id>`), so several tabs can log in
//! at once; the callback opens it by the `state` it receives, uses it once and clears it.
//! The ID token is verified with the same key cache as bearer tokens.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::Codec;
use super::refresh::RefreshGate;
use super::revocation::Revocations;
use super::store::RedisStore;
use super::target::MAX_TARGET_BYTES;
use crate::auth::claims;
use crate::auth::issuer::{error_chain, Issuer};
use crate::auth::jwt;
use crate::auth::verifier::Verified;
use crate::config::{Claims, LoginFlow, Provider, SameSite, Session as SessionConfig, Store};
use crate::identity::Identity;
use crate::secret::Secret;

/// How long a login attempt may take, from the redirect to the callback.
pub const ATTEMPT_TTL: Duration = Duration::from_secs(600);

/// What one login attempt must remember until its callback.
#[derive(Debug, Serialize, Deserialize)]
pub struct Attempt {
    pub state: String,
    pub nonce: String,
    /// The PKCE verifier (empty for the implicit flow, which has no code to exchange).
    pub verifier: String,
    pub rd: String,
    pub exp: u64,
    /// Which flow this attempt started: its callback must answer in kind.
    #[serde(default)]
    pub implicit: bool,
}

/// What a session cookie carries: only what requests need, so large tokens still fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// Random, new at every login: names the session for refresh and revocation.
    pub id: String,
    pub identity: StoredIdentity,
    /// Seconds since the epoch: the session ends then (cookie lifetime).
    pub exp: u64,
    /// When the login happened: a back-channel logout by `sub` ends sessions begun before it.
    pub created: u64,
    /// The provider's session (`sid` of the ID token), for back-channel logout.
    pub sid: Option<String>,
    /// For RP-initiated logout (`id_token_hint`).
    pub id_token: Option<String>,
    /// Kept only with `session.refresh = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the current tokens were issued and when the access token ends.
    pub tokens_at: u64,
    pub tokens_exp: Option<u64>,
    /// Kept only when `[headers] access_token` passes it to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

impl SessionData {
    /// Whether the tokens should be renewed now: less than 30 s or a fifth of their lifetime
    /// left (SPEC §2), but never before half of it has passed, so very short-lived tokens
    /// are not renewed at every request.
    pub fn refresh_due(&self, now: u64) -> bool {
        let (Some(_), Some(end)) = (&self.refresh_token, self.tokens_exp) else {
            return false;
        };
        let span = end.saturating_sub(self.tokens_at);
        let left = end.saturating_sub(now);
        left < (span / 5).max(30).min(span / 2)
    }

    /// Whether the access token has ended (a session without one never does this way).
    pub fn tokens_expired(&self, now: u64) -> bool {
        self.tokens_exp.is_some_and(|t| t <= now)
    }
}

/// [`Identity`] as stored (the access token is kept apart, in [`SessionData`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIdentity {
    pub user: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub subject: Option<String>,
    pub scopes: Vec<String>,
}

/// Why a callback did not produce a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("this login is unknown or has expired: start again")]
    UnknownState,
    #[error("the provider refused the login")]
    ProviderError,
    #[error(
        "the identity provider could not be reached to finish the login: try again in a moment"
    )]
    ProviderUnreachable,
    #[error("the provider's ID token is not valid")]
    BadIdToken,
    #[error("the provider's answer does not fit this login's flow")]
    WrongFlow,
    /// The URL to return to is longer than a login keeps (414).
    #[error("the address is too long to return to after a login")]
    TargetTooLong,
}

/// Why a session's tokens were not renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// The provider refused the refresh token: the session is over.
    Refused,
    /// The provider could not be reached or answered with a server error: try again later.
    Unreachable,
}

/// What the token endpoint (or a `form_post`) handed over.
#[derive(Debug, Default)]
pub struct Tokens {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

impl Tokens {
    fn from_json(v: &Value) -> Tokens {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Tokens {
            id_token: text("id_token"),
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
            expires_in: v.get("expires_in").and_then(|e| {
                e.as_u64()
                    .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
            }),
        }
    }
}

/// Browser sessions of one gateway.
pub struct Sessions {
    pub config: SessionConfig,
    pub codec: Codec,
    secrets: Vec<Secret>,
    pub secure: bool,
    pub callback: String,
    pub public_url: String,
    pub client_id: String,
    client_secret: Option<Secret>,
    pub scopes: String,
    pub implicit: bool,
    keep_access_token: bool,
    claims: Claims,
    pub(super) gate: RefreshGate,
    pub revocations: Revocations,
    /// `Some` with `store = "redis"`: the cookie then carries only a handle.
    pub(super) redis: Option<RedisStore>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cookie", &self.config.cookie)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

impl Sessions {
    pub fn new(
        config: SessionConfig,
        provider: &Provider,
        public_url: &url::Url,
        claims: Claims,
        keep_access_token: bool,
    ) -> Result<Sessions, String> {
        let origin = public_url.as_str().trim_end_matches('/').to_owned();
        let redis = match (config.store, &config.redis_url) {
            (Store::Redis, Some(url)) => Some(
                RedisStore::new(url, &config.secrets, config.lifetime)
                    .map_err(|e| format!("session.redis_url: {e}"))?,
            ),
            _ => None,
        };
        Ok(Sessions {
            codec: Codec::new(&config.cookie, &config.secrets),
            secrets: config.secrets.clone(),
            secure: public_url.scheme() == "https",
            callback: format!("{origin}/_portcullis/callback"),
            public_url: origin,
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone(),
            scopes: provider.scopes.join(" "),
            implicit: provider.login_flow == LoginFlow::Implicit,
            keep_access_token,
            claims,
            gate: RefreshGate::default(),
            revocations: Revocations::new(config.lifetime),
            redis,
            config,
        })
    }

    fn state_codec(&self, state: &str) -> Codec {
        let id: String = state.chars().take(16).collect();
        Codec::new(&format!("{}_state_{id}", self.config.cookie), &self.secrets)
    }

    /// A `Set-Cookie` value with the session attributes.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        let same_site = match self.config.same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        };
        self.cookie_with(name, value, max_age, same_site)
    }

    /// The login attempt's cookie. The implicit flow comes back as a cross-site POST, which
    /// carries only `SameSite=None` cookies, and browsers keep those only when `Secure`: so
    /// on https the attempt cookie is `None`; on plain http it stays `Lax`, which works when
    /// the provider is on the same site (loopback, one domain).
    fn attempt_cookie(&self, name: &str, value: &str) -> String {
        let same_site = if self.implicit && self.secure {
            cookie::SameSite::None
        } else {
            cookie::SameSite::Lax
        };
        self.cookie_with(name, value, Some(ATTEMPT_TTL), same_site)
    }

    fn cookie_with(
        &self,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
        same_site: cookie::SameSite,
    ) -> String {
        let mut c = cookie::Cookie::build((name.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .same_site(same_site)
            .secure(self.secure || same_site == cookie::SameSite::None);
        if let Some(d) = &self.config.domain {
            c = c.domain(d.clone());
        }
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        c.build().to_string()
    }

    /// A `Set-Cookie` value that deletes `name`.
    pub fn clear_cookie(&self, name: &str) -> String {
        self.set_cookie(name, "", Some(Duration::ZERO))
    }

    /// Starts a login: the provider URL to redirect to, and the attempt's cookies (one, or
    /// chunks for a long return target). `rd` is at most [`MAX_TARGET_BYTES`] long.
    pub fn start(
        &self,
        authorization_endpoint: &url::Url,
        rd: &str,
        now: u64,
    ) -> Result<(String, Vec<String>), LoginError> {
        if rd.len() > MAX_TARGET_BYTES {
            return Err(LoginError::TargetTooLong);
        }
        let attempt = Attempt {
            state: random_token(),
            nonce: random_token(),
            verifier: if self.implicit {
                String::new()
            } else {
                random_token()
            },
            rd: rd.to_owned(),
            exp: now + ATTEMPT_TTL.as_secs(),
            implicit: self.implicit,
        };
        let mut url = authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.callback)
                .append_pair("scope", &self.scopes)
                .append_pair("state", &attempt.state)
                .append_pair("nonce", &attempt.nonce);
            if self.implicit {
                q.append_pair("response_type", "id_token token")
                    .append_pair("response_mode", "form_post");
            } else {
                q.append_pair("response_type", "code")
                    .append_pair("code_challenge", &pkce_challenge(&attempt.verifier))
                    .append_pair("code_challenge_method", "S256");
            }
        }
        let codec = self.state_codec(&attempt.state);
        // A target of MAX_TARGET_BYTES seals into a few chunks, far from the most a codec
        // writes; should that ever change, the login is refused rather than half-sent.
        let sealed = codec
            .seal(&attempt)
            .map_err(|_| LoginError::TargetTooLong)?;
        let cookies = sealed
            .iter()
            .map(|(name, value)| self.attempt_cookie(name, value))
            .collect();
        Ok((url.to_string(), cookies))
    }

    /// Opens the attempt a callback's `state` names; returns it and the cookies to clear
    /// (each of the attempt's cookies the request carried).
    pub fn attempt(
        &self,
        state: &str,
        cookies: &[(&str, &str)],
        now: u64,
    ) -> Result<(Attempt, Vec<String>), LoginError> {
        let codec = self.state_codec(state);
        let attempt: Attempt = codec
            .open(cookies.iter().copied())
            .ok_or(LoginError::UnknownState)?;
        let same = subtle::ConstantTimeEq::ct_eq(attempt.state.as_bytes(), state.as_bytes());
        if !bool::from(same) || attempt.exp <= now {
            return Err(LoginError::UnknownState);
        }
        let clear = cookies
            .iter()
            .filter(|(n, _)| codec.owns(n))
            .map(|(n, _)| self.clear_cookie(n))
            .collect();
        Ok((attempt, clear))
    }

    /// Exchanges the code, verifies the ID token and builds the session.
    pub async fn finish(
        &self,
        http: &reqwest::Client,
        provider: &Arc<Issuer>,
        token_endpoint: &url::Url,
        attempt: &Attempt,
        code: &str,
        now: u64,
    ) -> Result<SessionData, LoginError> {
        if attempt.implicit {
            return Err(LoginError::WrongFlow);
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.callback.as_str()),
            ("code_verifier", attempt.verifier.as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let tokens = match self.token_request(http, token_endpoint, &form).await {
            Ok(t) => t,
            Err(RefreshError::Unreachable) => return Err(LoginError::ProviderUnreachable),
            Err(RefreshError::Refused) => return Err(LoginError::ProviderError),
        };
        let id_token = tokens.id_token.as_deref().ok_or(LoginError::BadIdToken)?;
        let id_claims = self
            .verify_id_token(provider, id_token, &attempt.nonce, now)
            .await?;
        Ok(self.new_session(provider, id_claims, tokens, now).await)
    }

    /// Completes an implicit login (`id_token token` by `form_post`): the ID token with
    /// this attempt's `nonce`, and `at_hash` binding the access token to it.
    pub async fn finish_implicit(
        &self,
        provider: &Arc<Issuer>,
        attempt: &Attempt,
        tokens: Tokens,
        now: u64,
    ) -> Result<SessionData, LoginError> {
        if !attempt.implicit {
            return Err(LoginError::WrongFlow);
        }
        let id_token = tokens.id_token.as_deref().ok_or(LoginError::BadIdToken)?;
        let access_token = tokens
            .access_token
            .as_deref()
            .ok_or(LoginError::BadIdToken)?;
        let id_claims = self
            .verify_id_token(provider, id_token, &attempt.nonce, now)
            .await?;
        if !at_hash_matches(id_token, &id_claims, access_token) {
            tracing::warn!("implicit login refused: at_hash does not match the access token");
            return Err(LoginError::BadIdToken);
        }
        Ok(self.new_session(provider, id_claims, tokens, now).await)
    }

    async fn verify_id_token(
        &self,
        provider: &Arc<Issuer>,
        id_token: &str,
        nonce: &str,
        now: u64,
    ) -> Result<Value, LoginError> {
        jwt::verify_id_token(id_token, provider, &self.client_id, nonce, now)
            .await
            .map_err(|e| {
                tracing::warn!(reason = %e, "ID token refused at the callback");
                LoginError::BadIdToken
            })
    }

    /// A new session (new id: a planted cookie is worthless after a login) from verified
    /// ID token claims and the tokens that came with them.
    async fn new_session(
        &self,
        provider: &Arc<Issuer>,
        id_claims: Value,
        tokens: Tokens,
        now: u64,
    ) -> SessionData {
        let identity = self
            .identity_of(provider, Some(&id_claims), &tokens, now)
            .await;
        let data = SessionData {
            id: random_token(),
            identity: identity
                .unwrap_or_else(|| self.stored(&claims::identity(&id_claims, &self.claims))),
            exp: 0,
            created: now,
            sid: id_claims
                .get("sid")
                .and_then(Value::as_str)
                .map(str::to_owned),
            id_token: None,
            refresh_token: None,
            tokens_at: now,
            tokens_exp: None,
            access_token: None,
        };
        self.with_tokens(data, tokens, now)
    }

    /// `data` holding newly obtained `tokens`: the ID and refresh tokens when new ones came
    /// (providers that do not rotate refresh tokens send none back: the old one stays), the
    /// refresh token only with `refresh = true`, the access token only when it is passed to
    /// the backend; and the session's end.
    fn with_tokens(&self, mut data: SessionData, tokens: Tokens, now: u64) -> SessionData {
        data.id_token = tokens.id_token.or(data.id_token);
        data.refresh_token = match self.config.refresh {
            true => tokens.refresh_token.or(data.refresh_token),
            false => None,
        };
        data.tokens_at = now;
        data.tokens_exp = tokens.expires_in.map(|s| now + s);
        data.access_token = match self.keep_access_token {
            true => tokens.access_token,
            false => None,
        };
        data.exp = self.session_end(&data);
        data
    }

    /// When a session ends: after `lifetime`, or with its access token when it cannot be
    /// renewed (no refresh token, or `refresh = false`).
    fn session_end(&self, data: &SessionData) -> u64 {
        let lifetime_end = data.created + self.config.lifetime.as_secs();
        match (&data.refresh_token, data.tokens_exp) {
            (None, Some(t)) => t.min(lifetime_end),
            _ => lifetime_end,
        }
    }

    /// The identity from verified ID token claims merged with the access token's: Keycloak
    /// puts roles in the access token, so its claims count when it is a JWT the provider
    /// signed (checked, not trusted on sight). `None` when neither token says anything.
    async fn identity_of(
        &self,
        provider: &Arc<Issuer>,
        id_claims: Option<&Value>,
        tokens: &Tokens,
        now: u64,
    ) -> Option<StoredIdentity> {
        let access = match tokens.access_token.as_deref() {
            Some(at) if jwt::looks_like_jwt(at) => {
                jwt::verify_signed_by(at, provider, now).await.ok()
            }
            _ => None,
        };
        let merged = match (id_claims, access) {
            (None, None) => return None,
            (Some(id), None) => id.clone(),
            (None, Some(at)) => at,
            (Some(id), Some(at)) => {
                let mut merged = id.clone();
                if let (Some(m), Some(a)) = (merged.as_object_mut(), at.as_object()) {
                    for (k, v) in a {
                        if matches!(
                            k.as_str(),
                            "realm_access" | "resource_access" | "groups" | "scope" | "scp"
                        ) || !m.contains_key(k)
                        {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
                merged
            }
        };
        Some(self.stored(&claims::identity(&merged, &self.claims)))
    }

    fn stored(&self, id: &Identity) -> StoredIdentity {
        StoredIdentity {
            user: id.user.clone(),
            email: id.email.clone(),
            email_verified: id.email_verified,
            groups: id.groups.clone(),
            roles: id.roles.clone(),
            subject: id.subject.clone(),
            scopes: id.scopes.clone(),
        }
    }

    /// Renews a session's tokens with its refresh token. The identity follows the new
    /// tokens (roles granted or taken away at the provider show at the next refresh); a new
    /// ID token must be about the same subject (Core §12.2).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        provider: &Arc<Issuer>,
        token_endpoint: &url::Url,
        old: &SessionData,
        now: u64,
    ) -> Result<SessionData, RefreshError> {
        let Some(refresh_token) = old.refresh_token.as_deref() else {
            return Err(RefreshError::Refused);
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.client_id.as_str()),
        ];
        let tokens = self.token_request(http, token_endpoint, &form).await?;
        if tokens.access_token.is_none() {
            tracing::warn!("the provider's refresh answer has no access token");
            return Err(RefreshError::Refused);
        }
        let id_claims = match tokens.id_token.as_deref() {
            None => None,
            Some(t) => {
                let claims = jwt::verify_signed_by(t, provider, now).await.map_err(|e| {
                    tracing::warn!(reason = %e, "refreshed ID token refused");
                    RefreshError::Refused
                })?;
                let aud_ok = jwt::audience_accepted(
                    claims.get("aud"),
                    std::slice::from_ref(&self.client_id),
                );
                let sub = claims::identity(&claims, &self.claims).subject;
                if !aud_ok || sub != old.identity.subject {
                    tracing::warn!("refreshed ID token is for another client or subject");
                    return Err(RefreshError::Refused);
                }
                Some(claims)
            }
        };
        let identity = self
            .identity_of(provider, id_claims.as_ref(), &tokens, now)
            .await;
        let data = SessionData {
            identity: identity.unwrap_or_else(|| old.identity.clone()),
            ..old.clone()
        };
        Ok(self.with_tokens(data, tokens, now))
    }

    /// One request to the token endpoint with our client credentials. A 4xx is a refusal;
    /// no answer or a 5xx means the provider is not there right now.
    async fn token_request(
        &self,
        http: &reqwest::Client,
        token_endpoint: &url::Url,
        form: &[(&str, &str)],
    ) -> Result<Tokens, RefreshError> {
        let mut req = http.post(token_endpoint.clone()).form(form);
        if let Some(secret) = &self.client_secret {
            req = req.basic_auth(&self.client_id, Some(secret.expose()));
        }
        let grant = form.first().map_or("-", |(_, g)| *g);
        let resp = req.send().await.map_err(|e| {
            tracing::warn!(grant, error = %error_chain(&e), "token endpoint unreachable");
            RefreshError::Unreachable
        })?;
        let status = resp.status();
        if status.is_server_error() {
            tracing::warn!(grant, %status, "token endpoint failed");
            return Err(RefreshError::Unreachable);
        }
        if !status.is_success() {
            // The body is the provider's RFC 6749 error: its `error` code is safe to log.
            let body: Value = resp.json().await.unwrap_or_default();
            let error = body.get("error").and_then(Value::as_str).unwrap_or("-");
            tracing::warn!(grant, %status, error, "the token endpoint refused");
            return Err(RefreshError::Refused);
        }
        let body: Value = resp.json().await.map_err(|_| RefreshError::Refused)?;
        Ok(Tokens::from_json(&body))
    }

    /// The `Set-Cookie` values that carry `value` until `exp` (clearing chunks it does not
    /// use): the session itself, or its handle when it lives in Redis.
    /// `Set-Cookie` values that carry `value` until `exp`, and clear any other session cookie
    /// (an old chunk) the request carried. `cookies` are the request's.
    pub(super) fn cookies_for<T: Serialize>(
        &self,
        value: &T,
        exp: u64,
        now: u64,
        cookies: &[(&str, &str)],
    ) -> Vec<String> {
        let max_age = Duration::from_secs(exp.saturating_sub(now));
        let sealed = match self.codec.seal(value) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the session does not fit in cookies");
                return Vec::new();
            }
        };
        let used: Vec<&str> = sealed.iter().map(|(n, _)| n.as_str()).collect();
        let mut out: Vec<String> = sealed
            .iter()
            .map(|(n, v)| self.set_cookie(n, v, Some(max_age)))
            .collect();
        let mut stale: Vec<&str> = self
            .carried(cookies)
            .filter(|n| !used.contains(n))
            .collect();
        stale.sort_unstable();
        stale.dedup();
        out.extend(stale.into_iter().map(|n| self.clear_cookie(n)));
        out
    }

    /// The names of the session cookies (the cookie and its chunks) that `cookies` carry.
    fn carried<'c>(&'c self, cookies: &'c [(&'c str, &'c str)]) -> impl Iterator<Item = &'c str> {
        cookies
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| self.codec.owns(n))
    }

    /// `Set-Cookie` values that end the session: one for each session cookie the request
    /// carried (`cookies`), not one for every name a session could use.
    pub fn clear(&self, cookies: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<&str> = self.carried(cookies).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| self.clear_cookie(n)).collect()
    }

    /// The caller a session stands for (`None` when it was ended).
    pub fn verified(&self, data: &SessionData) -> Option<Arc<Verified>> {
        if self.revocations.is_ended(data) {
            return None;
        }
        let s = &data.identity;
        let identity = Identity {
            user: s.user.clone(),
            email: s.email.clone(),
            email_verified: s.email_verified,
            groups: s.groups.clone(),
            roles: s.roles.clone(),
            subject: s.subject.clone(),
            client: None,
            scopes: s.scopes.clone(),
            expires_at: Some(data.exp),
            access_token: data.access_token.clone().map(Secret::new),
        };
        Some(Arc::new(Verified {
            identity,
            expires_at: data.exp,
            issuer: String::new(),
        }))
    }
}

/// Whether the ID token's `at_hash` is the left half of the access token's hash under the
/// ID token's algorithm (OpenID Connect Core §3.2.2.9). Required in the implicit flow.
pub fn at_hash_matches(id_token: &str, id_claims: &Value, access_token: &str) -> bool {
    use aws_lc_rs::digest;
    use jsonwebtoken::Algorithm::*;
    let Some(claimed) = id_claims.get("at_hash").and_then(Value::as_str) else {
        return false;
    };
    let Ok(header) = jsonwebtoken::decode_header(id_token) else {
        return false;
    };
    let algorithm = match header.alg {
        RS256 | ES256 | PS256 => &digest::SHA256,
        RS384 | ES384 | PS384 => &digest::SHA384,
        RS512 | PS512 => &digest::SHA512,
        // EdDSA (Ed25519) hashes with SHA-512 as well.
        EdDSA => &digest::SHA512,
        // Symmetric algorithms are never accepted for ID tokens; anything newer is refused.
        _ => return false,
    };
    let d = digest::digest(algorithm, access_token.as_bytes());
    let half = &d.as_ref()[..d.as_ref().len() / 2];
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(half);
    bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        claimed.as_bytes(),
    ))
}

/// Cookie pairs from a request's `Cookie` headers.
pub fn request_cookies(req: &pingora::http::RequestHeader) -> Vec<(&str, &str)> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(tokens_at: u64, tokens_exp: Option<u64>, refresh: bool) -> SessionData {
        SessionData {
            id: "s".into(),
            identity: StoredIdentity {
                user: None,
                email: None,
                email_verified: true,
                groups: vec![],
                roles: vec![],
                subject: None,
                scopes: vec![],
            },
            exp: u64::MAX,
            created: tokens_at,
            sid: None,
            id_token: None,
            refresh_token: refresh.then(|| "r".to_owned()),
            tokens_at,
            tokens_exp,
            access_token: None,
        }
    }

    #[test]
    fn refresh_is_due_with_a_fifth_or_30_seconds_left_not_at_every_request() {
        // Keycloak's 5 minutes: due in the last 60 s.
        let s = session(1000, Some(1300), true);
        assert!(!s.refresh_due(1000));
        assert!(!s.refresh_due(1239));
        assert!(s.refresh_due(1241));
        assert!(s.refresh_due(1400), "an expired token is due");
        // 2 minutes: the last 30 s.
        let s = session(1000, Some(1120), true);
        assert!(!s.refresh_due(1089));
        assert!(s.refresh_due(1091));
        // 6 s tokens are not renewed at every request: only in their second half.
        let s = session(1000, Some(1006), true);
        assert!(!s.refresh_due(1001));
        assert!(s.refresh_due(1004));
    }

    #[test]
    fn sessions_without_a_refresh_token_are_never_due() {
        assert!(!session(1000, Some(1006), false).refresh_due(2000));
        assert!(!session(1000, None, true).refresh_due(2000));
    }

    #[test]
    fn at_hash_binds_the_access_token_to_the_id_token() {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let key = include_bytes!("../../tests/support/keys/rsa.pem");
        let access = "an-access-token";
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
        let at_hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16]);
        let claims = serde_json::json!({ "at_hash": at_hash });
        let id = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(key).unwrap(),
        )
        .unwrap();
        assert!(at_hash_matches(&id, &claims, access));
        assert!(!at_hash_matches(&id, &claims, "another-token"));
        assert!(
            !at_hash_matches(&id, &serde_json::json!({}), access),
            "at_hash is required"
        );
    }

    #[test]
    fn pkce_challenge_is_unpadded_base64url_of_sha256() {
        // Cross-checked with Python: urlsafe_b64encode(sha256(v).digest()).rstrip(b"=").
        let c = pkce_challenge("dBjftJeZ4CVP-mJ0kqrBTlLPmXSoThOpS7tB0KPDj4k");
        assert_eq!(c, "gE0vg2hzHJizjOr7HZTtIY2sEFb-TWHkGqk9RMiwqA4");
        assert!(!c.contains('=') && !c.contains('+') && !c.contains('/'));
    }
}
