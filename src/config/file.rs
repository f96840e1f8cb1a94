//! The serde mirror of `gateway.toml`. Unknown keys are errors everywhere.
//!
//! Nothing outside `config` reads these structs: [`super::Config`] is built from them in
//! one step, and request code only ever sees the runtime types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::value::{
    Alg, Cidr, ClientSecret, Dur, HeaderName, HttpUrl, Listen, OneOrMany, SessionSecret, Text,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub server: Server,
    pub admin: Option<Admin>,
    pub provider: Option<Spanned<Provider>>,
    #[serde(default)]
    pub issuers: Vec<Spanned<Issuer>>,
    #[serde(default)]
    pub claims: Claims,
    pub session: Option<Session>,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub routes: Vec<Spanned<Route>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: Spanned<Vec<Listen>>,
    pub public_url: Spanned<HttpUrl>,
    pub tls: Option<Tls>,
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    pub max_token_bytes: Option<Spanned<u64>>,
    /// Largest request head (request target and headers) accepted; defaults to 64 KiB.
    pub max_header_bytes: Option<Spanned<u64>>,
    /// Worker threads; defaults to the number of CPUs.
    pub threads: Option<Spanned<u64>>,
    /// How long SIGTERM waits for requests in flight; defaults to 10s.
    pub shutdown_grace: Option<Dur>,
    /// How long an idle keep-alive client connection is kept open; defaults to 75s.
    pub keepalive_timeout: Option<Dur>,
    /// How long a client may take to send a whole request head; defaults to 60s.
    pub header_timeout: Option<Dur>,
    /// How long a client may pause between two reads of its request body; defaults to 60s.
    pub body_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Spanned<Text>,
    pub key: Spanned<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: Spanned<Listen>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LoginFlow {
    Code,
    Implicit,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Introspection {
    Auto,
    Off,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub issuer: HttpUrl,
    pub client_id: Text,
    pub client_secret: Option<ClientSecret>,
    pub scopes: Option<Vec<Text>>,
    pub login_flow: Option<LoginFlow>,
    pub audiences: Option<Vec<Text>>,
    pub algorithms: Option<Spanned<Vec<Alg>>>,
    pub clock_skew: Option<Dur>,
    pub introspection: Option<Introspection>,
    pub introspection_cache: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    pub issuer: HttpUrl,
    pub discovery: Option<bool>,
    pub jwks_uri: Option<HttpUrl>,
    pub introspection_endpoint: Option<HttpUrl>,
    pub client_id: Option<Text>,
    pub client_secret: Option<ClientSecret>,
    pub audiences: Option<Vec<Text>>,
    pub algorithms: Option<Spanned<Vec<Alg>>>,
    pub introspection: Option<Introspection>,
    pub introspection_cache: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub user: Option<OneOrMany>,
    pub email: Option<OneOrMany>,
    pub groups: Option<OneOrMany>,
    pub roles: Option<OneOrMany>,
    pub client: Option<OneOrMany>,
    pub subject: Option<OneOrMany>,
    pub scopes: Option<OneOrMany>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    Cookie,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub secrets: Spanned<Vec<SessionSecret>>,
    pub cookie: Option<Spanned<Text>>,
    pub lifetime: Option<Dur>,
    pub refresh: Option<bool>,
    pub same_site: Option<SameSite>,
    pub store: Option<Spanned<Store>>,
    pub redis_url: Option<toml::Spanned<Text>>,
    pub redis_sentinels: Option<Spanned<Vec<Spanned<Text>>>>,
    pub redis_sentinel_master: Option<Spanned<Text>>,
    pub redis_cluster: Option<Spanned<Vec<Spanned<Text>>>>,
    pub redis_username: Option<Spanned<Text>>,
    pub redis_password: Option<Spanned<ClientSecret>>,
    pub domain: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    pub user: Option<HeaderName>,
    pub email: Option<HeaderName>,
    pub groups: Option<HeaderName>,
    pub roles: Option<HeaderName>,
    pub subject: Option<HeaderName>,
    pub client: Option<HeaderName>,
    pub scopes: Option<HeaderName>,
    pub access_token: Option<HeaderName>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Login,
    Bearer,
    Any,
    Public,
}

impl From<AuthMode> for crate::policy::AuthMode {
    fn from(mode: AuthMode) -> Self {
        match mode {
            AuthMode::Login => Self::Login,
            AuthMode::Bearer => Self::Bearer,
            AuthMode::Any => Self::Any,
            AuthMode::Public => Self::Public,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    #[serde(default)]
    pub roles: Vec<Text>,
    #[serde(default)]
    pub groups: Vec<Text>,
    #[serde(default)]
    pub clients: Vec<Text>,
    #[serde(default)]
    pub users: Vec<Text>,
    #[serde(default)]
    pub email_domains: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: Option<Text>,
    pub host: Option<Spanned<Text>>,
    pub path: Option<Spanned<Text>>,
    pub upstream: Option<HttpUrl>,
    pub upstreams: Option<Vec<HttpUrl>>,
    pub upstream_ca: Option<Spanned<Text>>,
    pub auth: AuthMode,
    pub allow: Option<Allow>,
    pub scopes: Option<Spanned<BTreeMap<String, Vec<Text>>>>,
    pub cors_preflight: Option<bool>,
}
