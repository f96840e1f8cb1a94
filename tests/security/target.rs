//! What the backend acts on — method, path, host, credential — is what the rules checked:
//! method-override headers and `_method`, `X-Original-URL` / `X-Rewrite-URL`, absolute-form
//! targets naming another host, `Host` against the target's authority, and method casing.

use super::{bearer, header, send, world};
use crate::support::{echoed, raw, Raw};

/// Every header or parameter a web framework reads to act as another method.
const METHOD_OVERRIDES: &[&str] = &[
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "x-http-method-override",
    "X_HTTP_Method_Override",
    "X_Method_Override",
];

/// Whether the backend could act as `method` on this answer: it answered, and the
/// request it got says `method` in the method or in any override.
fn backend_could_act_as(r: &Raw, method: &str) -> bool {
    let Some(echo) = r.echo() else {
        return false;
    };
    if echo["method"]
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case(method))
    {
        return true;
    }
    let overridden = echo["headers"].as_array().unwrap().iter().any(|p| {
        let name = p[0].as_str().unwrap().replace('_', "-");
        let value = p[1].as_str().unwrap();
        matches!(
            name.as_str(),
            "x-http-method-override" | "x-http-method" | "x-method-override"
        ) && value.eq_ignore_ascii_case(method)
    });
    let uri = echo["uri"].as_str().unwrap_or_default();
    let in_query = uri
        .split_once('?')
        .map(|(_, q)| {
            url::form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "_method" && v.eq_ignore_ascii_case(method))
        })
        .unwrap_or(false);
    overridden || in_query
}

#[tokio::test(flavor = "multi_thread")]
async fn method_override_headers_cannot_turn_a_checked_method_into_another() {
    // /orders/: GET needs orders:read, POST orders:write, DELETE orders:admin. Symfony,
    // Laravel, Express' method-override and Google's APIs act on these headers.
    let w = world().await;
    let reader = bearer(&w.token("billing-service", "orders:read"));
    let writer = bearer(&w.token("billing-service", "orders:read orders:write"));
    for name in METHOD_OVERRIDES {
        for (method, auth) in [("GET", &reader), ("POST", &writer), ("HEAD", &reader)] {
            let r = send(
                w.addr(),
                method,
                "/orders/1",
                &[
                    ("Authorization", auth),
                    (name, "DELETE"),
                    ("Content-Length", "0"),
                ],
            )
            .await;
            assert!(
                !backend_could_act_as(&r, "DELETE"),
                "{method} with {name}: DELETE reached the backend, checked as {method}: {r:?}"
            );
            assert!(
                (400..500).contains(&r.status) || r.status == 200,
                "{name}: {r:?}"
            );
        }
    }
    // Forward-auth decides for the proxied request, whose headers it is shown: the front
    // proxy passes the override on to the backend, so the decision may not ignore it.
    for (name, value) in [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Original-URL", "/admin/x"),
    ] {
        let r = send(
            w.addr(),
            "GET",
            "/_portcullis/auth",
            &[
                ("Authorization", &reader),
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/orders/1"),
                (name, value),
            ],
        )
        .await;
        assert_eq!(r.status, 400, "forward-auth with {name}: {r:?}");
    }
    let r = send(
        w.addr(),
        "GET",
        "/_portcullis/auth",
        &[
            ("Authorization", &writer),
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/orders/1?_method=DELETE"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "forward-auth with _method: {r:?}");
    // An override naming the method itself changes nothing, and is let through.
    let r = send(
        w.addr(),
        "GET",
        "/orders/1",
        &[
            ("Authorization", &reader),
            ("X-HTTP-Method-Override", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn method_override_by_query_parameter_cannot_turn_a_checked_method_into_another() {
    // Laravel reads `_method` from the query of a POST; Express' method-override can too.
    let w = world().await;
    let writer = bearer(&w.token("billing-service", "orders:read orders:write"));
    for target in [
        "/orders/1?_method=DELETE",
        "/orders/1?x=1&_method=delete",
        "/orders/1?%5Fmethod=DELETE",
        "/orders/1?_method=PUT&_method=DELETE",
    ] {
        let r = send(
            w.addr(),
            "POST",
            target,
            &[("Authorization", &writer), ("Content-Length", "0")],
        )
        .await;
        assert!(
            !backend_could_act_as(&r, "DELETE"),
            "POST {target}: DELETE reached the backend, checked as POST: {r:?}"
        );
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A whole `POST` of `body` to `path`, with `authorization` if given.
fn form_post(
    addr: std::net::SocketAddr,
    authorization: Option<&str>,
    path: &str,
    content_type: &str,
    body: &str,
) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn method_override_by_form_body_cannot_turn_a_checked_method_into_another() {
    let w = world().await;
    let writer = bearer(&w.token("billing-service", "orders:read orders:write"));
    let post = |content_type: &str, body: &str| {
        form_post(w.addr(), Some(&writer), "/orders/1", content_type, body)
    };
    let r = raw(w.addr(), post(FORM, "_method=DELETE").as_bytes()).await;
    assert!(
        r.echo().is_none(),
        "a POST whose form says _method=DELETE reached the backend with only orders:write: {r:?}"
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("_method"),
        "the refusal names the field: {r:?}"
    );
    // Any spelling, any place in the form, a multipart form too.
    let multipart =
        "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n";
    for (content_type, body) in [
        (FORM, "title=a&%5Fmethod=delete"),
        (
            "application/x-www-form-urlencoded; charset=UTF-8",
            "_method=%44ELETE&x=1",
        ),
        ("multipart/form-data; boundary=XyZ", multipart),
    ] {
        let r = raw(w.addr(), post(content_type, body).as_bytes()).await;
        assert!(
            r.echo().is_none(),
            "{content_type} {body:?} reached the backend: {r:?}"
        );
        assert_eq!(r.status, 400, "{r:?}");
    }
    // Forms that do not change the method pass whole, so do those naming a method the
    // caller holds the scopes for (GET: orders:read), and other bodies are not read.
    for (content_type, body) in [
        (FORM, "title=a&note=_method%3DDELETE"),
        (FORM, "_method=POST"),
        (FORM, "_method=get"),
        ("application/json", "{\"_method\": \"DELETE\"}"),
    ] {
        let r = raw(w.addr(), post(content_type, body).as_bytes()).await;
        let echo = r
            .echo()
            .unwrap_or_else(|| panic!("{body:?} was refused: {r:?}"));
        assert_eq!(echo["body_bytes"], body.len(), "{r:?}");
    }
    // Every `_method` is checked, not only the first (Rack and PHP act on the last).
    let r = raw(
        w.addr(),
        post(FORM, "_method=GET&_method=DELETE").as_bytes(),
    )
    .await;
    assert!(r.echo().is_none(), "{r:?}");
    // With orders:admin the DELETE it names is one the rules admit: the form goes through.
    let admin = bearer(&w.token("billing-service", "orders:read orders:write orders:admin"));
    let req = form_post(w.addr(), Some(&admin), "/orders/1", FORM, "_method=DELETE");
    let r = raw(w.addr(), req.as_bytes()).await;
    assert!(r.echo().is_some(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_method_override_passes_on_routes_whose_rules_do_not_depend_on_the_method() {
    // Rails' and Laravel's delete and update buttons are forms with `_method`: on a route
    // without `scopes` the rules are the same for every method, so nothing is bypassed.
    let w = world().await;
    let token = bearer(&w.token("billing-service", "orders:read"));
    for (path, auth) in [("/api/1", Some(token.as_str())), ("/page", None)] {
        let body = "_method=delete&id=1";
        let req = form_post(w.addr(), auth, path, FORM, body);
        let r = raw(w.addr(), req.as_bytes()).await;
        let echo = r.echo().unwrap_or_else(|| panic!("{path}: {r:?}"));
        assert_eq!(echo["body_bytes"], body.len(), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn method_override_in_a_later_chunk_of_a_form_never_reaches_the_backend_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world().await;
    let writer = bearer(&w.token("billing-service", "orders:read orders:write"));
    let first = "title=".to_owned() + &"a".repeat(20_000);
    let rest = "&_method=DELETE";
    let mut s = tokio::net::TcpStream::connect(w.addr()).await.unwrap();
    let head = format!(
        "POST /orders/1 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {writer}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{first}",
        w.addr(),
        first.len() + rest.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = s.write_all(rest.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        !answer.contains("body_bytes"),
        "the backend answered: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_rewrite_headers_cannot_change_the_path_the_rules_checked() {
    // IIS, Symfony (before 5) and Zend act on X-Original-URL / X-Rewrite-URL as the path:
    // checked as /page, served as /admin/secret.
    let w = world().await;
    for name in [
        "X-Original-URL",
        "X-Rewrite-URL",
        "x-original-url",
        "X_Original_URL",
        "X_Rewrite_Url",
    ] {
        let r = send(w.addr(), "GET", "/page", &[(name, "/admin/secret")]).await;
        if let Some(echo) = r.echo() {
            let names: Vec<String> = echo["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[0].as_str().unwrap().replace('_', "-"))
                .collect();
            assert!(
                !names
                    .iter()
                    .any(|n| n == "x-original-url" || n == "x-rewrite-url"),
                "{name} reached the backend of a public route: {names:?}"
            );
        } else {
            assert!((400..500).contains(&r.status), "{name}: {r:?}");
        }
    }
}

/// `GET target` with exactly these header lines (no Host added).
async fn get_as_sent(addr: std::net::SocketAddr, target: &str, headers: &[&str]) -> Raw {
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn host_confusion_the_backend_is_told_the_host_the_route_was_chosen_by() {
    // admin.test: bearer, admin-service only; public.test: public. Whatever the request
    // says, a backend that answered got the Host of the route that let it through.
    let w = world().await;
    let cases: &[(&str, &[&str])] = &[
        ("http://admin.test/x", &["Host: public.test"]),
        ("http://public.test/x", &["Host: admin.test"]),
        ("http://admin.test/x", &[]),
        ("http://admin.test:80/x", &["Host: public.test"]),
        ("https://admin.test/x", &["Host: public.test"]),
        ("http://public.test@admin.test/x", &["Host: admin.test"]),
        ("http://admin.test/x", &["Host: public.test@admin.test"]),
        ("/x", &["Host: public.test", "Host: admin.test"]),
        ("/x", &["Host: admin.test", "Host: public.test"]),
        ("/x", &["Host: public.test, admin.test"]),
        ("/x", &["Host: public.test:80@admin.test"]),
        ("/x", &["Host: admin.test."]),
        ("/x", &["Host: ADMIN.test"]),
        ("/x", &["Host: public.test", "X-Forwarded-Host: admin.test"]),
        (
            "/x",
            &[
                "Host: public.test",
                "X-Host: admin.test",
                "X-Forwarded-Server: admin.test",
            ],
        ),
        ("//admin.test/x", &["Host: public.test"]),
    ];
    for (target, headers) in cases {
        let r = get_as_sent(w.addr(), target, headers).await;
        assert!(
            r.status > 0 && r.status < 500,
            "{target} {headers:?}: {r:?}"
        );
        let Some(echo) = r.echo() else {
            assert!(
                (400..500).contains(&r.status),
                "{target} {headers:?}: {r:?}"
            );
            continue;
        };
        let route = w.route_of(&r);
        let hosts = echoed(&echo, "host");
        let forwarded = echoed(&echo, "x-forwarded-host");
        assert_ne!(
            route,
            Some("admin-host"),
            "{target} {headers:?}: no credentials"
        );
        for h in hosts.iter().chain(&forwarded) {
            assert!(
                !h.to_ascii_lowercase().contains("admin.test"),
                "{target} {headers:?}: the {route:?} backend was told the host is {h}: {echo}"
            );
        }
        let uri = echo["uri"].as_str().unwrap_or_default();
        assert!(
            uri.starts_with('/') && !uri.starts_with("//") && !uri.contains("://"),
            "{target} {headers:?}: the backend got a target naming a host: {echo}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn method_casing_lowercase_methods_never_skip_a_method_specific_rule() {
    // RFC 9110 methods are case-sensitive, and the gateway matches them exactly; but
    // Django and Werkzeug (Flask) upper-case REQUEST_METHOD, so `delete` acts as DELETE
    // and `get` as GET. A rule for DELETE (orders:admin), or for reads (orders:read),
    // must hold for every spelling a backend reads as that method.
    let w = world().await;
    let writer = bearer(&w.token("billing-service", "orders:write"));
    let reader_writer = bearer(&w.token("billing-service", "orders:read orders:write"));
    for (method, auth, acts_as) in [
        ("delete", &reader_writer, "DELETE"),
        ("Delete", &reader_writer, "DELETE"),
        ("dELETE", &reader_writer, "DELETE"),
        ("get", &writer, "GET"),
        ("Get", &writer, "GET"),
        ("head", &writer, "HEAD"),
    ] {
        let r = send(
            w.addr(),
            method,
            "/orders/1",
            &[("Authorization", auth), ("Content-Length", "0")],
        )
        .await;
        assert!(
            r.echo().is_none(),
            "`{method}` reached the backend (which reads it as {acts_as}) without the scope {acts_as} needs: {r:?}"
        );
        assert!((400..500).contains(&r.status), "{method}: {r:?}");
        if r.status == 403 {
            assert!(
                header(&r, "www-authenticate")
                    .iter()
                    .any(|c| c.contains("insufficient_scope")),
                "{method}: {}",
                r.head
            );
        }
    }
    // The exact methods still work as configured.
    let admin = bearer(&w.token("billing-service", "orders:admin"));
    let r = send(
        w.addr(),
        "DELETE",
        "/orders/1",
        &[("Authorization", &admin)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echo().unwrap()["method"], "DELETE");
    let r = send(
        w.addr(),
        "GET",
        "/orders/1",
        &[("Authorization", &reader_writer)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // A lower-case method is passed on exactly as it was checked.
    let both = bearer(&w.token("billing-service", "orders:read orders:write orders:admin"));
    let r = send(
        w.addr(),
        "delete",
        "/orders/1",
        &[("Authorization", &both), ("Content-Length", "0")],
    )
    .await;
    if let Some(echo) = r.echo() {
        assert_eq!(echo["method"], "delete", "{echo}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_confusion_the_backend_gets_the_credential_that_was_verified() {
    // Two Authorization headers, or a bearer in the query beside a verified one: the
    // gateway decides on one credential, and a backend must not be handed another.
    let w = world().await;
    let billing = bearer(&w.token("billing-service", "orders:read"));
    let admin = bearer(&w.token("admin-service", ""));
    let r = send(
        w.addr(),
        "GET",
        "/api/x",
        &[("Authorization", &billing), ("Authorization", &admin)],
    )
    .await;
    assert_eq!(r.status, 401, "two credentials are none: {r:?}");
    let r = send(
        w.addr(),
        "GET",
        "/admin/x",
        &[("Authorization", &billing), ("Authorization", &admin)],
    )
    .await;
    assert!(r.echo().is_none(), "{r:?}");
    // The verified token reaches the backend unchanged, and nothing else does.
    let r = send(w.addr(), "GET", "/api/x", &[("Authorization", &billing)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        echoed(&r.echo().unwrap(), "authorization"),
        std::slice::from_ref(&billing)
    );
    // `Proxy-Authorization` is hop-by-hop: it never reaches a backend as a second credential.
    let r = send(
        w.addr(),
        "GET",
        "/api/x",
        &[("Authorization", &billing), ("Proxy-Authorization", &admin)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(echoed(&r.echo().unwrap(), "proxy-authorization").is_empty());
}
