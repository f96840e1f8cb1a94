//! The command line: exit codes and what each command prints (SPEC §1).

mod support;

use support::run_cli;

#[test]
fn version_and_help_exit_zero() {
    let (code, out, _) = run_cli(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("portcullis "), "{out}");
    let (code, out, _) = run_cli(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["run", "check", "demo", "token", "explain", "secret"] {
        assert!(out.contains(cmd), "--help does not list {cmd}: {out}");
    }
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(run_cli(&["--no-such-flag"]).0, 2);
    assert_eq!(run_cli(&["explain"]).0, 2);
}

#[test]
fn a_bad_config_exits_two_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, "[server]\nlisten = [\"127.0.0.1:1\"]\npublic_url = \"http://x\"\n[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"logn\"\n").unwrap();
    let p = path.to_str().unwrap();
    let (code, _, err) = run_cli(&["check", "-c", p]);
    assert_eq!(code, 2);
    assert!(
        err.contains("gateway.toml:7:8") && err.contains("routes[0].auth"),
        "{err}"
    );
    let (code, _, err) = run_cli(&["-c", p]);
    assert_eq!(code, 2, "run must refuse a bad config: {err}");
    let (code, _, err) = run_cli(&["check", "-c", "/nonexistent/gateway.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/gateway.toml"), "{err}");
}

#[test]
fn check_accepts_the_example_and_lists_routes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let (code, out, err) = run_cli(&["check", "-c", example]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("OK")
            && out.contains(
                "  route \"echo\": path = \"/\", upstream = \"http://127.0.0.1:9000\", auth = \"public\"\n"
            ),
        "{out}"
    );
}

#[test]
fn check_lists_routes_in_the_words_of_gateway_toml_not_rust_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:1\"]\npublic_url = \"http://x\"\n\
         [provider]\nissuer = \"https://kc.test/realms/r\"\nclient_id = \"portcullis\"\n\
         [session]\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\n\
         [[routes]]\nname = \"app\"\nhost = \"*.example.com\"\npath = \"/app/\"\nupstreams = [\"http://a:1\", \"http://b:1\"]\nauth = \"login\"\n\
         allow = { roles = [\"admin\"], email_domains = [\"example.com\"] }\n\
         [[routes]]\nname = \"orders\"\npath = \"/api/orders/\"\nupstream = \"http://a:1\"\nauth = \"bearer\"\n\
         scopes = { read = [\"orders:read\"], DELETE = [\"orders:admin\"], \"*\" = [\"orders\"] }\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "  route \"app\": host = \"*.example.com\", path = \"/app/\", upstreams = [\"http://a:1\", \"http://b:1\"], auth = \"login\"\n",
        "    allow = { roles = [\"admin\"], email_domains = [\"example.com\"] }\n",
        "  route \"orders\": path = \"/api/orders/\", upstream = \"http://a:1\", auth = \"bearer\"\n",
        "    scopes = { \"*\" = [\"orders\"], DELETE = [\"orders:admin\"], read = [\"orders:read\"] }\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    for rust_word in ["Login", "Bearer", "Exact(", "Wildcard(", "by_method"] {
        assert!(!out.contains(rust_word), "{rust_word} in:\n{out}");
    }
}

#[test]
fn secret_prints_a_fresh_secret_long_enough_for_sessions() {
    let (code, a, _) = run_cli(&["secret"]);
    let (_, b, _) = run_cli(&["secret"]);
    assert_eq!(code, 0);
    assert!(a.trim().len() >= 32);
    assert_ne!(a, b);
}

#[test]
fn explain_names_the_route_and_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:1\"]\npublic_url = \"http://x\"\n[provider]\nissuer = \"https://kc.test/realms/r\"\nclient_id = \"portcullis\"\n\
         [[routes]]\nname = \"site\"\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"public\"\n\
         [[routes]]\nname = \"orders\"\npath = \"/api/orders/\"\nupstream = \"http://a:1\"\nauth = \"bearer\"\nscopes = { read = [\"orders:read\"], DELETE = [\"orders:admin\"] }\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, out, _) = run_cli(&["explain", "-c", p, "GET", "http://app.test/index.html"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"site\"") && out.contains("allow"), "{out}");
    let (_, out, _) = run_cli(&["explain", "-c", p, "DELETE", "http://app.test/api/orders/7"]);
    assert!(
        out.contains("\"orders\"") && out.contains("orders:admin") && out.contains("refuse (401)"),
        "{out}"
    );
    let (_, out, _) = run_cli(&["explain", "-c", p, "PATCH", "http://app.test/api/orders/7"]);
    assert!(out.contains("no key covers PATCH"), "{out}");
}

fn write_config(dir: &std::path::Path, issuer: &str) -> String {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\npublic_url = \"http://x\"\n[provider]\nissuer = \"{issuer}\"\nclient_id = \"portcullis\"\nclient_secret = \"s\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"bearer\"\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

async fn cli(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        run_cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_reports_the_keys_and_introspection_it_found() {
    let rsa = support::provider::SigningKey::rsa("rsa-1");
    let p = support::provider::TestProvider::start(&[&rsa], None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), p.issuer());
    let (code, out, err) = cli(vec!["check".into(), "--online".into(), "-c".into(), cfg]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("discovery: ok")
            && out.contains("keys: 1 usable (rsa-1)")
            && out.contains("introspection: ok"),
        "{out}"
    );
    assert!(
        !out.contains("warning"),
        "the default algorithms (RS256, ES256) with an RS256 key only, as every Keycloak realm has, are no mistake: {out}"
    );
    assert!(
        !out.contains("authorization request") && !out.contains("client_secret"),
        "no route logs people in: the login probes do not run: {out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_warns_when_no_allowed_algorithm_has_a_key() {
    let rsa = support::provider::SigningKey::rsa("rsa-1");
    let p = support::provider::TestProvider::start(&[&rsa], None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), p.issuer());
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "client_secret = \"s\"\n",
        "client_secret = \"s\"\nalgorithms = [\"ES256\"]\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = cli(vec!["check".into(), "--online".into(), "-c".into(), cfg]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("warning: no key for ES256"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_fails_with_exit_one_when_the_provider_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!("http://127.0.0.1:{}/realms/gone", support::free_port()),
    );
    let (code, out, _) = cli(vec!["check".into(), "--online".into(), "-c".into(), cfg]).await;
    assert_eq!(code, 1);
    assert!(out.contains("FAIL discovery"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_prints_only_the_access_token_and_exits_one_on_refusal() {
    let rsa = support::provider::SigningKey::rsa("rsa-1");
    let p = support::provider::TestProvider::start(&[&rsa], None).await;
    let args = |secret: &str| -> Vec<String> {
        [
            "token",
            "--issuer",
            p.issuer(),
            "--client-id",
            "svc",
            "--client-secret",
            secret,
            "--scope",
            "orders:read",
        ]
        .map(String::from)
        .to_vec()
    };
    let (code, out, _) = cli(args("svc-secret")).await;
    assert_eq!(code, 0);
    assert_eq!(out, "token-for-svc-scope-orders:read\n");
    let (code, out, err) = cli(args("wrong")).await;
    assert_eq!(code, 1);
    assert!(out.is_empty() && err.contains("invalid_client"), "{err}");
    assert!(!err.contains("wrong"), "the secret is not echoed: {err}");
}

/// A realm as Keycloak 26 answers the requests of `check --online` (measured against
/// Keycloak 26.7.3): the login page, "Invalid parameter: redirect_uri", "Client not
/// found.", a disabled flow sent back to the callback (a redirect for the code flow, a
/// form_post page for the implicit flow), the token endpoint's refusal of a wrong secret,
/// "Invalid redirect uri" at logout. No JWKS: these tests are about the login probes.
struct Realm {
    client_id: &'static str,
    secret: &'static str,
    /// The registered redirect URI, and the registered post-logout prefix.
    callback: String,
    post_logout_prefix: String,
    standard_flow: bool,
    implicit_flow: bool,
    /// Discovery names an end_session_endpoint, an authorization_endpoint.
    end_session: bool,
    authorization: bool,
    /// The authorization endpoint answers a huge page of control characters and a
    /// redirect to a trap instead.
    hostile: Option<&'static str>,
    /// Every path asked.
    hits: Vec<String>,
}

impl Realm {
    fn keycloak(public_url: &str) -> Realm {
        Realm {
            client_id: "portcullis",
            secret: "portcullis-secret",
            callback: format!("{public_url}/_portcullis/callback"),
            post_logout_prefix: format!("{public_url}/"),
            standard_flow: true,
            implicit_flow: false,
            end_session: true,
            authorization: true,
            hostile: None,
            hits: Vec::new(),
        }
    }
}

type Shared = std::sync::Arc<std::sync::Mutex<Realm>>;

/// Serves `realm` on a fresh loopback port; returns its issuer.
async fn serve_realm(realm: Realm) -> (String, Shared) {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/realms/internal", listener.local_addr().unwrap());
    let shared: Shared = std::sync::Arc::new(std::sync::Mutex::new(realm));
    let (st, base) = (shared.clone(), issuer.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (st, base) = (st.clone(), base.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (st, base) = (st.clone(), base.clone());
                    async move { Ok::<_, std::convert::Infallible>(realm_answer(req, &st, &base).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (issuer, shared)
}

async fn realm_answer(
    req: hyper::Request<hyper::body::Incoming>,
    st: &Shared,
    base: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use base64::Engine as _;
    use http_body_util::BodyExt as _;
    let path = req.uri().path().to_owned();
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let _ = req.into_body().collect().await;
    let mut r = st.lock().unwrap();
    r.hits.push(path.clone());
    let answer = |status: u16, kind: &str, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    let page = |status: u16, message: &str| {
        answer(status, "text/html;charset=utf-8", format!(
            "<html><body><div id=\"kc-error-message\">\n  <p class=\"instruction\">{message}</p>\n</div></body></html>"
        ))
    };
    let json =
        |status: u16, v: serde_json::Value| answer(status, "application/json", v.to_string());
    let endpoint = |p: &str| format!("{base}/protocol/openid-connect/{p}");
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    match path.strip_prefix("/realms/internal").unwrap_or("") {
        "/.well-known/openid-configuration" => {
            let mut d = serde_json::json!({
                "issuer": base,
                "token_endpoint": endpoint("token"),
                "introspection_endpoint": endpoint("token/introspect"),
            });
            if r.authorization {
                d["authorization_endpoint"] = endpoint("auth").into();
            }
            if r.end_session {
                d["end_session_endpoint"] = endpoint("logout").into();
            }
            json(200, d)
        }
        "/protocol/openid-connect/auth" => {
            if let Some(kind) = r.hostile {
                return match kind {
                    "redirect" => hyper::Response::builder()
                        .status(302)
                        .header("location", format!("{base}/trap"))
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap(),
                    _ => page(
                        400,
                        &format!("\u{1b}[2J\u{202e}{}", "x\u{7}".repeat(1 << 20)),
                    ),
                };
            }
            if get("client_id") != r.client_id {
                return page(400, "Client not found.");
            }
            if get("redirect_uri") != r.callback {
                return page(400, "Invalid parameter: redirect_uri");
            }
            let error = "Client is not allowed to initiate browser login with given response_type.";
            match get("response_type") {
                "code" if !r.standard_flow => hyper::Response::builder()
                    .status(302)
                    .header("location", format!(
                        "{}?error=unauthorized_client&error_description={}&state=x",
                        r.callback,
                        url::form_urlencoded::byte_serialize(format!("{error} Standard flow is disabled for the client.").as_bytes()).collect::<String>()
                    ))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
                "id_token token" if !r.implicit_flow => answer(200, "text/html", format!(
                    "<HTML><BODY Onload=\"document.forms[0].submit()\"><FORM METHOD=\"POST\" ACTION=\"{}\">  \
                     <INPUT TYPE=\"HIDDEN\" NAME=\"error_description\" VALUE=\"{error} Implicit flow is disabled for the client.\" />  \
                     <INPUT TYPE=\"HIDDEN\" NAME=\"state\" VALUE=\"x\" />  <INPUT TYPE=\"HIDDEN\" NAME=\"error\" VALUE=\"unauthorized_client\" /></FORM></BODY></HTML>",
                    r.callback
                )),
                _ => answer(200, "text/html", "<html><form id=\"kc-form-login\"><input name=\"username\"></form></html>".into()),
            }
        }
        "/protocol/openid-connect/token" | "/protocol/openid-connect/token/introspect" => {
            let good = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", r.client_id, r.secret))
            );
            match (basic == good, path.ends_with("introspect")) {
                (false, false) => json(
                    401,
                    serde_json::json!({"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}),
                ),
                (false, true) => json(
                    401,
                    serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed."}),
                ),
                (true, false) => json(
                    400,
                    serde_json::json!({"error": "invalid_grant", "error_description": "Code not valid"}),
                ),
                (true, true) => json(200, serde_json::json!({"active": false})),
            }
        }
        "/protocol/openid-connect/logout" => {
            if get("client_id") == r.client_id
                && get("post_logout_redirect_uri").starts_with(&r.post_logout_prefix)
            {
                hyper::Response::builder()
                    .status(302)
                    .header("location", get("post_logout_redirect_uri"))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap()
            } else {
                page(400, "Invalid redirect uri")
            }
        }
        _ => json(404, serde_json::json!({"error": "not_found"})),
    }
}

const PUBLIC_URL: &str = "http://gateway.test:8080";

/// A gateway.toml with a login route for `issuer`; `provider` adds lines to `[provider]`.
fn login_config(dir: &std::path::Path, issuer: &str, public_url: &str, provider: &str) -> String {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\npublic_url = \"{public_url}\"\n\
             [provider]\nissuer = \"{issuer}\"\nclient_id = \"portcullis\"\n{provider}\n\
             [session]\nsecrets = [\"cli-test-session-secret-0123456789abcdef\"]\n\
             [[routes]]\nname = \"app\"\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\nauth = \"login\"\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

const SECRET: &str = "client_secret = \"portcullis-secret\"";

/// `check --online` against a realm: (exit code, stdout, the FAIL lines).
async fn check_realm(
    realm: Realm,
    public_url: &str,
    provider: &str,
) -> (i32, String, Vec<String>, Shared) {
    let (issuer, shared) = serve_realm(realm).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = login_config(dir.path(), &issuer, public_url, provider);
    let (code, out, err) = cli(vec!["check".into(), "--online".into(), "-c".into(), cfg]).await;
    let fails = out
        .lines()
        .filter(|l| l.contains("FAIL"))
        .map(|l| l.trim().to_owned())
        .collect();
    (code, format!("{out}{err}"), fails, shared)
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_tries_the_login_requests_and_passes_when_the_provider_accepts_them() {
    let (code, out, fails, _) = check_realm(Realm::keycloak(PUBLIC_URL), PUBLIC_URL, SECRET).await;
    assert_eq!(code, 0, "{out}");
    assert!(fails.is_empty(), "{out}");
    for line in [
        "authorization request: ok (client \"portcullis\", code flow, redirect URI http://gateway.test:8080/_portcullis/callback)",
        "client_secret: ok",
        "post-logout redirect URI: ok (http://gateway.test:8080/)",
        "introspection: ok",
    ] {
        assert!(out.contains(line), "missing {line:?}: {out}");
    }
    assert!(!out.contains("warning"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_the_exact_redirect_uri_to_register_in_one_line() {
    let realm = Realm::keycloak("http://registered.test");
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        fails.len(),
        1,
        "a public URL the provider does not know is one mistake: {out}"
    );
    assert!(
        fails[0].contains("`http://gateway.test:8080/_portcullis/callback`")
            && fails[0].contains("Valid redirect URIs")
            && fails[0].contains("`http://gateway.test:8080/`"),
        "{out}"
    );
    // Only the callback unregistered: the post-logout URI is fine.
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.callback = "http://gateway.test:8080/other".into();
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!((code, fails.len()), (1, 1), "{out}");
    assert_eq!(
        fails[0],
        "FAIL redirect URI: the provider does not accept `http://gateway.test:8080/_portcullis/callback`: \
         register exactly that URI (Keycloak: Clients → portcullis → Settings → Valid redirect URIs)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_finds_a_wrong_client_secret_once_with_or_without_introspection() {
    for introspection in ["", "introspection = \"off\""] {
        let provider = format!("client_secret = \"not-the-secret\"\n{introspection}");
        let (code, out, fails, _) =
            check_realm(Realm::keycloak(PUBLIC_URL), PUBLIC_URL, &provider).await;
        assert_eq!(code, 1, "{out}");
        assert_eq!(fails.len(), 1, "one mistake, one line: {out}");
        assert!(
            fails[0].starts_with("FAIL client_secret: the provider refused client \"portcullis\"'s credentials (HTTP 401 Unauthorized unauthorized_client)")
                && fails[0].contains("Clients → portcullis → Credentials → Client Secret"),
            "{out}"
        );
        assert!(
            !out.contains("not-the-secret"),
            "the secret is never printed: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_says_which_login_flow_the_provider_has_switched_off() {
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.standard_flow = false;
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!((code, fails.len()), (1, 1), "{out}");
    assert!(
        fails[0].contains("may not use the authorization code flow")
            && fails[0].contains("Standard flow is disabled for the client.")
            && fails[0].ends_with(
                "(Keycloak: Clients → portcullis → Settings → Capability config → Standard flow)"
            ),
        "{out}"
    );
    let (code, out, fails, _) = check_realm(
        Realm::keycloak(PUBLIC_URL),
        PUBLIC_URL,
        &format!("{SECRET}\nlogin_flow = \"implicit\""),
    )
    .await;
    assert_eq!((code, fails.len()), (1, 1), "{out}");
    assert!(
        fails[0].contains("may not use the implicit flow")
            && fails[0].contains("Implicit flow is disabled for the client.")
            && fails[0].ends_with("Capability config → Implicit flow)"),
        "{out}"
    );
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.implicit_flow = true;
    let (code, out, _, _) = check_realm(
        realm,
        PUBLIC_URL,
        &format!("{SECRET}\nlogin_flow = \"implicit\""),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("authorization request: ok (client \"portcullis\", implicit flow"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_an_unknown_client_once() {
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.client_id = "someone-else";
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!((code, fails.len()), (1, 1), "{out}");
    assert!(fails[0].contains("knows no client \"portcullis\""), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_names_the_post_logout_redirect_uri_to_register() {
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.post_logout_prefix = "https://elsewhere.example/".into();
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!((code, fails.len()), (1, 1), "{out}");
    assert!(
        fails[0].contains("`http://gateway.test:8080/`")
            && fails[0].contains("Valid post logout redirect URIs"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_skips_with_a_note_what_discovery_does_not_name() {
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.authorization = false;
    realm.end_session = false;
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!(code, 0, "{out}");
    assert!(fails.is_empty(), "{out}");
    assert!(
        out.contains("authorization request: not checked: the discovery document names no authorization_endpoint")
            && out.contains("post-logout redirect URI: not checked: no end_session_endpoint"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_survives_a_hostile_provider_and_follows_no_redirect() {
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.hostile = Some("page");
    let (code, out, fails, _) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!((code, fails.len()), (1, 1), "{out}");
    assert!(
        fails[0].starts_with("FAIL authorization request: GET "),
        "{out}"
    );
    assert!(
        fails[0].len() < 600,
        "a bounded line: {} bytes",
        fails[0].len()
    );
    assert!(
        !fails[0].chars().any(|c| c.is_control() || c == '\u{202e}'),
        "no control characters from the provider: {:?}",
        fails[0]
    );
    let mut realm = Realm::keycloak(PUBLIC_URL);
    realm.hostile = Some("redirect");
    let (code, out, _, shared) = check_realm(realm, PUBLIC_URL, SECRET).await;
    assert_eq!(
        code, 0,
        "a redirect elsewhere is where the provider logs people in: {out}"
    );
    assert!(
        !shared
            .lock()
            .unwrap()
            .hits
            .iter()
            .any(|p| p.ends_with("/trap")),
        "no redirect is followed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_bearer_names_the_tokens_aud_and_the_audience_mapper_to_add() {
    let rsa = support::provider::SigningKey::rsa("rsa-1");
    let p = support::provider::TestProvider::start(&[&rsa], None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\npublic_url = \"http://x\"\n[provider]\nissuer = \"{}\"\nclient_id = \"portcullis\"\n\
             [[routes]]\nname = \"orders\"\npath = \"/api/orders/\"\nupstream = \"http://a:1\"\nauth = \"bearer\"\n\
             allow = {{ clients = [\"billing-service\", \"shipping-service\"] }}\n",
            p.issuer()
        ),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = p.service_claims("no-audience-service", "orders:read", now, 300);
    claims["aud"] = serde_json::json!(["account"]);
    let token = rsa.sign(&claims);
    let args = vec![
        "explain".into(),
        "-c".into(),
        path.to_str().unwrap().to_owned(),
        "GET".into(),
        "http://app.test/api/orders/1".into(),
        "--bearer".into(),
        token.clone(),
    ];
    let (code, out, err) = cli(args).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("auth:     bearer\n"), "{out}");
    assert!(
        out.contains("allow:    { clients = [\"billing-service\", \"shipping-service\"] }\n"),
        "allow in gateway.toml words: {out}"
    );
    assert!(
        out.contains("token:    refused: the token's audience is not accepted: aud is [\"account\"], the gateway accepts [\"portcullis\"] (provider.audiences)\n"),
        "{out}"
    );
    assert!(
        out.contains("hint:     give client \"no-audience-service\" (the token's azp) an Audience mapper: \
                      Clients → no-audience-service → Client scopes → no-audience-service-dedicated → ")
            && out.contains("Audience, Included Client Audience \"portcullis\", Add to access token on\n"),
        "{out}"
    );
    assert!(
        out.contains("decision: refuse (401 invalid_token)"),
        "{out}"
    );
    assert!(
        !out.contains(&token) && !out.contains(token.split('.').nth(1).unwrap()),
        "the token is never printed"
    );
}
