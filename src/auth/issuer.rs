//! One issuer of tokens: its discovery document, its signing keys, its introspection
//! endpoint.
//!
//! Keys are fetched in the background and on demand. An unknown `kid` triggers at most
//! one JWKS fetch at a time and at most one per [`MIN_REFETCH`] (per [`RETRY_FAILED`]
//! after a failed one); a failed fetch keeps the keys already loaded, so an outage of the
//! provider never stops verification with them, and a key it could not fetch is
//! "unreachable" (503), not "unknown" (401).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use url::Url;

use crate::secret::Secret;
use crate::telemetry::METRICS;

/// The shortest time between two JWKS fetches caused by unknown key ids.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// The shortest time between two such fetches after one failed: short, so a key rotated in
/// during an outage verifies within a second or so of the provider's return.
pub const RETRY_FAILED: Duration = Duration::from_secs(1);
/// How often keys are refreshed in the background once loaded.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The longest wait between two attempts while discovery or keys are failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The parts of a discovery document the gateway uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub authorization_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
}

/// A verification key with what it may verify.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The `alg` the JWK declares, if any: then only that algorithm.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
    kind: KeyKind,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyKind {
    Rsa,
    Ec(EcCurve),
    Ed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EcCurve {
    P256,
    P384,
    Other,
}

impl Key {
    /// Whether this key may verify a token signed with `alg`: the key type must fit the
    /// algorithm (an RSA key never verifies an HMAC or EC token), and a JWK `alg` must match.
    pub fn fits(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        use Algorithm::*;
        match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => self.kind == KeyKind::Rsa,
            ES256 => self.kind == KeyKind::Ec(EcCurve::P256),
            ES384 => self.kind == KeyKind::Ec(EcCurve::P384),
            EdDSA => self.kind == KeyKind::Ed,
            // HMAC (never with a public key) and algorithms jsonwebtoken adds later.
            _ => false,
        }
    }
}

/// The keys of one issuer as last fetched.
#[derive(Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS, skipping keys that cannot be used (encryption keys, symmetric keys,
    /// unknown types): one odd key must not take the others down.
    pub fn from_jwks(set: &JwkSet) -> KeySet {
        let keys = set
            .keys
            .iter()
            .filter(|jwk| {
                !matches!(
                    jwk.common.public_key_use,
                    Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
                )
            })
            .filter_map(|jwk| {
                let kind = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                    AlgorithmParameters::EllipticCurve(p) => KeyKind::Ec(match p.curve {
                        EllipticCurve::P256 => EcCurve::P256,
                        EllipticCurve::P384 => EcCurve::P384,
                        _ => EcCurve::Other,
                    }),
                    AlgorithmParameters::OctetKeyPair(_) => KeyKind::Ed,
                    // Symmetric keys are never trusted, and unknown kinds are skipped.
                    _ => return None,
                };
                let alg = match jwk.common.key_algorithm {
                    None => None,
                    // A JWK for another use (RSA-OAEP …) is skipped.
                    Some(a) => Some(
                        serde_json::to_value(a)
                            .ok()?
                            .as_str()?
                            .parse::<Algorithm>()
                            .ok()?,
                    ),
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                    kind,
                })
            })
            .collect();
        KeySet { keys }
    }

    /// The key for a token header: by `kid` when the token names one; without a `kid`,
    /// the only key that fits the algorithm.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.fits(alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

/// Credentials for introspection (client_secret_basic).
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// Static settings of an issuer, from `[provider]` or `[[issuers]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerSettings {
    pub issuer: String,
    pub discovery: bool,
    pub jwks_uri: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    pub introspection: bool,
    pub introspection_cache: Duration,
    pub credentials: Option<Credentials>,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub clock_skew: Duration,
}

/// Why [`Issuer::key_for`] has no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// The issuer's current key set, just fetched, does not hold it.
    Unknown,
    /// The key set could not be fetched to look for it.
    Unreachable,
}

#[derive(Debug, Clone, Copy)]
struct OnDemandFetch {
    /// Seconds, on the injected clock.
    at: u64,
    ok: bool,
}

impl OnDemandFetch {
    /// Whether another fetch must wait.
    fn is_recent(self, now: u64) -> bool {
        let wait = if self.ok { MIN_REFETCH } else { RETRY_FAILED };
        now.saturating_sub(self.at) < wait.as_secs()
    }
}

/// One issuer at run time.
pub struct Issuer {
    pub settings: IssuerSettings,
    http: reqwest::Client,
    discovery: RwLock<Option<Arc<Discovery>>>,
    keys: RwLock<Arc<KeySet>>,
    keys_loaded: std::sync::atomic::AtomicBool,
    /// The last JWKS fetch an unknown `kid` caused; guards their rate. Start-up and
    /// background refreshes do not count, so a key rotated in right after them is still
    /// fetched on first sight.
    last_fetch: Mutex<Option<OnDemandFetch>>,
    /// How many such fetches have run: a caller that waited for one uses its outcome.
    on_demand_fetches: std::sync::atomic::AtomicU64,
    /// Held while a fetch runs: callers with the same unknown kid wait for that fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    pub fn new(settings: IssuerSettings, http: reqwest::Client) -> Self {
        let discovery = (!settings.discovery).then(|| {
            Arc::new(Discovery {
                issuer: settings.issuer.clone(),
                jwks_uri: settings.jwks_uri.clone(),
                introspection_endpoint: settings.introspection_endpoint.clone(),
                ..Discovery::default()
            })
        });
        Issuer {
            settings,
            http,
            discovery: RwLock::new(discovery),
            keys: RwLock::new(Arc::new(KeySet::default())),
            keys_loaded: std::sync::atomic::AtomicBool::new(false),
            last_fetch: Mutex::new(None),
            on_demand_fetches: std::sync::atomic::AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The discovery document, once fetched (or built from the settings).
    pub fn discovery(&self) -> Option<Arc<Discovery>> {
        self.discovery
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The issuer tokens must name exactly: the discovery document's, else the configured one.
    pub fn expected_iss(&self) -> String {
        self.discovery()
            .map_or_else(|| self.settings.issuer.clone(), |d| d.issuer.clone())
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ready when discovery is done and, if the issuer signs JWTs, its keys are loaded.
    pub fn is_ready(&self) -> bool {
        match self.discovery() {
            None => false,
            Some(d) => {
                d.jwks_uri.is_none() || self.keys_loaded.load(std::sync::atomic::Ordering::Acquire)
            }
        }
    }

    /// The introspection endpoint and credentials, when introspection is on.
    pub fn introspection(&self) -> Option<(Url, &Credentials)> {
        if !self.settings.introspection {
            return None;
        }
        let endpoint = self
            .settings
            .introspection_endpoint
            .clone()
            .or_else(|| self.discovery()?.introspection_endpoint.clone())?;
        Some((endpoint, self.settings.credentials.as_ref()?))
    }

    /// Fetches the discovery document. The `issuer` it names must be exactly ours.
    pub async fn discover(&self) -> Result<Arc<Discovery>, String> {
        if let Some(d) = self.discovery() {
            return Ok(d);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        // The document's issuer is the one tokens must carry, byte for byte; it may differ
        // from the configured one only by a trailing slash.
        if doc.issuer.trim_end_matches('/') != self.settings.issuer {
            return Err(format!(
                "the discovery document at {url} names issuer {:?}, not {:?}",
                doc.issuer, self.settings.issuer
            ));
        }
        let doc = Arc::new(doc);
        *self.discovery.write().unwrap_or_else(|e| e.into_inner()) = Some(doc.clone());
        Ok(doc)
    }

    /// Fetches the JWKS and replaces the key set. On failure the old keys stay.
    pub async fn fetch_keys(&self) -> Result<usize, String> {
        let discovery = self.discover().await?;
        let Some(uri) = discovery.jwks_uri.clone() else {
            return Ok(0);
        };
        METRICS
            .jwks_fetches
            .with_label_values(&[&self.settings.issuer])
            .inc();
        let set: JwkSet = self.get_json(uri.as_str()).await?;
        let keys = KeySet::from_jwks(&set);
        let n = keys.keys.len();
        if n == 0 {
            return Err(format!("the JWKS at {uri} holds no usable signing key"));
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        self.keys_loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(n)
    }

    /// The key for a token, fetching the JWKS again when the `kid` is unknown — at most
    /// one fetch at a time (callers that waited for it take its outcome), at most one per
    /// [`MIN_REFETCH`], or per [`RETRY_FAILED`] after a failed one.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: u64,
    ) -> Result<Key, MissingKey> {
        use std::sync::atomic::Ordering;
        if let Some(k) = self.keys().find(kid, alg) {
            return Ok(k.clone());
        }
        let fetches_seen = self.on_demand_fetches.load(Ordering::Acquire);
        let fetched = {
            let _one_at_a_time = self.fetching.lock().await;
            // A fetch that finished while we waited may have brought the key.
            if let Some(k) = self.keys().find(kid, alg) {
                return Ok(k.clone());
            }
            let last = *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            let waited_for_one = self.on_demand_fetches.load(Ordering::Acquire) != fetches_seen;
            match last {
                Some(last) if waited_for_one || last.is_recent(now) => last.ok,
                _ => {
                    let ok = match self.fetch_keys().await {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::warn!(issuer = %self.settings.issuer, error = %e, "JWKS fetch for an unknown key failed");
                            false
                        }
                    };
                    *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(OnDemandFetch { at: now, ok });
                    self.on_demand_fetches.fetch_add(1, Ordering::Release);
                    ok
                }
            }
        };
        match self.keys().find(kid, alg) {
            Some(k) => Ok(k.clone()),
            None if fetched => Err(MissingKey::Unknown),
            None => Err(MissingKey::Unreachable),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        resp.json::<T>()
            .await
            .map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
    }

    /// Keeps discovery and keys loaded: retries with backoff (up to [`MAX_BACKOFF`]) until
    /// they are, then refreshes the keys every [`REFRESH_EVERY`].
    pub async fn maintain(&self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let wait = match self.fetch_keys().await {
                Ok(n) => {
                    if backoff > Duration::from_millis(250) || !self.is_ready() {
                        tracing::info!(issuer = %self.settings.issuer, keys = n, "issuer ready");
                    }
                    backoff = Duration::from_millis(250);
                    REFRESH_EVERY
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.settings.issuer, error = %e, retry_in = ?backoff, "issuer not reachable");
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    w
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// An error and its causes on one line (reqwest hides the useful part in its sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
