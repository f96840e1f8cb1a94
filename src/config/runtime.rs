//! The runtime configuration: what `gateway.toml` means, in the types each module uses
//! (addresses, durations, URLs and secrets parsed; routes compiled). Built by `build.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use super::file::{Introspection, LoginFlow, SameSite, Store};
use crate::policy::route::RouteTable;
use crate::secret::Secret;

/// The runtime configuration.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub server: Server,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`); none when `[admin]` is absent.
    pub admin: Option<SocketAddr>,
    pub provider: Option<Provider>,
    pub issuers: Vec<Issuer>,
    pub claims: Claims,
    pub session: Option<Session>,
    pub headers: Headers,
    pub routes: RouteTable,
}

#[derive(Debug)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    pub public_url: Url,
    pub tls: Option<Tls>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest bearer token accepted, in bytes. Defaults to 8192.
    pub max_token_bytes: usize,
    /// Largest request head accepted (the request target, header names and values), in
    /// bytes; a larger one is refused with 431. Defaults to [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Worker threads. Defaults to the number of CPUs (pingora's own default is 1).
    pub threads: usize,
    /// How long SIGTERM waits for requests in flight. Defaults to 10s.
    pub shutdown_grace: Duration,
    /// How long an idle keep-alive client connection waits for its next request before the
    /// gateway closes it. Defaults to [`DEFAULT_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// How long a client may take to send a whole request head (on a kept-alive
    /// connection, counted from the end of the keep-alive wait). nginx's
    /// `client_header_timeout`; defaults to [`DEFAULT_CLIENT_TIMEOUT`].
    pub header_timeout: Duration,
    /// How long a client may pause between two reads of its request body. nginx's
    /// `client_body_timeout`; defaults to [`DEFAULT_CLIENT_TIMEOUT`].
    pub body_timeout: Duration,
}

/// 64 KiB: twice nginx's default (four 8 KiB buffers), room for a session split into
/// several cookies next to a backend's own.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// nginx's `keepalive_timeout`: 75 s. Idle connections cost memory; without a bound they
/// would stay open for as long as clients like.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// nginx's `client_header_timeout` and `client_body_timeout`: 60 s.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The OpenID provider: logins, and the first issuer of bearer tokens.
#[derive(Debug)]
pub struct Provider {
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub login_flow: LoginFlow,
    /// Accepted `aud` values. Defaults to `[client_id]`.
    pub audiences: Vec<String>,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub clock_skew: Duration,
    pub introspection: Introspection,
    pub introspection_cache: Duration,
}

/// A further issuer of bearer tokens.
#[derive(Debug)]
pub struct Issuer {
    pub issuer: Url,
    pub discovery: bool,
    pub jwks_uri: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub audiences: Vec<String>,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub introspection: Introspection,
    pub introspection_cache: Duration,
}

/// Where identity lives in tokens: dotted paths, first present wins (lists are merged for
/// groups and roles). `{client_id}` is already replaced.
#[derive(Debug, Clone)]
pub struct Claims {
    pub user: Vec<String>,
    pub email: Vec<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub client: Vec<String>,
    pub subject: Vec<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Session {
    /// The first encrypts; all decrypt.
    pub secrets: Vec<Secret>,
    pub cookie: String,
    pub lifetime: Duration,
    pub refresh: bool,
    pub same_site: SameSite,
    pub store: Store,
    /// Where `store = "redis"` keeps sessions; `None` with `store = "cookie"`.
    pub redis: Option<Redis>,
    pub domain: Option<String>,
}

/// The Redis servers that hold sessions (`store = "redis"`).
#[derive(Debug, Clone)]
pub struct Redis {
    pub servers: RedisServers,
    /// `redis_username`: the ACL user on the servers that hold sessions (not the Sentinels).
    pub username: Option<String>,
    /// `redis_password`: the password of the servers that hold sessions (not the
    /// Sentinels); it replaces one written in their URLs.
    pub password: Option<Secret>,
}

/// One server, a primary that Sentinel names, or a Cluster. URLs are checked at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisServers {
    /// `redis_url`.
    One(String),
    /// `redis_sentinels` and `redis_sentinel_master`: the primary the Sentinels monitor
    /// under `master`, followed through failovers.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// `redis_cluster`: nodes of a Redis Cluster to learn its slots from.
    Cluster(Vec<String>),
}

impl Claims {
    /// The defaults (Keycloak's claim names), `{client_id}` replaced.
    pub fn defaults(client_id: &str) -> Claims {
        Claims::from_file(super::file::Claims::default(), client_id)
    }
}

/// Names of the identity headers sent upstream (and always stripped from clients).
#[derive(Debug, Clone)]
pub struct Headers {
    pub user: http::HeaderName,
    pub email: http::HeaderName,
    pub groups: http::HeaderName,
    pub roles: http::HeaderName,
    pub subject: http::HeaderName,
    pub client: http::HeaderName,
    pub scopes: http::HeaderName,
    pub access_token: Option<http::HeaderName>,
}

impl Headers {
    /// Every configured header name.
    pub fn all(&self) -> impl Iterator<Item = &http::HeaderName> {
        [
            &self.user,
            &self.email,
            &self.groups,
            &self.roles,
            &self.subject,
            &self.client,
            &self.scopes,
        ]
        .into_iter()
        .chain(self.access_token.as_ref())
    }
}

impl Default for Headers {
    fn default() -> Self {
        let h = http::HeaderName::from_static;
        Headers {
            user: h("x-auth-request-user"),
            email: h("x-auth-request-email"),
            groups: h("x-auth-request-groups"),
            roles: h("x-auth-request-roles"),
            subject: h("x-auth-request-subject"),
            client: h("x-auth-request-client"),
            scopes: h("x-auth-request-scopes"),
            access_token: None,
        }
    }
}

/// The default session cookie name; chunks are `_portcullis_1`, `_portcullis_2`, …
pub const DEFAULT_COOKIE: &str = "_portcullis";

impl Claims {
    /// The claims paths of `[claims]`, defaults filled in, `{client_id}` replaced.
    pub fn from_file(c: super::file::Claims, client_id: &str) -> Claims {
        let list = |v: Option<super::value::OneOrMany>, default: &[&str]| -> Vec<String> {
            v.map(|o| o.0)
                .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
                .into_iter()
                .map(|p| p.replace("{client_id}", client_id))
                .collect()
        };
        Claims {
            user: list(c.user, &["preferred_username", "sub"]),
            email: list(c.email, &["email"]),
            groups: list(c.groups, &["groups"]),
            roles: list(
                c.roles,
                &["realm_access.roles", "resource_access.{client_id}.roles"],
            ),
            client: list(c.client, &["azp", "client_id"]),
            subject: list(c.subject, &["sub"]),
            scopes: list(c.scopes, &["scope", "scp"]),
        }
    }
}

impl Headers {
    /// The header names of `[headers]`, defaults filled in.
    pub fn from_file(h: super::file::Headers) -> Headers {
        let d = Headers::default();
        Headers {
            user: h.user.map_or(d.user, |n| n.0),
            email: h.email.map_or(d.email, |n| n.0),
            groups: h.groups.map_or(d.groups, |n| n.0),
            roles: h.roles.map_or(d.roles, |n| n.0),
            subject: h.subject.map_or(d.subject, |n| n.0),
            client: h.client.map_or(d.client, |n| n.0),
            scopes: h.scopes.map_or(d.scopes, |n| n.0),
            access_token: h.access_token.map(|n| n.0),
        }
    }
}
