//! The real servers the end-to-end suites start: the OpenID provider (tests/e2e/provider,
//! npm `oidc-provider` shaped like a Keycloak realm) and `redis-server`, each on a free
//! loopback port, with a bounded start (see `process`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{wait_listening, Proc, Server};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Keycloak's endpoint prefix under an issuer.
pub const KC: &str = "/protocol/openid-connect";
/// How long a server may take to say it is ready. The provider is ready in about a second
/// and django-oauth-toolkit's first start migrates its database; past this, something hangs.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// The test OpenID provider, killed on drop.
pub struct Provider {
    pub server: Server,
    pub issuer: String,
    pub port: u16,
}

impl Provider {
    pub async fn start() -> Provider {
        Self::start_with(0, None, &[]).await
    }

    /// With more command-line flags (`--access-ttl 4`).
    pub async fn start_args(flags: &[&str]) -> Provider {
        Self::start_with(0, None, flags).await
    }

    /// On `port` (0: any free one), reusing the private keys in `keys` if given.
    pub async fn start_with(port: u16, keys: Option<PathBuf>, flags: &[&str]) -> Provider {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        tokio::task::spawn_blocking(move || Self::start_blocking(port, keys, &flags))
            .await
            .expect("the provider start does not panic")
    }

    fn start_blocking(port: u16, keys: Option<PathBuf>, flags: &[String]) -> Provider {
        let mut cmd = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()));
        cmd.current_dir(ROOT)
            .arg("tests/e2e/provider/server.js")
            .args(["--port", &port.to_string()])
            .args(flags);
        if let Some(k) = &keys {
            cmd.arg("--keys").arg(k);
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = Server::start("oidc-provider", cmd, "READY ", READY_WITHIN, dir);
        let ready = server.ready_json();
        let issuer = ready["issuer"]
            .as_str()
            .expect("READY has an issuer")
            .to_owned();
        let got = ready["port"].as_u64().expect("READY has a port") as u16;
        if port != 0 {
            assert_eq!(got, port, "the provider did not take the port it was given");
        }
        Provider {
            server,
            issuer,
            port: got,
        }
    }

    /// Stops the provider and starts a new one on the same port with `flags`: it has
    /// forgotten every login, grant and refresh token.
    pub async fn restart(&mut self, flags: &[&str]) {
        self.kill();
        *self = Self::start_with(self.port, None, flags).await;
    }

    pub fn token_url(&self) -> String {
        format!("{}{KC}/token", self.issuer)
    }

    /// The root of the provider's test-only endpoints.
    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// SIGKILL, as a crash would; the port is free afterwards.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Calls one of the provider's test-only endpoints (`/__test/…`) and expects 200.
    pub async fn test_endpoint(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = super::client()
            .post(format!("{}{path}", self.root()))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.expect("a JSON answer")
    }
}

/// A real `redis-server` on a free loopback port, without persistence, killed on drop.
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = super::free_port();
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut cmd = Command::new("redis-server");
        cmd.current_dir(dir.path()).args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let mut proc = Proc::spawn("redis-server", cmd, &dir.path().join("redis.log"), false);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(&mut proc, &[addr], Duration::from_secs(15)).await;
        Redis {
            proc,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
