//! What the micro-benchmarks share: the test keys, a JWKS served on 127.0.0.1 (so an issuer's
//! keys are loaded through the gateway's own fetch), and a poll for futures that never wait.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/keys");

/// A far future `exp`, so no token of a bench ever expires.
pub const FAR: u64 = 4_102_444_800;
/// The benches' clock.
pub const NOW: u64 = 1_800_000_000;
pub const ISSUER: &str = "http://127.0.0.1:1/realms/internal";

/// A signing key of the test set (`tests/support/keys`).
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
    pub public: Jwk,
}

impl SigningKey {
    pub fn rsa() -> Self {
        Self::load("rsa-bench", Algorithm::RS256, "rsa.pem")
    }

    pub fn ec() -> Self {
        Self::load("ec-bench", Algorithm::ES256, "ec.pem")
    }

    fn load(kid: &str, alg: Algorithm, file: &str) -> Self {
        let pem = std::fs::read(format!("{KEYS}/{file}")).expect("the test keys");
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
            _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
        };
        let mut public = Jwk::from_encoding_key(&key, alg).unwrap();
        public.common.key_id = Some(kid.to_owned());
        SigningKey {
            kid: kid.to_owned(),
            alg,
            key,
            public,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }
}

/// A Keycloak-shaped user access token's claims (as the look-alike provider issues them).
pub fn user_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "6a1f3c2e-0000-4000-8000-00000000a11c",
        "aud": ["portcullis", "account"], "azp": "portcullis", "typ": "Bearer",
        "scope": "openid profile email orders:read", "iat": NOW - 60, "exp": FAR,
        "jti": "2f0c1a8e-6a57-4d4e-9b43-0c6b1d8f4e11",
        "preferred_username": "alice", "name": "Alice Liddell", "given_name": "Alice",
        "family_name": "Liddell", "email": "alice@example.com", "email_verified": true,
        "groups": ["/staff", "/minio-users"],
        "realm_access": {"roles": ["minio-user", "offline_access", "uma_authorization"]},
        "resource_access": {"portcullis": {"roles": ["admin"]}, "account": {"roles": ["view-profile"]}}
    })
}

/// A client-credentials token's claims.
pub fn service_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "billing-service", "aud": ["portcullis", "account"],
        "azp": "billing-service", "client_id": "billing-service", "typ": "Bearer",
        "scope": "orders:read orders:write", "iat": NOW - 60, "exp": FAR,
        "jti": "9d3c2b1a-0000-4000-8000-000000000001",
        "preferred_username": "service-account-billing-service",
        "realm_access": {"roles": ["service"]},
        "resource_access": {"portcullis": {"roles": ["orders-writer"]}}
    })
}

/// Serves `keys` as a JWKS at `http://127.0.0.1:<port>/certs` on a thread of its own, for
/// as long as the bench runs. Returns the URL.
pub fn serve_jwks(keys: &[&SigningKey]) -> url::Url {
    let body = serde_json::to_vec(&JwkSet {
        keys: keys.iter().map(|k| k.public.clone()).collect(),
    })
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                            let body = body.clone();
                            async move {
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(body)))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    url::Url::parse(&format!("http://{addr}/certs")).unwrap()
}

/// The output of a future that completes without waiting (a cache hit, a key already
/// loaded): polled once, with no runtime in the measurement. Panics if it would wait.
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future waited: the bench measures no I/O"),
    }
}
