//! Who the caller is, once authenticated: what the backend receives in headers and what
//! `/_portcullis/userinfo` answers.

use serde::Serialize;

use crate::secret::Secret;

/// An authenticated caller, person or service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Identity {
    pub user: Option<String>,
    pub email: Option<String>,
    /// False only when the token says `email_verified: false`.
    #[serde(skip)]
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub subject: Option<String>,
    pub client: Option<String>,
    pub scopes: Vec<String>,
    /// Seconds since the epoch at which the credential ends.
    pub expires_at: Option<u64>,
    #[serde(skip)]
    pub access_token: Option<Secret>,
}
