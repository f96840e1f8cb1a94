//! Browser login — the authorization code flow with PKCE (S256) in `login/code.rs`, or the
//! implicit flow with `form_post` in `login/implicit.rs` — from the redirect to the
//! provider to the verified ID token.
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

use super::builder::{random_token, SessionBuilder};
use super::codec::Codec;
use super::cookies::CookieJar;
use super::target::MAX_TARGET_BYTES;
use super::token_endpoint::TokenClient;
use crate::auth::issuer::Issuer;
use crate::auth::jwt;
use crate::secret::Secret;

mod code;
mod implicit;

pub use implicit::at_hash_matches;

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

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// The gateway as the provider's client for browser logins.
#[derive(Debug)]
pub struct Login {
    /// The session cookie's name: attempt cookies are `<cookie>_state_<id>`.
    cookie: String,
    secrets: Vec<Secret>,
    /// The redirect URI: public URL + `/_portcullis/callback`.
    pub callback: String,
    /// The scopes asked for, space-separated.
    pub scopes: String,
    /// `login_flow = "implicit"`.
    pub implicit: bool,
    /// The token endpoint's client (code exchange, refresh).
    pub tokens: TokenClient,
    /// Makes sessions from the tokens.
    pub builder: SessionBuilder,
}

impl Login {
    pub fn new(
        cookie: &str,
        secrets: &[Secret],
        callback: String,
        scopes: String,
        implicit: bool,
        tokens: TokenClient,
        builder: SessionBuilder,
    ) -> Login {
        Login {
            cookie: cookie.to_owned(),
            secrets: secrets.to_vec(),
            callback,
            scopes,
            implicit,
            tokens,
            builder,
        }
    }

    pub fn client_id(&self) -> &str {
        &self.tokens.client_id
    }

    fn state_codec(&self, state: &str) -> Codec {
        let id: String = state.chars().take(16).collect();
        Codec::new(&format!("{}_state_{id}", self.cookie), &self.secrets)
    }

    /// The login attempt's cookie. The implicit flow comes back as a cross-site POST, which
    /// carries only `SameSite=None` cookies, and browsers keep those only when `Secure`: so
    /// on https the attempt cookie is `None`; on plain http it stays `Lax`, which works when
    /// the provider is on the same site (loopback, one domain).
    fn attempt_cookie(&self, jar: &CookieJar, name: &str, value: &str) -> String {
        let same_site = if self.implicit && jar.secure {
            cookie::SameSite::None
        } else {
            cookie::SameSite::Lax
        };
        jar.cookie_with(name, value, Some(ATTEMPT_TTL), same_site)
    }

    /// Starts a login: the provider URL to redirect to, and the attempt's cookies (one, or
    /// chunks for a long return target). `rd` is at most [`MAX_TARGET_BYTES`] long.
    pub fn start(
        &self,
        jar: &CookieJar,
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
            q.append_pair("client_id", self.client_id())
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
            .map(|(name, value)| self.attempt_cookie(jar, name, value))
            .collect();
        Ok((url.to_string(), cookies))
    }

    /// Opens the attempt a callback's `state` names; returns it and the cookies to clear
    /// (each of the attempt's cookies the request carried).
    pub fn attempt(
        &self,
        jar: &CookieJar,
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
            .map(|(n, _)| jar.clear_cookie(n))
            .collect();
        Ok((attempt, clear))
    }

    /// The ID token of this attempt (`nonce`), for this client, signed by the provider.
    async fn verify_id_token(
        &self,
        provider: &Arc<Issuer>,
        id_token: &str,
        nonce: &str,
        now: u64,
    ) -> Result<Value, LoginError> {
        jwt::verify_id_token(id_token, provider, self.client_id(), nonce, now)
            .await
            .map_err(|e| {
                tracing::warn!(reason = %e, "ID token refused at the callback");
                LoginError::BadIdToken
            })
    }
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
