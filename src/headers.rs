//! What the backend is told: strip, then set (SPEC §4).
//!
//! On every proxied request, on every route: identity headers a client sent are removed
//! (every `[headers]` name and every `X-Auth-Request-*`, in any case, with `_` for `-`),
//! so are headers the client nominated in `Connection` and the gateway's own cookies; then
//! `X-Forwarded-*` are set, believing client values only from `trusted_proxies`; then, for
//! an authenticated caller, the identity headers.

use std::net::IpAddr;

use pingora::http::RequestHeader;

use crate::config::Headers;
use crate::identity::Identity;

/// The prefix every identity header of ours may start with.
const IDENTITY_PREFIX: &str = "x-auth-request-";

/// A header-name byte as proxies and CGI-style backends may read it: any case, `_` as `-`.
fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Whether two header names are the same once folded.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Whether `name` starts with `prefix` once folded.
fn starts_like(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && same_name(&name[..prefix.len()], prefix)
}

/// The gateway's cookie names: the session cookie, its chunks and login-state cookies all
/// start with the configured name.
#[derive(Debug, Clone)]
pub struct OwnCookies {
    pub base: String,
}

impl OwnCookies {
    pub fn is_ours(&self, name: &str) -> bool {
        name == self.base
            || name
                .strip_prefix(self.base.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
    }
}

/// Removes every header a client could use to claim an identity or smuggle past the
/// gateway, and the gateway's cookies. Returns the names removed, for the log.
pub fn strip_client_identity(
    req: &mut RequestHeader,
    names: &Headers,
    cookies: &OwnCookies,
) -> Vec<String> {
    // Header names are lower-case in the map already; only `_` needs reading as `-`.
    // `Host` is end to end whatever `Connection` says: naming it removes nothing.
    let nominated: Vec<&str> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.is_empty()
                && !["close", "keep-alive", "upgrade", "host"]
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h))
        })
        .collect();
    let nominated_any = !nominated.is_empty();
    let doomed: Vec<String> = req
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| {
            starts_like(k, IDENTITY_PREFIX)
                || names.all().any(|n| same_name(k, n.as_str()))
                || nominated.iter().any(|n| same_name(k, n))
        })
        .map(str::to_owned)
        .collect();
    let mut removed = Vec::with_capacity(doomed.len());
    for name in doomed {
        if req.remove_header(name.as_str()).is_some() {
            removed.push(name);
        }
    }
    if nominated_any || connection_is_malformed(req) {
        // The nominations are served: `Connection` keeps only what pingora acts on, so a
        // nomination it refuses (`Host`, `X-Forwarded-For`, ten or more names) is not a
        // request dropped without an answer.
        keep_connection_options(req);
    }
    if strip_own_cookies(req, cookies) {
        removed.push("cookie (gateway cookies)".to_owned());
    }
    removed
}

/// The `Connection` options a hop keeps acting on.
const CONNECTION_OPTIONS: [&str; 3] = ["close", "keep-alive", "upgrade"];

/// Whether `Connection` names anything but its options (or is not text).
fn connection_is_malformed(req: &RequestHeader) -> bool {
    req.headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(',').map(str::trim).any(|t| {
                    !t.is_empty() && !CONNECTION_OPTIONS.iter().any(|o| t.eq_ignore_ascii_case(o))
                })
            })
        })
}

/// Rewrites `Connection` to its options alone (removed when none is left).
fn keep_connection_options(req: &mut RequestHeader) {
    let kept: Vec<&'static str> = CONNECTION_OPTIONS
        .iter()
        .copied()
        .filter(|o| {
            req.headers
                .get_all(http::header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(o))
        })
        .collect();
    req.remove_header(&http::header::CONNECTION);
    if !kept.is_empty() {
        let _ = req.insert_header(http::header::CONNECTION, kept.join(", "));
    }
}

/// Headers that web frameworks read as the method to act on, whatever the request line
/// says (Symfony, Laravel, Express' method-override, Google's APIs).
const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers that IIS, Symfony (before 5) and Zend read as the path to act on.
const PATH_OVERRIDE_HEADERS: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// The query parameter Laravel, Rails-style routers and Express read as the method.
const METHOD_PARAMETER: &str = "_method";

/// What a request says to make a backend act on another method or path than the one the
/// rules check: a method-override header or `_method` parameter naming another method, or
/// `X-Original-URL` / `X-Rewrite-URL` naming another path (header names in any case, `_`
/// for `-`). `method` is the method decided on, `path` the normalized path, `query` the
/// query. Returns the name to put in the refusal.
pub fn override_in(
    headers: &http::HeaderMap,
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Option<&'static str> {
    for (name, value) in headers {
        let name = name.as_str();
        if let Some(n) = METHOD_OVERRIDE_HEADERS.iter().find(|n| same_name(name, n)) {
            let same = value
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case(method));
            if !same {
                return Some(n);
            }
        }
        if let Some(n) = PATH_OVERRIDE_HEADERS.iter().find(|n| same_name(name, n)) {
            let named = value
                .to_str()
                .ok()
                .map(|v| v.split('?').next().unwrap_or(v));
            let same = named
                .and_then(|v| crate::policy::path::normalize(v).ok())
                .is_some_and(|v| v == path);
            if !same {
                return Some(n);
            }
        }
    }
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == METHOD_PARAMETER && !v.trim().eq_ignore_ascii_case(method))
        .then_some(METHOD_PARAMETER)
}

/// Rewrites `Cookie` without the gateway's cookies. Returns whether any was removed.
fn strip_own_cookies(req: &mut RequestHeader, cookies: &OwnCookies) -> bool {
    let (kept, removed) = cookies_not_ours(&req.headers, cookies);
    if !removed {
        return false;
    }
    req.remove_header(&http::header::COOKIE);
    if let Some(joined) = kept {
        // The parts came from valid header values, so the join is one too.
        let _ = req.insert_header(http::header::COOKIE, joined);
    }
    true
}

/// The request's cookies without the gateway's, as one `Cookie` value (`theme=dark;
/// sid=42`), or `None` when no other cookie was sent. Forward-auth answers it, so that a
/// proxy that cannot drop one cookie itself (Traefik) replaces the backend's `Cookie`
/// with it.
pub fn others_cookies(req: &RequestHeader, cookies: &OwnCookies) -> Option<Vec<u8>> {
    cookies_not_ours(&req.headers, cookies).0
}

/// The pairs of every `Cookie` header that are not the gateway's, joined with `; `
/// (`None` when none is left), and whether any was the gateway's.
fn cookies_not_ours(headers: &http::HeaderMap, cookies: &OwnCookies) -> (Option<Vec<u8>>, bool) {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = false;
    for value in headers.get_all(http::header::COOKIE) {
        for pair in cookie_pairs(value.as_bytes()) {
            let trimmed = pair.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let name_end = memchr::memchr(b'=', trimmed).unwrap_or(trimmed.len());
            let name = trimmed[..name_end].trim_ascii();
            if std::str::from_utf8(name).is_ok_and(|n| cookies.is_ours(n)) {
                removed = true;
            } else {
                kept.push(trimmed);
            }
        }
    }
    let joined = (!kept.is_empty()).then(|| kept.join(&b"; "[..]));
    (joined, removed)
}

/// The `;`-separated parts of a `Cookie` value, untrimmed.
fn cookie_pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b';', value)
        .chain(std::iter::once(value.len()))
        .map(move |end| {
            let pair = &value[start..end];
            start = end + 1;
            pair
        })
}

/// What the gateway saw of the connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub client: Option<IpAddr>,
    /// `http` or `https`, as the client reached the gateway.
    pub scheme: &'a str,
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host`. A client's own values are believed only
/// when it connects from a trusted proxy; from anyone else they are replaced, and its
/// `Forwarded` and `X-Real-IP` removed.
pub fn set_forwarded(req: &mut RequestHeader, peer: Peer<'_>, trusted: &[ipnet::IpNet]) {
    let believed = peer
        .client
        .is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)));
    let client = peer.client.map(|ip| ip.to_string());
    // The Host the client sent (shared, not copied), or an absolute-form target's authority.
    let host = req
        .headers
        .get(http::header::HOST)
        .filter(|h| h.to_str().is_ok())
        .cloned()
        .or_else(|| {
            let authority = req.uri.authority()?;
            http::HeaderValue::from_str(authority.as_str()).ok()
        });
    if !believed {
        req.remove_header(&http::header::FORWARDED);
        req.remove_header(&X_REAL_IP);
        set_or_remove(req, "x-forwarded-for", client);
        set_or_remove(req, "x-forwarded-proto", Some(peer.scheme));
        set_or_remove(req, "x-forwarded-host", host);
        return;
    }
    let mut chain: Vec<String> = req
        .headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    chain.extend(client);
    let proto = first_value(req, &X_FORWARDED_PROTO).unwrap_or_else(|| peer.scheme.to_owned());
    let fwd_host = match first_value(req, &X_FORWARDED_HOST) {
        Some(v) => http::HeaderValue::from_str(&v).ok(),
        None => host,
    };
    let chain = (!chain.is_empty()).then(|| chain.join(", "));
    set_or_remove(req, "x-forwarded-for", chain);
    set_or_remove(req, "x-forwarded-proto", Some(proto));
    set_or_remove(req, "x-forwarded-host", fwd_host);
}

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: http::HeaderName = http::HeaderName::from_static("x-real-ip");

fn first_value(req: &RequestHeader, name: &http::HeaderName) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Sets `name` to `value`, replacing what the client sent; removes it when there is no
/// value, or when the value is not a valid header value (the client's never stays).
fn set_or_remove<V>(req: &mut RequestHeader, name: &'static str, value: Option<V>)
where
    V: TryInto<http::HeaderValue>,
{
    let Some(value) = value else {
        req.remove_header(name);
        return;
    };
    if req.insert_header(name, value).is_err() {
        req.remove_header(name);
        tracing::debug!(
            header = name,
            "dropped a value that is not a valid header value"
        );
    }
}

/// The identity headers of an authenticated caller. Lists are joined with `,`, sorted
/// bytewise, without duplicates; a value holding a control character or a comma is
/// dropped and logged.
pub fn identity_headers(who: &Identity, names: &Headers) -> Vec<(http::HeaderName, String)> {
    let single = |v: &Option<String>| v.as_deref().filter(|s| clean(s)).map(str::to_owned);
    let mut out: Vec<(http::HeaderName, String)> = [
        (&names.user, single(&who.user)),
        (&names.email, single(&who.email)),
        (&names.subject, single(&who.subject)),
        (&names.client, single(&who.client)),
        (&names.groups, join(&who.groups)),
        (&names.roles, join(&who.roles)),
        (&names.scopes, join(&who.scopes)),
    ]
    .into_iter()
    .filter_map(|(n, v)| Some((n.clone(), v?)))
    .collect();
    if let (Some(name), Some(token)) = (&names.access_token, &who.access_token) {
        out.push((name.clone(), token.expose().to_owned()));
    }
    out
}

/// Sets the identity headers of an authenticated caller, replacing any of the same name.
pub fn set_identity(req: &mut RequestHeader, who: &Identity, names: &Headers) {
    let values = identity_headers(who, names);
    // Inserting replaces a header of the same name; any other identity name goes.
    for name in names.all() {
        if req.headers.contains_key(name) && !values.iter().any(|(set, _)| set == name) {
            req.remove_header(name);
        }
    }
    for (name, value) in values {
        if req.insert_header(&name, value).is_err() {
            req.remove_header(&name);
            tracing::debug!("dropped an identity value that is not a valid header value");
        }
    }
}

/// Whether a claim value may go into a header as it is.
fn clean(value: &str) -> bool {
    let ok = !value.is_empty() && !value.chars().any(|c| c.is_control() || c == ',');
    if !ok && !value.is_empty() {
        tracing::warn!(value = %value.escape_debug(), "dropped a claim value holding a control character or a comma");
    }
    ok
}

/// A list value: clean members, sorted bytewise, without duplicates, joined with `,`.
pub fn join(values: &[String]) -> Option<String> {
    let mut kept: Vec<&str> = values
        .iter()
        .map(String::as_str)
        .filter(|v| clean(v))
        .collect();
    kept.sort_unstable();
    kept.dedup();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The size of a request's head as `max_header_bytes` counts it: the request target, and
/// each header's name and value with its `: ` and line end.
pub fn head_bytes(req: &RequestHeader) -> usize {
    let headers: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    req.raw_path().len() + headers
}

/// Whether a request asks to switch protocols: `Upgrade`, and `Connection: upgrade`.
pub fn asks_to_upgrade(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::UPGRADE)
        && req
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn names(r: &RequestHeader) -> Vec<String> {
        let mut v: Vec<String> = r.headers.keys().map(|k| k.as_str().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn client_identity_headers_are_stripped_in_any_spelling() {
        let h = Headers {
            user: http::HeaderName::from_static("remote-user"),
            ..Default::default()
        };
        let mut r = req(&[
            ("X-Auth-Request-User", "admin"),
            ("x-auth-request-groups", "admins"),
            ("X_Auth_Request_Email", "a@b"),
            ("x-AUTH-request-anything-new", "1"),
            ("Remote-User", "root"),
            ("remote_user", "root"),
            ("Accept", "*/*"),
        ]);
        let removed = strip_client_identity(
            &mut r,
            &h,
            &OwnCookies {
                base: "_portcullis".into(),
            },
        );
        assert_eq!(names(&r), ["accept"]);
        assert_eq!(removed.len(), 6);
    }

    #[test]
    fn headers_nominated_by_connection_are_stripped() {
        let mut r = req(&[
            ("Connection", "keep-alive, X-Secret-Thing"),
            ("X-Secret-Thing", "1"),
            ("X-Other", "2"),
        ]);
        strip_client_identity(
            &mut r,
            &Headers::default(),
            &OwnCookies {
                base: "_portcullis".into(),
            },
        );
        assert!(r.headers.get("x-secret-thing").is_none());
        assert!(r.headers.get("x-other").is_some());
        assert_eq!(
            r.headers["connection"], "keep-alive",
            "only the options are left"
        );
    }

    #[test]
    fn connection_naming_end_to_end_headers_keeps_them_and_only_the_options() {
        let mut r = req(&[
            ("Host", "app.test"),
            ("Connection", "Host, X-Forwarded-For, Upgrade"),
            ("Upgrade", "websocket"),
        ]);
        strip_client_identity(
            &mut r,
            &Headers::default(),
            &OwnCookies {
                base: "_portcullis".into(),
            },
        );
        assert_eq!(r.headers["host"], "app.test");
        assert_eq!(r.headers["connection"], "upgrade");
    }

    #[test]
    fn gateway_cookies_are_removed_and_others_kept() {
        let mut r = req(&[
            ("Cookie", "_portcullis=abc; theme=dark; _portcullis_1=x"),
            ("Cookie", "_portcullis_state_k=y; sid=42; _portcullisx=keep"),
        ]);
        strip_client_identity(
            &mut r,
            &Headers::default(),
            &OwnCookies {
                base: "_portcullis".into(),
            },
        );
        let cookie = r.headers.get("cookie").unwrap().to_str().unwrap();
        assert_eq!(cookie, "theme=dark; sid=42; _portcullisx=keep");
        let mut only_ours = req(&[("Cookie", "_portcullis=abc")]);
        strip_client_identity(
            &mut only_ours,
            &Headers::default(),
            &OwnCookies {
                base: "_portcullis".into(),
            },
        );
        assert!(only_ours.headers.get("cookie").is_none());
    }

    #[test]
    fn the_cookie_forward_auth_answers_holds_every_cookie_but_the_gateways() {
        let own = OwnCookies {
            base: "_portcullis".into(),
        };
        let r = req(&[
            ("Cookie", "_portcullis=abc; theme=dark; _portcullis_1=x"),
            ("Cookie", "_portcullis_state_k=y; sid=42; _portcullisx=keep"),
        ]);
        assert_eq!(
            others_cookies(&r, &own).as_deref(),
            Some(&b"theme=dark; sid=42; _portcullisx=keep"[..])
        );
        let r = req(&[("Cookie", "a=1"), ("Cookie", "b=2")]);
        assert_eq!(others_cookies(&r, &own).as_deref(), Some(&b"a=1; b=2"[..]));
        let only_ours = req(&[("Cookie", "_portcullis=abc; _portcullis_2=y")]);
        assert_eq!(others_cookies(&only_ours, &own), None);
        assert_eq!(others_cookies(&req(&[]), &own), None);
    }

    #[test]
    fn forwarded_headers_from_untrusted_clients_are_replaced() {
        let mut r = req(&[
            ("Host", "app.test:8080"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
            ("Forwarded", "for=1.2.3.4"),
            ("X-Real-IP", "1.2.3.4"),
        ]);
        let peer = Peer {
            client: Some("192.0.2.7".parse().unwrap()),
            scheme: "http",
        };
        set_forwarded(&mut r, peer, &["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(r.headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(r.headers["x-forwarded-proto"], "http");
        assert_eq!(r.headers["x-forwarded-host"], "app.test:8080");
        assert!(r.headers.get("forwarded").is_none());
        assert!(r.headers.get("x-real-ip").is_none());
    }

    #[test]
    fn forwarded_headers_from_trusted_proxies_are_extended() {
        let mut r = req(&[
            ("Host", "internal:8080"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
        ]);
        let peer = Peer {
            client: Some("10.1.2.3".parse().unwrap()),
            scheme: "http",
        };
        set_forwarded(&mut r, peer, &["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(r.headers["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
        assert_eq!(r.headers["x-forwarded-proto"], "https");
        assert_eq!(r.headers["x-forwarded-host"], "app.example.com");
    }

    #[test]
    fn method_and_path_overrides_naming_something_else_are_found() {
        let check = |headers: &[(&str, &str)], method: &str, query: Option<&str>| {
            override_in(&req(headers).headers, method, "/page", query)
        };
        assert_eq!(
            check(&[("X-HTTP-Method-Override", "DELETE")], "GET", None),
            Some("x-http-method-override")
        );
        assert_eq!(
            check(&[("X_Method_Override", "PUT")], "POST", None),
            Some("x-method-override")
        );
        assert_eq!(
            check(&[("x-http-method", "delete")], "POST", None),
            Some("x-http-method")
        );
        assert_eq!(
            check(&[("X-HTTP-Method-Override", "get")], "GET", None),
            None
        );
        assert_eq!(
            check(&[("X-Original-URL", "/admin")], "GET", None),
            Some("x-original-url")
        );
        assert_eq!(
            check(&[("X_Rewrite_Url", "/admin")], "GET", None),
            Some("x-rewrite-url")
        );
        assert_eq!(
            check(&[("X-Original-URL", "/./page?x=1")], "GET", None),
            None
        );
        assert_eq!(
            check(&[], "POST", Some("a=1&_method=DELETE")),
            Some("_method")
        );
        assert_eq!(
            check(&[], "POST", Some("%5Fmethod=DELETE")),
            Some("_method")
        );
        assert_eq!(check(&[], "POST", Some("_method=post")), None);
        assert_eq!(
            check(&[("Accept", "*/*")], "GET", Some("method=DELETE")),
            None
        );
    }

    #[test]
    fn identity_lists_are_sorted_deduplicated_and_clean() {
        let values =
            ["b", "a", "b", "bad,value", "evil\r\nX-Injected: 1", "", "C"].map(String::from);
        assert_eq!(join(&values).as_deref(), Some("C,a,b"));
        assert_eq!(join(&[]), None);
    }

    #[test]
    fn identity_headers_replace_whatever_was_there() {
        let who = Identity {
            user: Some("alice".into()),
            email: Some("alice\nx".into()),
            groups: vec!["/staff".into(), "/admins".into()],
            ..Default::default()
        };
        let mut r = req(&[("X-Auth-Request-User", "mallory")]);
        set_identity(&mut r, &who, &Headers::default());
        assert_eq!(r.headers["x-auth-request-user"], "alice");
        assert_eq!(r.headers["x-auth-request-groups"], "/admins,/staff");
        assert!(
            r.headers.get("x-auth-request-email").is_none(),
            "a value with a newline is dropped"
        );
        assert!(r.headers.get("x-auth-request-roles").is_none());
    }
}
