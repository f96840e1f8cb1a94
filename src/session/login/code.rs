//! The authorization code flow's callback: the code exchanged at the token endpoint (with
//! the attempt's PKCE verifier), the ID token verified, the session made.

use std::sync::Arc;

use super::{Attempt, Login, LoginError};
use crate::auth::issuer::Issuer;
use crate::session::model::SessionData;
use crate::session::token_endpoint::TokenError;

impl Login {
    /// Exchanges the code, verifies the ID token and builds the session.
    pub async fn finish_code(
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
            ("client_id", self.client_id()),
        ];
        let tokens = match self.tokens.request(http, token_endpoint, &form).await {
            Ok(t) => t,
            Err(TokenError::Unreachable) => return Err(LoginError::ProviderUnreachable),
            Err(TokenError::Refused) => return Err(LoginError::ProviderError),
        };
        let id_token = tokens.id_token.as_deref().ok_or(LoginError::BadIdToken)?;
        let id_claims = self
            .verify_id_token(provider, id_token, &attempt.nonce, now)
            .await?;
        Ok(self
            .builder
            .new_session(provider, id_claims, tokens, now)
            .await)
    }
}
