//! The provider's token endpoint, as the gateway's own client: the code exchange of a
//! login and the refresh of a session's tokens.

use serde_json::Value;

use crate::auth::issuer::error_chain;
use crate::secret::Secret;

/// Why the token endpoint handed over no tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// The provider refused the grant (a 4xx): for a refresh token, the session is over.
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

/// The gateway's client at the token endpoint.
#[derive(Debug)]
pub struct TokenClient {
    pub client_id: String,
    client_secret: Option<Secret>,
}

impl TokenClient {
    pub fn new(client_id: String, client_secret: Option<Secret>) -> TokenClient {
        TokenClient {
            client_id,
            client_secret,
        }
    }

    /// One request to the token endpoint with our client credentials (`form` starts with
    /// its `grant_type`). A 4xx is a refusal; no answer or a 5xx means the provider is not
    /// there right now.
    pub async fn request(
        &self,
        http: &reqwest::Client,
        token_endpoint: &url::Url,
        form: &[(&str, &str)],
    ) -> Result<Tokens, TokenError> {
        let mut req = http.post(token_endpoint.clone()).form(form);
        if let Some(secret) = &self.client_secret {
            req = req.basic_auth(&self.client_id, Some(secret.expose()));
        }
        let grant = form.first().map_or("-", |(_, g)| *g);
        let resp = req.send().await.map_err(|e| {
            tracing::warn!(grant, error = %error_chain(&e), "token endpoint unreachable");
            TokenError::Unreachable
        })?;
        let status = resp.status();
        if status.is_server_error() {
            tracing::warn!(grant, %status, "token endpoint failed");
            return Err(TokenError::Unreachable);
        }
        if !status.is_success() {
            // The body is the provider's RFC 6749 error: its `error` code is safe to log.
            let body: Value = resp.json().await.unwrap_or_default();
            let error = body.get("error").and_then(Value::as_str).unwrap_or("-");
            tracing::warn!(grant, %status, error, "the token endpoint refused");
            return Err(TokenError::Refused);
        }
        let body: Value = resp.json().await.map_err(|_| TokenError::Refused)?;
        Ok(Tokens::from_json(&body))
    }
}
