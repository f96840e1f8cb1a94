//! The token side of the development provider: client authentication, the token
//! endpoint's three grants, the tokens themselves (shaped like Keycloak's), userinfo and
//! introspection.

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Map, Value};

use super::wire::{basic_credentials, bearer, get, json_ok, Params, Refusal};
use super::{fresh, Grant, Provider, Refresh, ACCESS_TTL, REFRESH_TTL};
use crate::demo::keys::Expiry;
use crate::demo::realm::{self, Service, GATEWAY_CLIENT};
use crate::secret::Secret;

/// Who authenticated at the token or introspection endpoint.
#[derive(Debug, Clone, Copy)]
enum Client {
    Gateway,
    Service(&'static Service),
}

/// Unpadded base64url of SHA-256: the PKCE S256 challenge (RFC 7636 §4.2); its left half
/// is an `at_hash` (OpenID Connect Core §3.2.2.9).
fn sha256_b64(data: &[u8], half: bool) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let bytes = d.as_ref();
    let bytes = if half {
        &bytes[..bytes.len() / 2]
    } else {
        bytes
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE verifier as RFC 7636 §4.1 allows: 43 to 128 unreserved characters.
fn verifier_well_formed(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Provider {
    /// The client a token or introspection request authenticates as: HTTP Basic, or
    /// `client_id` and `client_secret` in the form.
    fn authenticate(&self, headers: &HeaderMap, form: &Params) -> Result<Client, Refusal> {
        let (id, secret) = match basic_credentials(headers) {
            Some(pair) => pair?,
            None => match (get(form, "client_id"), get(form, "client_secret")) {
                (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
                _ => return Err(Refusal::InvalidClient),
            },
        };
        if get(form, "client_id").is_some_and(|f| f != id) {
            return Err(Refusal::InvalidClient);
        }
        let secret = Secret::new(secret);
        if id == GATEWAY_CLIENT && secret == self.gateway_secret {
            return Ok(Client::Gateway);
        }
        match realm::service(&id) {
            Some(s) if secret == Secret::new(s.secret.to_owned()) => Ok(Client::Service(s)),
            _ => {
                tracing::info!(client_id = %id, "client authentication failed");
                Err(Refusal::InvalidClient)
            }
        }
    }

    /// `POST token`.
    pub(super) fn token(
        &self,
        headers: &HeaderMap,
        form: &Params,
        now: u64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let client = self.authenticate(headers, form)?;
        let grant_type = get(form, "grant_type")
            .ok_or_else(|| Refusal::InvalidRequest("grant_type is missing".into()))?;
        match (grant_type, client) {
            ("authorization_code", Client::Gateway) => self.exchange_code(form, now),
            ("refresh_token", Client::Gateway) => self.refresh(form, now),
            ("client_credentials", Client::Service(service)) => {
                let scopes = service.grant(get(form, "scope")).ok_or_else(|| {
                    Refusal::InvalidScope(format!(
                        "{} may only ask for {}",
                        service.client_id,
                        service.scopes.join(" ")
                    ))
                })?;
                let token = self.service_access_token(service, &scopes, now)?;
                tracing::info!(client_id = service.client_id, "service token issued");
                Ok(json_ok(&json!({
                    "access_token": token,
                    "expires_in": ACCESS_TTL.as_secs(),
                    "refresh_expires_in": 0,
                    "token_type": "Bearer",
                    "not-before-policy": 0,
                    "scope": scopes.join(" "),
                })))
            }
            ("authorization_code" | "refresh_token", Client::Service(_)) => Err(
                Refusal::UnauthorizedClient("services use the client_credentials grant"),
            ),
            ("client_credentials", Client::Gateway) => Err(Refusal::UnauthorizedClient(
                "the gateway's client has no service account",
            )),
            _ => Err(Refusal::UnsupportedGrantType),
        }
    }

    /// `authorization_code`: the code once, within 60 s, with the same redirect URI and
    /// the PKCE verifier of its challenge.
    fn exchange_code(&self, form: &Params, now: u64) -> Result<Response<Full<Bytes>>, Refusal> {
        let code =
            get(form, "code").ok_or_else(|| Refusal::InvalidRequest("code is missing".into()))?;
        // Removed before anything else is checked: a code is tried once, whatever the outcome.
        let entry = self
            .store()
            .codes
            .remove(code)
            .filter(|c| c.exp > now)
            .ok_or(Refusal::InvalidGrant(
                "the code is unknown, used or expired",
            ))?;
        if get(form, "redirect_uri") != Some(self.callback.as_str()) {
            return Err(Refusal::InvalidGrant(
                "redirect_uri is not the one the code was issued for",
            ));
        }
        let verifier = get(form, "code_verifier").unwrap_or_default();
        if !verifier_well_formed(verifier)
            || sha256_b64(verifier.as_bytes(), false) != entry.challenge
        {
            return Err(Refusal::InvalidGrant(
                "the PKCE code_verifier does not match the code_challenge",
            ));
        }
        self.issue(&entry.grant, now)
    }

    /// `refresh_token`: the token once (each use rotates it), until it expires or the
    /// session is logged out.
    fn refresh(&self, form: &Params, now: u64) -> Result<Response<Full<Bytes>>, Refusal> {
        let token = get(form, "refresh_token")
            .ok_or_else(|| Refusal::InvalidRequest("refresh_token is missing".into()))?;
        let entry = self
            .store()
            .refresh
            .remove(token)
            .filter(|r| r.exp > now)
            .ok_or(Refusal::InvalidGrant(
                "the refresh token is unknown, already used, expired or logged out",
            ))?;
        tracing::info!(username = entry.grant.user.username, "tokens refreshed");
        self.issue(&entry.grant, now)
    }

    /// A token response for a person: access token, ID token and a new refresh token.
    fn issue(&self, grant: &Grant, now: u64) -> Result<Response<Full<Bytes>>, Refusal> {
        let access = self.access_token(grant, now)?;
        let id = self.id_token(grant, &access, now)?;
        let refresh = fresh();
        let mut store = self.store();
        store.purge(now);
        store.refresh.insert(
            refresh.clone(),
            Refresh {
                grant: grant.clone(),
                exp: now + REFRESH_TTL.as_secs(),
            },
        );
        drop(store);
        Ok(json_ok(&json!({
            "access_token": access,
            "expires_in": ACCESS_TTL.as_secs(),
            "refresh_token": refresh,
            "refresh_expires_in": REFRESH_TTL.as_secs(),
            "token_type": "Bearer",
            "id_token": id,
            "not-before-policy": 0,
            "session_state": grant.sid,
            "scope": grant.scope,
        })))
    }

    fn sign(&self, claims: Map<String, Value>) -> Result<String, Refusal> {
        self.signer.sign(&Value::Object(claims)).map_err(|e| {
            tracing::error!(error = %e, "cannot sign a token");
            Refusal::ServerError
        })
    }

    /// The claims every access token has: Keycloak's, `aud` holding the gateway.
    fn access_claims(&self, subject: &str, azp: &str, scope: &str, now: u64) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("exp".into(), (now + ACCESS_TTL.as_secs()).into());
        c.insert("iat".into(), now.into());
        c.insert("jti".into(), fresh().into());
        c.insert("iss".into(), self.issuer.clone().into());
        c.insert("aud".into(), json!([GATEWAY_CLIENT, "account"]));
        c.insert("sub".into(), subject.into());
        c.insert("typ".into(), "Bearer".into());
        c.insert("azp".into(), azp.into());
        c.insert("scope".into(), scope.into());
        c
    }

    pub(super) fn access_token(&self, grant: &Grant, now: u64) -> Result<String, Refusal> {
        let user = grant.user;
        let mut c = self.access_claims(user.subject, GATEWAY_CLIENT, &grant.scope, now);
        c.insert("auth_time".into(), grant.auth_time.into());
        c.insert("sid".into(), grant.sid.clone().into());
        c.extend(user.profile());
        c.extend(user.authorization());
        self.sign(c)
    }

    /// The ID token (OpenID Connect Core §2): `aud` the gateway alone, the login's `nonce`,
    /// and `at_hash` binding it to `access_token`.
    pub(super) fn id_token(
        &self,
        grant: &Grant,
        access_token: &str,
        now: u64,
    ) -> Result<String, Refusal> {
        let mut c = Map::new();
        c.insert("exp".into(), (now + ACCESS_TTL.as_secs()).into());
        c.insert("iat".into(), now.into());
        c.insert("auth_time".into(), grant.auth_time.into());
        c.insert("jti".into(), fresh().into());
        c.insert("iss".into(), self.issuer.clone().into());
        c.insert("aud".into(), GATEWAY_CLIENT.into());
        c.insert("typ".into(), "ID".into());
        c.insert("azp".into(), GATEWAY_CLIENT.into());
        c.insert("sid".into(), grant.sid.clone().into());
        c.insert(
            "at_hash".into(),
            sha256_b64(access_token.as_bytes(), true).into(),
        );
        if let Some(nonce) = &grant.nonce {
            c.insert("nonce".into(), nonce.clone().into());
        }
        c.extend(grant.user.profile());
        self.sign(c)
    }

    pub(super) fn service_access_token(
        &self,
        service: &Service,
        scopes: &[&str],
        now: u64,
    ) -> Result<String, Refusal> {
        let account = service.account();
        let mut c = self.access_claims(&account, service.client_id, &scopes.join(" "), now);
        c.insert("client_id".into(), service.client_id.into());
        c.insert("preferred_username".into(), account.into());
        self.sign(c)
    }

    /// `userinfo`: the person's claims for one of our access tokens (an ID token is not one).
    pub(super) fn userinfo(&self, headers: &HeaderMap) -> Result<Response<Full<Bytes>>, Refusal> {
        let claims = bearer(headers)
            .and_then(|t| self.signer.check(t, &self.issuer, Expiry::Enforced))
            .filter(|c| c.get("typ").and_then(Value::as_str) == Some("Bearer"))
            .ok_or(Refusal::InvalidToken)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let answer = match realm::user_by_subject(subject) {
            Some(user) => {
                let mut m = user.profile();
                m.insert("groups".into(), json!(user.groups));
                Value::Object(m)
            }
            None => {
                json!({ "sub": subject, "preferred_username": claims.get("preferred_username") })
            }
        };
        Ok(json_ok(&answer))
    }

    /// `token/introspect` (RFC 7662) for any client of the realm: our access tokens are
    /// active until they expire; anything else is not.
    pub(super) fn introspect(
        &self,
        headers: &HeaderMap,
        form: &Params,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        self.authenticate(headers, form)?;
        let token =
            get(form, "token").ok_or_else(|| Refusal::InvalidRequest("token is missing".into()))?;
        let answer = match self
            .signer
            .check(token, &self.issuer, Expiry::Enforced)
            .filter(|c| c.get("typ").and_then(Value::as_str) == Some("Bearer"))
        {
            Some(Value::Object(mut claims)) => {
                claims.insert("active".into(), true.into());
                claims.insert("token_type".into(), "Bearer".into());
                if let Some(azp) = claims.get("azp").cloned() {
                    claims.entry("client_id").or_insert(azp);
                }
                if let Some(name) = claims.get("preferred_username").cloned() {
                    claims.insert("username".into(), name);
                }
                Value::Object(claims)
            }
            _ => json!({ "active": false }),
        };
        Ok(json_ok(&answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_unpadded_base64url_of_sha256() {
        // Cross-checked with Python:
        // urlsafe_b64encode(sha256(v).digest()).rstrip(b"="), and its first 16 bytes.
        let v = b"dBjftJeZ4CVP-mJ0kqrBTlLPmXSoThOpS7tB0KPDj4k";
        assert_eq!(
            sha256_b64(v, false),
            "gE0vg2hzHJizjOr7HZTtIY2sEFb-TWHkGqk9RMiwqA4"
        );
        assert_eq!(sha256_b64(v, true), "gE0vg2hzHJizjOr7HZTtIQ");
    }

    #[test]
    fn verifiers_outside_rfc_7636_are_refused() {
        assert!(verifier_well_formed(&"a".repeat(43)));
        assert!(!verifier_well_formed(&"a".repeat(42)));
        assert!(!verifier_well_formed(&"a".repeat(129)));
        assert!(!verifier_well_formed(&format!("{}+", "a".repeat(43))));
    }
}
