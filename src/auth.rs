//! Who is calling: the bearer credential of a request and its verification.
//!
//! `Authorization: Bearer` is read once per request ([`bearer`]) and verified with
//! [`verifier::Verifier`] (JWTs against the issuers' keys, opaque tokens by introspection).
//! Failures are this module's own [`AuthError`]; `proxy::respond` maps them to HTTP. Which
//! credential a route takes and its rules are decided in `proxy::admission`.

pub mod claims;
pub mod error;
pub mod introspect;
pub mod issuer;
pub mod jwt;
pub mod verifier;

use std::sync::Arc;

use pingora::http::RequestHeader;

use error::{TokenError, Unavailable};
use verifier::{Failure, Verified, Verifier};

/// The bearer credential of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization: Bearer` (Basic credentials and `?access_token=` count as none).
    Absent,
    Token(&'a str),
    /// Several `Authorization` headers, or a bearer value that is not a b64token.
    Malformed,
}

/// Why no caller came out of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential at all; `bearer_challenge` when the route takes bearer tokens, so the
    /// answer carries `WWW-Authenticate: Bearer realm="portcullis"`.
    #[error("authentication is required")]
    Missing { bearer_challenge: bool },
    #[error("{0}")]
    InvalidToken(TokenError),
    #[error("the bearer token is too large")]
    TokenTooLarge,
    #[error("{0}")]
    Unavailable(Unavailable),
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
    let b64token = !token.is_empty() && all_b64token(token.trim_end_matches('=').as_bytes());
    if b64token {
        Bearer::Token(token)
    } else {
        Bearer::Malformed
    }
}

/// Whether every byte is one of an RFC 6750 b64token (before its trailing `=`): letters,
/// digits and `-._~+/`. Every bearer request checks each byte of its token (a kilobyte for
/// a Keycloak JWT): without an early exit or branches the check runs on vectors.
fn all_b64token(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        let alnum = b.is_ascii_lowercase() | b.is_ascii_uppercase() | b.is_ascii_digit();
        let mark =
            (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
        ok & (alnum | mark)
    })
}

/// Verifies a bearer credential, within `max_token_bytes`.
pub async fn verify_bearer(
    verifier: &Verifier,
    credential: Bearer<'_>,
    max_token_bytes: usize,
) -> Result<Arc<Verified>, AuthError> {
    match credential {
        Bearer::Absent => Err(AuthError::Missing {
            bearer_challenge: true,
        }),
        Bearer::Malformed => Err(AuthError::InvalidToken(TokenError::Malformed)),
        Bearer::Token(t) if t.len() > max_token_bytes => Err(AuthError::TokenTooLarge),
        Bearer::Token(t) => verifier.verify(t).await.map_err(|f| match f {
            Failure::Invalid(e) => AuthError::InvalidToken(e),
            Failure::Unavailable(u) => AuthError::Unavailable(u),
        }),
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
    fn only_b64token_bytes_make_a_token() {
        for b in 0x21u8..=0x7e {
            let value = format!("Bearer ab{}cd", b as char);
            let rfc6750 = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            let token = matches!(bearer(&req(&[&value])), Bearer::Token(_));
            assert_eq!(token, rfc6750, "{value}");
        }
        assert_eq!(bearer(&req(&["Bearer abc=="])), Bearer::Token("abc=="));
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
