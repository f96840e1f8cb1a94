//! `portcullis explain --bearer`: verifies a token as the gateway would for a route and
//! method, and says why it is allowed or refused, in words a Keycloak user can act on.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::Value;

use super::answer::sanitize;
use super::words::{quote, string_list};
use crate::auth::error::TokenError;
use crate::auth::verifier::{http_client, system_clock, Failure, Verifier};
use crate::config::Config;
use crate::policy::rules::{self, Denial};
use crate::policy::AuthMode;

/// Verifies `token` as the gateway would for `route` and `method`, and says why it is
/// allowed or refused.
pub async fn explain_bearer(
    config: &Config,
    route: &crate::policy::route::Route,
    method: &str,
    token: &str,
) -> String {
    let mut out = String::new();
    if route.auth == AuthMode::Public {
        return "decision: allow: the route is public (the token is not looked at)\n".to_owned();
    }
    if route.auth == AuthMode::Login {
        return "decision: refuse (401): a login route takes browser sessions, not bearer tokens\n"
            .to_owned();
    }
    if token.len() > config.server.max_token_bytes {
        return format!(
            "decision: refuse (400): the token is longer than max_token_bytes ({})\n",
            config.server.max_token_bytes
        );
    }
    let verifier = Verifier::from_config(config, http_client(), system_clock());
    for issuer in verifier.issuers() {
        if let Err(e) = issuer.fetch_keys().await {
            let _ = writeln!(out, "note: issuer {}: {e}", issuer.settings.issuer);
        }
    }
    match verifier.verify(token).await {
        Err(Failure::Invalid(TokenError::AudienceMismatch)) => {
            out.push_str(&explain_audience(config, &verifier, token));
            let _ = writeln!(out, "decision: refuse (401 invalid_token)");
        }
        Err(Failure::Invalid(e)) => {
            let _ = writeln!(out, "token:    refused: {e}");
            let _ = writeln!(out, "decision: refuse (401 invalid_token)");
        }
        Err(Failure::Unavailable(u)) => {
            let _ = writeln!(out, "token:    not checked: {u}");
            let _ = writeln!(out, "decision: refuse (503)");
        }
        Ok(v) => {
            let id = &v.identity;
            let _ = writeln!(
                out,
                "token:    valid, issuer {}, expires at {}",
                v.issuer,
                id.expires_at.map_or("-".to_owned(), |e| e.to_string())
            );
            let one = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), quote);
            let _ = writeln!(
                out,
                "identity: user {}, client {}, email {}\n          roles {}\n          groups {}\n          scopes {}",
                one(&id.user),
                one(&id.client),
                one(&id.email),
                string_list(&id.roles),
                string_list(&id.groups),
                string_list(&id.scopes)
            );
            match rules::check(route, method, id) {
                Ok(()) => {
                    let _ = writeln!(out, "decision: allow");
                }
                Err(Denial::NotAllowed(kind)) => {
                    let _ = writeln!(
                        out,
                        "decision: refuse (403): the `allow` {kind} rule is not met"
                    );
                }
                Err(Denial::InsufficientScope(Some(needed))) => {
                    let _ = writeln!(
                        out,
                        "decision: refuse (403 insufficient_scope): {method} needs {}",
                        needed.join(" ")
                    );
                }
                Err(Denial::InsufficientScope(None)) => {
                    let _ = writeln!(
                        out,
                        "decision: refuse (403 insufficient_scope): no scopes key covers {method}"
                    );
                }
            }
        }
    }
    out
}

/// The audience refusal in words a Keycloak user can act on: the token's `aud` (read
/// unverified from the payload, for this message only; the token is never printed), the
/// audiences accepted and the key that sets them, and the mapper that would fix it.
fn explain_audience(config: &Config, verifier: &Verifier, token: &str) -> String {
    let Some(claims) = unverified_claims(token) else {
        // An opaque token: the audience was the introspection answer's.
        return format!("token:    refused: {}\n", TokenError::AudienceMismatch);
    };
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(sanitize)
            .filter(|s| !s.is_empty())
    };
    let iss = text("iss");
    let offset = usize::from(config.provider.is_some());
    let found = verifier
        .issuers()
        .iter()
        .enumerate()
        .find(|(_, i)| iss.as_deref() == Some(i.expected_iss().as_str()));
    let (accepted, key) = match found {
        Some((0, i)) if config.provider.is_some() => (
            i.settings.audiences.clone(),
            "provider.audiences".to_owned(),
        ),
        Some((n, i)) => (
            i.settings.audiences.clone(),
            format!("issuers[{}].audiences", n - offset),
        ),
        None => (Vec::new(), "audiences".to_owned()),
    };
    let aud = match claims.get("aud") {
        None | Some(Value::Null) => "absent".to_owned(),
        Some(Value::String(s)) => quote(&sanitize(s)),
        Some(Value::Array(list)) => {
            let mut names: Vec<String> = list
                .iter()
                .take(10)
                .map(|a| a.as_str().map_or("?".to_owned(), |s| quote(&sanitize(s))))
                .collect();
            if list.len() > 10 {
                names.push("…".to_owned());
            }
            format!("[{}]", names.join(", "))
        }
        Some(_) => "not a string or a list".to_owned(),
    };
    let mut out = format!(
        "token:    refused: {}: aud is {aud}, the gateway accepts {} ({key})\n",
        TokenError::AudienceMismatch,
        string_list(&accepted)
    );
    let audience = accepted
        .first()
        .map_or("<the gateway's client id>".to_owned(), |a| sanitize(a));
    let (client, which) = match (text("azp"), text("client_id")) {
        (Some(c), _) => (Some(c), "azp"),
        (None, Some(c)) => (Some(c), "client_id"),
        (None, None) => (None, ""),
    };
    let _ = match client {
        Some(c) => writeln!(
            out,
            "hint:     give client {} (the token's {which}) an Audience mapper: Clients → {c} → \
             Client scopes → {c}-dedicated → Configure a new mapper (or Add mapper → By \
             configuration) → Audience, Included Client Audience {}, Add to access token on",
            quote(&c),
            quote(&audience)
        ),
        None => writeln!(
            out,
            "hint:     give the client that requested the token an Audience mapper (Keycloak: \
             Clients → the client → Client scopes → its dedicated scope → Configure a new \
             mapper → Audience, Included Client Audience {}, Add to access token on)",
            quote(&audience)
        ),
    };
    out
}

/// The payload of a JWT as JSON, unverified.
fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
