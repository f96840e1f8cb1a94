//! Bearer tokens in, identities out: JWTs by signature, opaque tokens by introspection,
//! both cached so a service sending the same token thousands of times pays once.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use serde_json::Value;

use super::claims;
use super::error::{TokenError, Unavailable};
use super::introspect::{self, Answer};
use super::issuer::{Credentials, Issuer, IssuerSettings};
use super::jwt;
use crate::config::{Claims, Config, Introspection};
use crate::identity::Identity;
use crate::telemetry::METRICS;

pub use crate::clock::{system_clock, Clock};

/// How many verified tokens (and introspection answers) are kept.
const CACHE_ENTRIES: u64 = 100_000;
/// Longest an introspection under way is shared: the HTTP client gives up sooner (5 s).
const INTROSPECTING_FOR: Duration = Duration::from_secs(30);

/// A verified credential.
#[derive(Debug)]
pub struct Verified {
    pub identity: Identity,
    /// Seconds since the epoch; a cached entry is never used at or past it.
    pub expires_at: u64,
    pub issuer: String,
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Invalid(TokenError),
    Unavailable(Unavailable),
}

type Key = [u8; 32];

/// The SHA-256 of a secret value (a token, a sealed cookie): what the caches of verified
/// tokens and of opened sessions are keyed by, so that they never hold the value itself.
pub fn cache_key(value: &str) -> Key {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// A cached verification, used while the gateway's clock is before `until` (seconds since
/// the epoch): the token's `exp`, or for an introspection answer the end of
/// `introspection_cache` if that comes first. The clock decides, so the tests move it
/// instead of waiting.
#[derive(Clone)]
struct Cached {
    verified: Arc<Verified>,
    until: u64,
}

/// Removes each entry from memory a while after its `until` (moka's own time): that only
/// bounds memory, [`cached`] decides with the gateway's clock.
struct UntilDeadline {
    clock: Clock,
}

/// How long past its `until` an entry may stay in memory.
const EVICT_AFTER: Duration = Duration::from_secs(60);

impl moka::Expiry<Key, Cached> for UntilDeadline {
    fn expire_after_create(
        &self,
        _k: &Key,
        v: &Cached,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        let left = v.until.saturating_sub((self.clock)());
        Some(Duration::from_secs(left).saturating_add(EVICT_AFTER))
    }
}

/// One introspection under way for a token: the requests with that token share its answer.
type IntrospectionCall = tokio::sync::OnceCell<Result<Arc<Verified>, Failure>>;

/// Verifies bearer tokens for every configured issuer.
pub struct Verifier {
    issuers: Vec<Arc<Issuer>>,
    claims: Claims,
    http: reqwest::Client,
    clock: Clock,
    verified: Cache<Key, Cached>,
    introspected: Cache<Key, Cached>,
    /// Introspections under way, by token: requests that carry the same token at the same
    /// moment wait for the one call and share its answer, so a slow provider sees one call
    /// per token, not one per request.
    introspecting: Cache<Key, Arc<IntrospectionCall>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

/// The HTTP client for discovery, keys and introspection: no redirects, short timeouts.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

impl Verifier {
    /// The issuers of a configuration: `[provider]` first, then `[[issuers]]` in order.
    pub fn from_config(config: &Config, http: reqwest::Client, clock: Clock) -> Verifier {
        Self::from_config_keeping(config, http, clock, &[])
    }

    /// Like [`Verifier::from_config`], for a reload: an issuer whose settings are those of
    /// one in `kept` is that one, with the discovery and keys it has loaded. The caches of
    /// verified tokens start empty: the new settings (audiences, claims) judge every token.
    pub fn from_config_keeping(
        config: &Config,
        http: reqwest::Client,
        clock: Clock,
        kept: &[Arc<Issuer>],
    ) -> Verifier {
        let mut settings = Vec::new();
        if let Some(p) = &config.provider {
            settings.push(IssuerSettings {
                issuer: p.issuer.as_str().trim_end_matches('/').to_owned(),
                discovery: true,
                jwks_uri: None,
                introspection_endpoint: None,
                introspection: p.introspection == Introspection::Auto && p.client_secret.is_some(),
                introspection_cache: p.introspection_cache,
                credentials: p.client_secret.clone().map(|s| Credentials {
                    client_id: p.client_id.clone(),
                    client_secret: s,
                }),
                audiences: p.audiences.clone(),
                algorithms: p.algorithms.clone(),
                clock_skew: p.clock_skew,
            });
        }
        let skew = config
            .provider
            .as_ref()
            .map_or(Duration::from_secs(30), |p| p.clock_skew);
        for i in &config.issuers {
            settings.push(IssuerSettings {
                issuer: i.issuer.as_str().trim_end_matches('/').to_owned(),
                discovery: i.discovery,
                jwks_uri: i.jwks_uri.clone(),
                introspection_endpoint: i.introspection_endpoint.clone(),
                introspection: i.introspection == Introspection::Auto,
                introspection_cache: i.introspection_cache,
                credentials: match (&i.client_id, &i.client_secret) {
                    (Some(id), Some(s)) => Some(Credentials {
                        client_id: id.clone(),
                        client_secret: s.clone(),
                    }),
                    _ => None,
                },
                audiences: i.audiences.clone(),
                algorithms: i.algorithms.clone(),
                clock_skew: skew,
            });
        }
        Self::keeping(settings, kept, config.claims.clone(), http, clock)
    }

    pub fn new(
        settings: Vec<IssuerSettings>,
        claims: Claims,
        http: reqwest::Client,
        clock: Clock,
    ) -> Verifier {
        Self::keeping(settings, &[], claims, http, clock)
    }

    /// The issuers of `settings`, each one of `kept` when its settings are the same.
    fn keeping(
        settings: Vec<IssuerSettings>,
        kept: &[Arc<Issuer>],
        claims: Claims,
        http: reqwest::Client,
        clock: Clock,
    ) -> Verifier {
        let cache = || {
            Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(UntilDeadline {
                    clock: clock.clone(),
                })
                .build()
        };
        Verifier {
            issuers: settings
                .into_iter()
                .map(|s| match kept.iter().find(|i| i.settings == s) {
                    Some(same) => same.clone(),
                    None => Arc::new(Issuer::new(s, http.clone())),
                })
                .collect(),
            claims,
            http,
            verified: cache(),
            introspected: cache(),
            introspecting: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(INTROSPECTING_FOR)
                .build(),
            clock,
        }
    }

    pub fn issuers(&self) -> &[Arc<Issuer>] {
        &self.issuers
    }

    /// Whether every issuer has its discovery and keys.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|i| i.is_ready())
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Verifies a bearer token (already within `max_token_bytes`).
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, Failure> {
        let now = self.now();
        let key = cache_key(token);
        let result = if jwt::looks_like_jwt(token) {
            if let Some(hit) = cached(&self.verified, &key, now) {
                return Ok(hit);
            }
            self.verify_jwt(token, key, now).await
        } else {
            if let Some(hit) = cached(&self.introspected, &key, now) {
                if let Some(i) = self
                    .issuers
                    .iter()
                    .find(|i| i.settings.issuer == hit.issuer)
                {
                    METRICS
                        .introspections
                        .with_label_values(&[&i.settings.issuer, "true"])
                        .inc();
                }
                return Ok(hit);
            }
            self.introspect_once(token, key, now).await
        };
        if let Err(f) = &result {
            let reason = match f {
                Failure::Invalid(e) => e.reason(),
                Failure::Unavailable(_) => "unavailable",
            };
            METRICS.auth_failures.with_label_values(&[reason]).inc();
        }
        result
    }

    async fn verify_jwt(&self, token: &str, key: Key, now: u64) -> Result<Arc<Verified>, Failure> {
        let head = jwt::peek(token).map_err(Failure::Invalid)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| {
                i.settings.issuer == head.iss.trim_end_matches('/')
                    && (i.settings.discovery || i.settings.jwks_uri.is_some())
            })
            .ok_or(Failure::Invalid(TokenError::UnknownIssuer))?;
        let claims = jwt::verify(token, &head, issuer, now)
            .await
            .map_err(|e| match e {
                Ok(t) => Failure::Invalid(t),
                Err(u) => Failure::Unavailable(u),
            })?;
        let v = self.verified_from(&claims, &issuer.settings.issuer, token);
        let v = Arc::new(v);
        let until = v.expires_at;
        self.verified.insert(
            key,
            Cached {
                verified: v.clone(),
                until,
            },
        );
        Ok(v)
    }

    /// [`Verifier::introspect`], once for every request carrying `token` meanwhile.
    async fn introspect_once(
        &self,
        token: &str,
        key: Key,
        now: u64,
    ) -> Result<Arc<Verified>, Failure> {
        let call = self.introspecting.get_with(key, Default::default);
        let answer = call
            .get_or_init(|| self.introspect(token, key, now))
            .await
            .clone();
        // Done: the next request asks the cache of answers, or the provider again.
        self.introspecting.invalidate(&key);
        answer
    }

    async fn introspect(&self, token: &str, key: Key, now: u64) -> Result<Arc<Verified>, Failure> {
        let mut refusal = TokenError::OpaqueNotAccepted;
        let mut unreachable = false;
        for issuer in self.issuers.iter().filter(|i| i.introspection().is_some()) {
            match introspect::ask(&self.http, issuer, token, now).await {
                Answer::Active(claims) => {
                    let v = self.verified_from(&claims, &issuer.settings.issuer, token);
                    let cache_end =
                        now.saturating_add(issuer.settings.introspection_cache.as_secs());
                    let until = v.expires_at.min(cache_end);
                    let v = Arc::new(v);
                    if until > now {
                        self.introspected.insert(
                            key,
                            Cached {
                                verified: v.clone(),
                                until,
                            },
                        );
                    }
                    return Ok(v);
                }
                Answer::Refused(e) => refusal = e,
                Answer::Unreachable => unreachable = true,
            }
        }
        // An issuer that could not answer might have known the token: do not call it invalid.
        if unreachable {
            return Err(Failure::Unavailable(Unavailable::Introspection));
        }
        Err(Failure::Invalid(refusal))
    }

    fn verified_from(&self, claims: &Value, issuer: &str, token: &str) -> Verified {
        let mut identity = claims::identity(claims, &self.claims);
        identity.access_token = Some(crate::secret::Secret::new(token.to_owned()));
        // Without `exp` (introspection may omit it) the cache time alone bounds reuse.
        let expires_at = identity.expires_at.unwrap_or(u64::MAX);
        Verified {
            identity,
            expires_at,
            issuer: issuer.to_owned(),
        }
    }
}

fn cached(cache: &Cache<Key, Cached>, key: &Key, now: u64) -> Option<Arc<Verified>> {
    let c = cache.get(key)?;
    if now < c.until {
        Some(c.verified)
    } else {
        cache.invalidate(key);
        None
    }
}
