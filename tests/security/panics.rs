//! Hostile input is "no credential" or a 4xx, never a panicking worker (which answers
//! nothing): one request for each place where request code indexes, slices or unwraps on
//! what a client sent (the audit of `expect`, `unwrap` and indexing in `src/`).

use std::time::Duration;

use super::{send, world};
use crate::support::raw;

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_never_panics_a_worker() {
    let w = world().await;
    let long_state = "é".repeat(40);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let deep_jwt = format!(
        "{}.{}.sig",
        b64(r#"{"alg":"RS256","kid":"rsa-1"}"#),
        b64(&deep)
    );
    let deep_header = format!("{}.{}.sig", b64(&deep), b64("{}"));
    let not_json = format!("{}.{}.sig", b64("{"), b64("}"));
    let iss_not_string = format!(
        "{}.{}.sig",
        b64(r#"{"alg":"RS256","kid":"rsa-1"}"#),
        b64(r#"{"iss":["a","b"],"exp":1e309}"#)
    );
    let multibyte_token = "é.é.é".to_owned();
    // (method, request target, headers): a table.
    #[allow(clippy::type_complexity)]
    let cases: Vec<(String, String, Vec<(String, String)>)> = vec![
        // Return targets: multi-byte characters where the checks index bytes.
        ("GET".into(), "/_portcullis/login?rd=%C3%A9".into(), vec![]),
        (
            "GET".into(),
            "/_portcullis/login?rd=/%C3%A9%C3".into(),
            vec![],
        ),
        (
            "GET".into(),
            "/_portcullis/logout?rd=/%E2%80%AE".into(),
            vec![],
        ),
        (
            "GET".into(),
            "/_portcullis/login?rd=/%F0%9F%92%A9?x=%FF".into(),
            vec![],
        ),
        ("GET".into(), "/_portcullis/login?rd".into(), vec![]),
        (
            "GET".into(),
            "/_portcullis/login?rd=/&rd=//evil".into(),
            vec![],
        ),
        // The state names a cookie by its first 16 characters: multi-byte ones.
        (
            "GET".into(),
            format!("/_portcullis/callback?code=x&state={long_state}"),
            vec![],
        ),
        (
            "GET".into(),
            "/_portcullis/callback?code=x&state=%FF%FE%00".into(),
            vec![("Cookie".into(), "_portcullis_state_\u{e9}=x".into())],
        ),
        (
            "POST".into(),
            "/_portcullis/callback".into(),
            vec![("Content-Length".into(), "0".into())],
        ),
        ("PUT".into(), "/_portcullis/callback".into(), vec![]),
        (
            "POST".into(),
            "/_portcullis/backchannel-logout".into(),
            vec![("Content-Length".into(), "0".into())],
        ),
        // Hosts whose port or brackets do not add up.
        ("GET".into(), "/x".into(), vec![("Host".into(), "[".into())]),
        (
            "GET".into(),
            "/x".into(),
            vec![("Host".into(), "[::1".into())],
        ),
        (
            "GET".into(),
            "/x".into(),
            vec![("Host".into(), "[]:".into())],
        ),
        ("GET".into(), "/x".into(), vec![("Host".into(), ":".into())]),
        (
            "GET".into(),
            "/x".into(),
            vec![("Host".into(), "é.test:80".into())],
        ),
        ("GET".into(), "/x".into(), vec![("Host".into(), ".".into())]),
        // Forward-auth with what is not a request.
        (
            "GET".into(),
            "/_portcullis/auth".into(),
            vec![
                ("X-Forwarded-Method".into(), "".into()),
                ("X-Forwarded-Uri".into(), "".into()),
                ("X-Forwarded-Host".into(), "[".into()),
            ],
        ),
        (
            "GET".into(),
            "/_portcullis/auth".into(),
            vec![
                ("X-Forwarded-Method".into(), "GET".into()),
                ("X-Forwarded-Uri".into(), "*".into()),
            ],
        ),
        (
            "GET".into(),
            "/_portcullis/auth".into(),
            vec![
                ("X-Forwarded-Method".into(), "GET".into()),
                ("X-Forwarded-Uri".into(), "%".into()),
            ],
        ),
        (
            "GET".into(),
            "/_portcullis/auth".into(),
            vec![
                ("X-Forwarded-Method".into(), "\u{e9}".into()),
                ("X-Forwarded-Uri".into(), "/caf\u{e9}?\u{e9}".into()),
            ],
        ),
        // Credentials that are not tokens.
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), format!("Bearer {deep_jwt}"))],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), format!("Bearer {deep_header}"))],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), format!("Bearer {not_json}"))],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), format!("Bearer {iss_not_string}"))],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), format!("Bearer {multibyte_token}"))],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), "Bearer ...".into())],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), "Bearer ==".into())],
        ),
        (
            "GET".into(),
            "/api/x".into(),
            vec![("Authorization".into(), "Bearer\u{e9}x".into())],
        ),
        (
            "GET".into(),
            "/_portcullis/userinfo".into(),
            vec![("Authorization".into(), "Bearer a.b".into())],
        ),
        // Cookies that are not pairs.
        (
            "GET".into(),
            "/app/x".into(),
            vec![("Cookie".into(), "=; ;=;_portcullis;_portcullis=".into())],
        ),
        (
            "GET".into(),
            "/app/x".into(),
            vec![("Cookie".into(), "_portcullis_\u{e9}=\u{e9}".into())],
        ),
        // Methods the rules have never heard of.
        ("PROPFIND".into(), "/orders/1".into(), vec![]),
        (
            "M-SEARCH".into(),
            "/app/x".into(),
            vec![("Accept".into(), "text/html".into())],
        ),
    ];
    for (method, target, headers) in &cases {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = send(w.addr(), method, target, &h).await;
        assert!(
            (200..500).contains(&r.status),
            "{method} {target} {headers:?}: {} (0 is no answer at all) {}",
            r.status,
            &r.body[..r.body.len().min(200)]
        );
    }
    // Bytes no client library would send: non-UTF-8 header values where text is expected.
    for line in [
        &b"Authorization: Bearer \xff\xfe"[..],
        b"Cookie: _portcullis=\xff\xfe",
        b"X-Forwarded-Uri: /\xff",
        b"Host: \xff",
    ] {
        for path in [
            &b"/api/x"[..],
            b"/app/x",
            b"/_portcullis/auth",
            b"/_portcullis/userinfo",
        ] {
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(path);
            req.extend_from_slice(b" HTTP/1.1\r\nConnection: close\r\nX-Forwarded-Method: GET\r\n");
            if !line.starts_with(b"Host") {
                req.extend_from_slice(b"Host: x\r\n");
            }
            req.extend_from_slice(line);
            req.extend_from_slice(b"\r\n\r\n");
            let r = raw(w.addr(), &req).await;
            assert!(
                (200..500).contains(&r.status),
                "{} {}: {}",
                String::from_utf8_lossy(path),
                String::from_utf8_lossy(line),
                r.status
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = w.gw.log();
    assert!(!log.contains("panicked"), "a worker panicked:\n{log}");
    assert_eq!(
        send(w.addr(), "GET", "/ok", &[]).await.status,
        200,
        "still serving"
    );
}
