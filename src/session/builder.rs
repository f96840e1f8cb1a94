//! Sessions made from tokens: a new one when a login completes, a renewed one when a
//! refresh brings new tokens. The identity comes from verified tokens only.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use super::model::{SessionData, StoredIdentity};
use super::token_endpoint::{TokenError, Tokens};
use crate::auth::claims;
use crate::auth::issuer::Issuer;
use crate::auth::jwt;
use crate::config::Claims;

/// 32 random bytes, base64url: session ids, `state`, `nonce`, PKCE verifiers.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What a session keeps of its tokens, and how long it lives.
#[derive(Debug)]
pub struct SessionBuilder {
    pub claims: Claims,
    /// The gateway's client id: the audience of its ID tokens.
    pub client_id: String,
    /// `session.refresh`: keep the refresh token and renew.
    pub refresh: bool,
    /// `session.lifetime`.
    pub lifetime: Duration,
    /// Keep the access token (`[headers] access_token` passes it to the backend).
    pub keep_access_token: bool,
}

impl SessionBuilder {
    /// A new session (new id: a planted cookie is worthless after a login) from verified
    /// ID token claims and the tokens that came with them.
    pub async fn new_session(
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
            identity: identity.unwrap_or_else(|| {
                StoredIdentity::from(&claims::identity(&id_claims, &self.claims))
            }),
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

    /// `old` with the tokens a refresh brought. The identity follows the new tokens (roles
    /// granted or taken away at the provider show at the next refresh); a new ID token must
    /// be for this client and about the same subject (Core §12.2).
    pub async fn renewed(
        &self,
        provider: &Arc<Issuer>,
        old: &SessionData,
        tokens: Tokens,
        now: u64,
    ) -> Result<SessionData, TokenError> {
        if tokens.access_token.is_none() {
            tracing::warn!("the provider's refresh answer has no access token");
            return Err(TokenError::Refused);
        }
        let id_claims = match tokens.id_token.as_deref() {
            None => None,
            Some(t) => {
                let claims = jwt::verify_signed_by(t, provider, now).await.map_err(|e| {
                    tracing::warn!(reason = %e, "refreshed ID token refused");
                    TokenError::Refused
                })?;
                let aud_ok = jwt::audience_accepted(
                    claims.get("aud"),
                    std::slice::from_ref(&self.client_id),
                );
                let sub = claims::identity(&claims, &self.claims).subject;
                if !aud_ok || sub != old.identity.subject {
                    tracing::warn!("refreshed ID token is for another client or subject");
                    return Err(TokenError::Refused);
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

    /// `data` holding newly obtained `tokens`: the ID and refresh tokens when new ones came
    /// (providers that do not rotate refresh tokens send none back: the old one stays), the
    /// refresh token only with `refresh = true`, the access token only when it is passed to
    /// the backend; and the session's end.
    fn with_tokens(&self, mut data: SessionData, tokens: Tokens, now: u64) -> SessionData {
        data.id_token = tokens.id_token.or(data.id_token);
        data.refresh_token = match self.refresh {
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
        let lifetime_end = data.created + self.lifetime.as_secs();
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
        Some(StoredIdentity::from(&claims::identity(
            &merged,
            &self.claims,
        )))
    }
}
