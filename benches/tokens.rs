//! Bearer tokens: what verifying one costs the first time (the signature), what every later
//! request with the same token costs (the verified-token cache), and what turning verified
//! claims into an identity costs.
//!
//!   cargo bench --bench tokens

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::Algorithm;
use portcullis::auth::issuer::{Issuer, IssuerSettings};
use portcullis::auth::verifier::{http_client, Verifier};
use portcullis::auth::{claims, jwt};
use portcullis::config::Claims;
use support::{ready, serve_jwks, service_claims, user_claims, SigningKey, ISSUER, NOW};

fn settings(jwks: url::Url) -> IssuerSettings {
    IssuerSettings {
        issuer: ISSUER.to_owned(),
        discovery: false,
        jwks_uri: Some(jwks),
        introspection_endpoint: None,
        introspection: false,
        introspection_cache: Duration::from_secs(60),
        credentials: None,
        audiences: vec!["portcullis".to_owned()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        clock_skew: Duration::from_secs(30),
    }
}

/// A verifier for [`ISSUER`] whose keys (RS256 and ES256) were fetched from a local JWKS.
fn verifier(keys: &[&SigningKey]) -> Verifier {
    let v = Verifier::new(
        vec![settings(serve_jwks(keys))],
        Claims::defaults("portcullis"),
        http_client(),
        Arc::new(|| NOW),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = rt
        .block_on(v.issuers()[0].fetch_keys())
        .expect("the local JWKS");
    assert_eq!(n, keys.len());
    v
}

/// How long does verifying a JWT take when the verified-token cache has not seen it: the
/// header and `iss` read, the key found by `kid`, the signature checked (RS256 2048-bit and
/// ES256 P-256, aws-lc), then `iss`, `exp`, `nbf`, `iat` and `aud`? (jwt::peek + jwt::verify,
/// which is what a cache miss runs before the identity is built and cached.)
fn jwt_verification_cold(c: &mut Criterion) {
    let rsa = SigningKey::rsa();
    let ec = SigningKey::ec();
    let v = verifier(&[&rsa, &ec]);
    let issuer: &Issuer = &v.issuers()[0];
    let mut g = c.benchmark_group("jwt verification, cold");
    for key in [&rsa, &ec] {
        let token = key.sign(&service_claims(ISSUER));
        g.bench_function(format!("{:?}", key.alg), |b| {
            b.iter(|| {
                let head = jwt::peek(&token).unwrap();
                ready(jwt::verify(&token, &head, issuer, NOW)).unwrap()
            })
        });
    }
    g.finish();
}

/// What does a request whose bearer token was verified before pay: the SHA-256 of the
/// token, the cache lookup, the expiry check? (Verifier::verify on a cached RS256 token of
/// the usual size.)
fn verified_token_cache_hit(c: &mut Criterion) {
    let rsa = SigningKey::rsa();
    let v = verifier(&[&rsa]);
    let token = rsa.sign(&service_claims(ISSUER));
    ready(v.verify(&token)).expect("the first verification");
    c.bench_function("verified-token cache hit (RS256 token)", |b| {
        b.iter(|| ready(v.verify(&token)).unwrap())
    });
}

/// How long does building the identity from verified claims take with the default
/// (Keycloak) claim paths: user, email, groups, realm and client roles merged, client,
/// subject, scopes? Once per verified token (a cache miss) and once per login.
fn claims_extraction(c: &mut Criterion) {
    let paths = Claims::defaults("portcullis");
    let mut g = c.benchmark_group("claims extraction");
    let user = user_claims(ISSUER);
    g.bench_function("user token", |b| b.iter(|| claims::identity(&user, &paths)));
    let service = service_claims(ISSUER);
    g.bench_function("service token", |b| {
        b.iter(|| claims::identity(&service, &paths))
    });
    // What a request that copies the identity (a deep clone) pays for it.
    let identity = claims::identity(&user, &paths);
    g.bench_function("identity clone", |b| {
        b.iter_batched(|| (), |_| identity.clone(), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(
    benches,
    jwt_verification_cold,
    verified_token_cache_hit,
    claims_extraction
);
criterion_main!(benches);
