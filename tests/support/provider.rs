//! An in-process OpenID provider for exhaustive token tests: discovery, a JWKS whose keys
//! the test changes at will, an RFC 7662 introspection endpoint, and token minting with
//! the test keys in `tests/support/keys`. It counts JWKS fetches, and can be stopped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/keys");

/// A signing key of the test provider.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
    pub public: Jwk,
}

impl SigningKey {
    pub fn rsa(kid: &str) -> Self {
        Self::from_pem(kid, Algorithm::RS256, "rsa.pem")
    }

    pub fn attacker_rsa(kid: &str) -> Self {
        Self::from_pem(kid, Algorithm::RS256, "attacker-rsa.pem")
    }

    pub fn ec(kid: &str) -> Self {
        Self::from_pem(kid, Algorithm::ES256, "ec.pem")
    }

    fn from_pem(kid: &str, alg: Algorithm, file: &str) -> Self {
        let pem = std::fs::read(format!("{KEYS}/{file}")).unwrap();
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

    /// Signs `claims` with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }
}

/// Shared state of a running test provider.
pub struct State {
    pub issuer: String,
    pub published: Mutex<Vec<Jwk>>,
    pub jwks_fetches: AtomicUsize,
    /// Opaque token → introspection answer.
    pub opaque: Mutex<HashMap<String, Value>>,
    pub introspections: AtomicUsize,
}

/// A running in-process provider. Dropping it stops it: the listener and every open
/// connection (a client's kept-alive one too), as a provider that went down.
pub struct TestProvider {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.stop.send(true);
    }
}

impl TestProvider {
    /// Starts a provider publishing `keys`, on a fresh port or on `port`.
    pub async fn start(keys: &[&SigningKey], port: Option<u16>) -> TestProvider {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            issuer: format!("http://{addr}/realms/test"),
            published: Mutex::new(keys.iter().map(|k| k.public.clone()).collect()),
            jwks_fetches: AtomicUsize::new(0),
            opaque: Mutex::new(HashMap::new()),
            introspections: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = shared.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, st.clone()));
                    let serve = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        TestProvider {
            addr,
            state,
            task,
            stop,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.state.published.lock().unwrap() = keys.iter().map(|k| k.public.clone()).collect();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a service token for this issuer, valid from `now` for `ttl` seconds.
    pub fn service_claims(&self, client: &str, scope: &str, now: u64, ttl: u64) -> Value {
        json!({
            "iss": self.issuer(), "sub": client, "azp": client, "client_id": client,
            "aud": ["portcullis", "account"], "scope": scope, "iat": now, "exp": now + ttl,
            "preferred_username": format!("service-account-{client}"),
            "realm_access": {"roles": ["service"]},
            "resource_access": {"portcullis": {"roles": ["orders-writer"]}},
            "typ": "Bearer"
        })
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    st: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let base = st.issuer.clone();
    let json_resp = |status: u16, v: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    let answer = match path.as_str() {
        "/realms/test/.well-known/openid-configuration" => json_resp(
            200,
            json!({
                "issuer": base,
                "jwks_uri": format!("{base}/protocol/openid-connect/certs"),
                "introspection_endpoint": format!("{base}/protocol/openid-connect/token/introspect"),
                "token_endpoint": format!("{base}/protocol/openid-connect/token"),
                "authorization_endpoint": format!("{base}/protocol/openid-connect/auth"),
            }),
        ),
        "/realms/test/protocol/openid-connect/certs" => {
            st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let set = JwkSet {
                keys: st.published.lock().unwrap().clone(),
            };
            json_resp(200, serde_json::to_value(set).unwrap())
        }
        "/realms/test/protocol/openid-connect/token/introspect" => {
            st.introspections.fetch_add(1, Ordering::SeqCst);
            let authorized = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic "));
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            if !authorized {
                json_resp(401, json!({"error": "invalid_client"}))
            } else {
                let token = form.get("token").cloned().unwrap_or_default();
                let answer = st
                    .opaque
                    .lock()
                    .unwrap()
                    .get(&token)
                    .cloned()
                    .unwrap_or(json!({"active": false}));
                json_resp(200, answer)
            }
        }
        "/realms/test/protocol/openid-connect/token" => {
            // Client credentials for client `svc` with secret `svc-secret` (HTTP Basic).
            let basic = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            use base64::Engine as _;
            let good = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("svc:svc-secret")
            );
            if basic != good
                || form.get("grant_type").map(String::as_str) != Some("client_credentials")
            {
                json_resp(
                    401,
                    json!({"error": "invalid_client", "error_description": "client authentication failed"}),
                )
            } else {
                let scope = form.get("scope").cloned().unwrap_or_default();
                json_resp(
                    200,
                    json!({"access_token": format!("token-for-svc-scope-{scope}"), "token_type": "Bearer", "expires_in": 300}),
                )
            }
        }
        _ => json_resp(404, json!({"error": "not_found"})),
    };
    Ok(answer)
}
