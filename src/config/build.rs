//! The second stage of loading: the serde mirror of `gateway.toml` ([`super::file`])
//! turned into the runtime types ([`super::runtime`]), each value checked in context —
//! every refusal names its key and what would be accepted.
//!
//! About 540 lines: one method per section of `gateway.toml`, in the file's order, on one
//! `Builder` that carries the locator for error positions; split by section, each part
//! would need the builder back from its parent.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::error::{ConfigError, Locator};
use super::file::{self, AuthMode};
use super::runtime::*;
use super::value;
use crate::policy::path;
use crate::policy::route::{
    parse_upstream_ca, Allow, HostPattern, Route, RouteTable, ScopeRules, Upstream,
};

pub struct Builder<'a> {
    pub here: &'a Locator<'a>,
    pub base: &'a Path,
}

impl Builder<'_> {
    pub fn build(&self, raw: file::File, path: &Path) -> Result<Config, ConfigError> {
        let server = self.server(raw.server)?;
        let admin = raw.admin.map(|a| a.listen);
        if let Some(addr) = &admin {
            if server.listen.contains(&addr.get_ref().0) {
                return Err(self.here.span(addr, "admin.listen", format!(
                    "{} is also a public listener: the admin endpoints must never be on the public listener",
                    addr.get_ref().0
                )));
            }
        }
        let admin = admin.map(|a| a.into_inner().0);
        let provider = raw.provider.map(|p| self.provider(p)).transpose()?;
        let client_id = provider.as_ref().map(|p| p.client_id.as_str());
        let issuers = raw
            .issuers
            .into_iter()
            .enumerate()
            .map(|(i, s)| self.issuer(i, s, provider.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let claims = Claims::from_file(raw.claims, client_id.unwrap_or("portcullis"));
        let session = raw.session.map(|s| self.session(s)).transpose()?;
        let headers = Headers::from_file(raw.headers);
        let routes = self.routes(raw.routes, provider.is_some(), session.is_some())?;
        Ok(Config {
            file: path.to_path_buf(),
            server,
            admin,
            provider,
            issuers,
            claims,
            session,
            headers,
            routes,
        })
    }

    fn server(&self, s: file::Server) -> Result<Server, ConfigError> {
        if s.listen.get_ref().is_empty() {
            return Err(self.here.span(
                &s.listen,
                "server.listen",
                "at least one address is needed, such as [\"127.0.0.1:8080\"]",
            ));
        }
        let url_at = s.public_url.span().start;
        let public_url = s.public_url.into_inner().0;
        if !matches!(public_url.path(), "" | "/") || public_url.query().is_some() {
            return Err(self.here.at(url_at, "server.public_url", format!(
                "`{public_url}` must be an origin such as \"https://app.example.com\", without path or query"
            )));
        }
        let max_token_bytes = match s.max_token_bytes {
            Some(v) if !(256..=1_048_576).contains(v.get_ref()) => {
                return Err(self.here.span(
                    &v,
                    "server.max_token_bytes",
                    "expected a number of bytes from 256 to 1048576",
                ))
            }
            Some(v) => *v.get_ref() as usize,
            None => 8192,
        };
        let max_header_bytes = match s.max_header_bytes {
            Some(v) if !(4096..=1_000_000).contains(v.get_ref()) => {
                return Err(self.here.span(
                    &v,
                    "server.max_header_bytes",
                    "expected a number of bytes from 4096 to 1000000",
                ))
            }
            Some(v) => *v.get_ref() as usize,
            None => DEFAULT_MAX_HEADER_BYTES,
        };
        let threads = match s.threads {
            Some(v) if !(1..=1024).contains(v.get_ref()) => {
                return Err(self.here.span(
                    &v,
                    "server.threads",
                    "expected 1 to 1024 worker threads",
                ))
            }
            Some(v) => *v.get_ref() as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let tls = s
            .tls
            .map(|t| -> Result<Tls, ConfigError> {
                Ok(Tls {
                    cert: self.existing_file(&t.cert, "server.tls.cert")?,
                    key: self.existing_file(&t.key, "server.tls.key")?,
                })
            })
            .transpose()?;
        Ok(Server {
            listen: s.listen.into_inner().into_iter().map(|l| l.0).collect(),
            public_url,
            tls,
            trusted_proxies: s.trusted_proxies.into_iter().map(|c| c.0).collect(),
            max_token_bytes,
            max_header_bytes,
            threads,
            shutdown_grace: s.shutdown_grace.map_or(Duration::from_secs(10), |d| d.0),
            keepalive_timeout: s
                .keepalive_timeout
                .map_or(DEFAULT_KEEPALIVE_TIMEOUT, |d| d.0)
                .max(Duration::from_secs(1)),
            header_timeout: s
                .header_timeout
                .map_or(DEFAULT_CLIENT_TIMEOUT, |d| d.0)
                .max(Duration::from_secs(1)),
            body_timeout: s
                .body_timeout
                .map_or(DEFAULT_CLIENT_TIMEOUT, |d| d.0)
                .max(Duration::from_secs(1)),
        })
    }

    /// A file named relative to the configuration's folder, which must exist.
    fn existing_file(
        &self,
        raw: &toml::Spanned<value::Text>,
        key: &str,
    ) -> Result<PathBuf, ConfigError> {
        let p = self.base.join(&raw.get_ref().0);
        if p.is_file() {
            Ok(p)
        } else {
            Err(self
                .here
                .span(raw, key, format!("no file at `{}`", p.display())))
        }
    }

    fn provider(&self, sp: toml::Spanned<file::Provider>) -> Result<Provider, ConfigError> {
        let at = sp.span().start;
        let p = sp.into_inner();
        let client_id = p.client_id.0;
        if client_id.is_empty() {
            return Err(self.here.at(at, "provider.client_id", "must not be empty"));
        }
        let scopes: Vec<String> = p
            .scopes
            .map(|v| v.into_iter().map(|t| t.0).collect())
            .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            return Err(self.here.at(
                at,
                "provider.scopes",
                "must include \"openid\" (OpenID Connect logins need it)",
            ));
        }
        let algorithms = self.algorithms(p.algorithms, "provider.algorithms")?;
        Ok(Provider {
            issuer: p.issuer.0,
            audiences: p
                .audiences
                .map(texts)
                .unwrap_or_else(|| vec![client_id.clone()]),
            client_id,
            client_secret: p.client_secret.map(|s| s.0),
            scopes,
            login_flow: p.login_flow.unwrap_or(LoginFlow::Code),
            algorithms,
            clock_skew: p.clock_skew.map_or(Duration::from_secs(30), |d| d.0),
            introspection: p.introspection.unwrap_or(Introspection::Auto),
            introspection_cache: p
                .introspection_cache
                .map_or(Duration::from_secs(60), |d| d.0),
        })
    }

    fn algorithms(
        &self,
        raw: Option<toml::Spanned<Vec<value::Alg>>>,
        key: &str,
    ) -> Result<Vec<jsonwebtoken::Algorithm>, ConfigError> {
        match raw {
            None => Ok(vec![
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::Algorithm::ES256,
            ]),
            Some(s) if s.get_ref().is_empty() => Err(self.here.span(
                &s,
                key,
                format!(
                    "at least one algorithm is needed: {}",
                    value::ACCEPTED_ALGORITHMS
                ),
            )),
            Some(s) => Ok(s.into_inner().into_iter().map(|a| a.0).collect()),
        }
    }

    fn issuer(
        &self,
        i: usize,
        sp: toml::Spanned<file::Issuer>,
        provider: Option<&Provider>,
    ) -> Result<Issuer, ConfigError> {
        let at = sp.span().start;
        let key = |k: &str| format!("issuers[{i}].{k}");
        let x = sp.into_inner();
        let discovery = x.discovery.unwrap_or(true);
        if !discovery && x.jwks_uri.is_none() && x.introspection_endpoint.is_none() {
            return Err(self.here.at(
                at,
                key("discovery"),
                "with discovery = false, give `jwks_uri`, `introspection_endpoint`, or both",
            ));
        }
        let introspection = x.introspection.unwrap_or(Introspection::Auto);
        let client_id = x.client_id.map(|t| t.0);
        let client_secret = x.client_secret.map(|s| s.0);
        if x.introspection_endpoint.is_some()
            && introspection == Introspection::Auto
            && (client_id.is_none() || client_secret.is_none())
        {
            return Err(self.here.at(at, key("client_id"), "introspection needs `client_id` and `client_secret` (sent as HTTP Basic, client_secret_basic)"));
        }
        let audiences = match x.audiences {
            Some(a) => texts(a),
            None => match (&client_id, provider) {
                (Some(c), _) => vec![c.clone()],
                (None, Some(p)) => p.audiences.clone(),
                (None, None) => {
                    return Err(self.here.at(
                        at,
                        key("audiences"),
                        "give the accepted `aud` values, e.g. [\"portcullis\"]",
                    ))
                }
            },
        };
        Ok(Issuer {
            issuer: x.issuer.0,
            discovery,
            jwks_uri: x.jwks_uri.map(|u| u.0),
            introspection_endpoint: x.introspection_endpoint.map(|u| u.0),
            client_id,
            client_secret,
            audiences,
            algorithms: self.algorithms(x.algorithms, &key("algorithms"))?,
            introspection,
            introspection_cache: x
                .introspection_cache
                .map(|d| d.0)
                .or(provider.map(|p| p.introspection_cache))
                .unwrap_or(Duration::from_secs(60)),
        })
    }

    fn session(&self, s: file::Session) -> Result<Session, ConfigError> {
        if s.secrets.get_ref().is_empty() {
            return Err(self.here.span(
                &s.secrets,
                "session.secrets",
                "at least one secret is needed: `portcullis secret` prints one",
            ));
        }
        let store = s.store.as_ref().map_or(Store::Cookie, |s| *s.get_ref());
        let redis = self.redis(&s, store)?;
        let cookie = match s.cookie {
            Some(c) => {
                let name = c.get_ref().0.clone();
                let token = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !token {
                    return Err(self.here.span(
                        &c,
                        "session.cookie",
                        "expected a cookie name of letters, digits, `-`, `_` and `.`",
                    ));
                }
                name
            }
            None => DEFAULT_COOKIE.to_owned(),
        };
        Ok(Session {
            secrets: s.secrets.into_inner().into_iter().map(|s| s.0).collect(),
            cookie,
            lifetime: s.lifetime.map_or(Duration::from_secs(8 * 3600), |d| d.0),
            refresh: s.refresh.unwrap_or(true),
            same_site: s.same_site.unwrap_or(SameSite::Lax),
            store,
            redis,
            domain: s.domain.map(|t| t.0),
        })
    }

    /// The Redis servers of `store = "redis"`: exactly one of `redis_url`,
    /// `redis_sentinels` (with `redis_sentinel_master`) and `redis_cluster`.
    fn redis(&self, s: &file::Session, store: Store) -> Result<Option<Redis>, ConfigError> {
        const MODES: &str = "redis_url = \"redis://127.0.0.1:6379\" (one server), redis_sentinels = [\"redis://127.0.0.1:26379\", …] with redis_sentinel_master (Sentinel) or redis_cluster = [\"redis://127.0.0.1:7000\", …] (Cluster)";
        let given: Vec<(&str, usize)> = [
            ("redis_url", s.redis_url.as_ref().map(|v| v.span().start)),
            (
                "redis_sentinels",
                s.redis_sentinels.as_ref().map(|v| v.span().start),
            ),
            (
                "redis_sentinel_master",
                s.redis_sentinel_master.as_ref().map(|v| v.span().start),
            ),
            (
                "redis_cluster",
                s.redis_cluster.as_ref().map(|v| v.span().start),
            ),
            (
                "redis_username",
                s.redis_username.as_ref().map(|v| v.span().start),
            ),
            (
                "redis_password",
                s.redis_password.as_ref().map(|v| v.span().start),
            ),
        ]
        .into_iter()
        .filter_map(|(k, at)| Some((k, at?)))
        .collect();
        if store != Store::Redis {
            return match given.first() {
                Some((k, at)) => Err(self.here.at(*at, format!("session.{k}"), format!(
                    "`{k}` is only read with store = \"redis\": add store = \"redis\" to [session], or remove it"
                ))),
                None => Ok(None),
            };
        }
        let mut modes: Vec<(&str, usize)> = given
            .iter()
            .copied()
            .filter(|(k, _)| matches!(*k, "redis_url" | "redis_sentinels" | "redis_cluster"))
            .collect();
        modes.sort_by_key(|(_, at)| *at);
        if let [(first, _), (second, at), ..] = modes[..] {
            return Err(self.here.at(
                at,
                format!("session.{second}"),
                format!("`{first}` is set too: give one of {MODES}"),
            ));
        }
        let servers = match (&s.redis_url, &s.redis_sentinels, &s.redis_cluster) {
            (Some(url), None, None) => {
                self.redis_node(url, "session.redis_url".to_owned())?;
                RedisServers::One(url.get_ref().0.clone())
            }
            (None, Some(sentinels), None) => {
                let sentinels =
                    self.redis_nodes(sentinels, "session.redis_sentinels", "Sentinel")?;
                let Some(master) = &s.redis_sentinel_master else {
                    return Err(self.here.at(
                        s.redis_sentinels.as_ref().map_or(0, |v| v.span().start),
                        "session.redis_sentinel_master",
                        "redis_sentinels needs redis_sentinel_master: the name the Sentinels monitor the primary under (`sentinel monitor <name> …`), e.g. \"mymaster\"",
                    ));
                };
                let name = master.get_ref().0.clone();
                if name.is_empty()
                    || name
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    return Err(self.here.span(
                        master,
                        "session.redis_sentinel_master",
                        "expected the master's name as the Sentinels know it, without spaces, e.g. \"mymaster\"",
                    ));
                }
                RedisServers::Sentinel {
                    sentinels,
                    master: name,
                }
            }
            (None, None, Some(nodes)) => {
                let nodes = self.redis_nodes(nodes, "session.redis_cluster", "Cluster node")?;
                if let Err(e) = redis::cluster::ClusterClient::new(nodes.iter().map(String::as_str))
                {
                    return Err(self.here.at(
                        s.redis_cluster.as_ref().map_or(0, |v| v.span().start),
                        "session.redis_cluster",
                        format!(
                            "these nodes cannot make one Cluster client: {}",
                            e.detail().unwrap_or(e.category())
                        ),
                    ));
                }
                RedisServers::Cluster(nodes)
            }
            _ => {
                let st = s.store.as_ref().expect("store is set when it is redis");
                return Err(self.here.span(
                    st,
                    "session.redis_url",
                    format!("store = \"redis\" needs its servers: {MODES}"),
                ));
            }
        };
        if let (Some(master), false) = (
            &s.redis_sentinel_master,
            matches!(servers, RedisServers::Sentinel { .. }),
        ) {
            return Err(self.here.span(
                master,
                "session.redis_sentinel_master",
                "redis_sentinel_master is only read with redis_sentinels (the Sentinels to ask for it)",
            ));
        }
        Ok(Some(Redis {
            servers,
            username: s.redis_username.as_ref().map(|u| u.get_ref().0.clone()),
            password: s.redis_password.as_ref().map(|p| p.get_ref().0.clone()),
        }))
    }

    /// A list of Redis URLs (Sentinels or Cluster nodes): not empty, each one checked.
    fn redis_nodes(
        &self,
        list: &toml::Spanned<Vec<toml::Spanned<value::Text>>>,
        key: &str,
        what: &str,
    ) -> Result<Vec<String>, ConfigError> {
        if list.get_ref().is_empty() {
            return Err(self.here.span(
                list,
                key,
                format!(
                    "at least one {what} address is needed, e.g. [\"redis://127.0.0.1:{}\"]",
                    if what == "Sentinel" { 26379 } else { 7000 }
                ),
            ));
        }
        let mut urls = Vec::new();
        for (i, url) in list.get_ref().iter().enumerate() {
            let db = self.redis_node(url, format!("{key}[{i}]"))?;
            if db != 0 {
                return Err(self.here.span(
                    url,
                    format!("{key}[{i}]"),
                    format!(
                        "a {what} has no database {db}: drop the `/{db}` (sessions use database 0)"
                    ),
                ));
            }
            urls.push(url.get_ref().0.clone());
        }
        Ok(urls)
    }

    /// Checks one Redis URL; its database number.
    fn redis_node(
        &self,
        url: &toml::Spanned<value::Text>,
        key: String,
    ) -> Result<i64, ConfigError> {
        use redis::IntoConnectionInfo as _;
        let text = url.get_ref().0.as_str();
        let info = text.into_connection_info().map_err(|e| {
            self.here.span(
                url,
                key.clone(),
                format!(
                    "expected redis://[[user]:password@]host[:port][/db]: {}",
                    e.detail().unwrap_or(e.category())
                ),
            )
        })?;
        if matches!(info.addr(), redis::ConnectionAddr::Unix(_)) && key != "session.redis_url" {
            return Err(self.here.span(
                url,
                key,
                "expected redis://host:port: Sentinel and Cluster nodes are reached over TCP",
            ));
        }
        Ok(info.redis_settings().db())
    }

    fn routes(
        &self,
        raw: Vec<toml::Spanned<file::Route>>,
        has_provider: bool,
        has_session: bool,
    ) -> Result<RouteTable, ConfigError> {
        if raw.is_empty() {
            return Err(self.here.at(self.here.text.len(), "routes", "no [[routes]]: add at least one, e.g. path = \"/\", upstream = \"http://127.0.0.1:9000\", auth = \"login\""));
        }
        let mut names = BTreeSet::new();
        let mut places = BTreeSet::new();
        let mut routes = Vec::with_capacity(raw.len());
        for (i, sp) in raw.into_iter().enumerate() {
            let at = sp.span().start;
            let key = |k: &str| format!("routes[{i}].{k}");
            let r = sp.into_inner();

            let path = match &r.path {
                None => "/".to_owned(),
                Some(p) => {
                    let raw_path = &p.get_ref().0;
                    let normal = path::normalize(raw_path).map_err(|e| {
                        self.here.span(p, key("path"), format!("`{raw_path}`: {e}"))
                    })?;
                    if &normal != raw_path {
                        return Err(self.here.span(
                            p,
                            key("path"),
                            format!(
                                "write the normalized form \"{normal}\" (the path rules match)"
                            ),
                        ));
                    }
                    normal
                }
            };
            let host = r
                .host
                .as_ref()
                .map(|h| {
                    HostPattern::parse(&h.get_ref().0)
                        .map_err(|e| self.here.span(h, key("host"), e))
                })
                .transpose()?;
            let name = r.name.as_ref().map_or_else(
                || match &host {
                    Some(HostPattern::Exact(h)) => format!("{h}{path}"),
                    Some(HostPattern::Wildcard(w)) => format!("*{w}{path}"),
                    None => path.clone(),
                },
                |n| n.0.clone(),
            );
            if !places.insert((format!("{host:?}"), path.clone())) {
                return Err(self.here.at(
                    at,
                    key("path"),
                    format!("another route already has this host and path \"{path}\""),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.here.at(
                    at,
                    key("name"),
                    format!("another route is already named \"{name}\""),
                ));
            }

            let urls: Vec<Url> = match (r.upstream, r.upstreams) {
                (Some(u), None) => vec![u.0],
                (None, Some(list)) if !list.is_empty() => list.into_iter().map(|u| u.0).collect(),
                (None, Some(_)) => {
                    return Err(self.here.at(
                        at,
                        key("upstreams"),
                        "the list is empty: give at least one URL",
                    ))
                }
                (None, None) => {
                    return Err(self.here.at(
                        at,
                        key("upstream"),
                        "missing: give `upstream = \"http://host:port\"` or `upstreams = [...]`",
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(self.here.at(
                        at,
                        key("upstreams"),
                        "give `upstream` or `upstreams`, not both",
                    ))
                }
            };
            for u in &urls {
                if !matches!(u.path(), "" | "/") || u.query().is_some() {
                    return Err(self.here.at(at, key("upstream"), format!(
                        "`{u}`: an upstream is an origin (scheme, host, port) without path or query; the backend receives the request's own path"
                    )));
                }
            }
            let ca = match &r.upstream_ca {
                None => None,
                Some(file) => {
                    if !urls.iter().any(|u| u.scheme() == "https") {
                        return Err(self.here.at(
                            at,
                            key("upstream_ca"),
                            "only used with https:// upstreams",
                        ));
                    }
                    let p = self.existing_file(file, &key("upstream_ca"))?;
                    let der =
                        read_pem_certs(&p).map_err(|e| self.here.at(at, key("upstream_ca"), e))?;
                    Some(parse_upstream_ca(&der).map_err(|e| {
                        self.here
                            .at(at, key("upstream_ca"), format!("`{}`: {e}", p.display()))
                    })?)
                }
            };
            let upstreams = urls.iter().map(|u| Upstream::new(u, ca.clone())).collect();

            let needs = match r.auth {
                AuthMode::Public => None,
                AuthMode::Bearer => Some(("bearer", false)),
                AuthMode::Login => Some(("login", true)),
                AuthMode::Any => Some(("any", true)),
            };
            if let Some((mode, needs_session)) = needs {
                if !has_provider {
                    return Err(self.here.at(
                        at,
                        key("auth"),
                        format!("auth = \"{mode}\" needs a [provider] section"),
                    ));
                }
                if needs_session && !has_session {
                    return Err(self.here.at(
                        at,
                        key("auth"),
                        format!("auth = \"{mode}\" needs a [session] section with secrets"),
                    ));
                }
            }
            let allow = r
                .allow
                .map(|a| Allow {
                    roles: texts(a.roles),
                    groups: texts(a.groups),
                    clients: texts(a.clients),
                    users: texts(a.users),
                    email_domains: texts(a.email_domains)
                        .into_iter()
                        .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                        .collect(),
                })
                .unwrap_or_default();
            let scopes = r
                .scopes
                .map(|s| self.scopes(s, &key("scopes")))
                .transpose()?;
            if r.auth == AuthMode::Public && (!allow.is_empty() || scopes.is_some()) {
                return Err(self.here.at(at, key("auth"), "a public route admits everyone, so `allow` and `scopes` would do nothing: use auth = \"bearer\", \"login\" or \"any\""));
            }
            routes.push(Route::new(
                name,
                host,
                path,
                upstreams,
                r.auth.into(),
                allow,
                scopes,
                r.cors_preflight.unwrap_or(false),
            ));
        }
        Ok(RouteTable::new(routes))
    }

    fn scopes(
        &self,
        s: toml::Spanned<std::collections::BTreeMap<String, Vec<value::Text>>>,
        key: &str,
    ) -> Result<ScopeRules, ConfigError> {
        let at = s.span().start;
        let mut rules = ScopeRules {
            by_method: HashMap::new(),
            read: None,
            write: None,
            any: None,
        };
        for (k, v) in s.into_inner() {
            let list = texts(v);
            match k.as_str() {
                "read" => rules.read = Some(list),
                "write" => rules.write = Some(list),
                "*" => rules.any = Some(list),
                m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
                    rules.by_method.insert(m.to_owned(), list);
                }
                other => {
                    return Err(self.here.at(at, format!("{key}.{other}"), "expected `read`, `write`, `\"*\"` or a method name in capitals such as DELETE"));
                }
            }
        }
        Ok(rules)
    }
}

fn texts(v: Vec<value::Text>) -> Vec<String> {
    v.into_iter().map(|t| t.0).collect()
}

/// The certificates of a PEM file, as DER.
fn read_pem_certs(p: &Path) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_file_iter(p)
        .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`{}` is not a PEM certificate file: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", p.display()));
    }
    Ok(certs)
}
