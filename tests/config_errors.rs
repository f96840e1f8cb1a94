//! Every broken configuration is refused with the file, line, column, key and what would
//! be accepted, and nothing starts.

mod support;

use std::path::Path;

use portcullis::config::{self, ConfigError};

const HEAD: &str =
    "[server]\nlisten = [\"127.0.0.1:8080\"]\npublic_url = \"http://127.0.0.1:8080\"\n";
const ROUTE: &str =
    "[[routes]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"public\"\n";
const PROVIDER: &str =
    "[provider]\nissuer = \"https://kc.example.com/realms/r\"\nclient_id = \"portcullis\"\n";
const SESSION: &str = "[session]\nsecrets = [\"0123456789abcdef0123456789abcdef\"]\n";

fn parse(text: &str) -> Result<config::Config, ConfigError> {
    config::parse(text, Path::new("gateway.toml"))
}

/// (what is wrong, config text, expected key, a fragment of the message, expected line)
fn cases() -> Vec<(&'static str, String, &'static str, &'static str, usize)> {
    vec![
        ("unknown key", format!("{HEAD}colour = \"red\"\n{ROUTE}"), "server.colour", "expected one of", 4),
        ("unknown section", format!("{HEAD}[extra]\n{ROUTE}"), "extra", "unknown field", 4),
        ("bad duration", format!("{HEAD}{PROVIDER}clock_skew = \"30\"\n{ROUTE}"), "provider.clock_skew", "no unit", 7),
        ("bad duration unit", format!("{HEAD}{SESSION}lifetime = \"8 hours\"\n{ROUTE}"), "session.lifetime", "duration", 6),
        ("bad url", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"127.0.0.1:9000\"\nauth = \"public\"\n"), "routes[0].upstream", "URL", 6),
        ("ftp url", format!("{HEAD}{PROVIDER}[[routes]]\npath = \"/\"\nupstream = \"ftp://x\"\nauth = \"bearer\"\n"), "routes[0].upstream", "http://", 9),
        ("alg none", format!("{HEAD}{PROVIDER}algorithms = [\"none\"]\n{ROUTE}"), "provider.algorithms", "never", 7),
        ("alg HS256", format!("{HEAD}{PROVIDER}algorithms = [\"HS256\"]\n{ROUTE}"), "provider.algorithms", "shared secret", 7),
        ("short secret", format!("{HEAD}[session]\nsecrets = [\"too-short\"]\n{ROUTE}"), "session.secrets", "at least 32 bytes", 5),
        ("unset variable", format!("{HEAD}{PROVIDER}client_secret = \"${{PORTCULLIS_TEST_NEVER_SET}}\"\n{ROUTE}"), "provider.client_secret", "PORTCULLIS_TEST_NEVER_SET", 7),
        ("bad listen", format!("[server]\nlisten = [\"localhost\"]\npublic_url = \"http://x\"\n{ROUTE}"), "server.listen", "IP:PORT", 2),
        ("bad auth mode", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"open\"\n"), "routes[0].auth", "expected one of", 7),
        ("missing auth", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\n"), "routes[0]", "auth", 4),
        ("bearer without provider", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"bearer\"\n"), "routes[0].auth", "[provider]", 4),
        ("login without session", format!("{HEAD}{PROVIDER}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"login\"\n"), "routes[0].auth", "[session]", 7),
        ("unnormalized route path", format!("{HEAD}[[routes]]\npath = \"/a/../b\"\nupstream = \"http://a:1\"\nauth = \"public\"\n"), "routes[0].path", "\"/b\"", 5),
        ("route path escaping root", format!("{HEAD}[[routes]]\npath = \"/../b\"\nupstream = \"http://a:1\"\nauth = \"public\"\n"), "routes[0].path", "above the root", 5),
        ("host with port", format!("{HEAD}[[routes]]\nhost = \"a.test:80\"\nupstream = \"http://a:1\"\nauth = \"public\"\n"), "routes[0].host", "without port", 5),
        ("upstream with a path", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"http://a:1/base\"\nauth = \"public\"\n"), "routes[0].upstream", "without path", 4),
        ("both upstream kinds", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nupstreams = [\"http://b:1\"]\nauth = \"public\"\n"), "routes[0].upstreams", "not both", 4),
        ("no upstream", format!("{HEAD}[[routes]]\npath = \"/\"\nauth = \"public\"\n"), "routes[0].upstream", "missing", 4),
        ("duplicate route", format!("{HEAD}{ROUTE}{ROUTE}"), "routes[1].path", "already", 8),
        ("allow on public", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"public\"\nallow = {{ roles = [\"x\"] }}\n"), "routes[0].auth", "public route", 4),
        ("lower-case method scope", format!("{HEAD}{PROVIDER}[[routes]]\npath = \"/\"\nupstream = \"http://a:1\"\nauth = \"bearer\"\nscopes = {{ get = [\"x\"] }}\n"), "routes[0].scopes.get", "capitals", 11),
        ("missing upstream_ca file", format!("{HEAD}[[routes]]\npath = \"/\"\nupstream = \"https://a:1\"\nupstream_ca = \"/nonexistent/ca.pem\"\nauth = \"public\"\n"), "routes[0].upstream_ca", "no file", 7),
        ("no routes", HEAD.to_owned(), "routes", "at least one", 4),
        ("redis without url", format!("{HEAD}{SESSION}store = \"redis\"\n{ROUTE}"), "session.redis_url", "redis_url", 6),
        ("redis servers without store = redis", format!("{HEAD}{SESSION}redis_cluster = [\"redis://127.0.0.1:7000\"]\n{ROUTE}"), "session.redis_cluster", "only read with store = \"redis\"", 6),
        ("two kinds of redis servers", format!("{HEAD}{SESSION}store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_cluster = [\"redis://127.0.0.1:7000\"]\n{ROUTE}"), "session.redis_cluster", "`redis_url` is set too", 8),
        ("sentinels without a master name", format!("{HEAD}{SESSION}store = \"redis\"\nredis_sentinels = [\"redis://127.0.0.1:26379\"]\n{ROUTE}"), "session.redis_sentinel_master", "sentinel monitor", 7),
        ("a master name without sentinels", format!("{HEAD}{SESSION}store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_sentinel_master = \"mymaster\"\n{ROUTE}"), "session.redis_sentinel_master", "only read with redis_sentinels", 8),
        ("a master name with a space", format!("{HEAD}{SESSION}store = \"redis\"\nredis_sentinels = [\"redis://127.0.0.1:26379\"]\nredis_sentinel_master = \"my master\"\n{ROUTE}"), "session.redis_sentinel_master", "without spaces", 8),
        ("no sentinels", format!("{HEAD}{SESSION}store = \"redis\"\nredis_sentinels = []\nredis_sentinel_master = \"mymaster\"\n{ROUTE}"), "session.redis_sentinels", "at least one Sentinel", 7),
        ("a sentinel that is no url", format!("{HEAD}{SESSION}store = \"redis\"\nredis_sentinels = [\"redis://127.0.0.1:26379\", \"127.0.0.1:26380\"]\nredis_sentinel_master = \"mymaster\"\n{ROUTE}"), "session.redis_sentinels[1]", "expected redis://", 7),
        ("a sentinel url with a database", format!("{HEAD}{SESSION}store = \"redis\"\nredis_sentinels = [\"redis://127.0.0.1:26379/2\"]\nredis_sentinel_master = \"mymaster\"\n{ROUTE}"), "session.redis_sentinels[0]", "no database 2", 7),
        ("no cluster nodes", format!("{HEAD}{SESSION}store = \"redis\"\nredis_cluster = []\n{ROUTE}"), "session.redis_cluster", "at least one Cluster node", 7),
        ("cluster nodes with different passwords", format!("{HEAD}{SESSION}store = \"redis\"\nredis_cluster = [\"redis://:one@127.0.0.1:7000\", \"redis://:two@127.0.0.1:7001\"]\n{ROUTE}"), "session.redis_cluster", "cannot make one Cluster client", 7),
        ("an empty redis password", format!("{HEAD}{SESSION}store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_password = \"\"\n{ROUTE}"), "session.redis_password", "empty", 8),
        ("admin on the public port", format!("{HEAD}[admin]\nlisten = \"127.0.0.1:8080\"\n{ROUTE}"), "admin.listen", "public listener", 5),
        ("public_url with a path", format!("[server]\nlisten = [\"127.0.0.1:8080\"]\npublic_url = \"http://x/app\"\n{ROUTE}"), "server.public_url", "origin", 3),
        ("syntax error", format!("{HEAD}[[routes]\n"), "(file)", "", 4),
        ("wrong type", format!("[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://x\"\n{ROUTE}"), "server.listen", "", 2),
        ("introspection without credentials", format!("{HEAD}{PROVIDER}[[issuers]]\nissuer = \"https://dot.example.com/o\"\nintrospection_endpoint = \"https://dot.example.com/o/introspect/\"\n{ROUTE}"), "issuers[0].client_id", "client_secret", 7),
        ("no discovery and no endpoints", format!("{HEAD}{PROVIDER}[[issuers]]\nissuer = \"https://dot.example.com/o\"\ndiscovery = false\n{ROUTE}"), "issuers[0].discovery", "jwks_uri", 7),
    ]
}

#[test]
fn broken_configurations_are_refused_with_file_line_key_and_what_is_accepted() {
    let mut wrong = Vec::new();
    for (what, text, key, fragment, line) in cases() {
        let err = match parse(&text) {
            Ok(_) => {
                wrong.push(format!("{what}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let at = format!("gateway.toml:{line}:");
        if err.key() != Some(key) || !shown.contains(fragment) || !shown.starts_with(&at) {
            wrong.push(format!(
                "{what}: want {at} `{key}` …{fragment}…, got {shown}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn secrets_never_appear_in_config_errors() {
    std::env::set_var(
        "PORTCULLIS_TEST_CLIENT_SECRET",
        "s3cr3t-value-that-must-not-leak",
    );
    let text = format!(
        "{HEAD}{PROVIDER}client_secret = \"${{PORTCULLIS_TEST_CLIENT_SECRET}}\"\n[session]\nsecrets = [\"${{PORTCULLIS_TEST_CLIENT_SECRET}}x\", \"short-but-secret\"]\n{ROUTE}"
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("session.secrets"), "{err}");
    assert!(
        !err.contains("s3cr3t") && !err.contains("short-but-secret"),
        "{err}"
    );
}

#[test]
fn the_shipped_example_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = config::load(&root.join("gateway.toml")).unwrap();
    assert!(!c.routes.is_empty());
}

#[test]
fn defaults_are_as_documented() {
    let c = parse(&format!("{HEAD}{PROVIDER}{SESSION}{ROUTE}")).unwrap();
    let p = c.provider.as_ref().unwrap();
    assert_eq!(p.audiences, ["portcullis"]);
    assert_eq!(p.scopes, ["openid", "profile", "email"]);
    assert_eq!(p.clock_skew, std::time::Duration::from_secs(30));
    assert_eq!(p.introspection_cache, std::time::Duration::from_secs(60));
    assert_eq!(c.server.max_token_bytes, 8192);
    assert!(c.server.threads >= 1);
    let s = c.session.as_ref().unwrap();
    assert_eq!(s.cookie, "_portcullis");
    assert_eq!(s.lifetime, std::time::Duration::from_secs(8 * 3600));
    assert!(s.refresh);
    assert_eq!(
        c.claims.roles,
        ["realm_access.roles", "resource_access.portcullis.roles"]
    );
    assert_eq!(c.headers.user.as_str(), "x-auth-request-user");
}

#[test]
fn each_kind_of_redis_servers_is_read_as_written_and_the_password_is_never_shown() {
    use portcullis::config::RedisServers;
    let redis = |lines: &str| {
        let c = parse(&format!("{HEAD}{SESSION}store = \"redis\"\n{lines}{ROUTE}")).unwrap();
        c.session.unwrap().redis.expect("redis servers")
    };
    let one = redis("redis_url = \"redis://127.0.0.1:6379/2\"\n");
    assert_eq!(
        one.servers,
        RedisServers::One("redis://127.0.0.1:6379/2".into())
    );
    assert!(one.username.is_none() && one.password.is_none());
    let sentinel = redis(
        "redis_sentinels = [\"redis://127.0.0.1:26379\", \"redis://:s@127.0.0.1:26380\"]\nredis_sentinel_master = \"mymaster\"\nredis_username = \"gateway\"\nredis_password = \"data-secret-never-shown\"\n",
    );
    assert_eq!(
        sentinel.servers,
        RedisServers::Sentinel {
            sentinels: vec![
                "redis://127.0.0.1:26379".into(),
                "redis://:s@127.0.0.1:26380".into()
            ],
            master: "mymaster".into(),
        }
    );
    assert_eq!(sentinel.username.as_deref(), Some("gateway"));
    assert_eq!(
        sentinel.password.as_ref().map(|p| p.expose()),
        Some("data-secret-never-shown")
    );
    assert!(!format!("{sentinel:?}").contains("data-secret-never-shown"));
    let cluster =
        redis("redis_cluster = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n");
    assert_eq!(
        cluster.servers,
        RedisServers::Cluster(vec![
            "redis://127.0.0.1:7000".into(),
            "redis://127.0.0.1:7001".into()
        ])
    );
    let cookie = parse(&format!("{HEAD}{SESSION}{ROUTE}")).unwrap();
    assert!(cookie.session.unwrap().redis.is_none());
}
