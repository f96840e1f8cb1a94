//! Test harness: the real `portcullis` binary against in-process upstreams on loopback.
//!
//! Every server binds 127.0.0.1; clients never follow redirects; raw requests are written
//! byte for byte so that no client library normalizes an attack path before it is sent.

#![allow(dead_code)]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod browser;
pub mod process;
pub mod provider;
pub mod servers;

/// A free loopback port (bound, then released), below the kernel's ephemeral range.
///
/// A port the kernel hands out for outgoing connections (or for a bind to port 0) can be
/// taken by anyone between this check and the server's bind — even by a client connecting
/// to it while nothing listens: a TCP self-connect on loopback holds the port. A test that
/// stops a server and starts it again on its port (the provider's outage tests) then fails
/// to bind. Ports below the ephemeral range are never handed out that way; each test binary
/// walks them from a start of its own, so concurrent binaries rarely probe the same ones.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral_low.min(65_535));
    if high <= low + 1_000 {
        // An unusual range: fall back to the kernel's choice.
        return std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a loopback port")
            .port();
    }
    let span = high - low;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = (low + NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// An echo upstream on a fresh loopback port.
pub async fn echo() -> SocketAddr {
    portcullis::echo::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .0
}

/// A running gateway process, killed on drop.
pub struct Gateway {
    proc: Option<process::Proc>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway with `[server]`/`[admin]` generated and `rest` appended (routes
    /// and any other sections). `server_extra` goes inside `[server]`.
    pub async fn start(server_extra: &str, rest: &str) -> Gateway {
        Self::start_with(server_extra, rest, &[]).await
    }

    pub async fn start_with(server_extra: &str, rest: &str, args: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\npublic_url = \"http://127.0.0.1:{port}\"\nthreads = 2\nshutdown_grace = \"1s\"\n{server_extra}\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n{rest}\n"
        );
        Self::spawn(dir, &config, port, admin_port, args).await
    }

    /// Starts the gateway with a complete config in `dir` (the caller wrote any files it names)
    /// and waits (bounded) until both listeners accept connections.
    pub async fn spawn(
        dir: tempfile::TempDir,
        config: &str,
        port: u16,
        admin_port: u16,
        args: &[&str],
    ) -> Gateway {
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args(["-c", path.to_str().unwrap()]).args(args).env(
            "PORTCULLIS_LOG",
            std::env::var("TEST_GATEWAY_LOG").unwrap_or_else(|_| "info".into()),
        );
        let mut proc = process::Proc::spawn("gateway", cmd, &dir.path().join("gateway.log"), false);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        process::wait_listening(&mut proc, &[addr, admin], Duration::from_secs(15)).await;
        Gateway {
            proc: Some(proc),
            addr,
            admin,
            dir,
        }
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Moves the gateway's clock `seconds` forward (the tests' build has a movable clock:
    /// the `test-clock` feature), instead of sleeping until tokens or sessions are due.
    pub async fn advance_clock(&self, seconds: u64) {
        let r = client()
            .post(format!(
                "http://{}/test/clock?advance={seconds}",
                self.admin
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the gateway's clock moves (a test-clock build)"
        );
    }

    /// Waits (at most 15 s) until `/readyz` answers 200: discovery and keys loaded.
    pub async fn wait_ready(&self) {
        let c = client();
        for _ in 0..150 {
            let ok = c
                .get(format!("http://{}/readyz", self.admin))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway was not ready within 15 s:\n{}", self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().unwrap().pid()
    }

    /// Takes the process out of the guard (for tests that stop it themselves).
    pub fn take_child(&mut self) -> Child {
        self.proc.take().unwrap().into_child()
    }
}

/// An HTTP client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A parsed raw response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    /// The echo backend's JSON view of the request, if the backend answered.
    pub fn echo(&self) -> Option<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .filter(|v| v.get("uri").is_some())
    }
}

/// Sends `request` byte for byte (add `Connection: close`) and reads the whole answer.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw {
        status,
        head: head.to_owned(),
        body: dechunk(head, body),
    }
}

/// `GET path` with extra header lines, through `raw`.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes()).await
}

fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// The values of a header in an echo answer (names are lower-case there).
pub fn echoed(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str() == Some(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// Runs the binary to completion with `args`; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// A private CA and a certificate for 127.0.0.1/localhost signed by it, as PEM files in `dir`.
pub struct Pki {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

pub fn pki(dir: &std::path::Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let write = |file: &str, text: String| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca_pem: write("ca.pem", ca.pem()),
        cert_pem: write("cert.pem", cert.pem()),
        key_pem: write("key.pem", key.serialize_pem()),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// An echo upstream behind TLS with the given certificate.
pub async fn tls_echo(pki: &Pki) -> SocketAddr {
    use tokio_rustls::rustls;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rustls::pki_types::CertificateDer::from(pki.cert_der.clone());
    let key = rustls::pki_types::PrivateKeyDer::try_from(pki.key_der.clone()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    portcullis::echo::serve_connection(tls, peer, local).await;
                }
            });
        }
    });
    local
}
