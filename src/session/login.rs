//! Browser login with the authorization code flow and PKCE (S256), and the session it
//! leaves behind.
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
use crate::auth::claims;
use crate::auth::issuer::{error_chain, Issuer};
use crate::auth::jwt;
use crate::auth::verifier::Verified;
use crate::config::{Claims, Provider, SameSite, Session as SessionConfig};
use crate::identity::Identity;
use crate::secret::Secret;

/// How long a login attempt may take, from the redirect to the callback.
pub const ATTEMPT_TTL: Duration = Duration::from_secs(600);

/// What one login attempt must remember until its callback.
#[derive(Debug, Serialize, Deserialize)]
pub struct Attempt {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub rd: String,
    pub exp: u64,
}

/// What a session cookie carries: only what requests need, so large tokens still fit.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionData {
    pub identity: StoredIdentity,
    /// Seconds since the epoch: the session ends then.
    pub exp: u64,
    pub sid: Option<String>,
    /// For RP-initiated logout (`id_token_hint`).
    pub id_token: Option<String>,
}

/// [`Identity`] as stored (the access token is not kept).
#[derive(Debug, Serialize, Deserialize)]
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
    #[error("the provider could not be reached")]
    ProviderUnreachable,
    #[error("the provider's ID token is not valid")]
    BadIdToken,
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
    claims: Claims,
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
    ) -> Sessions {
        let origin = public_url.as_str().trim_end_matches('/').to_owned();
        Sessions {
            codec: Codec::new(&config.cookie, &config.secrets),
            secrets: config.secrets.clone(),
            secure: public_url.scheme() == "https",
            callback: format!("{origin}/_portcullis/callback"),
            public_url: origin,
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone(),
            scopes: provider.scopes.join(" "),
            claims,
            config,
        }
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

    /// Starts a login: the provider URL to redirect to, and the attempt's cookie.
    pub fn start(&self, authorization_endpoint: &url::Url, rd: &str, now: u64) -> (String, String) {
        let attempt = Attempt {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            rd: rd.to_owned(),
            exp: now + ATTEMPT_TTL.as_secs(),
        };
        let mut url = authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.callback)
            .append_pair("scope", &self.scopes)
            .append_pair("state", &attempt.state)
            .append_pair("nonce", &attempt.nonce)
            .append_pair("code_challenge", &pkce_challenge(&attempt.verifier))
            .append_pair("code_challenge_method", "S256");
        let codec = self.state_codec(&attempt.state);
        let sealed = codec
            .seal(&attempt)
            .expect("a login attempt fits one cookie");
        let (name, value) = &sealed[0];
        (
            url.to_string(),
            self.set_cookie(name, value, Some(ATTEMPT_TTL)),
        )
    }

    /// Opens the attempt a callback's `state` names; returns it and the cookie to clear.
    pub fn attempt<'a>(
        &self,
        state: &str,
        cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: u64,
    ) -> Result<(Attempt, String), LoginError> {
        let codec = self.state_codec(state);
        let attempt: Attempt = codec.open(cookies).ok_or(LoginError::UnknownState)?;
        let same = subtle::ConstantTimeEq::ct_eq(attempt.state.as_bytes(), state.as_bytes());
        if !bool::from(same) || attempt.exp <= now {
            return Err(LoginError::UnknownState);
        }
        let name = codec.all_names().next().expect("the codec has a name");
        Ok((attempt, self.clear_cookie(&name)))
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
        let mut req = http.post(token_endpoint.clone()).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.callback.as_str()),
            ("code_verifier", attempt.verifier.as_str()),
            ("client_id", self.client_id.as_str()),
        ]);
        if let Some(secret) = &self.client_secret {
            req = req.basic_auth(&self.client_id, Some(secret.expose()));
        }
        let resp = req.send().await.map_err(|e| {
            tracing::warn!(error = %error_chain(&e), "token endpoint unreachable at the callback");
            LoginError::ProviderUnreachable
        })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "the token endpoint refused the code");
            return Err(LoginError::ProviderError);
        }
        let tokens: Value = resp.json().await.map_err(|_| LoginError::ProviderError)?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or(LoginError::BadIdToken)?;
        let id_claims =
            jwt::verify_id_token(id_token, provider, &self.client_id, &attempt.nonce, now)
                .await
                .map_err(|e| {
                    tracing::warn!(reason = %e, "ID token refused at the callback");
                    LoginError::BadIdToken
                })?;
        // Keycloak puts roles in the access token; merge its claims when it is a JWT the
        // provider signed (checked, not trusted on sight).
        let mut merged = id_claims.clone();
        if let Some(at) = tokens.get("access_token").and_then(Value::as_str) {
            if let Ok(at_claims) = jwt::verify_signed_by(at, provider, now).await {
                if let (Some(m), Some(a)) = (merged.as_object_mut(), at_claims.as_object()) {
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
            }
        }
        let id = claims::identity(&merged, &self.claims);
        let token_exp = tokens
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(|s| now + s);
        let lifetime_end = now + self.config.lifetime.as_secs();
        // Without refresh (not in this build) the session ends with the access token.
        let exp = token_exp.map_or(lifetime_end, |t| t.min(lifetime_end));
        Ok(SessionData {
            identity: StoredIdentity {
                user: id.user,
                email: id.email,
                email_verified: id.email_verified,
                groups: id.groups,
                roles: id.roles,
                subject: id.subject,
                scopes: id.scopes,
            },
            exp,
            sid: id_claims
                .get("sid")
                .and_then(Value::as_str)
                .map(str::to_owned),
            id_token: Some(id_token.to_owned()),
        })
    }

    /// The `Set-Cookie` values that store `data` (clearing chunks it does not use).
    pub fn store(&self, data: &SessionData, now: u64) -> Vec<String> {
        let max_age = Duration::from_secs(data.exp.saturating_sub(now));
        let sealed = match self.codec.seal(data) {
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
        out.extend(
            self.codec
                .all_names()
                .filter(|n| !used.contains(&n.as_str()))
                .map(|n| self.clear_cookie(&n)),
        );
        out
    }

    /// `Set-Cookie` values that end the session.
    pub fn clear(&self) -> Vec<String> {
        self.codec
            .all_names()
            .map(|n| self.clear_cookie(&n))
            .collect()
    }

    /// The session a request carries, if it opens and has not ended.
    pub fn load<'a>(
        &self,
        cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: u64,
    ) -> Option<(SessionData, Arc<Verified>)> {
        let data: SessionData = self.codec.open(cookies)?;
        if data.exp <= now {
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
            access_token: None,
        };
        let v = Arc::new(Verified {
            identity,
            expires_at: data.exp,
            issuer: String::new(),
        });
        Some((data, v))
    }
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

    #[test]
    fn pkce_challenge_is_unpadded_base64url_of_sha256() {
        // Cross-checked with Python: urlsafe_b64encode(sha256(v).digest()).rstrip(b"=").
        let c = pkce_challenge("dBjftJeZ4CVP-mJ0kqrBTlLPmXSoThOpS7tB0KPDj4k");
        assert_eq!(c, "gE0vg2hzHJizjOr7HZTtIY2sEFb-TWHkGqk9RMiwqA4");
        assert!(!c.contains('=') && !c.contains('+') && !c.contains('/'));
    }
}
