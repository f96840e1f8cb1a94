//! The commands that talk to the provider: `check --online`, `token`, `explain --bearer`.
//! Each prints what it found and returns whether everything was right.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use crate::auth::issuer::{error_chain, Issuer};
use crate::auth::verifier::{http_client, system_clock, Failure, Verifier};
use crate::config::Config;
use crate::policy::rules::{self, Denial};
use crate::policy::AuthMode;

/// Fetches discovery, keys and introspection of every issuer and reports, issuer by
/// issuer, what works and what the provider will refuse. `Ok` when all is well.
pub async fn check_online(config: &Config) -> Result<String, String> {
    let verifier = Verifier::from_config(config, http_client(), system_clock());
    let mut report = String::new();
    let mut failed = false;
    for issuer in verifier.issuers() {
        let _ = writeln!(report, "issuer {}", issuer.settings.issuer);
        match check_issuer(issuer).await {
            Ok(lines) => lines.iter().for_each(|l| {
                let _ = writeln!(report, "  {l}");
            }),
            Err(lines) => {
                failed = true;
                lines.iter().for_each(|l| {
                    let _ = writeln!(report, "  {l}");
                });
            }
        }
    }
    if verifier.issuers().is_empty() {
        let _ = writeln!(
            report,
            "no [provider] or [[issuers]]: nothing to check online"
        );
    }
    if failed {
        Err(report)
    } else {
        Ok(report)
    }
}

async fn check_issuer(issuer: &Arc<Issuer>) -> Result<Vec<String>, Vec<String>> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let s = &issuer.settings;
    if s.discovery {
        match issuer.discover().await {
            Ok(d) => ok.push(format!("discovery: ok (issuer {:?})", d.issuer)),
            Err(e) => {
                bad.push(format!("FAIL discovery: {e}"));
                return Err(bad);
            }
        }
    }
    let d = issuer.discovery().unwrap_or_default();
    if d.jwks_uri.is_some() {
        match issuer.fetch_keys().await {
            Ok(n) => {
                let keys = issuer.keys();
                let kids: Vec<&str> = keys.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
                ok.push(format!("keys: {n} usable ({})", kids.join(", ")));
                for alg in &s.algorithms {
                    if !keys.keys.iter().any(|k| k.fits(*alg)) {
                        ok.push(format!("warning: no key for {alg:?}: tokens signed with it will be refused (unknown key)"));
                    }
                }
            }
            Err(e) => bad.push(format!("FAIL keys: {e}")),
        }
    } else {
        ok.push("keys: none (no jwks_uri): JWTs of this issuer are refused".to_owned());
    }
    match issuer.introspection() {
        None => ok.push("introspection: off".to_owned()),
        Some((endpoint, creds)) => {
            let http = http_client();
            let sent = http
                .post(endpoint.clone())
                .basic_auth(&creds.client_id, Some(creds.client_secret.expose()))
                .form(&[
                    ("token", "portcullis-check-online"),
                    ("token_type_hint", "access_token"),
                ])
                .send()
                .await;
            match sent {
                Err(e) => bad.push(format!("FAIL introspection at {endpoint}: {}", error_chain(&e))),
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(v) if v.get("active") == Some(&Value::Bool(false)) => ok.push(format!("introspection: ok at {endpoint}")),
                    Ok(v) => bad.push(format!("FAIL introspection at {endpoint}: unexpected answer for an unknown token: {v}")),
                    Err(_) => bad.push(format!("FAIL introspection at {endpoint}: the answer is not JSON")),
                },
                Ok(r) => bad.push(format!(
                    "FAIL introspection at {endpoint}: HTTP {}: the provider refused client {:?} — check client_id and client_secret",
                    r.status(),
                    creds.client_id
                )),
            }
        }
    }
    if bad.is_empty() {
        Ok(ok)
    } else {
        bad.splice(0..0, ok);
        Err(bad)
    }
}

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
    let doc: Value = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?
        .json()
        .await
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
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let err = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error code");
        let desc = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!(
            "the token endpoint answered HTTP {status}: {err} {desc}"
        ));
    }
    body.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the answer holds no access_token".to_owned())
}

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
            let _ = writeln!(
                out,
                "identity: user {:?}, client {:?}, email {:?}\n          roles {:?}\n          groups {:?}\n          scopes {:?}",
                id.user, id.client, id.email, id.roles, id.groups, id.scopes
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
