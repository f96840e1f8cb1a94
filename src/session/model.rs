//! What a session is: the data a logged-in browser's cookie (or the store) keeps, and the
//! caller it stands for.

use serde::{Deserialize, Serialize};

use crate::auth::verifier::Verified;
use crate::identity::Identity;
use crate::secret::Secret;

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

impl From<&Identity> for StoredIdentity {
    fn from(id: &Identity) -> StoredIdentity {
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
}

impl SessionData {
    /// The caller this session stands for (whether it was ended is the revocations' to say).
    pub fn verified(&self) -> Verified {
        let s = &self.identity;
        Verified {
            identity: Identity {
                user: s.user.clone(),
                email: s.email.clone(),
                email_verified: s.email_verified,
                groups: s.groups.clone(),
                roles: s.roles.clone(),
                subject: s.subject.clone(),
                client: None,
                scopes: s.scopes.clone(),
                expires_at: Some(self.exp),
                access_token: self.access_token.clone().map(Secret::new),
            },
            expires_at: self.exp,
            issuer: String::new(),
        }
    }
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
}
