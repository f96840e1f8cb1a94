//! Values written as `gateway.toml` writes them, so that what a command prints can be
//! compared with (or pasted into) the configuration: `auth = "login"`, `allow = { roles =
//! ["admin"] }`, the `scopes` keys as the file spells them.

use crate::policy::route::{Allow, HostPattern, Route, ScopeRules};

/// `allow` as `gateway.toml` writes it: `{ clients = ["a", "b"] }`, only the kinds listed.
pub fn allow_toml(allow: &Allow) -> String {
    let kinds = [
        ("roles", &allow.roles),
        ("groups", &allow.groups),
        ("clients", &allow.clients),
        ("users", &allow.users),
        ("email_domains", &allow.email_domains),
    ];
    let listed: Vec<String> = kinds
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(kind, values)| format!("{kind} = {}", string_list(values)))
        .collect();
    format!("{{ {} }}", listed.join(", "))
}

/// `["a", "b"]`: each string quoted and escaped as TOML (and JSON) do.
pub(super) fn string_list<S: AsRef<str>>(values: &[S]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

pub(super) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_owned())
}

/// A `host` pattern as written: `app.example.com`, or `*.example.com`.
pub fn host_toml(host: &HostPattern) -> String {
    match host {
        HostPattern::Exact(h) => quote(h),
        HostPattern::Wildcard(suffix) => quote(&format!("*{suffix}")),
    }
}

/// `scopes` as `gateway.toml` writes it: `{ DELETE = ["orders:admin"], read = ["orders:read"] }`,
/// the keys in the order TOML sorts them (`"*"`, method names, `read`, `write`).
pub fn scopes_toml(scopes: &ScopeRules) -> String {
    let mut keys: Vec<(String, &[String])> = Vec::new();
    if let Some(any) = &scopes.any {
        keys.push(("\"*\"".to_owned(), any));
    }
    let mut methods: Vec<(&String, &Vec<String>)> = scopes.by_method.iter().collect();
    methods.sort();
    keys.extend(methods.into_iter().map(|(m, s)| (m.clone(), s.as_slice())));
    for (key, value) in [("read", &scopes.read), ("write", &scopes.write)] {
        if let Some(s) = value {
            keys.push((key.to_owned(), s));
        }
    }
    let listed: Vec<String> = keys
        .iter()
        .map(|(key, s)| format!("{key} = {}", string_list(s)))
        .collect();
    format!("{{ {} }}", listed.join(", "))
}

/// A route's keys as `gateway.toml` writes them: the first line `host`, `path`,
/// `upstream` (or `upstreams`), `auth` and `cors_preflight` when on; then `allow` and
/// `scopes`, a line each, when the route has them.
pub fn route_toml(route: &Route) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(host) = &route.host {
        keys.push(format!("host = {}", host_toml(host)));
    }
    keys.push(format!("path = {}", quote(&route.path)));
    let upstreams: Vec<&str> = route.upstreams.iter().map(|u| &*u.url).collect();
    match upstreams.as_slice() {
        [one] => keys.push(format!("upstream = {}", quote(one))),
        many => keys.push(format!("upstreams = {}", string_list(many))),
    }
    keys.push(format!("auth = {}", quote(route.auth.as_str())));
    if route.cors_preflight {
        keys.push("cors_preflight = true".to_owned());
    }
    let mut lines = vec![keys.join(", ")];
    if !route.allow.is_empty() {
        lines.push(format!("allow = {}", allow_toml(&route.allow)));
    }
    if let Some(scopes) = &route.scopes {
        lines.push(format!("scopes = {}", scopes_toml(scopes)));
    }
    lines
}
