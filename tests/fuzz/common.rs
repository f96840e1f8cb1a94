//! What the fuzz targets share: requests built from fuzzed header values, the configuration
//! the request-level targets decide against, and a verifier whose issuer serves the test
//! keys of `tests/support/keys` from a loopback JWKS endpoint.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use pingora_http::RequestHeader;
use portcullis::auth::issuer::IssuerSettings;
use portcullis::auth::verifier::{http_client, Verifier};
use portcullis::config::{self, Config};

/// The clock of every target: 2027-01-15, seconds since the epoch.
pub const NOW: u64 = 1_800_000_000;
/// The issuer the verifier trusts.
pub const ISSUER: &str = "https://kc.example.com/realms/r";
/// The audience it accepts (and the client of ID tokens).
pub const CLIENT: &str = "portcullis";
/// The kid of the EC test key, which the bearer target signs with.
pub const EC_KID: &str = "ec-1";
/// The kid of the RSA test key, published too.
pub const RSA_KID: &str = "rsa-1";

/// The test keys: they sign tokens for tests and protect nothing.
pub const EC_PEM: &[u8] = include_bytes!("../support/keys/ec.pem");
pub const RSA_PEM: &[u8] = include_bytes!("../support/keys/rsa.pem");

/// A configuration with a route of each kind: public `/`, login `/admin`, bearer
/// `api.example.com/api/` with scopes by method, any `*.apps.example.com`.
pub const GATEWAY_TOML: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
public_url = "http://127.0.0.1:8080"

[provider]
issuer = "https://kc.example.com/realms/r"
client_id = "portcullis"

[session]
secrets = ["fuzz-only-not-a-secret-0123456789abcdef"]

[[routes]]
name = "public"
path = "/"
upstream = "http://127.0.0.1:9000"
auth = "public"

[[routes]]
name = "admin"
path = "/admin"
upstream = "http://127.0.0.1:9000"
auth = "login"
allow = { roles = ["admin"] }

[[routes]]
name = "api"
host = "api.example.com"
path = "/api/"
upstream = "http://127.0.0.1:9000"
auth = "bearer"
scopes = { read = ["orders:read"], write = ["orders:write"], DELETE = ["orders:admin"] }

[[routes]]
name = "apps"
host = "*.apps.example.com"
path = "/"
upstream = "http://127.0.0.1:9000"
auth = "any"
"#;

/// [`GATEWAY_TOML`] loaded.
pub fn gateway_config() -> Config {
    config::parse(
        GATEWAY_TOML,
        Path::new("/nonexistent/portcullis-fuzz/gateway.toml"),
    )
    .expect("the fuzz configuration loads")
}

/// A request for `path` with `headers` appended in order; names and values `http` refuses
/// are left out (no client could send them through pingora either).
pub fn request(method: &str, path: &[u8], headers: &[(&[u8], &[u8])]) -> Option<RequestHeader> {
    let mut req = RequestHeader::build(method, path, None).ok()?;
    for (name, value) in headers {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        req.append_header(n, v).ok()?;
    }
    Some(req)
}

/// Header lines as a fuzz input spells them, `name: value` one a line (the value without
/// the blanks around it, as HTTP reads it).
pub fn header_lines(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], line[colon + 1..].trim_ascii()))
        })
        .collect()
}

/// Values of header `name`, one a line.
pub fn value_lines<'a>(name: &'a str, data: &'a [u8]) -> Vec<(&'a [u8], &'a [u8])> {
    data.split(|&b| b == b'\n')
        .map(|v| (name.as_bytes(), v))
        .collect()
}

/// Where a target writes the seeds it alone can make (values sealed with its secret,
/// tokens signed with its key): the folder in `PORTCULLIS_FUZZ_WRITE_SEEDS`, if set.
pub fn write_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let Some(dir) = std::env::var_os("PORTCULLIS_FUZZ_WRITE_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir).join(target);
    std::fs::create_dir_all(&dir).expect("the seed folder");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("a seed written");
    }
}

/// The EC test key, for signing.
pub fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PEM).expect("the EC test key reads")
}

fn public(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("the test key has a public JWK");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

/// A verifier for [`ISSUER`] (audience [`CLIENT`], ES256 and RS256, 30 s of skew, the clock
/// at [`NOW`]) whose keys are the EC and RSA test keys, already fetched, and the runtime to
/// call it on.
pub fn verifier() -> (Arc<Verifier>, tokio::runtime::Runtime) {
    let rsa = EncodingKey::from_rsa_pem(RSA_PEM).expect("the RSA test key reads");
    let set = JwkSet {
        keys: vec![
            public(&ec_key(), Algorithm::ES256, EC_KID),
            public(&rsa, Algorithm::RS256, RSA_KID),
        ],
    };
    let jwks_uri = serve_forever(serde_json::to_vec(&set).expect("a JWKS serializes"));
    let settings = IssuerSettings {
        issuer: ISSUER.to_owned(),
        discovery: false,
        jwks_uri: Some(jwks_uri.parse().expect("a loopback URL")),
        introspection_endpoint: None,
        introspection: false,
        introspection_cache: Duration::from_secs(60),
        credentials: None,
        audiences: vec![CLIENT.to_owned()],
        algorithms: vec![Algorithm::ES256, Algorithm::RS256],
        clock_skew: Duration::from_secs(30),
    };
    let verifier = Verifier::new(
        vec![settings],
        config::Claims::defaults(CLIENT),
        http_client(),
        Arc::new(|| NOW),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let keys = rt
        .block_on(verifier.issuers()[0].fetch_keys())
        .expect("the loopback JWKS is fetched");
    assert_eq!(keys, 2, "both test keys are usable");
    (Arc::new(verifier), rt)
}

/// Answers every request on a loopback port with `body` as JSON, for the life of the process.
/// Returns its URL.
fn serve_forever(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!(
        "http://{}/jwks",
        listener.local_addr().expect("its address")
    );
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    url
}
