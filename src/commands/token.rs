//! `portcullis token`: the client-credentials grant, for a service token to try a route
//! with.

use serde_json::Value;

use super::answer::{read_body, sanitize};
use crate::auth::issuer::error_chain;
use crate::auth::verifier::http_client;

/// The client-credentials grant at `issuer`'s token endpoint; returns the access token.
pub async fn client_credentials(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
) -> Result<String, String> {
    let http = http_client();
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    let doc: Value = serde_json::from_str(&read_body(resp).await)
        .map_err(|e| format!("GET {url}: not a discovery document: {e}"))?;
    let endpoint = doc
        .get("token_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{url} names no token_endpoint"))?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let resp = http
        .post(endpoint)
        .basic_auth(client_id, Some(client_secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("POST {endpoint}: {}", error_chain(&e)))?;
    let status = resp.status();
    let body: Value = serde_json::from_str(&read_body(resp).await).unwrap_or(Value::Null);
    if !status.is_success() {
        let err = body
            .get("error")
            .and_then(Value::as_str)
            .map_or("no error code".to_owned(), sanitize);
        let desc = body
            .get("error_description")
            .and_then(Value::as_str)
            .map_or(String::new(), sanitize);
        return Err(format!(
            "the token endpoint answered HTTP {status}: {err} {desc}"
        ));
    }
    body.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the answer holds no access_token".to_owned())
}
