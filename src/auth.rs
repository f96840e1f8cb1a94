//! Who is calling, and whether the route lets them in.
//!
//! `public` routes admit everyone. `bearer` (and the bearer half of `any`) verify
//! `Authorization: Bearer` with [`verifier::Verifier`]; `login` (and `any` without a bearer
//! token) take the browser session; then the route's rules apply. A browser page load
//! without a session is sent to log in; anything else gets 401.

pub mod claims;
pub mod error;
pub mod introspect;
pub mod issuer;
pub mod jwt;
pub mod verifier;

use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::config::AuthMode;
use crate::policy::route::Route;
use crate::policy::rules::{self, Denial};
use crate::proxy::respond::Refusal;
use error::TokenError;
use verifier::{Failure, Verified, Verifier};

/// What authentication concluded for one request.
#[derive(Debug)]
pub enum Outcome {
    /// Let through without an identity: a public route, or an allowed CORS preflight.
    Anonymous,
    Authenticated(Arc<Verified>),
    /// A browser page load without a session: send it to log in.
    LoginRequired,
    Refused(Refusal),
}

/// The bearer credential of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization: Bearer` (Basic credentials and `?access_token=` count as none).
    Absent,
    Token(&'a str),
    /// Several `Authorization` headers, or a bearer value that is not a b64token.
    Malformed,
}

/// Reads `Authorization: Bearer <token>`; the scheme is case-insensitive.
pub fn bearer(req: &RequestHeader) -> Bearer<'_> {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if req.headers.contains_key(http::header::AUTHORIZATION) {
            Bearer::Malformed
        } else {
            Bearer::Absent
        };
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Absent;
    }
    let token = rest.trim_matches(' ');
    // RFC 6750 b64token: what JWTs and opaque tokens are made of.
    let b64token = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if b64token {
        Bearer::Token(token)
    } else {
        Bearer::Malformed
    }
}

/// Whether the request is a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
fn is_cors_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Verifies the bearer token of a request, within `max_token_bytes`.
pub async fn verify_bearer(
    verifier: &Verifier,
    req: &RequestHeader,
    max_token_bytes: usize,
) -> Result<Arc<Verified>, Refusal> {
    match bearer(req) {
        Bearer::Absent => Err(Refusal::MissingCredentials {
            bearer_challenge: true,
        }),
        Bearer::Malformed => Err(Refusal::InvalidToken(TokenError::Malformed)),
        Bearer::Token(t) if t.len() > max_token_bytes => Err(Refusal::TokenTooLarge),
        Bearer::Token(t) => verifier.verify(t).await.map_err(|f| match f {
            Failure::Invalid(e) => Refusal::InvalidToken(e),
            Failure::Unavailable(u) => Refusal::Unavailable(u),
        }),
    }
}

/// Decides a request on a route; `method` is the one the rules see (forward-auth passes
/// `X-Forwarded-Method`), `session` the browser session the request carries, if any.
pub async fn authenticate(
    verifier: &Verifier,
    route: &Route,
    req: &RequestHeader,
    method: &str,
    max_token_bytes: usize,
    session: Option<Arc<Verified>>,
) -> Outcome {
    let has_bearer = bearer(req) != Bearer::Absent;
    match route.auth {
        AuthMode::Public => return Outcome::Anonymous,
        AuthMode::Login | AuthMode::Any if !(route.auth == AuthMode::Any && has_bearer) => {
            return match session {
                Some(v) => judge(route, method, v),
                None if crate::session::browser::is_page_load(req) => Outcome::LoginRequired,
                None => Outcome::Refused(Refusal::MissingCredentials {
                    bearer_challenge: route.auth == AuthMode::Any,
                }),
            };
        }
        AuthMode::Login | AuthMode::Bearer | AuthMode::Any => {}
    }
    if route.cors_preflight && is_cors_preflight(req) && !has_bearer {
        return Outcome::Anonymous;
    }
    match verify_bearer(verifier, req, max_token_bytes).await {
        Ok(v) => judge(route, method, v),
        Err(r) => Outcome::Refused(r),
    }
}

/// Applies the route's rules to an authenticated caller.
fn judge(route: &Route, method: &str, verified: Arc<Verified>) -> Outcome {
    match rules::check(route, method, &verified.identity) {
        Ok(()) => Outcome::Authenticated(verified),
        Err(Denial::NotAllowed(kind)) => Outcome::Refused(Refusal::Forbidden(kind)),
        Err(Denial::InsufficientScope(needed)) => {
            Outcome::Refused(Refusal::InsufficientScope(needed))
        }
    }
}

/// Checks that jsonwebtoken has exactly one crypto backend. With none or two it compiles,
/// then panics at the first signature: better to find out at start-up.
pub fn selftest() -> Result<(), String> {
    use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let outcome = std::panic::catch_unwind(|| {
        let key = b"portcullis start-up self-test key, not a secret";
        let claims = serde_json::json!({ "sub": "selftest", "exp": 4_102_444_800u64 });
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key),
        )
        .map_err(|e| e.to_string())?;
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        decode::<serde_json::Value>(&token, &DecodingKey::from_secret(key), &v)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(result) => result.map_err(|e| format!("JWT self-test failed: {e}")),
        Err(_) => Err(
            "JWT self-test panicked: jsonwebtoken was built with no crypto backend, or with two"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/?access_token=abc", None).unwrap();
        for a in auth {
            r.append_header("authorization", *a).unwrap();
        }
        r
    }

    #[test]
    fn jwt_crypto_backend_is_usable() {
        selftest().unwrap();
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER abc.def.ghi",
            "Bearer  abc.def.ghi",
        ] {
            assert_eq!(bearer(&req(&[v])), Bearer::Token("abc.def.ghi"), "{v}");
        }
    }

    #[test]
    fn basic_credentials_and_query_tokens_are_no_credentials() {
        assert_eq!(bearer(&req(&["Basic YWxpY2U6cHc="])), Bearer::Absent);
        assert_eq!(
            bearer(&req(&[])),
            Bearer::Absent,
            "?access_token= is not a credential"
        );
    }

    #[test]
    fn malformed_bearer_values_are_not_guessed_at() {
        assert_eq!(bearer(&req(&["Bearer"])), Bearer::Malformed);
        assert_eq!(bearer(&req(&["Bearer a b"])), Bearer::Malformed);
        assert_eq!(bearer(&req(&["Bearer a\"b"])), Bearer::Malformed);
        assert_eq!(
            bearer(&req(&["Bearer a", "Bearer b"])),
            Bearer::Malformed,
            "two Authorization headers"
        );
    }
}
