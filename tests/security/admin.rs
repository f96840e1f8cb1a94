//! Admin endpoints (`/metrics`, `/healthz`, `/readyz`) are absent from the public listener
//! in every spelling, and the admin listener proxies nothing.

use super::{send, world};
use crate::support::Gateway;

/// What an admin endpoint's answer would give away.
fn looks_like_admin(body: &str) -> bool {
    body.contains("portcullis_requests_total") || body.contains("# HELP") || body.contains("# TYPE")
}

const SPELLINGS: &[&str] = &[
    "/metrics",
    "/healthz",
    "/readyz",
    "/metrics/",
    "/METRICS",
    "//metrics",
    "/./metrics",
    "/x/../metrics",
    "/%6detrics",
    "/metrics;x",
    "/metrics?format=prometheus",
    "/_portcullis/metrics",
    "/_portcullis/healthz",
    "/_portcullis/readyz",
    "/_portcullis/admin",
    "/_portcullis/../metrics",
];

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_are_absent_from_the_public_listener() {
    // A configuration without a catch-all route: nothing answers these paths at all.
    let up = crate::support::echo().await;
    let rest = format!(
        "[[routes]]\nname = \"only\"\npath = \"/only/\"\nupstream = \"http://{up}\"\nauth = \"public\"\n"
    );
    let gw = Gateway::start("", &rest).await;
    for path in SPELLINGS {
        for host in [
            gw.addr.to_string(),
            gw.admin.to_string(),
            "localhost".into(),
        ] {
            let r = send(gw.addr, "GET", path, &[("Host", &host)]).await;
            assert!(matches!(r.status, 400 | 404), "{path} (Host {host}): {r:?}");
            assert!(
                !looks_like_admin(&r.body),
                "{path} (Host {host}): {}",
                r.body
            );
        }
    }
    // Absolute-form naming the admin listener is still a request to the public one.
    let target = format!("http://{}/metrics", gw.admin);
    let r = send(gw.addr, "GET", &target, &[("Host", &gw.admin.to_string())]).await;
    assert!(matches!(r.status, 400 | 404), "{r:?}");
    assert!(!looks_like_admin(&r.body));
    // On the shared gateway, whose `/` is a public route, they are the backend's paths.
    let w = world().await;
    for path in SPELLINGS {
        let r = send(w.addr(), "GET", path, &[]).await;
        assert!(!looks_like_admin(&r.body), "{path}: {}", r.body);
        if !path.starts_with("/_portcullis/") {
            if let Some(echo) = r.echo() {
                assert_eq!(w.route_of(&r), Some("public"), "{path}: {echo}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_proxies_nothing_and_answers_no_gateway_endpoint() {
    let w = world().await;
    let token = super::bearer(&w.token("admin-service", ""));
    for path in [
        "/page",
        "/admin/x",
        "/app/x",
        "/_portcullis/userinfo",
        "/_portcullis/auth",
        "/_portcullis/login?rd=/",
        "/_portcullis/callback?code=x&state=y",
    ] {
        let r = send(w.gw.admin, "GET", path, &[("Authorization", &token)]).await;
        assert!(
            r.echo().is_none(),
            "{path} was proxied by the admin listener: {r:?}"
        );
        assert!(matches!(r.status, 404 | 405), "{path}: {r:?}");
    }
}
