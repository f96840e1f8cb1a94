//! The development provider's signing key: one ES256 key generated at start (aws-lc-rs),
//! published as a JWK whose `kid` is its RFC 7638 thumbprint. It lives only in memory, so
//! every start of the demo signs with a new key.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use super::realm::GATEWAY_CLIENT;

/// A key pair that signs the provider's tokens and checks the ones it gets back.
pub struct Signer {
    kid: String,
    signing: EncodingKey,
    checking: DecodingKey,
    public: Jwk,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// How strictly a token the provider gets back is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// An expired token is refused (userinfo, introspection).
    Enforced,
    /// An expired token still names its session (`id_token_hint` at logout).
    Ignored,
}

impl Signer {
    pub fn generate() -> Result<Signer, String> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| "cannot generate an ES256 key".to_owned())?;
        let signing = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut public = Jwk::from_encoding_key(&signing, Algorithm::ES256)
            .map_err(|e| format!("cannot publish the ES256 key: {e}"))?;
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("cannot name the ES256 key: {e}"))?;
        public.common.key_id = Some(kid.clone());
        public.common.key_algorithm = Some(KeyAlgorithm::ES256);
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        let checking = DecodingKey::from_jwk(&public)
            .map_err(|e| format!("cannot read back the ES256 key: {e}"))?;
        Ok(Signer {
            kid,
            signing,
            checking,
            public,
        })
    }

    /// The public key, for the JWKS.
    pub fn jwk(&self) -> &Jwk {
        &self.public
    }

    /// Signs `claims` (ES256, with `kid` and `typ: JWT` in the header).
    pub fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing)
    }

    /// The claims of a token this provider signed for `issuer` and the gateway's audience.
    pub fn check(&self, token: &str, issuer: &str, expiry: Expiry) -> Option<Value> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[issuer]);
        v.set_audience(&[GATEWAY_CLIENT]);
        v.validate_exp = expiry == Expiry::Enforced;
        if expiry == Expiry::Ignored {
            v.required_spec_claims.remove("exp");
        }
        jsonwebtoken::decode::<Value>(token, &self.checking, &v)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_token_checks_and_a_tampered_one_does_not() {
        let s = Signer::generate().unwrap();
        let iss = "http://127.0.0.1:1/realms/demo";
        let token = s
            .sign(&json!({"iss": iss, "aud": GATEWAY_CLIENT, "exp": 4_102_444_800u64, "sub": "x"}))
            .unwrap();
        assert_eq!(s.check(&token, iss, Expiry::Enforced).unwrap()["sub"], "x");
        assert!(s
            .check(&token, "http://other/realms/demo", Expiry::Enforced)
            .is_none());
        let other = Signer::generate().unwrap();
        let forged = other
            .sign(&json!({"iss": iss, "aud": GATEWAY_CLIENT, "exp": 4_102_444_800u64}))
            .unwrap();
        assert!(s.check(&forged, iss, Expiry::Enforced).is_none());
        let jwk = serde_json::to_value(s.jwk()).unwrap();
        assert_eq!(
            (
                jwk["kty"].as_str(),
                jwk["crv"].as_str(),
                jwk["alg"].as_str(),
                jwk["use"].as_str()
            ),
            (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
        );
    }

    #[test]
    fn an_expired_id_token_hint_still_names_its_session() {
        let s = Signer::generate().unwrap();
        let iss = "http://127.0.0.1:1/realms/demo";
        let token = s
            .sign(&json!({"iss": iss, "aud": GATEWAY_CLIENT, "exp": 1u64, "sid": "s"}))
            .unwrap();
        assert!(s.check(&token, iss, Expiry::Enforced).is_none());
        assert_eq!(s.check(&token, iss, Expiry::Ignored).unwrap()["sid"], "s");
    }
}
