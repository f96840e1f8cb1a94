//! Who is calling, and whether the route lets them in.
//!
//! `public` routes admit everyone. Until bearer tokens and browser sessions are verified,
//! `login`, `bearer` and `any` routes refuse every request: a route that needs credentials
//! never lets one through unverified.

use pingora::http::RequestHeader;

use crate::config::AuthMode;
use crate::policy::route::Route;
use crate::proxy::respond::Refusal;

/// What authentication concluded for one request.
#[derive(Debug)]
pub enum Outcome {
    /// The route is public: no identity is asserted.
    Anonymous,
    Refused(Refusal),
}

/// Decides a request on a route.
pub fn authenticate(route: &Route, _req: &RequestHeader) -> Outcome {
    match route.auth {
        AuthMode::Public => Outcome::Anonymous,
        AuthMode::Bearer | AuthMode::Any => Outcome::Refused(Refusal::Unauthenticated {
            bearer_challenge: true,
        }),
        AuthMode::Login => Outcome::Refused(Refusal::Unauthenticated {
            bearer_challenge: false,
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
    #[test]
    fn jwt_crypto_backend_is_usable() {
        super::selftest().unwrap();
    }
}
