//! The route table: which route a request belongs to.
//!
//! A route with a `host` beats one without; an exact host beats a wildcard; then the
//! longest `path` prefix wins. Prefixes match on segment boundaries: `/api` matches
//! `/api` and `/api/x`, not `/apiary`; `/api/` also matches `/api`.

mod index;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::AuthMode;
use crate::clock;
use index::Index;

/// A `host` pattern, lower-case: `app.example.com`, or `*.example.com` for any subdomain
/// (not the apex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// Holds the suffix with its leading dot: `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Parses a pattern; the error says what is accepted.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower.clone()),
        };
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if name.is_empty() || !name.split('.').all(valid_label) {
            return Err(format!(
                "`{raw}` is not a host: expected a name such as \"app.example.com\" or \"*.example.com\", without port or scheme"
            ));
        }
        Ok(if wild {
            HostPattern::Wildcard(format!(".{name}"))
        } else {
            HostPattern::Exact(name)
        })
    }

    /// Whether `host` (lower-case, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// Scopes required per method (SPEC §2 `scopes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRules {
    pub by_method: HashMap<String, Vec<String>>,
    pub read: Option<Vec<String>>,
    pub write: Option<Vec<String>>,
    pub any: Option<Vec<String>>,
}

impl ScopeRules {
    /// The scopes a method needs; `None` means no key covers it, and the method is refused.
    /// A method name wins over `read`/`write`, which win over `"*"`; methods are compared
    /// exactly as sent, so `get` is not `GET`.
    pub fn required(&self, method: &str) -> Option<&[String]> {
        if let Some(s) = self.by_method.get(method) {
            return Some(s);
        }
        let class = if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            &self.read
        } else {
            &self.write
        };
        class.as_deref().or(self.any.as_deref())
    }
}

/// Who may use a route (SPEC §2 `allow`): every listed kind must hold, any value within one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub clients: Vec<String>,
    pub users: Vec<String>,
    pub email_domains: Vec<String>,
}

impl Allow {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
            && self.groups.is_empty()
            && self.clients.is_empty()
            && self.users.is_empty()
            && self.email_domains.is_empty()
    }
}

/// One backend of a route.
#[derive(Debug)]
pub struct Upstream {
    /// As written, for logs: `http://127.0.0.1:9001`.
    pub url: Arc<str>,
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Trusted roots for this upstream, when `upstream_ca` is set: parsed once, at load.
    pub ca: Option<Arc<UpstreamCa>>,
    /// Distinguishes trust settings in pingora's connection pool, whose reuse key ignores
    /// the CA: without it a connection verified for one route's CA would serve a route
    /// that trusts another.
    pub trust_key: u64,
    /// The address of an IP literal, fixed at load: read without a lock.
    literal: Option<SocketAddr>,
    /// A name's last lookup, and when it was made (the gateway's clock, seconds).
    resolved: std::sync::Mutex<Option<(u64, SocketAddr)>>,
    /// Until when a failed connection keeps this upstream out of the rotation: seconds on
    /// the gateway's clock ([`clock::now`]); 0: never marked. Read by every request, so an
    /// atomic.
    down_until: std::sync::atomic::AtomicU64,
}

/// How long an upstream whose connection failed is left out of the rotation.
pub const DOWN_FOR: Duration = Duration::from_secs(10);

/// How long a resolved upstream name is used before it is looked up again.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// The certificates of an `upstream_ca` file, as pingora verifies upstreams with them.
pub type UpstreamCa = pingora::protocols::tls::CaType;

/// Parses DER certificates once, at load; a certificate that is not X.509 is an error here
/// rather than a panic on the first request to the upstream.
pub fn parse_upstream_ca(der: &[Vec<u8>]) -> Result<Arc<UpstreamCa>, String> {
    use pingora::utils::tls::{parse_x509, WrappedX509};
    let mut certs = Vec::with_capacity(der.len());
    for (i, cert) in der.iter().enumerate() {
        // pingora's parser panics on what it cannot read.
        let parsed = std::panic::catch_unwind(|| WrappedX509::new(cert.clone(), parse_x509))
            .map_err(|_| format!("certificate {} is not an X.509 certificate", i + 1))?;
        certs.push(parsed);
    }
    Ok(Arc::from(certs))
}

impl Upstream {
    pub fn new(url: &url::Url, ca: Option<Arc<UpstreamCa>>) -> Self {
        let tls = url.scheme() == "https";
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let literal = host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let trust_key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if let Some(certs) = ca.as_deref() {
                for c in certs {
                    c.borrow_raw_cert().hash(&mut h);
                }
            }
            h.finish()
        };
        Upstream {
            url: Arc::from(url.as_str().trim_end_matches('/')),
            host,
            port,
            tls,
            ca,
            trust_key,
            literal,
            resolved: std::sync::Mutex::new(None),
            down_until: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Keeps the upstream out of the rotation for [`DOWN_FOR`] after a failed connection
    /// (passive health checking); it is tried again afterwards, or when every upstream of
    /// its route is down.
    pub fn mark_down(&self) {
        let until = clock::now() + DOWN_FOR.as_secs();
        self.down_until.store(until, Ordering::Relaxed);
    }

    fn is_down(&self) -> bool {
        clock::now() < self.down_until.load(Ordering::Relaxed)
    }

    /// The address to connect to. IP literals never expire; names are looked up again
    /// after [`RESOLVE_TTL`], and a failed lookup keeps the last good address.
    pub async fn address(&self) -> std::io::Result<SocketAddr> {
        if let Some(addr) = self.literal {
            return Ok(addr);
        }
        let cached = *self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, addr)) = cached {
            if clock::now().saturating_sub(at) < RESOLVE_TTL.as_secs() {
                return Ok(addr);
            }
        }
        match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
            Ok(mut addrs) => {
                let addr = addrs.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
                })?;
                *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((clock::now(), addr));
                Ok(addr)
            }
            Err(e) => cached.map(|(_, addr)| addr).ok_or(e),
        }
    }
}

/// A route at run time.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub host: Option<HostPattern>,
    /// Normalized prefix.
    pub path: String,
    pub upstreams: Vec<Upstream>,
    pub auth: AuthMode,
    pub allow: Allow,
    pub scopes: Option<ScopeRules>,
    pub cors_preflight: bool,
    next: AtomicUsize,
}

impl Route {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        host: Option<HostPattern>,
        path: String,
        upstreams: Vec<Upstream>,
        auth: AuthMode,
        allow: Allow,
        scopes: Option<ScopeRules>,
        cors_preflight: bool,
    ) -> Self {
        Route {
            name,
            host,
            path,
            upstreams,
            auth,
            allow,
            scopes,
            cors_preflight,
            next: AtomicUsize::new(0),
        }
    }

    /// The next upstream, round-robin.
    /// The upstream for `attempt` (0 first) of one request: the first attempt takes the next
    /// in the rotation that is not marked down; each retry the one after the upstream the
    /// attempt before took, so a request never tries the same upstream twice (another
    /// request moving the shared rotation on does not matter). Returns its index, which
    /// the next attempt passes as `previous`.
    pub fn pick_upstream(&self, previous: Option<usize>) -> (usize, &Upstream) {
        let n = self.upstreams.len();
        let start = match previous {
            Some(p) => p + 1,
            None => self.next.fetch_add(1, Ordering::Relaxed),
        };
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| previous != Some(i) && !self.upstreams[i].is_down())
            .unwrap_or(start % n);
        (i, &self.upstreams[i])
    }

    /// Whether `path` is under this route's prefix: the rule the index of [`RouteTable`]
    /// answers by, checked against it in the tests.
    #[cfg(test)]
    fn path_matches(&self, path: &str) -> bool {
        let prefix = self.path.as_str();
        if prefix == "/" {
            return true;
        }
        match path.strip_prefix(prefix) {
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            // `/api/` also covers `/api`.
            None => prefix.strip_suffix('/') == Some(path),
        }
    }

    /// Ordering key: host routes first, exact hosts before wildcards, then longer paths,
    /// then longer (more specific) wildcards.
    fn rank(&self) -> (u8, usize, usize) {
        let (kind, len) = match &self.host {
            Some(HostPattern::Exact(h)) => (2, h.len()),
            Some(HostPattern::Wildcard(w)) => (1, w.len()),
            None => (0, 0),
        };
        (kind, self.path.len(), len)
    }
}

/// All routes, ordered so that the first match is the best one, and an index that finds
/// that first match without trying every route.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    index: Index,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.rank()));
        let routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        let index = Index::new(&routes);
        RouteTable { routes, index }
    }

    /// The route for a `Host` header value (port ignored) and a normalized path; `None` when
    /// none matches, or when the path's `;parameters` would put it under another route
    /// ([`RouteTable::parameters_change_route`]).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let found = self.find_exactly(host, path)?;
        match without_parameters(path) {
            std::borrow::Cow::Borrowed(_) => Some(found),
            std::borrow::Cow::Owned(bare) => {
                let same = self
                    .find_exactly(host, &bare)
                    .is_some_and(|r| Arc::ptr_eq(r, found));
                same.then_some(found)
            }
        }
    }

    /// Whether `path` belongs to another route (or to none) once its `;parameters` are left
    /// out, as Tomcat, Jetty and Spring route it: `/admin;x/page` is `/admin/page` to them,
    /// but to a route of `/` here. Such a path is refused rather than guessed at.
    pub fn parameters_change_route(&self, host: Option<&str>, path: &str) -> bool {
        match without_parameters(path) {
            std::borrow::Cow::Borrowed(_) => false,
            std::borrow::Cow::Owned(bare) => {
                let as_sent = self.find_exactly(host, path);
                let as_read = self.find_exactly(host, &bare);
                match (as_sent, as_read) {
                    (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                    (None, None) => false,
                    _ => true,
                }
            }
        }
    }

    fn find_exactly(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(host_without_port);
        let position = self.index.find(host.as_deref(), path)?;
        self.routes.get(position)
    }

    /// The first route of the ordered list that matches, trying each in turn: what the
    /// index must answer.
    #[cfg(test)]
    fn find_linear(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(host_without_port);
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, &host) {
                (None, _) => true,
                (Some(p), Some(h)) => p.matches(h),
                (Some(_), None) => false,
            };
            host_ok && r.path_matches(path)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// `path` with each segment's `;parameters` left out (`;` or its encoding `%3B`, to the end
/// of the segment), as Tomcat, Jetty and Spring route it: `/a;v=1/b;jsessionid=x` is `/a/b`.
pub fn without_parameters(path: &str) -> std::borrow::Cow<'_, str> {
    let lower = path.to_ascii_lowercase();
    if !path.contains(';') && !lower.contains("%3b") {
        return std::borrow::Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let cut = segment
                .find(';')
                .into_iter()
                .chain(segment.to_ascii_lowercase().find("%3b"))
                .min()
                .unwrap_or(segment.len());
            &segment[..cut]
        })
        .collect();
    std::borrow::Cow::Owned(segments.join("/"))
}

/// Whether a `Host` (or `X-Forwarded-Host`) value is one host: a name of letters, digits,
/// `-`, `_` and `.`, or a bracketed IPv6 literal, with an optional numeric port. A list
/// (`a.test, b.test`), userinfo, spaces or percent-escapes are not: a backend could read
/// such a value as a host other than the one the route was chosen by.
pub fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            p => ("x", p.strip_prefix(':').unwrap_or("!")),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, p),
            None => (host, "0"),
        }
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
}

/// `Host` without the port, lower-case, without a trailing dot: `App.Example.com.:8080` →
/// `app.example.com`; `[::1]:80` → `[::1]`.
pub fn host_without_port(host: &str) -> String {
    let h = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: Option<&str>, path: &str) -> Route {
        let url = url::Url::parse("http://127.0.0.1:1").unwrap();
        Route::new(
            name.into(),
            host.map(|h| HostPattern::parse(h).unwrap()),
            path.into(),
            vec![Upstream::new(&url, None)],
            AuthMode::Public,
            Allow::default(),
            None,
            false,
        )
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("root", None, "/"),
            route("api", None, "/api/"),
            route("orders", None, "/api/orders/"),
            route("exact-prefix", None, "/static"),
            route("minio", Some("minio.example.com"), "/"),
            route("any-sub", Some("*.example.com"), "/"),
            route("any-sub-api", Some("*.example.com"), "/api/"),
        ])
    }

    #[test]
    fn routing_table() {
        let t = table();
        let cases = [
            (None, "/", "root"),
            (None, "/x", "root"),
            (None, "/api", "api"),
            (None, "/api/", "api"),
            (None, "/api/x", "api"),
            (None, "/api/orders/1", "orders"),
            (None, "/api/orders", "orders"),
            (None, "/api/ordersx", "api"),
            (None, "/static", "exact-prefix"),
            (None, "/static/app.js", "exact-prefix"),
            (None, "/staticx", "root"),
            (Some("minio.example.com"), "/api/orders/1", "minio"),
            (Some("MINIO.example.com:8443"), "/", "minio"),
            (Some("minio.example.com."), "/", "minio"),
            (Some("a.example.com"), "/api/x", "any-sub-api"),
            (Some("a.b.example.com"), "/x", "any-sub"),
            (Some("example.com"), "/x", "root"),
            (Some("evil-example.com"), "/x", "root"),
            (Some("other.test"), "/api/orders/2", "orders"),
        ];
        for (host, path, want) in cases {
            let got = t.find(host, path).map(|r| r.name.as_str());
            assert_eq!(got, Some(want), "{host:?} {path}");
        }
    }

    #[test]
    fn no_route_matches_is_none_not_a_fallback() {
        let t = RouteTable::new(vec![
            route("api", None, "/api/"),
            route("h", Some("a.test"), "/"),
        ]);
        assert!(t.find(None, "/").is_none());
        assert!(t.find(Some("b.test"), "/other").is_none());
        assert!(t.find(None, "/apiary").is_none());
    }

    #[test]
    fn segment_parameters_do_not_move_a_path_to_another_route() {
        let t = table();
        // Parameters that keep the path on its route change nothing.
        for (path, want) in [
            ("/api/orders/1;jsessionid=A", "orders"),
            ("/api/x;v=1", "api"),
            ("/static/app.js;v=2", "exact-prefix"),
            ("/x;y", "root"),
        ] {
            assert!(!t.parameters_change_route(None, path), "{path}");
            let got = t.find(None, path).map(|r| r.name.as_str());
            assert_eq!(got, Some(want), "{path}");
        }
        // Parameters that would move it to another route as Tomcat reads it are refused.
        for path in [
            "/api;x/orders/1",
            "/api/orders;jsessionid=A/1",
            "/api;/x",
            "/api%3Bv=1/x",
            "/api%3b/orders/1",
            "/static;v=2",
        ] {
            assert!(t.parameters_change_route(None, path), "{path}");
            assert!(t.find(None, path).is_none(), "{path}");
        }
        assert_eq!(without_parameters("/a;v=1/b;c/d"), "/a/b/d");
        assert_eq!(without_parameters("/a/b"), "/a/b");
    }

    #[test]
    fn only_single_hosts_are_valid_hosts() {
        for ok in [
            "app.test",
            "App.Test:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "a_b.internal",
            "app.test.",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "a.test, b.test",
            "a.test,b.test",
            "a b",
            "x@admin.test",
            "a.test:80@b.test",
            "a.test:",
            "a.test:x",
            "a.test:123456",
            "[::1",
            "[]:80",
            "[::1]x",
            "a%2etest",
            ":80",
            "é.test",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    /// The index answers what trying every route in order answers: 10,000 routes without a
    /// host, on exact hosts and on nested wildcards, with prefixes of every depth, with and
    /// without a trailing `/`, duplicates and `/`, asked for many hosts and paths.
    #[test]
    fn ten_thousand_routes_pick_the_same_route_as_a_linear_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let hosts = [
            None,
            Some("a.test"),
            Some("b.test"),
            Some("*.example.com"),
            Some("*.api.example.com"),
            Some("x.api.example.com"),
            Some("*.test"),
        ];
        let words = ["api", "orders", "v1", "static", "x", "a", "ab", "abc"];
        let path = |next: &mut dyn FnMut(usize) -> usize, min: usize| {
            let mut p = String::new();
            for _ in 0..min + next(5 - min) {
                p.push('/');
                p.push_str(words[next(words.len())]);
            }
            if p.is_empty() || next(3) > 0 {
                p.push('/');
            }
            p
        };
        let mut routes = vec![route("root-a", Some("a.test"), "/")];
        for i in 0..10_000 {
            let host = hosts[next(hosts.len())];
            routes.push(route(&format!("r{i}"), host, &path(&mut next, 1)));
        }
        let t = RouteTable::new(routes);
        assert_eq!(t.len(), 10_001);
        let asked = [
            None,
            Some("a.test"),
            Some("A.Test:8080"),
            Some("b.test."),
            Some("c.test"),
            Some("test"),
            Some("q.example.com"),
            Some("example.com"),
            Some("api.example.com"),
            Some("x.api.example.com"),
            Some("y.x.api.example.com"),
            Some("[::1]:80"),
        ];
        let (mut matched, mut unmatched) = (0, 0);
        for _ in 0..20_000 {
            let host = asked[next(asked.len())];
            let mut p = path(&mut next, 0);
            if next(4) == 0 {
                p.push_str(words[next(words.len())]);
            }
            let want = t.find_linear(host, &p).map(|r| r.name.as_str());
            let got = t.find_exactly(host, &p).map(|r| r.name.as_str());
            assert_eq!(got, want, "{host:?} {p:?}");
            if want.is_some() {
                matched += 1;
            } else {
                unmatched += 1;
            }
        }
        assert!(
            matched > 2_000 && unmatched > 2_000,
            "{matched} {unmatched}"
        );
        for p in ["", "x", "api", "//", "/api//orders", "/api/orders//"] {
            for host in asked {
                let want = t.find_linear(host, p).map(|r| r.name.as_str());
                assert_eq!(
                    t.find_exactly(host, p).map(|r| r.name.as_str()),
                    want,
                    "{host:?} {p:?}"
                );
            }
        }
    }

    #[test]
    fn wildcard_does_not_match_the_apex() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("aexample.com"));
    }

    #[test]
    fn host_patterns_refuse_ports_schemes_and_junk() {
        for bad in [
            "",
            "a.test:80",
            "http://a.test",
            "*",
            "*.",
            "a..b",
            "a/b",
            "a.*.test",
            "a b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_method_name_beats_class_beats_star() {
        let rules = ScopeRules {
            by_method: HashMap::from([("DELETE".into(), vec!["admin".into()])]),
            read: Some(vec!["r".into()]),
            write: Some(vec!["w".into()]),
            any: Some(vec!["star".into()]),
        };
        assert_eq!(rules.required("GET"), Some(&["r".to_string()][..]));
        assert_eq!(rules.required("HEAD"), Some(&["r".to_string()][..]));
        assert_eq!(rules.required("POST"), Some(&["w".to_string()][..]));
        assert_eq!(rules.required("DELETE"), Some(&["admin".to_string()][..]));
        // Methods are exact: a lower-case `get` is not a read.
        assert_eq!(rules.required("get"), Some(&["w".to_string()][..]));
        let only_read = ScopeRules {
            read: Some(vec!["r".into()]),
            ..Default::default()
        };
        assert_eq!(only_read.required("PROPFIND"), None, "default deny");
        let star = ScopeRules {
            any: Some(vec!["s".into()]),
            ..Default::default()
        };
        assert_eq!(star.required("PROPFIND"), Some(&["s".to_string()][..]));
    }

    #[test]
    fn round_robin_cycles_through_upstreams() {
        let a = url::Url::parse("http://127.0.0.1:1").unwrap();
        let b = url::Url::parse("http://127.0.0.1:2").unwrap();
        let r = Route::new(
            "rr".into(),
            None,
            "/".into(),
            vec![Upstream::new(&a, None), Upstream::new(&b, None)],
            AuthMode::Public,
            Allow::default(),
            None,
            false,
        );
        let ports: Vec<u16> = (0..4).map(|_| r.pick_upstream(None).1.port).collect();
        assert_eq!(ports, [1, 2, 1, 2]);
    }
}
