//! Ending sessions before their cookies expire: OpenID Connect Back-Channel Logout 1.0,
//! and the gateway's own logout.
//!
//! A cookie session lives in the browser, so ending it elsewhere means remembering, on
//! this instance, which sessions are over: by the provider's `sid`, by `sub` (every
//! session of that user begun before the logout), or by the gateway's own session id. The
//! marks are kept for as long as a session can live, then forgotten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::model::SessionData;
use crate::auth::error::TokenError;
use crate::auth::issuer::Issuer;
use crate::auth::jwt;

/// The event a logout token must carry.
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How many marks are kept at most (oldest go first).
const CAPACITY: u64 = 200_000;
/// How old a logout token without `exp` may be.
const MAX_TOKEN_AGE: u64 = 300;

/// What a verified logout token ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// One session at the provider (and every gateway session begun in it).
    Sid(String),
    /// Every session of a user begun before the logout.
    Sub(String),
}

/// Sessions ended on this instance: marks by the gateway's session id, the provider's
/// `sid` and the user's `sub`, each → when it was made (seconds since the epoch). Looked
/// up by `&str`, so a request allocates nothing to be checked.
pub struct Revocations {
    ids: moka::sync::Cache<String, u64>,
    sids: moka::sync::Cache<String, u64>,
    subs: moka::sync::Cache<String, u64>,
    /// `jti`s of the logout tokens already used.
    seen: moka::sync::Cache<String, ()>,
    /// Whether any mark was ever made: until then requests skip the lookups.
    any: AtomicBool,
}

impl Revocations {
    /// Marks live as long as the longest session (`lifetime`).
    pub fn new(lifetime: Duration) -> Revocations {
        let marks = || {
            moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(lifetime.max(Duration::from_secs(60)))
                .build()
        };
        Revocations {
            ids: marks(),
            sids: marks(),
            subs: marks(),
            seen: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(Duration::from_secs(MAX_TOKEN_AGE * 2))
                .build(),
            any: AtomicBool::new(false),
        }
    }

    pub fn end(&self, ended: &Ended, now: u64) {
        match ended {
            Ended::Sid(s) => self.sids.insert(s.clone(), now),
            Ended::Sub(s) => self.subs.insert(s.clone(), now),
        }
        self.any.store(true, Ordering::Release);
    }

    /// Ends one gateway session (a logout here: a copy of the cookie is worthless after it).
    pub fn end_session(&self, id: &str, now: u64) {
        self.ids.insert(id.to_owned(), now);
        self.any.store(true, Ordering::Release);
    }

    /// Whether `data` belongs to a session that has been ended.
    pub fn is_ended(&self, data: &SessionData) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.ids.contains_key(data.id.as_str())
            || data
                .sid
                .as_deref()
                .is_some_and(|sid| self.sids.contains_key(sid))
            || data
                .identity
                .subject
                .as_deref()
                .and_then(|sub| self.subs.get(sub))
                .is_some_and(|at| data.created <= at)
    }

    /// Verifies a logout token (Back-Channel Logout 1.0 §2.6) and says what it ends: signed
    /// by the provider with a key from its JWKS, `iss` exact, `aud` our client, recent,
    /// the back-channel event, `sid` or `sub`, no `nonce`, and a `jti` not seen before.
    pub async fn verify_logout_token(
        &self,
        token: &str,
        provider: &Issuer,
        client_id: &str,
        now: u64,
    ) -> Result<Ended, LogoutTokenError> {
        let claims = match jwt::verify_signed_by(token, provider, now).await {
            Ok(c) => c,
            // Tokens of the earlier drafts have no `exp`: then `iat` must be recent.
            Err(TokenError::MissingExpiry) => {
                let c = jwt::verify_signed_by_without_expiry(token, provider, now)
                    .await
                    .map_err(LogoutTokenError::Token)?;
                let iat = c.get("iat").and_then(Value::as_u64).unwrap_or(0);
                if iat + MAX_TOKEN_AGE < now {
                    return Err(LogoutTokenError::Token(TokenError::Expired));
                }
                c
            }
            Err(e) => return Err(LogoutTokenError::Token(e)),
        };
        if !jwt::audience_accepted(claims.get("aud"), &[client_id.to_owned()]) {
            return Err(LogoutTokenError::Token(TokenError::AudienceMismatch));
        }
        let event = claims
            .get("events")
            .and_then(Value::as_object)
            .is_some_and(|e| e.contains_key(BACKCHANNEL_EVENT));
        if !event {
            return Err(LogoutTokenError::NotALogoutToken(
                "no back-channel logout event",
            ));
        }
        if claims.get("nonce").is_some() {
            return Err(LogoutTokenError::NotALogoutToken(
                "a logout token has no nonce",
            ));
        }
        let text = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let ended = match (text("sid"), text("sub")) {
            (Some(sid), _) => Ended::Sid(sid.to_owned()),
            (None, Some(sub)) => Ended::Sub(sub.to_owned()),
            (None, None) => return Err(LogoutTokenError::NotALogoutToken("neither sid nor sub")),
        };
        let Some(jti) = text("jti") else {
            return Err(LogoutTokenError::NotALogoutToken("no jti"));
        };
        let jti = format!("{}|{jti}", provider.settings.issuer);
        if self.seen.contains_key(&jti) {
            return Err(LogoutTokenError::Replayed);
        }
        self.seen.insert(jti, ());
        Ok(ended)
    }
}

/// Why a logout token was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("the logout token is not valid: {0}")]
    Token(TokenError),
    #[error("the token is not a logout token: {0}")]
    NotALogoutToken(&'static str),
    #[error("the logout token has been used already")]
    Replayed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, sid: Option<&str>, sub: &str, created: u64) -> SessionData {
        serde_json::from_value(serde_json::json!({
            "id": id, "identity": {"user": sub, "email": null, "email_verified": true,
            "groups": [], "roles": [], "subject": sub, "scopes": []},
            "exp": 99_999, "created": created, "sid": sid, "id_token": null,
            "tokens_at": created, "tokens_exp": null
        }))
        .unwrap()
    }

    #[test]
    fn a_sid_ends_the_sessions_of_that_provider_session_only() {
        let r = Revocations::new(Duration::from_secs(3600));
        let a = session("a", Some("sid-1"), "alice", 100);
        let b = session("b", Some("sid-2"), "alice", 100);
        assert!(!r.is_ended(&a));
        r.end(&Ended::Sid("sid-1".into()), 200);
        assert!(r.is_ended(&a));
        assert!(!r.is_ended(&b), "alice's other session goes on");
    }

    #[test]
    fn a_sub_ends_the_users_sessions_begun_before_it_not_after() {
        let r = Revocations::new(Duration::from_secs(3600));
        r.end(&Ended::Sub("alice".into()), 200);
        assert!(r.is_ended(&session("a", None, "alice", 150)));
        assert!(
            !r.is_ended(&session("n", None, "alice", 250)),
            "a later login counts"
        );
        assert!(!r.is_ended(&session("b", None, "bob", 150)));
    }

    #[test]
    fn a_logged_out_session_id_is_worthless_afterwards() {
        let r = Revocations::new(Duration::from_secs(3600));
        let a = session("a", None, "alice", 100);
        r.end_session("a", 200);
        assert!(r.is_ended(&a));
        assert!(!r.is_ended(&session("other", None, "alice", 100)));
    }
}
