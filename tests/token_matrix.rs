//! The exhaustive bearer-token matrix against an in-process provider, with the clock
//! injected. Each test is named after the attack or mistake it stops.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::auth::error::{TokenError, Unavailable};
use portcullis::auth::issuer::IssuerSettings;
use portcullis::auth::verifier::{http_client, Failure, Verifier};
use serde_json::{json, Value};
use support::provider::{SigningKey, TestProvider};

const NOW: u64 = 1_800_000_000;

struct Setup {
    provider: TestProvider,
    verifier: Verifier,
    clock: Arc<AtomicU64>,
    rsa: SigningKey,
}

fn claims_paths() -> portcullis::config::Claims {
    portcullis::config::Claims::defaults("portcullis")
}

/// An issuer verified by its discovered JWKS, accepting `aud: portcullis`, 30 s of skew.
fn settings(issuer: &str, algorithms: Vec<Algorithm>) -> IssuerSettings {
    IssuerSettings {
        issuer: issuer.to_owned(),
        discovery: true,
        jwks_uri: None,
        introspection_endpoint: None,
        introspection: false,
        introspection_cache: Duration::from_secs(60),
        credentials: None,
        audiences: vec!["portcullis".into()],
        algorithms,
        clock_skew: Duration::from_secs(30),
    }
}

async fn setup() -> Setup {
    let rsa = SigningKey::rsa("rsa-1");
    let ec = SigningKey::ec("ec-1");
    let provider = TestProvider::start(&[&rsa, &ec], None).await;
    let clock = Arc::new(AtomicU64::new(NOW));
    let c = clock.clone();
    let settings = settings(provider.issuer(), vec![Algorithm::RS256, Algorithm::ES256]);
    let verifier = Verifier::new(
        vec![settings],
        claims_paths(),
        http_client(),
        Arc::new(move || c.load(Ordering::SeqCst)),
    );
    verifier.issuers()[0].fetch_keys().await.unwrap();
    Setup {
        provider,
        verifier,
        clock,
        rsa,
    }
}

impl Setup {
    fn claims(&self) -> Value {
        self.provider
            .service_claims("billing-service", "orders:read orders:write", NOW, 300)
    }

    async fn verify(&self, token: &str) -> Result<(), Failure> {
        self.verifier.verify(token).await.map(|_| ())
    }
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with a hand-made header (for algorithms and fields jsonwebtoken will not write).
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn invalid(e: TokenError) -> Result<(), Failure> {
    Err(Failure::Invalid(e))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_rs256_service_token_yields_its_identity() {
    let s = setup().await;
    let v = s.verifier.verify(&s.rsa.sign(&s.claims())).await.unwrap();
    assert_eq!(v.identity.client.as_deref(), Some("billing-service"));
    assert_eq!(
        v.identity.user.as_deref(),
        Some("service-account-billing-service")
    );
    assert_eq!(v.identity.scopes, ["orders:read", "orders:write"]);
    assert_eq!(v.identity.roles, ["orders-writer", "service"]);
    assert_eq!(v.expires_at, NOW + 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_es256_token_is_accepted() {
    let s = setup().await;
    assert_eq!(
        s.verify(&SigningKey::ec("ec-1").sign(&s.claims())).await,
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rp_id_token_sig_none_alg_none_is_refused() {
    let s = setup().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let t = raw_token(
            &json!({"alg": alg, "typ": "JWT", "kid": "rsa-1"}),
            &s.claims(),
            b"",
        );
        assert!(s.verify(&t).await.is_err(), "{alg}");
        let t = format!("{}.", t.trim_end_matches('.'));
        assert!(s.verify(&t).await.is_err(), "{alg} without signature");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hs256_keyed_with_the_rsa_public_key_is_refused() {
    let s = setup().await;
    let public_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/keys/rsa-public.pem"
    ))
    .unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let t = jsonwebtoken::encode(&h, &s.claims(), &EncodingKey::from_secret(&public_pem)).unwrap();
    assert_eq!(s.verify(&t).await, invalid(TokenError::AlgorithmNotAllowed));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_algorithm_off_the_allow_list_is_refused_even_with_the_right_key() {
    let s = setup().await;
    let mut h = Header::new(Algorithm::RS512);
    h.kid = Some("rsa-1".into());
    let t = jsonwebtoken::encode(&h, &s.claims(), &s.rsa.key).unwrap();
    assert_eq!(s.verify(&t).await, invalid(TokenError::AlgorithmNotAllowed));
}

#[tokio::test(flavor = "multi_thread")]
async fn kid_absent_from_jwks_is_refused() {
    let s = setup().await;
    let t = SigningKey::rsa("no-such-kid").sign(&s.claims());
    assert_eq!(s.verify(&t).await, invalid(TokenError::UnknownKeyId));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_key_reusing_a_known_kid_is_refused() {
    let s = setup().await;
    let t = SigningKey::attacker_rsa("rsa-1").sign(&s.claims());
    assert_eq!(s.verify(&t).await, invalid(TokenError::BadSignature));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ec_key_id_never_verifies_an_rsa_signature() {
    let s = setup().await;
    let t = SigningKey::attacker_rsa("ec-1").sign(&s.claims());
    assert_eq!(s.verify(&t).await, invalid(TokenError::UnknownKeyId));
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_jwk_jku_and_x5u_headers_are_ignored() {
    let s = setup().await;
    let attacker = SigningKey::attacker_rsa("evil");
    // A listener that would see it if the gateway followed jku/x5u.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}/jwks", trap.local_addr().unwrap());
    let mut h = Header::new(Algorithm::RS256);
    h.jwk = Some(attacker.public.clone());
    h.jku = Some(trap_url.clone());
    h.x5u = Some(trap_url);
    let t = jsonwebtoken::encode(&h, &s.claims(), &attacker.key).unwrap();
    assert_eq!(
        s.verify(&t).await,
        invalid(TokenError::BadSignature),
        "verified with the provider's only RSA key, not the embedded one"
    );
    let touched = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
    assert!(
        touched.is_err(),
        "the gateway fetched a key from a URL in the token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_refused_after_the_clock_skew() {
    let s = setup().await;
    let mut c = s.claims();
    c["exp"] = json!(NOW - 10);
    let t = s.rsa.sign(&c);
    assert_eq!(
        s.verify(&t).await,
        Ok(()),
        "10 s past exp is within the 30 s skew"
    );
    c["exp"] = json!(NOW - 31);
    assert_eq!(
        s.verify(&s.rsa.sign(&c)).await,
        invalid(TokenError::Expired)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_token_is_never_used_past_its_expiry() {
    let s = setup().await;
    let t = s.rsa.sign(&s.claims());
    assert_eq!(s.verify(&t).await, Ok(()));
    s.clock.store(NOW + 300 + 31, Ordering::SeqCst);
    assert!(
        s.verify(&t).await.is_err(),
        "the verified-token cache outlived exp"
    );
}

/// Found by fuzzing (tests/fuzz, bearer_token): a fractional `exp` (a NumericDate may have
/// one) passed the expiry check but was read as "no exp" for the identity, so the cache
/// kept the token valid forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_cached_token_with_a_fractional_exp_is_never_used_past_its_expiry() {
    let s = setup().await;
    let mut c = s.claims();
    c["exp"] = json!((NOW + 300) as f64 + 0.5);
    let t = s.rsa.sign(&c);
    let v = s.verifier.verify(&t).await.unwrap();
    assert_eq!(v.expires_at, NOW + 300);
    s.clock.store(NOW + 300 + 31, Ordering::SeqCst);
    assert_eq!(
        s.verify(&t).await,
        invalid(TokenError::Expired),
        "the verified-token cache outlived exp"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_exp_is_refused() {
    let s = setup().await;
    let mut c = s.claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        s.verify(&s.rsa.sign(&c)).await,
        invalid(TokenError::MissingExpiry)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_future_nbf_or_iat_is_refused() {
    let s = setup().await;
    let mut c = s.claims();
    c["nbf"] = json!(NOW + 120);
    assert_eq!(
        s.verify(&s.rsa.sign(&c)).await,
        invalid(TokenError::NotYetValid)
    );
    let mut c = s.claims();
    c["iat"] = json!(NOW + 120);
    assert_eq!(
        s.verify(&s.rsa.sign(&c)).await,
        invalid(TokenError::IssuedInFuture)
    );
    let mut c = s.claims();
    c["nbf"] = json!(NOW + 20);
    assert_eq!(s.verify(&s.rsa.sign(&c)).await, Ok(()), "within the skew");
}

#[tokio::test(flavor = "multi_thread")]
async fn rp_id_token_issuer_mismatch_is_refused() {
    let s = setup().await;
    for iss in [
        "https://evil.example.com/realms/test".to_owned(),
        format!("{}/", s.provider.issuer()),
        s.provider.issuer().to_uppercase(),
    ] {
        let mut c = s.claims();
        c["iss"] = json!(iss);
        assert_eq!(
            s.verify(&s.rsa.sign(&c)).await,
            invalid(TokenError::UnknownIssuer),
            "{iss}"
        );
    }
    let mut c = s.claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        s.verify(&s.rsa.sign(&c)).await,
        invalid(TokenError::UnknownIssuer)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rp_id_token_aud_mismatch_is_refused() {
    let s = setup().await;
    for aud in [
        json!("account"),
        json!(["account", "other"]),
        json!([]),
        json!(null),
        json!(7),
    ] {
        let mut c = s.claims();
        c["aud"] = aud.clone();
        assert_eq!(
            s.verify(&s.rsa.sign(&c)).await,
            invalid(TokenError::AudienceMismatch),
            "{aud}"
        );
    }
    let mut c = s.claims();
    c["aud"] = json!("portcullis");
    assert_eq!(s.verify(&s.rsa.sign(&c)).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_signature_or_payload_is_refused() {
    let s = setup().await;
    let t = s.rsa.sign(&s.claims());
    let (head_payload, sig) = t.rsplit_once('.').unwrap();
    let mut sig_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    sig_bytes[10] ^= 1;
    assert_eq!(
        s.verify(&format!("{head_payload}.{}", b64(&sig_bytes)))
            .await,
        invalid(TokenError::BadSignature)
    );
    let (head, _) = head_payload.split_once('.').unwrap();
    let mut c = s.claims();
    c["azp"] = json!("reporting-service");
    c["scope"] = json!("orders:admin");
    let forged_payload = b64(c.to_string().as_bytes());
    assert_eq!(
        s.verify(&format!("{head}.{forged_payload}.{sig}")).await,
        invalid(TokenError::BadSignature)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_tokens_are_refused_without_panic() {
    let s = setup().await;
    let garbage = [
        "a.b.c",
        "..",
        "eyJhbGciOiJSUzI1NiJ9..",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
        "e30.e30.e30",
        "!!!.???.***",
        "eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.e30.AAAA",
    ];
    for g in garbage {
        let r = s.verify(g).await;
        assert!(matches!(r, Err(Failure::Invalid(_))), "{g}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn opaque_tokens_are_refused_when_no_issuer_introspects() {
    let s = setup().await;
    assert_eq!(
        s.verify("b1946ac92492d2347c6235b4d2611184").await,
        invalid(TokenError::OpaqueNotAccepted)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_tokens_are_refused_before_any_work() {
    let s = setup().await;
    let big = format!("Bearer {}", "a".repeat(9000));
    let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("authorization", big).unwrap();
    let credential = portcullis::auth::bearer(&req);
    let r = portcullis::auth::verify_bearer(&s.verifier, credential, 8192).await;
    assert_eq!(r.unwrap_err(), portcullis::auth::AuthError::TokenTooLarge);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kid_fetches_the_jwks_at_most_once_per_ten_seconds() {
    let s = setup().await;
    let before = s.provider.jwks_fetches();
    let tokens: Vec<String> = (0..20)
        .map(|i| SigningKey::rsa(&format!("unknown-{i}")).sign(&s.claims()))
        .collect();
    let results = futures_util::future::join_all(tokens.iter().map(|t| s.verifier.verify(t))).await;
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(
        s.provider.jwks_fetches() - before,
        1,
        "twenty concurrent unknown kids, one fetch"
    );
    let _ = s
        .verify(&SigningKey::rsa("yet-another").sign(&s.claims()))
        .await;
    assert_eq!(
        s.provider.jwks_fetches() - before,
        1,
        "no second fetch within 10 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_picked_up_on_first_sight() {
    let s = setup().await;
    let new = SigningKey::ec("ec-2");
    s.provider.publish(&[&s.rsa, &new]);
    assert_eq!(s.verify(&new.sign(&s.claims())).await, Ok(()));
    assert_eq!(
        s.verify(&s.rsa.sign(&s.claims())).await,
        Ok(()),
        "the old key still verifies"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_outage_never_stops_verification_with_cached_keys() {
    let s = setup().await;
    let Setup {
        provider,
        verifier,
        rsa,
        ..
    } = s;
    let claims = provider.service_claims("billing-service", "orders:read", NOW, 300);
    drop(provider);
    let t = rsa.sign(&claims);
    assert!(verifier.verify(&t).await.is_ok());
    // An unknown kid during the outage is refused, and known keys keep working after it.
    assert_eq!(
        verifier
            .verify(&SigningKey::rsa("new").sign(&claims))
            .await
            .map(|_| ()),
        Err(Failure::Unavailable(Unavailable::KeyUnreachable))
    );
    let mut c2 = claims.clone();
    c2["jti"] = json!("second");
    assert!(verifier.verify(&rsa.sign(&c2)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotated_in_during_an_outage_is_a_503_then_verifies_a_second_after_the_provider_is_back(
) {
    let s = setup().await;
    let Setup {
        provider,
        verifier,
        clock,
        rsa,
    } = s;
    let port: u16 = url::Url::parse(provider.issuer()).unwrap().port().unwrap();
    let claims = provider.service_claims("billing-service", "orders:read", NOW, 300);
    drop(provider);
    let rotated = SigningKey::rsa("rotated");
    let token = rotated.sign(&claims);
    // Not "invalid": the gateway could not look. Asked again in the same second, the failed
    // fetch is not retried (no pile-up on a provider that is down).
    for _ in 0..3 {
        assert_eq!(
            verifier.verify(&token).await.map(|_| ()),
            Err(Failure::Unavailable(Unavailable::KeyUnreachable))
        );
    }
    let provider = TestProvider::start(&[&rsa, &rotated], Some(port)).await;
    assert_eq!(
        verifier.verify(&token).await.map(|_| ()),
        Err(Failure::Unavailable(Unavailable::KeyUnreachable)),
        "within a second of the failed fetch, none again"
    );
    assert_eq!(provider.jwks_fetches(), 0);
    // One second on (not the ten a successful fetch holds): fetched once, verified.
    clock.store(NOW + 1, Ordering::SeqCst);
    assert_eq!(verifier.verify(&token).await.map(|_| ()), Ok(()));
    assert_eq!(provider.jwks_fetches(), 1);
    // A kid the fresh key set does not hold is unknown, and holds the 10 s limit.
    let unknown = SigningKey::rsa("never-published").sign(&claims);
    assert_eq!(
        verifier.verify(&unknown).await.map(|_| ()),
        invalid(TokenError::UnknownKeyId)
    );
    clock.store(NOW + 5, Ordering::SeqCst);
    assert_eq!(
        verifier.verify(&unknown).await.map(|_| ()),
        invalid(TokenError::UnknownKeyId)
    );
    assert_eq!(
        provider.jwks_fetches(),
        1,
        "the key set fetched a moment ago answers for it: no fetch within 10 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refused_not_admitted_while_keys_are_not_loaded() {
    let rsa = SigningKey::rsa("rsa-1");
    let port = support::free_port();
    let issuer = format!("http://127.0.0.1:{port}/realms/test");
    let settings = settings(&issuer, vec![Algorithm::RS256]);
    let verifier = Verifier::new(
        vec![settings],
        claims_paths(),
        http_client(),
        Arc::new(|| NOW),
    );
    let mut c = json!({"iss": issuer, "aud": "portcullis", "exp": NOW + 60, "azp": "x"});
    let r = verifier.verify(&rsa.sign(&c)).await.map(|_| ());
    assert_eq!(r, Err(Failure::Unavailable(Unavailable::KeysNotLoaded)));
    assert!(!verifier.is_ready());
    // The provider comes up on that port: after the 10 s refetch window keys load.
    let provider = TestProvider::start(&[&rsa], Some(port)).await;
    assert_eq!(provider.issuer(), issuer);
    verifier.issuers()[0].fetch_keys().await.unwrap();
    assert!(verifier.is_ready());
    c["jti"] = json!("after");
    assert!(verifier.verify(&rsa.sign(&c)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_answers_are_cached_at_most_introspection_cache_and_never_past_exp() {
    let rsa = SigningKey::rsa("rsa-1");
    let provider = TestProvider::start(&[&rsa], None).await;
    let clock = Arc::new(AtomicU64::new(NOW));
    let c = clock.clone();
    let settings = IssuerSettings {
        introspection: true,
        credentials: Some(portcullis::auth::issuer::Credentials {
            client_id: "portcullis".into(),
            client_secret: portcullis::secret::Secret::new("s".into()),
        }),
        clock_skew: Duration::from_secs(0),
        ..settings(provider.issuer(), vec![Algorithm::RS256])
    };
    let verifier = Verifier::new(
        vec![settings],
        claims_paths(),
        http_client(),
        Arc::new(move || c.load(Ordering::SeqCst)),
    );
    verifier.issuers()[0].fetch_keys().await.unwrap();
    provider.state.opaque.lock().unwrap().insert("opaque-1".into(), json!({"active": true, "client_id": "inventory-service", "scope": "inventory:read", "exp": NOW + 10}));
    let v = verifier.verify("opaque-1").await.unwrap();
    assert_eq!(v.identity.client.as_deref(), Some("inventory-service"));
    assert_eq!(verifier.verify("opaque-1").await.map(|_| ()), Ok(()));
    assert_eq!(
        provider.state.introspections.load(Ordering::SeqCst),
        1,
        "the second use came from the cache"
    );
    // Revoked at the provider: still cached, but never past exp.
    provider.state.opaque.lock().unwrap().clear();
    clock.store(NOW + 11, Ordering::SeqCst);
    assert_eq!(
        verifier.verify("opaque-1").await.map(|_| ()),
        invalid(TokenError::Inactive)
    );
    assert_eq!(
        verifier.verify("unknown").await.map(|_| ()),
        invalid(TokenError::Inactive)
    );
}

// ------------------------------------------------------------------ logout tokens

use portcullis::session::revocation::{Ended, LogoutTokenError, Revocations};

const BACKCHANNEL: &str = "http://schemas.openid.net/event/backchannel-logout";

fn logout_claims(s: &Setup, jti: &str) -> Value {
    json!({
        "iss": s.provider.issuer(), "aud": "portcullis", "iat": NOW, "exp": NOW + 120,
        "jti": jti, "sid": "op-session-1", "sub": "alice",
        "events": { BACKCHANNEL: {} },
    })
}

async fn logout(s: &Setup, r: &Revocations, token: &str) -> Result<Ended, LogoutTokenError> {
    r.verify_logout_token(token, &s.verifier.issuers()[0], "portcullis", NOW)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_token_ends_its_sid_once_and_its_replay_is_refused() {
    let s = setup().await;
    let r = Revocations::new(Duration::from_secs(3600));
    let t = s.rsa.sign(&logout_claims(&s, "j1"));
    assert_eq!(
        logout(&s, &r, &t).await,
        Ok(Ended::Sid("op-session-1".into()))
    );
    assert_eq!(logout(&s, &r, &t).await, Err(LogoutTokenError::Replayed));
    // Only `sub`: every session of the user.
    let mut c = logout_claims(&s, "j2");
    c.as_object_mut().unwrap().remove("sid");
    let t = s.rsa.sign(&c);
    assert_eq!(logout(&s, &r, &t).await, Ok(Ended::Sub("alice".into())));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_that_are_not_logout_tokens_end_nothing() {
    let s = setup().await;
    let r = Revocations::new(Duration::from_secs(3600));
    let edit = |jti: &str, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = logout_claims(&s, jti);
        f(c.as_object_mut().unwrap());
        s.rsa.sign(&c)
    };
    let cases = [
        (
            "an ID token: no event",
            edit("a", &|c| {
                c.remove("events");
            }),
        ),
        (
            "another event",
            edit("b", &|c| {
                c.insert("events".into(), json!({"urn:other": {}}));
            }),
        ),
        (
            "a nonce (an ID token in disguise)",
            edit("c", &|c| {
                c.insert("nonce".into(), json!("n"));
            }),
        ),
        (
            "neither sid nor sub",
            edit("d", &|c| {
                c.remove("sid");
                c.remove("sub");
            }),
        ),
        (
            "no jti",
            edit("e", &|c| {
                c.remove("jti");
            }),
        ),
        (
            "another client's",
            edit("f", &|c| {
                c.insert("aud".into(), json!("other-client"));
            }),
        ),
        (
            "expired",
            edit("g", &|c| {
                c.insert("exp".into(), json!(NOW - 60));
            }),
        ),
        (
            "no exp and old",
            edit("h", &|c| {
                c.remove("exp");
                c.insert("iat".into(), json!(NOW - 3600));
            }),
        ),
        (
            "another issuer",
            edit("i", &|c| {
                c.insert("iss".into(), json!("http://127.0.0.1:1/evil"));
            }),
        ),
    ];
    for (what, token) in cases {
        assert!(logout(&s, &r, &token).await.is_err(), "{what} was accepted");
    }
    let forged = SigningKey::attacker_rsa("rsa-1").sign(&logout_claims(&s, "k"));
    assert!(
        logout(&s, &r, &forged).await.is_err(),
        "a forged signature was accepted"
    );
    assert!(logout(&s, &r, "not-a-jwt").await.is_err());
    // A draft-style token without `exp` but recent is accepted.
    let recent = edit("l", &|c| {
        c.remove("exp");
    });
    assert!(logout(&s, &r, &recent).await.is_ok());
}
