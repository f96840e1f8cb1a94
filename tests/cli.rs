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
        out.contains("OK") && out.contains("route \"echo\""),
        "{out}"
    );
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
        out.contains("warning: no key for ES256"),
        "a configured algorithm without a key is pointed out: {out}"
    );
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
