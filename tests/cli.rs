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
