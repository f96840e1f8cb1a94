//! Identity-header smuggling: what a client says about who it is never reaches a backend,
//! in any spelling (`_` for `-`, any case), any number of times, or by asking the gateway
//! to drop its own headers (`Connection: x-auth-request-user`); on every route kind, and on
//! the reserved endpoints, which answer with identity of their own.

use super::{bearer, header, send, world};
use crate::support::{echoed, Raw};

/// Forged identity in every spelling a proxy or a CGI-style backend may read as ours.
const FORGED: &[(&str, &str)] = &[
    ("X-Auth-Request-User", "admin"),
    ("x-auth-request-user", "root"),
    ("X_Auth_Request_User", "admin"),
    ("X_AUTH_REQUEST_USER", "admin"),
    ("X-Auth_Request-User", "admin"),
    ("X-AUTH-REQUEST-EMAIL", "root@example.com"),
    ("X_Auth_Request_Email", "root@example.com"),
    ("X-Auth-Request-Groups", "admins"),
    ("x_auth_request_groups", "admins"),
    ("X-Auth-Request-Roles", "admin"),
    ("X-Auth-Request-Subject", "0"),
    ("X-Auth-Request-Client", "admin-service"),
    ("X_Auth_Request_Client", "admin-service"),
    ("X-Auth-Request-Scopes", "orders:admin"),
    ("X-Auth-Request-Access-Token", "forged"),
    ("X-Auth-Request-Preferred-Username", "admin"),
];

/// The identity headers a backend received, folded (`_` read as `-`, lower case).
fn identity_headers(echo: &serde_json::Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(k, _)| k.replace('_', "-").starts_with("x-auth-request-"))
        .collect()
}

/// Checks that the backend got exactly `want` as identity: each header once, spelled as
/// the gateway spells it, with the gateway's value.
fn assert_identity(what: &str, r: &Raw, want: &[(&str, &str)]) {
    let echo = r
        .echo()
        .unwrap_or_else(|| panic!("{what}: no backend answer: {r:?}"));
    let mut got = identity_headers(&echo);
    got.sort();
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{what}");
    let cookies = echoed(&echo, "cookie").join("; ");
    assert!(!cookies.contains("_portcullis"), "{what}: {cookies}");
}

fn with(extra: &[(&'static str, String)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = FORGED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    h
}

fn refs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_header_smuggling_is_stripped_on_every_route_kind() {
    let w = world().await;
    let billing = w.token("billing-service", "orders:read orders:write");
    let session = w.logged_in("alice").await;
    let cookie = w.cookies(&session);
    let service: &[(&str, &str)] = &[
        ("x-auth-request-user", "service-account-billing-service"),
        ("x-auth-request-subject", "billing-service"),
        ("x-auth-request-client", "billing-service"),
        ("x-auth-request-roles", "orders-writer,service"),
        ("x-auth-request-scopes", "orders:read,orders:write"),
    ];
    // (case, path, credentials sent, identity headers the backend must get): a table.
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, Vec<(&'static str, String)>, &[(&str, &str)])> = vec![
        ("public", "/page", vec![], &[]),
        (
            "public with a bearer",
            "/page",
            vec![("Authorization", bearer(&billing))],
            &[],
        ),
        (
            "bearer",
            "/api/x",
            vec![("Authorization", bearer(&billing))],
            service,
        ),
        (
            "scoped bearer",
            "/orders/1",
            vec![("Authorization", bearer(&billing))],
            service,
        ),
        (
            "any with a bearer",
            "/any/x",
            vec![("Authorization", bearer(&billing))],
            service,
        ),
        ("login", "/app/x", vec![("Cookie", cookie.clone())], &[]),
        (
            "any with a session",
            "/any/x",
            vec![("Cookie", cookie.clone())],
            &[],
        ),
    ];
    for (what, path, extra, want) in cases {
        let h = with(&extra);
        let r = send(w.addr(), "GET", path, &refs(&h)).await;
        assert_eq!(r.status, 200, "{what}: {r:?}");
        if what.contains("session") || what == "login" {
            // The session's identity: alice, whatever the forged headers said.
            let echo = r.echo().unwrap();
            let got = identity_headers(&echo);
            let users: Vec<&str> = got
                .iter()
                .filter(|(k, _)| k == "x-auth-request-user")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(users, ["alice"], "{what}: {got:?}");
            assert!(
                got.iter().all(|(k, v)| !k.contains('_')
                    && !v.contains("admin-service")
                    && !v.contains("root")
                    && v != "forged"),
                "{what}: {got:?}"
            );
            let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                names.len(),
                unique.len(),
                "{what}: one value per header: {got:?}"
            );
        } else {
            assert_identity(what, &r, want);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_header_smuggling_by_connection_cannot_drop_the_gateways_own_headers() {
    // Hop-by-hop: a header the client names in Connection is removed on the way. Were that
    // done after the identity is set, a client could strip `X-Auth-Request-Client` and let
    // a backend fall back to something else it trusts.
    let w = world().await;
    let token = w.token("billing-service", "orders:read");
    for nominated in [
        "X-Auth-Request-User, X-Auth-Request-Client, X-Auth-Request-Scopes",
        "x_auth_request_client",
        "keep-alive, X-Auth-Request-Roles, Authorization",
        "close, X-Auth-Request-Subject",
    ] {
        let r = send(
            w.addr(),
            "GET",
            "/api/x",
            &[
                ("Authorization", &bearer(&token)),
                ("Connection", nominated),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{nominated}: {r:?}");
        let echo = r.echo().unwrap();
        assert_eq!(
            echoed(&echo, "x-auth-request-client"),
            ["billing-service"],
            "{nominated}"
        );
        assert_eq!(
            echoed(&echo, "x-auth-request-user"),
            ["service-account-billing-service"],
            "{nominated}"
        );
        assert_eq!(
            echoed(&echo, "x-auth-request-scopes"),
            ["orders:read"],
            "{nominated}"
        );
        assert_eq!(echoed(&echo, "x-auth-request-subject"), ["billing-service"]);
    }
    // Naming X-Forwarded-For or Host may not make the backend believe the client either.
    for nominated in [
        "X-Forwarded-For",
        "Host",
        "X-Forwarded-Host, X-Forwarded-Proto",
    ] {
        let r = send(
            w.addr(),
            "GET",
            "/page",
            &[
                ("Connection", nominated),
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Host", "evil.example.com"),
            ],
        )
        .await;
        if let Some(echo) = r.echo() {
            assert_eq!(
                echoed(&echo, "x-forwarded-for"),
                ["127.0.0.1"],
                "{nominated}"
            );
            assert_eq!(
                echoed(&echo, "x-forwarded-host"),
                [w.addr().to_string()],
                "{nominated}"
            );
        } else {
            assert!((400..600).contains(&r.status), "{nominated}: {r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_header_smuggling_on_reserved_endpoints_changes_nothing() {
    let w = world().await;
    let token = w.token("billing-service", "orders:read");
    let forged = with(&[]);
    let forged = refs(&forged);
    let mut fa = forged.clone();
    fa.extend([("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/page")]);
    // Forward-auth for a public route: 200 with no identity at all.
    let r = send(w.addr(), "GET", "/_portcullis/auth", &fa).await;
    assert_eq!(r.status, 200, "{r:?}");
    let names: Vec<String> = r
        .head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, _)| k.trim().to_ascii_lowercase().replace('_', "-"))
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-auth-request-")),
        "forward-auth echoed a client's identity header: {}",
        r.head
    );
    // Forward-auth for a bearer route: the token's identity, once each.
    let auth = bearer(&token);
    let mut fa = forged.clone();
    fa.extend([
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Uri", "/api/x"),
        ("Authorization", auth.as_str()),
    ]);
    let r = send(w.addr(), "GET", "/_portcullis/auth", &fa).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        header(&r, "x-auth-request-user"),
        ["service-account-billing-service"]
    );
    assert_eq!(header(&r, "x-auth-request-client"), ["billing-service"]);
    assert!(header(&r, "x-auth-request-email").is_empty(), "{}", r.head);
    assert!(header(&r, "x-auth-request-groups").is_empty(), "{}", r.head);
    // Forward-auth for a bearer route without a token: refused, forged headers or not.
    let mut fa = forged.clone();
    fa.extend([
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Uri", "/admin/x"),
    ]);
    let r = send(w.addr(), "GET", "/_portcullis/auth", &fa).await;
    assert_eq!(r.status, 401, "{r:?}");
    // userinfo tells the token's identity, and nothing forged.
    let mut ui = forged.clone();
    ui.push(("Authorization", auth.as_str()));
    let r = send(w.addr(), "GET", "/_portcullis/userinfo", &ui).await;
    assert_eq!(r.status, 200, "{r:?}");
    let info: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(info["user"], "service-account-billing-service", "{info}");
    assert_eq!(info["client"], "billing-service", "{info}");
    assert!(
        !r.body.contains("admin-service") && !r.body.contains("root"),
        "{info}"
    );
    // Without credentials, forged identity is no credential.
    let r = send(w.addr(), "GET", "/_portcullis/userinfo", &forged).await;
    assert_eq!(r.status, 401, "{r:?}");
    // Login and logout answer with redirects of their own, never with forged identity.
    for path in ["/_portcullis/login?rd=/app/", "/_portcullis/logout?rd=/"] {
        let r = send(w.addr(), "GET", path, &forged).await;
        assert_eq!(r.status, 302, "{path}: {r:?}");
        assert!(
            !r.head.to_ascii_lowercase().contains("x-auth-request-"),
            "{path}: {}",
            r.head
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_header_smuggling_forward_auth_decides_one_request_not_the_first_of_several() {
    // A front proxy that appends its own X-Forwarded-Uri to the client's would leave the
    // client's first: deciding by the first one decides for a request that is not the one
    // proxied. Several values, or a comma list where one value is expected, are refused.
    let w = world().await;
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/page"),
            ("X-Forwarded-Uri", "/admin/x"),
        ],
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Method", "DELETE"),
            ("X-Forwarded-Uri", "/page"),
        ],
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/page"),
            ("X-Forwarded-Host", "public.test"),
            ("X-Forwarded-Host", "admin.test"),
        ],
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/x"),
            ("X-Forwarded-Host", "public.test, admin.test"),
        ],
        &[
            ("X-Forwarded-Method", "GET, DELETE"),
            ("X-Forwarded-Uri", "/page"),
        ],
    ];
    for headers in cases {
        let r = send(w.addr(), "GET", "/_portcullis/auth", headers).await;
        assert_eq!(r.status, 400, "{headers:?}: {r:?}");
    }
}
