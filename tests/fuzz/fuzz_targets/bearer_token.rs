//! Bearer tokens: `auth::bearer` on `Authorization` headers, `auth::jwt::peek` (the header
//! and `iss` read before anything is verified), `auth::verify_bearer` through the verifier
//! and its cache, and `auth::jwt::verify_id_token`, against an issuer whose keys are the
//! EC and RSA test keys.
//!
//! A raw input is `Authorization` values, one a line: whatever a client can send. A signed
//! input (`signed` on its first line) puts fuzzed header and claims JSON under a real
//! ES256 signature of the test key, so the claim checks behind the signature are reached
//! too.
//!
//! Invariants:
//! - nothing panics;
//! - `Bearer::Token` only for exactly one `Authorization` header with the `Bearer` scheme
//!   (any case) and a non-empty RFC 6750 b64token;
//! - a verified token's header says ES256 or RS256, its `iss` is the issuer's, its `aud`
//!   names the accepted audience, it has an `exp` (a number) not past `NOW` less the skew,
//!   and the identity expires when the token does, never later; the same token verifies
//!   the same way again (now from the cache);
//! - an ID token that verifies carries the nonce asked for;
//! - a signed token with one character of its signature or payload changed never verifies.
#![no_main]

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::auth::verifier::Verifier;
use portcullis::auth::{self, jwt, Bearer};
use portcullis_fuzz::{
    ec_key, request, value_lines, verifier, write_seeds, CLIENT, EC_KID, ISSUER, NOW, RSA_KID,
};
use serde_json::Value;

const MAX_TOKEN_BYTES: usize = 8192;
const SKEW: u64 = 30;

/// A signed input: `signed` on the first line, then the header JSON, the claims JSON, the
/// nonce the login sent, and `INDEX CHAR` to replace one byte of the token after its header.
struct Signed<'a> {
    header: &'a [u8],
    claims: &'a [u8],
    nonce: &'a str,
    tamper: Option<(usize, u8)>,
}

fn signed(data: &[u8]) -> Option<Signed<'_>> {
    let rest = data.strip_prefix(b"signed\n")?;
    let mut lines = rest.splitn(4, |&b| b == b'\n');
    let header = lines.next()?;
    let claims = lines.next().unwrap_or_default();
    let nonce = std::str::from_utf8(lines.next().unwrap_or_default()).ok()?;
    let tamper = lines.next().and_then(|t| {
        let (&with, at) = t.split_last()?;
        let at = std::str::from_utf8(at).ok()?.trim().parse().ok()?;
        Some((at, with))
    });
    Some(Signed {
        header,
        claims,
        nonce,
        tamper,
    })
}

struct Fixture {
    verifier: Arc<Verifier>,
    rt: tokio::runtime::Runtime,
    signing: jsonwebtoken::EncodingKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (verifier, rt) = verifier();
        let signing = ec_key();
        write_seeds("bearer_token", &seeds(&signing));
        Fixture {
            verifier,
            rt,
            signing,
        }
    })
}

/// `header.claims.signature`, signed with the EC test key whatever the header says.
fn token(key: &jsonwebtoken::EncodingKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, jsonwebtoken::Algorithm::ES256)
        .expect("the EC test key signs");
    format!("{input}.{sig}")
}

/// Raw seeds: tokens signed with the test key, good and bad in one way each.
fn seeds(key: &jsonwebtoken::EncodingKey) -> Vec<(&'static str, Vec<u8>)> {
    use serde_json::json;
    let es = json!({"alg": "ES256", "kid": EC_KID, "typ": "JWT"});
    let claims = json!({
        "iss": ISSUER, "aud": CLIENT, "exp": NOW + 300, "iat": NOW, "sub": "alice",
        "preferred_username": "alice", "email": "alice@example.com", "azp": CLIENT,
        "realm_access": {"roles": ["admin"]}, "scope": "openid orders:read", "nonce": "n-1",
    });
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let bearer = |t: String| format!("Bearer {t}").into_bytes();
    vec![
        ("valid", bearer(token(key, &es, &claims))),
        (
            "expired",
            bearer(token(key, &es, &with("exp", json!(NOW - 60)))),
        ),
        (
            "float_exp",
            bearer(token(
                key,
                &es,
                &with("exp", json!((NOW + 300) as f64 + 0.5)),
            )),
        ),
        (
            "aud_list",
            bearer(token(key, &es, &with("aud", json!(["other", CLIENT])))),
        ),
        (
            "other_aud",
            bearer(token(key, &es, &with("aud", json!("other")))),
        ),
        (
            "other_iss",
            bearer(token(
                key,
                &es,
                &with("iss", json!("https://evil.example.com")),
            )),
        ),
        (
            "no_kid",
            bearer(token(key, &json!({"alg": "ES256"}), &claims)),
        ),
        (
            "rsa_kid",
            bearer(token(
                key,
                &json!({"alg": "RS256", "kid": RSA_KID}),
                &claims,
            )),
        ),
        (
            "alg_none",
            bearer(token(key, &json!({"alg": "none"}), &claims)),
        ),
        (
            "hs256",
            bearer(token(key, &json!({"alg": "HS256", "kid": EC_KID}), &claims)),
        ),
        (
            "jku",
            bearer(token(
                key,
                &json!({"alg": "ES256", "jku": "https://evil.example.com/jwks"}),
                &claims,
            )),
        ),
        (
            "two_headers",
            [bearer(token(key, &es, &claims)), b"\nBearer abc".to_vec()].concat(),
        ),
    ]
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn is_b64token(t: &str) -> bool {
    !t.is_empty()
        && t.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// `exp` as RFC 7519 reads a NumericDate: a non-negative number, fractions allowed.
fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Checks what a verified token must satisfy, from its own (unverified) parts.
fn check_verified(token: &str, v: &portcullis::auth::verifier::Verified) {
    let mut parts = token.split('.');
    let (Some(h), Some(c)) = (parts.next(), parts.next()) else {
        panic!("a verified token {token:?} is not a JWS");
    };
    let decode = |p: &str| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.trim_end_matches('='))
            .expect("a verified token's parts are base64url");
        serde_json::from_slice::<Value>(&bytes).expect("and JSON")
    };
    let (header, claims) = (decode(h), decode(c));
    let alg = header["alg"].as_str();
    assert!(
        matches!(alg, Some("ES256" | "RS256")),
        "alg {alg:?} verified"
    );
    assert_eq!(claims["iss"].as_str(), Some(ISSUER), "{claims}");
    assert!(
        jwt::audience_accepted(claims.get("aud"), &[CLIENT.to_owned()]),
        "aud {} verified",
        claims["aud"]
    );
    let exp =
        numeric_date(&claims["exp"]).unwrap_or_else(|| panic!("exp {} verified", claims["exp"]));
    assert!(
        NOW < exp.saturating_add(SKEW),
        "expired token verified: {claims}"
    );
    assert!(
        v.expires_at <= exp,
        "the identity outlives its token: expires_at {} for exp {}",
        v.expires_at,
        claims["exp"]
    );
    assert_eq!(v.issuer, ISSUER);
}

fn verify(f: &Fixture, token: &str) -> Result<Arc<portcullis::auth::verifier::Verified>, String> {
    f.rt.block_on(auth::verify_bearer(
        &f.verifier,
        Bearer::Token(token),
        MAX_TOKEN_BYTES,
    ))
    .map_err(|e| format!("{e:?}"))
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    match signed(data) {
        None => {
            // `Authorization` values, one a line.
            let Some(req) = request("GET", b"/", &value_lines("authorization", data)) else {
                return;
            };
            let credential = auth::bearer(&req);
            if let Bearer::Token(t) = credential {
                let sent: Vec<_> = req.headers.get_all("authorization").iter().collect();
                assert_eq!(
                    sent.len(),
                    1,
                    "a token out of several Authorization headers"
                );
                let value = sent[0].to_str().expect("a token is text");
                let (scheme, _) = value.split_once(' ').expect("scheme and token");
                assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?}");
                assert!(is_b64token(t), "token {t:?}");
                let _ = jwt::peek(t);
            }
            let first = f.rt.block_on(auth::verify_bearer(
                &f.verifier,
                credential,
                MAX_TOKEN_BYTES,
            ));
            if let (Ok(v), Bearer::Token(t)) = (&first, credential) {
                check_verified(t, v);
            }
            let again = f.rt.block_on(auth::verify_bearer(
                &f.verifier,
                credential,
                MAX_TOKEN_BYTES,
            ));
            assert_eq!(first.is_ok(), again.is_ok(), "{first:?} then {again:?}");
        }
        Some(input) => {
            let signing_input = format!("{}.{}", b64(input.header), b64(input.claims));
            let Ok(signature) = jsonwebtoken::crypto::sign(
                signing_input.as_bytes(),
                &f.signing,
                jsonwebtoken::Algorithm::ES256,
            ) else {
                return;
            };
            let token = format!("{signing_input}.{signature}");
            if token.len() > MAX_TOKEN_BYTES {
                return;
            }
            let _ = jwt::peek(&token);
            if let Ok(v) = verify(f, &token) {
                check_verified(&token, &v);
                let again = verify(f, &token).expect("verified once, verified again");
                assert_eq!(again.expires_at, v.expires_at);
            }
            let issuer = &f.verifier.issuers()[0];
            let nonce = input.nonce;
            if let Ok(claims) =
                f.rt.block_on(jwt::verify_id_token(&token, issuer, CLIENT, nonce, NOW))
            {
                assert!(!nonce.is_empty(), "an ID token verified without a nonce");
                assert_eq!(claims["nonce"].as_str(), Some(nonce));
            }
            // One character of the payload or the signature changed.
            if let Some((at, with)) = input.tamper {
                let dot = signing_input.find('.').unwrap_or(0);
                let at = dot + 1 + at % (token.len() - dot - 1);
                let mut bytes = token.clone().into_bytes();
                if bytes[at] == b'.' || bytes[at] == with || !with.is_ascii() {
                    return;
                }
                bytes[at] = with;
                let tampered = String::from_utf8(bytes).expect("ASCII");
                if let Ok(v) = verify(f, &tampered) {
                    panic!("{tampered:?} (from {token:?}) verified: {v:?}");
                }
            }
        }
    }
});
