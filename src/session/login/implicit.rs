//! The implicit flow's callback (`id_token token` by `form_post`): the ID token with the
//! attempt's `nonce`, and `at_hash` binding the access token to it.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use super::{Attempt, Login, LoginError};
use crate::auth::issuer::Issuer;
use crate::session::model::SessionData;
use crate::session::token_endpoint::Tokens;

impl Login {
    /// Completes an implicit login with the tokens the provider posted.
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
        Ok(self
            .builder
            .new_session(provider, id_claims, tokens, now)
            .await)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_binds_the_access_token_to_the_id_token() {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let key = include_bytes!("../../../tests/support/keys/rsa.pem");
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
}
