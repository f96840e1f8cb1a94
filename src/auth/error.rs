//! Why a credential was not accepted: one variant per condition, mapped to HTTP in
//! `proxy::respond`.

use thiserror::Error;

/// A bearer token that is not accepted (401 `invalid_token`). The messages are safe to send
/// to the client: they never contain the token or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("the token's issuer is not accepted")]
    UnknownIssuer,
    #[error("the token's signing key is unknown")]
    UnknownKeyId,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token has no expiry")]
    MissingExpiry,
    #[error("the token's audience is not accepted")]
    AudienceMismatch,
    #[error("the token is not active")]
    Inactive,
    #[error("opaque tokens are not accepted")]
    OpaqueNotAccepted,
    #[error("the ID token's nonce is not this login's")]
    NonceMismatch,
}

impl TokenError {
    /// The label of `portcullis_auth_failures_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::UnknownKeyId => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::MissingExpiry => "missing_expiry",
            TokenError::AudienceMismatch => "audience_mismatch",
            TokenError::Inactive => "inactive",
            TokenError::OpaqueNotAccepted => "opaque_not_accepted",
            TokenError::NonceMismatch => "nonce_mismatch",
        }
    }
}

/// Why a request could not be decided now: something the gateway depends on is out of reach.
/// Always a 503 `temporarily_unavailable`; the client may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Unavailable {
    #[error("the token issuer's keys are not loaded yet")]
    KeysNotLoaded,
    #[error("the token's signing key is not loaded and its issuer cannot be reached to fetch it")]
    KeyUnreachable,
    #[error("the introspection endpoint could not be reached")]
    Introspection,
    /// A login cannot start (discovery not loaded), or a session's tokens expired while the
    /// provider cannot renew them.
    #[error("the identity provider cannot be reached right now: try again in a moment")]
    Provider,
    /// The token endpoint could not be reached to finish a login.
    #[error(
        "the identity provider could not be reached to finish the login: try again in a moment"
    )]
    ProviderAtCallback,
    /// Sessions live in Redis, and it cannot be reached.
    #[error("sessions cannot be read right now: try again in a moment")]
    SessionStore,
}
