//! Forward-auth's reading of the request it decides (`/_portcullis/auth`):
//! `proxy::forwarded_request` on `X-Forwarded-Method`, `-Uri`, `-Host` and `Host`, then the
//! route of that host and path in a configuration with a route of each kind.
//!
//! The input is the subrequest's headers, `name: value` one a line.
//!
//! Invariants:
//! - it never panics; a refusal is a 400: `X-Forwarded-Host`, `-Uri` or `-Method` sent
//!   twice, a host that is a list, or a method that is no HTTP token is ambiguous (in that
//!   order: host, URI, method); a missing (or non-text) `X-Forwarded-Uri` or `-Method` is
//!   missing; else only a path that does not normalize is refused;
//! - the method is the header, byte for byte; the host is `X-Forwarded-Host`, else `Host`;
//! - the path is the normalized path of the URI before its query, a fixed point of
//!   `normalize`, and it is the path the gateway matches when the same request-target
//!   comes to it directly (pingora's request line, then `normalize`): the rules
//!   forward-auth applies are the ones the proxy would;
//! - the route found matches that path as a prefix, and a method is only held to the
//!   route's `read` scopes when it is exactly GET, HEAD or OPTIONS.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::config::Config;
use portcullis::policy::path::normalize;
use portcullis::proxy::forwarded_request;
use portcullis::proxy::respond::Refusal;
use portcullis_fuzz::{gateway_config, header_lines, request};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(gateway_config)
}

fuzz_target!(|data: &[u8]| {
    // `name: value` lines: the subrequest's headers.
    let Some(req) = request("GET", b"/_portcullis/auth", &header_lines(data)) else {
        return;
    };
    let first = |n: &str| req.headers.get(n).map(|v| v.to_str().ok());
    let twice = |n: &str| req.headers.get_all(n).iter().count() > 1;
    let uri = first("x-forwarded-uri").flatten();
    let method = first("x-forwarded-method").flatten();
    let got = forwarded_request(&req);
    // What must be refused before the path is read, worked out from the headers alone.
    let token = |m: &str| {
        !m.is_empty()
            && m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let host_list = first("x-forwarded-host")
        .flatten()
        .is_some_and(|h| h.contains(','));
    let refused = if twice("x-forwarded-host") || host_list {
        Some(Refusal::AmbiguousForwardedHeader("X-Forwarded-Host"))
    } else if twice("x-forwarded-uri") {
        Some(Refusal::AmbiguousForwardedHeader("X-Forwarded-Uri"))
    } else if uri.is_none() {
        Some(Refusal::MissingForwardedHeader("X-Forwarded-Uri"))
    } else if twice("x-forwarded-method") {
        Some(Refusal::AmbiguousForwardedHeader("X-Forwarded-Method"))
    } else if method.is_none() {
        Some(Refusal::MissingForwardedHeader("X-Forwarded-Method"))
    } else if !method.is_some_and(token) {
        Some(Refusal::AmbiguousForwardedHeader("X-Forwarded-Method"))
    } else {
        None
    };
    if let Some(refusal) = refused {
        assert_eq!(refusal.status(), 400, "{refusal:?}");
        assert_eq!(got, Err(refusal));
        return;
    }
    let (Some(uri), Some(method)) = (uri, method) else {
        unreachable!("both are present when nothing is refused");
    };
    let f = match got {
        Err(refusal) => {
            assert_eq!(refusal.status(), 400, "{refusal:?}");
            assert!(matches!(refusal, Refusal::BadPath(_)), "{refusal:?}");
            return;
        }
        Ok(f) => f,
    };
    assert_eq!(f.method, method);
    let host = first("x-forwarded-host")
        .flatten()
        .or_else(|| first("host").flatten());
    assert_eq!(f.host.as_deref(), host);
    assert_eq!(normalize(&f.path).as_deref(), Ok(f.path.as_str()));

    // The same request-target sent to the gateway itself (one pingora takes).
    if let Ok(direct) = pingora_http::RequestHeader::build("GET", uri.as_bytes(), None) {
        if uri.starts_with('/') {
            let proxied = normalize(direct.uri.path());
            assert_eq!(
                proxied.as_ref().ok(),
                Some(&f.path),
                "X-Forwarded-Uri {uri:?} is decided as {:?}, the same target proxied as {proxied:?}",
                f.path
            );
        }
    }

    let Some(route) = config().routes.find(f.host.as_deref(), &f.path) else {
        return;
    };
    let prefix = route.path.trim_end_matches('/');
    assert!(
        f.path.starts_with(prefix),
        "route {} for {:?}",
        route.name,
        f.path
    );
    if let Some(scopes) = &route.scopes {
        if let (Some(needed), Some(read)) = (scopes.required(method), &scopes.read) {
            if needed == read.as_slice() && !scopes.by_method.contains_key(method) {
                assert!(
                    matches!(method, "GET" | "HEAD" | "OPTIONS"),
                    "{method:?} read"
                );
            }
        }
    }
});
