//! Rule bypass by path: dot segments, percent-encodings (double ones included), encoded
//! and raw separators, `;` parameters, `//`, NUL, fragments and case never let a request
//! reach a backend under a route other than the one whose rules it passed; and, as a
//! property over generated paths, the path the rules matched is the path the backend
//! received.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{send, world, world_blocking, World, ROUTES};
use crate::support::Raw;

/// The route the gateway's table picks for a normalized path (no `Host` route applies to
/// requests for the gateway's own address): the longest prefix on segment boundaries,
/// with each segment's `;parameters` left out, as Tomcat, Jetty and Spring read them.
fn expected_route(path: &str) -> &'static str {
    let bare: String = path
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(s))
        .collect::<Vec<_>>()
        .join("/");
    let mut best: (&str, usize) = ("public", 0);
    for (name, host, prefix, _) in ROUTES {
        if host.is_some() || *prefix == "/" {
            continue;
        }
        let matches =
            |p: &str| p.strip_prefix(*prefix).is_some() || prefix.strip_suffix('/') == Some(p);
        if (matches(path) || matches(&bare)) && prefix.len() > best.1 {
            best = (name, prefix.len());
        }
    }
    best.0
}

/// Whether a route lets a request without credentials through.
fn open(route: &str) -> bool {
    matches!(route, "public" | "dead")
}

/// Judges one answer to `GET raw`: refused, or answered by the backend of the route the
/// backend's own path selects, with that path exactly what the gateway normalized.
fn judge(w: &World, raw: &str, r: &Raw) -> Result<(), String> {
    let (path_part, query) = match raw.split_once('#').map_or(raw, |(p, _)| p).split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw.split_once('#').map_or(raw, |(p, _)| p), None),
    };
    let normalized = portcullis::policy::path::normalize(path_part);
    if r.status >= 500 || r.status == 0 {
        return Err(format!(
            "{raw:?}: {} (a server error or no answer)",
            r.status
        ));
    }
    let Some(echo) = r.echo() else {
        return match &normalized {
            // Refused before any route: fine, as long as it is a client error.
            Err(_) if (400..500).contains(&r.status) => Ok(()),
            Err(e) => Err(format!("{raw:?}: {e} yet {}", r.status)),
            Ok(p) if !open(expected_route(p)) => Ok(()),
            Ok(_) if (400..500).contains(&r.status) => Ok(()),
            Ok(p) => Err(format!("{raw:?} ({p}): {} without a backend", r.status)),
        };
    };
    let uri = echo["uri"].as_str().unwrap_or_default();
    let (got_path, got_query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let Ok(normalized) = normalized else {
        return Err(format!(
            "{raw:?} is refused by normalization, yet reached {uri}"
        ));
    };
    if got_path != normalized {
        return Err(format!(
            "{raw:?}: the rules matched {normalized}, the backend got {got_path}"
        ));
    }
    if portcullis::policy::path::normalize(got_path).as_deref() != Ok(got_path) {
        return Err(format!(
            "{raw:?}: the backend got {got_path}, which normalizes further"
        ));
    }
    if got_query != query {
        return Err(format!("{raw:?}: query {query:?} became {got_query:?}"));
    }
    let route = w.route_of(r).unwrap_or("?");
    let want = expected_route(got_path);
    if route != want {
        return Err(format!(
            "{raw:?}: {got_path} belongs to {want}, the gateway chose {route}"
        ));
    }
    if !open(route) {
        return Err(format!(
            "{raw:?}: reached the {route} backend without credentials"
        ));
    }
    Ok(())
}

/// `GET raw` over a blocking connection (for the property runner, which is synchronous).
fn get_blocking(addr: SocketAddr, raw: &str) -> Raw {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {raw} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Paths aimed at `/admin/` (bearer, admin-service only) and `/app/` (login) from elsewhere.
const CORPUS: &[&str] = &[
    "/public/../admin/secret",
    "/public/./../admin/secret",
    "/x/y/../../admin/secret",
    "/public/%2e%2e/admin/secret",
    "/public/%2E%2e/admin/secret",
    "/public/.%2e/admin/secret",
    "/%61dmin/secret",
    "/%61%64%6d%69%6e/secret",
    "/adm%69n/secret",
    "//admin/secret",
    "///admin//secret",
    "/./admin/secret",
    "/admin/./secret",
    "/public/%252e%252e/admin/secret",
    "/%252e%252e/admin/secret",
    "/public%252f..%252fadmin/secret",
    "/admin%252fsecret",
    "/public%2f..%2fadmin/secret",
    "/public%2F..%2Fadmin/secret",
    "/admin%2fsecret",
    "/public%5c..%5cadmin/secret",
    "/public\\..\\admin/secret",
    "/admin\\secret",
    "/public/..\\admin/secret",
    "/public/..;/admin/secret",
    "/public/.;/../admin/secret",
    "/admin;/secret",
    "/admin;x=1/secret",
    "/admin;jsessionid=ABC/secret",
    "/app;/secret",
    "/api;v=1/x",
    "/admin%3b/secret",
    "/admin%00/secret",
    "/admin%00",
    "/public%00/../admin/secret",
    "/public#/../admin/secret",
    "/public%23/../admin/secret",
    "/admin#",
    "/ADMIN/secret",
    "/Admin/secret",
    "/%41dmin/secret",
    "/admin./secret",
    "/admin%2e/secret",
    "/admin%20/secret",
    "/admin%09/secret",
    "/%c0%ae%c0%ae/admin/secret",
    "/%e0%80%ae%e0%80%ae/admin/secret",
    "/public/%ef%bc%8e%ef%bc%8e/admin/secret",
    "/admin%ef%bc%8fsecret",
    "/public/..%ef%bc%8fadmin/secret",
    "/api/../admin/secret",
    "/api/%2e%2e/admin/secret",
    "/app/../../admin/secret",
    "/admin?/../public",
    "/public?/../admin/secret",
    "/public/x?%2e%2e/admin",
    "/_portcullis/../admin/secret",
    "/_portcullis/%2e%2e/admin/secret",
];

#[tokio::test(flavor = "multi_thread")]
async fn rule_bypass_by_path_never_reaches_a_protected_backend() {
    let w = world().await;
    let mut failures = Vec::new();
    for raw in CORPUS {
        let r = send(w.addr(), "GET", raw, &[("Accept", "application/json")]).await;
        if let Err(e) = judge(w, raw, &r) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_bypass_by_path_parameters_is_matched_as_java_backends_read_it() {
    // Tomcat, Jetty and Spring drop `;parameters` from each segment before routing: to them
    // /admin;x/secret is /admin/secret. The gateway must not judge it as a public path.
    let w = world().await;
    for raw in [
        "/admin;/secret",
        "/admin;x=1/secret",
        "/admin;jsessionid=0123456789ABCDEF/secret",
        "/admin;x;y/secret",
        "/admin;",
        "/app;/secret",
        "/api;v=2/x",
    ] {
        let r = send(w.addr(), "GET", raw, &[("Accept", "application/json")]).await;
        assert!(
            r.echo().is_none(),
            "{raw} reached the {:?} backend: {r:?}",
            w.route_of(&r)
        );
        assert!(matches!(r.status, 400 | 401), "{raw}: {r:?}");
    }
    // With credentials for the route, a parameter is passed on as sent.
    let admin = super::bearer(&w.token("admin-service", ""));
    let r = send(
        w.addr(),
        "GET",
        "/admin;v=1/secret",
        &[("Authorization", &admin)],
    )
    .await;
    if r.status == 200 {
        assert_eq!(r.echo().unwrap()["uri"], "/admin;v=1/secret");
        assert_eq!(w.route_of(&r), Some("admin"));
    } else {
        assert_eq!(r.status, 400, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_bypass_by_raw_bytes_in_the_path_gets_a_client_error_not_a_crash() {
    let w = world().await;
    let bytes: &[&[u8]] = &[
        b"/admin\0/secret",
        b"/public/..\0/admin/secret",
        b"/admin\xff/secret",
        b"/public/\xc0\xae\xc0\xae/admin/secret",
        b"/caf\xc3\xa9",
        b"/public/\x7f",
        b"/admin\x0b/secret",
        b"/public/\r/admin",
    ];
    for path in bytes {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(path);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let r = crate::support::raw(w.addr(), &req).await;
        let shown = String::from_utf8_lossy(path);
        assert!(r.status > 0 && r.status < 500, "{shown:?}: {r:?}");
        if let Some(echo) = r.echo() {
            let uri = echo["uri"].as_str().unwrap();
            assert!(!uri.contains("admin"), "{shown:?} reached {uri}");
            assert_eq!(w.route_of(&r), Some("public"), "{shown:?}");
        }
    }
    // The gateway still answers.
    assert_eq!(send(w.addr(), "GET", "/ok", &[]).await.status, 200);
}

/// One generated path segment: names of routes, dot segments in every encoding, separators
/// encoded once and twice, parameters, and characters that need encoding.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("admin".to_owned()),
        2 => Just("app".to_owned()),
        2 => Just("api".to_owned()),
        2 => Just("public".to_owned()),
        1 => Just("_portcullis".to_owned()),
        3 => Just("..".to_owned()),
        2 => Just(".".to_owned()),
        2 => Just(String::new()),
        1 => Just("%2e%2e".to_owned()),
        1 => Just("%2E.".to_owned()),
        1 => Just("%2e".to_owned()),
        1 => Just("%252e%252e".to_owned()),
        1 => Just("%61dmin".to_owned()),
        1 => Just("ADMIN".to_owned()),
        1 => Just("admin;x=1".to_owned()),
        1 => Just("..;".to_owned()),
        1 => Just(";".to_owned()),
        1 => Just("%3b".to_owned()),
        1 => Just("%2f".to_owned()),
        1 => Just("%252f".to_owned()),
        1 => Just("%5c".to_owned()),
        1 => Just("%25".to_owned()),
        1 => Just("%7e".to_owned()),
        1 => Just("a%20b".to_owned()),
        1 => Just("%c3%a9".to_owned()),
        1 => Just("%00".to_owned()),
        1 => Just("%zz".to_owned()),
        1 => Just("~x".to_owned()),
        3 => "[a-z0-9._~-]{1,6}",
    ]
}

fn request_path() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(segment(), 0..7),
        proptest::bool::ANY,
        proptest::option::of(prop_oneof![
            Just("q=1".to_owned()),
            Just("a=%2F..%2Fadmin&b".to_owned()),
            Just("/../admin".to_owned()),
            Just(String::new()),
        ]),
        proptest::option::of(Just("/../admin".to_owned())),
    )
        .prop_map(|(segs, trailing, query, fragment)| {
            let mut p = format!("/{}", segs.join("/"));
            if trailing && !p.ends_with('/') {
                p.push('/');
            }
            if let Some(q) = query {
                p.push('?');
                p.push_str(&q);
            }
            if let Some(f) = fragment {
                p.push('#');
                p.push_str(&f);
            }
            p
        })
}

#[test]
fn the_path_the_rules_matched_is_the_path_the_backend_received() {
    let w = world_blocking();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&request_path(), |raw| {
        let r = get_blocking(w.addr(), &raw);
        judge(w, &raw, &r).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
