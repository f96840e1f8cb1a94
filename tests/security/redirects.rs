//! Open redirects: `rd` on login and logout, `post_logout_redirect_uri`, and headers a
//! client controls (`Host`, `X-Forwarded-Host`, `-Proto`, `Forwarded`) never shape where
//! the gateway sends a browser. (The basic corpus of `tests/e2e_login.rs` is not repeated.)

use super::{header, send, through_login, world};
use crate::support::browser::Browser;

/// Return targets browsers read as another origin, as script, or as a header break.
const HOSTILE_RD: &[&str] = &[
    "//evil.example.com/",
    "///evil.example.com",
    "////evil.example.com",
    "/\\evil.example.com",
    "\\\\evil.example.com",
    "/\t/evil.example.com",
    "/\r\n/evil.example.com",
    "/%09/evil.example.com",
    "/%0a/evil.example.com",
    "/%0d%0aLocation:%20https://evil.example.com",
    "/%2f/evil.example.com",
    "/%2F%2Fevil.example.com",
    "/%5cevil.example.com",
    "/%5C%5Cevil.example.com",
    "/%00//evil.example.com",
    "https://evil.example.com",
    "HTTPS://evil.example.com",
    "http:evil.example.com",
    "http:/evil.example.com",
    "https:\\\\evil.example.com",
    "evil.example.com",
    "@evil.example.com",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    " //evil.example.com",
    "",
];

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether a `Location` stays on the gateway's origin: a path, or an absolute URL on
/// `origin`.
fn same_origin(location: &str, origin: &str) -> bool {
    (location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\"))
        || location.starts_with(&format!("{origin}/"))
}

#[tokio::test(flavor = "multi_thread")]
async fn open_redirect_rd_on_login_is_refused_unless_a_same_origin_path() {
    let w = world().await;
    for rd in HOSTILE_RD {
        let target = format!("/_portcullis/login?rd={}", urlencode(rd));
        let r = send(w.addr(), "GET", &target, &[("Accept", "text/html")]).await;
        assert_eq!(r.status, 400, "rd={rd:?}: {r:?}");
        assert!(header(&r, "location").is_empty(), "rd={rd:?}: {}", r.head);
        // The same target as a raw (unencoded) query value.
        if rd.bytes().all(|b| b.is_ascii_graphic()) {
            let r = send(w.addr(), "GET", &format!("/_portcullis/login?rd={rd}"), &[]).await;
            assert!(
                r.status == 400
                    || header(&r, "location")
                        .iter()
                        .all(|l| l.starts_with(&w.op.issuer)),
                "raw rd={rd:?}: {r:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn open_redirect_a_completed_login_lands_on_the_gateways_origin_whatever_the_host() {
    // Paths that look like hosts are still paths; the callback's Location is relative, so
    // neither Host nor X-Forwarded-Host can turn it into another origin.
    let w = world().await;
    let origin = w.url("");
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("/@evil.example.com", &[("Host", "evil.example.com")]),
        (
            "/.evil.example.com/x",
            &[
                ("X-Forwarded-Host", "evil.example.com"),
                ("X-Forwarded-Proto", "https"),
            ],
        ),
        (
            "/app/?next=//evil.example.com",
            &[("Forwarded", "host=evil.example.com;proto=https")],
        ),
    ];
    for (rd, forged) in cases {
        let mut b = Browser::new();
        let start = w.url(&format!("/_portcullis/login?rd={}", urlencode(rd)));
        let first = b.open(&start).await;
        assert_eq!(first.status, 302, "{rd}: {}", first.body);
        let callback = through_login(&mut b, first, "alice", "alice-password").await;
        let path = callback
            .strip_prefix(&origin)
            .expect("the callback is on the gateway");
        let cookie = w.cookies(&b);
        let mut headers = forged.to_vec();
        headers.push(("Cookie", &cookie));
        let r = send(w.addr(), "GET", path, &headers).await;
        assert_eq!(r.status, 302, "{rd} {forged:?}: {r:?}");
        let loc = header(&r, "location");
        assert_eq!(loc, [rd.to_owned()], "{rd} {forged:?}: {}", r.head);
        assert!(same_origin(&loc[0], &origin), "{rd}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn open_redirect_host_or_forwarded_headers_never_change_the_redirect_uri() {
    let w = world().await;
    let callback = format!(
        "redirect_uri={}",
        urlencode(&w.url("/_portcullis/callback"))
    );
    for forged in [
        vec![("Host", "evil.example.com")],
        vec![("Host", "evil.example.com:443")],
        vec![("X-Forwarded-Host", "evil.example.com")],
        vec![("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443")],
        vec![("Forwarded", "host=evil.example.com;proto=https")],
        vec![("X-Original-Host", "evil.example.com")],
    ] {
        for target in ["/_portcullis/login?rd=/app/x", "/app/x"] {
            let mut headers = forged.clone();
            headers.push(("Accept", "text/html"));
            let r = send(w.addr(), "GET", target, &headers).await;
            if r.status != 302 {
                // Refused outright is fine too: never a redirect elsewhere.
                assert!((400..500).contains(&r.status), "{target} {forged:?}: {r:?}");
                continue;
            }
            let loc = header(&r, "location").pop().unwrap_or_default();
            assert!(loc.starts_with(&w.op.issuer), "{target} {forged:?}: {loc}");
            assert!(loc.contains(&callback), "{target} {forged:?}: {loc}");
            assert!(
                !loc.contains("evil.example.com"),
                "{target} {forged:?}: {loc}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn open_redirect_logout_rd_and_post_logout_redirect_uri_stay_on_public_url() {
    let w = world().await;
    let b = w.logged_in("alice").await;
    let cookie = w.cookies(&b);
    // Refused targets end nothing and send nowhere.
    for rd in HOSTILE_RD {
        let target = format!("/_portcullis/logout?rd={}", urlencode(rd));
        for cookie in ["", cookie.as_str()] {
            let r = send(w.addr(), "GET", &target, &[("Cookie", cookie)]).await;
            assert_eq!(r.status, 400, "rd={rd:?}: {r:?}");
            assert!(header(&r, "location").is_empty(), "rd={rd:?}: {}", r.head);
        }
    }
    let userinfo = send(
        w.addr(),
        "GET",
        "/_portcullis/userinfo",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(userinfo.status, 200, "no refused logout ended the session");
    // Without a session: back to rd itself, a path.
    for forged in [
        ("Host", "evil.example.com"),
        ("X-Forwarded-Host", "evil.example.com"),
    ] {
        let r = send(w.addr(), "GET", "/_portcullis/logout?rd=/bye", &[forged]).await;
        assert_eq!(r.status, 302, "{r:?}");
        let loc = header(&r, "location");
        assert_eq!(loc, ["/bye"], "{forged:?}");
        assert!(same_origin(&loc[0], &w.url("")));
    }
    // With one: RP-initiated logout, whose post_logout_redirect_uri is public_url + rd
    // whatever the request's Host or X-Forwarded-Host said.
    let want = format!("post_logout_redirect_uri={}", urlencode(&w.url("/bye?x=1")));
    let r = send(
        w.addr(),
        "GET",
        &format!("/_portcullis/logout?rd={}", urlencode("/bye?x=1")),
        &[
            ("Cookie", &cookie),
            ("X-Forwarded-Host", "evil.example.com"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "host=evil.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 302, "{r:?}");
    let loc = header(&r, "location").pop().unwrap_or_default();
    assert!(loc.starts_with(&w.op.issuer), "{loc}");
    assert!(loc.contains(&want), "{loc}");
    assert!(!loc.contains("evil.example.com"), "{loc}");
}
