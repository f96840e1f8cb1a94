//! Opaque tokens by RFC 7662 introspection, authenticated with `client_secret_basic`.

use serde_json::Value;

use super::claims::numeric_date;
use super::error::TokenError;
use super::issuer::{error_chain, Issuer};
use super::jwt::audience_accepted;
use crate::telemetry::METRICS;

/// What one issuer said about a token.
#[derive(Debug)]
pub enum Answer {
    /// `active: true`, and the answer passes `exp`, `nbf` and `aud`: the claims.
    Active(Value),
    /// `active: false`, or an active answer this gateway does not accept.
    Refused(TokenError),
    /// The endpoint could not be asked, or answered something other than RFC 7662.
    Unreachable,
}

/// Asks `issuer`'s introspection endpoint about `token` at time `now`.
pub async fn ask(http: &reqwest::Client, issuer: &Issuer, token: &str, now: u64) -> Answer {
    let Some((endpoint, creds)) = issuer.introspection() else {
        return Answer::Refused(TokenError::OpaqueNotAccepted);
    };
    METRICS
        .introspections
        .with_label_values(&[&issuer.settings.issuer, "false"])
        .inc();
    let sent = http
        .post(endpoint.clone())
        .basic_auth(&creds.client_id, Some(creds.client_secret.expose()))
        .header(http::header::ACCEPT, "application/json")
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(issuer = %issuer.settings.issuer, error = %error_chain(&e), "introspection request failed");
            return Answer::Unreachable;
        }
    };
    let status = resp.status();
    if !status.is_success() {
        // 401/403 here mean the gateway's own credentials are wrong: say so loudly.
        tracing::error!(issuer = %issuer.settings.issuer, %status, %endpoint, "introspection refused: check this issuer's client_id and client_secret");
        return Answer::Unreachable;
    }
    let Ok(body) = resp.json::<Value>().await else {
        tracing::warn!(issuer = %issuer.settings.issuer, "introspection answer is not JSON");
        return Answer::Unreachable;
    };
    judge(
        body,
        &issuer.settings.audiences,
        issuer.settings.clock_skew.as_secs(),
        now,
    )
}

/// Applies RFC 7662 and our rules to an answer: only `active: true` (the boolean) counts;
/// `exp` and `nbf`, when present, with skew; `aud`, when present, must be accepted.
pub fn judge(body: Value, audiences: &[String], skew: u64, now: u64) -> Answer {
    if body.get("active") != Some(&Value::Bool(true)) {
        return Answer::Refused(TokenError::Inactive);
    }
    if let Some(exp) = body.get("exp").and_then(numeric_date) {
        if now >= exp.saturating_add(skew) {
            return Answer::Refused(TokenError::Expired);
        }
    }
    if body
        .get("nbf")
        .and_then(numeric_date)
        .is_some_and(|nbf| nbf > now.saturating_add(skew))
    {
        return Answer::Refused(TokenError::NotYetValid);
    }
    if body.get("aud").is_some() && !audience_accepted(body.get("aud"), audiences) {
        return Answer::Refused(TokenError::AudienceMismatch);
    }
    Answer::Active(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aud() -> Vec<String> {
        vec!["portcullis".into()]
    }

    #[test]
    fn only_boolean_true_is_active() {
        for body in [
            json!({"active": false}),
            json!({"active": "true"}),
            json!({"active": 1}),
            json!({}),
            json!([]),
        ] {
            assert!(
                matches!(
                    judge(body.clone(), &aud(), 0, 100),
                    Answer::Refused(TokenError::Inactive)
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn django_oauth_toolkit_answers_without_aud_are_accepted() {
        let body = json!({"active": true, "scope": "inventory:read", "exp": 200, "client_id": "inventory-service"});
        assert!(matches!(judge(body, &aud(), 0, 100), Answer::Active(_)));
    }

    #[test]
    fn expired_or_foreign_audience_answers_are_refused() {
        let expired = json!({"active": true, "exp": 50});
        assert!(matches!(
            judge(expired, &aud(), 0, 100),
            Answer::Refused(TokenError::Expired)
        ));
        let foreign = json!({"active": true, "exp": 200, "aud": ["http://other/"]});
        assert!(matches!(
            judge(foreign, &aud(), 0, 100),
            Answer::Refused(TokenError::AudienceMismatch)
        ));
    }
}
