//! `portcullis demo`: the gateway, a built-in development OpenID provider and an echo
//! backend, all on loopback, so the first command a newcomer runs shows a browser login, a
//! role rule and a service token end to end, with nothing to install.
//!
//! [`start`] binds the echo backend (HTML for a browser's page load: [`echo_page`]) and
//! the [`provider`] on a tokio runtime of their own
//! (its worker threads serve them while pingora runs the gateway on the main thread) and
//! returns the gateway's configuration, written as the TOML a user would write and parsed
//! like any `gateway.toml`. [`Demo::announce_when_ready`] prints what to open and try once
//! the gateway answers `/readyz`.
//!
//! **Not for production**: the provider's users have fixed passwords and the session
//! secret changes at every start.

pub mod echo_page;
pub mod keys;
pub mod pages;
pub mod provider;
pub mod realm;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{self, Config, ConfigError};
use crate::secret::{self, Secret};
use provider::Provider;

/// Where each part of the demo listens. Every address must be loopback.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// The gateway (`--listen`); `public_url` is `http://` this address.
    pub listen: SocketAddr,
    /// The development provider (`--provider`).
    pub provider: SocketAddr,
    /// The echo backend (`--backend`).
    pub backend: SocketAddr,
    /// The gateway's admin listener (`--admin`): `/healthz`, `/readyz`, `/metrics`.
    pub admin: SocketAddr,
}

/// Why the demo does not start. [`DemoError::exit_code`] says which are usage errors.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{flag} {addr}: the demo only listens on loopback addresses such as 127.0.0.1")]
    NotLoopback {
        flag: &'static str,
        addr: SocketAddr,
    },
    #[error("{flag} {addr}: give a port (the printed URLs must be the real ones), e.g. {flag} 127.0.0.1:8080")]
    NoPort {
        flag: &'static str,
        addr: SocketAddr,
    },
    #[error("{flag} and {other} are both {addr}: give each its own port")]
    SameAddress {
        flag: &'static str,
        other: &'static str,
        addr: SocketAddr,
    },
    #[error("cannot listen on {addr} ({source}): choose another address with {flag}")]
    CannotListen {
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the demo's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the demo's own gateway configuration is refused (a bug in portcullis): {0}")]
    Config(#[source] ConfigError),
}

impl DemoError {
    /// 2 for a bad command line, 1 for a failure at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::NotLoopback { .. }
            | DemoError::NoPort { .. }
            | DemoError::SameAddress { .. } => 2,
            DemoError::CannotListen { .. } | DemoError::Runtime(_) | DemoError::Config(_) => 1,
        }
    }
}

impl Addresses {
    /// Every address with the flag that sets it.
    fn flags(&self) -> [(&'static str, SocketAddr); 4] {
        [
            ("--listen", self.listen),
            ("--provider", self.provider),
            ("--backend", self.backend),
            ("--admin", self.admin),
        ]
    }

    /// Loopback, a real port, and four different addresses.
    pub fn check(&self) -> Result<(), DemoError> {
        let flags = self.flags();
        for (i, &(flag, addr)) in flags.iter().enumerate() {
            if !addr.ip().is_loopback() {
                return Err(DemoError::NotLoopback { flag, addr });
            }
            if addr.port() == 0 {
                return Err(DemoError::NoPort { flag, addr });
            }
            if let Some(&(other, _)) = flags[..i].iter().find(|(_, a)| *a == addr) {
                return Err(DemoError::SameAddress { flag, other, addr });
            }
        }
        Ok(())
    }

    /// What browsers see: `http://<listen>`.
    pub fn public_url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// The running provider and backend, until the process ends.
pub struct Demo {
    addrs: Addresses,
    provider: Arc<Provider>,
    runtime: tokio::runtime::Runtime,
}

/// Starts the echo backend and the provider, and returns the gateway's configuration
/// (a fresh session secret and gateway client secret each time).
pub fn start(addrs: Addresses) -> Result<(Demo, Config), DemoError> {
    addrs.check()?;
    // The gateway binds its own addresses later (pingora): hold them until then so that
    // a port in use is reported here, naming its flag.
    let mut held = Vec::new();
    for (flag, addr) in [("--listen", addrs.listen), ("--admin", addrs.admin)] {
        held.push(
            std::net::TcpListener::bind(addr).map_err(|source| DemoError::CannotListen {
                flag,
                addr,
                source,
            })?,
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo")
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    let public_url =
        url::Url::parse(&addrs.public_url()).expect("http://<socket address> is a URL");
    let gateway_secret = secret::generate();
    let provider = runtime.block_on(async {
        crate::echo::start_with(addrs.backend, Some(echo_page::page))
            .await
            .map_err(|source| DemoError::CannotListen {
                flag: "--backend",
                addr: addrs.backend,
                source,
            })?;
        let (provider, _task) = provider::start(
            addrs.provider,
            &public_url,
            Secret::new(gateway_secret.clone()),
        )
        .await
        .map_err(|source| DemoError::CannotListen {
            flag: "--provider",
            addr: addrs.provider,
            source,
        })?;
        Ok(provider)
    })?;
    let text = gateway_toml(
        &addrs,
        provider.issuer(),
        &gateway_secret,
        &secret::generate(),
    );
    let config = config::parse(&text, Path::new("demo")).map_err(DemoError::Config)?;
    drop(held);
    Ok((
        Demo {
            addrs,
            provider,
            runtime,
        },
        config,
    ))
}

/// The gateway's configuration, as a user would write it.
pub fn gateway_toml(
    addrs: &Addresses,
    issuer: &str,
    gateway_secret: &str,
    session_secret: &str,
) -> String {
    let Addresses {
        listen,
        backend,
        admin,
        ..
    } = addrs;
    let public_url = addrs.public_url();
    format!(
        r#"[server]
listen = ["{listen}"]
public_url = "{public_url}"
shutdown_grace = "1s"

[admin]
listen = "{admin}"

[provider]
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "{gateway_secret}"
scopes = ["openid", "profile", "email"]

[session]
secrets = ["{session_secret}"]

[[routes]]
name = "app"
path = "/"
upstream = "http://{backend}"
auth = "login"

[[routes]]
name = "admin"
path = "/admin"
upstream = "http://{backend}"
auth = "login"
allow = {{ roles = ["admin"] }}

[[routes]]
name = "api"
path = "/api"
upstream = "http://{backend}"
auth = "bearer"
scopes = {{ read = ["orders:read"], write = ["orders:write"] }}

[[routes]]
name = "public"
path = "/public"
upstream = "http://{backend}"
auth = "public"
"#
    )
}

impl Demo {
    /// Once the gateway answers `/readyz`, prints what to open and try (stdout), ending
    /// with `demo ready: <public_url>/`. Exits the process if it never gets ready.
    pub fn announce_when_ready(&self) {
        let addrs = self.addrs;
        let provider = self.provider.clone();
        self.runtime.spawn(async move {
            if !ready(addrs.admin, Duration::from_secs(30)).await {
                tracing::error!("the gateway did not become ready within 30 s: see the log above");
                std::process::exit(1);
            }
            match provider.service_token("billing-service") {
                Ok(token) => println!("{}", banner(&addrs, provider.issuer(), &token)),
                Err(e) => {
                    tracing::error!("cannot mint the demo's service token: {e}");
                    std::process::exit(1);
                }
            }
        });
    }
}

/// Whether `/readyz` on the admin listener answers 200 within `patience`.
async fn ready(admin: SocketAddr, patience: Duration) -> bool {
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What the demo prints at start: the warning, the URLs, the users, a service token.
fn banner(addrs: &Addresses, issuer: &str, token: &str) -> String {
    let url = addrs.public_url();
    let users: Vec<String> = realm::USERS
        .iter()
        .map(|u| {
            let mut roles: Vec<&str> = u.realm_roles.to_vec();
            roles.extend(u.client_roles);
            roles.sort_unstable();
            format!(
                "    {:<6} password {:<15} roles {}; groups {}",
                u.username,
                u.password,
                roles.join(", "),
                u.groups.join(", ")
            )
        })
        .collect();
    let services: Vec<String> = realm::SERVICES
        .iter()
        .map(|s| {
            format!(
                "    {:<18} secret {:<17} scopes {}",
                s.client_id,
                s.secret,
                s.scopes.join(" ")
            )
        })
        .collect();
    let ttl = provider::ACCESS_TTL.as_secs() / 60;
    format!(
        r#"
================================================================================
 portcullis demo
 NOT FOR PRODUCTION: built-in development provider with fixed passwords
================================================================================
 gateway   {url}/
 provider  {issuer}
 backend   http://{backend}/ (echo: answers with the request it received)
 metrics   http://{admin}/metrics

 Open in a browser (the backend's page shows the identity the gateway set, then
 every other header it received; API clients get them as JSON):
    {url}/app?x=1         log in as alice or bob
    {url}/admin           role admin only: alice gets in, bob gets 403
    {url}/_portcullis/logout?rd=/public/   log out, here and at the provider

 Users:
{users}

 Services (client credentials):
{services}

 A service token for billing-service, valid {ttl} minutes:
    curl -s {url}/api/orders -H 'Authorization: Bearer {token}'

 Another token (reporting-service / reporting-secret may only read: POST gets 403):
    portcullis token --issuer {issuer} --client-id billing-service --client-secret billing-secret

demo ready: {url}/"#,
        admin = addrs.admin,
        backend = addrs.backend,
        users = users.join("\n"),
        services = services.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AuthMode;

    fn addrs() -> Addresses {
        Addresses {
            listen: "127.0.0.1:8080".parse().unwrap(),
            provider: "127.0.0.1:8081".parse().unwrap(),
            backend: "127.0.0.1:8082".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
        }
    }

    #[test]
    fn the_demo_configuration_is_a_valid_gateway_toml_with_its_four_routes() {
        let a = addrs();
        let text = gateway_toml(
            &a,
            "http://127.0.0.1:8081/realms/demo",
            "gateway-secret",
            &secret::generate(),
        );
        let config = config::parse(&text, Path::new("demo")).unwrap();
        let route = |path: &str| config.routes.find(Some("127.0.0.1:8080"), path).unwrap();
        assert_eq!(route("/app").auth, AuthMode::Login);
        assert!(route("/app").allow.is_empty());
        assert_eq!(route("/admin/x").auth, AuthMode::Login);
        assert!(!route("/admin/x").allow.is_empty());
        assert_eq!(route("/api/orders").auth, AuthMode::Bearer);
        let scopes = route("/api/orders").scopes.as_ref().unwrap();
        assert_eq!(scopes.required("GET").unwrap(), ["orders:read"]);
        assert_eq!(scopes.required("DELETE").unwrap(), ["orders:write"]);
        assert_eq!(route("/public/x").auth, AuthMode::Public);
    }

    #[test]
    fn non_loopback_shared_or_portless_addresses_are_usage_errors() {
        let mut a = addrs();
        a.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(matches!(
            a.check(),
            Err(DemoError::NotLoopback {
                flag: "--listen",
                ..
            })
        ));
        let mut a = addrs();
        a.provider = "10.0.0.1:8081".parse().unwrap();
        assert!(matches!(
            a.check(),
            Err(DemoError::NotLoopback {
                flag: "--provider",
                ..
            })
        ));
        let mut a = addrs();
        a.backend = a.listen;
        assert!(matches!(
            a.check(),
            Err(DemoError::SameAddress {
                flag: "--backend",
                other: "--listen",
                ..
            })
        ));
        let mut a = addrs();
        a.admin = "127.0.0.1:0".parse().unwrap();
        let e = a.check().unwrap_err();
        assert!(matches!(e, DemoError::NoPort { .. }));
        assert_eq!(e.exit_code(), 2);
        assert!(addrs().check().is_ok());
        let mut a = addrs();
        a.listen = "[::1]:8080".parse().unwrap();
        assert!(a.check().is_ok(), "::1 is loopback too");
    }

    #[test]
    fn the_banner_warns_and_ends_with_the_ready_line() {
        let b = banner(&addrs(), "http://127.0.0.1:8081/realms/demo", "tok.en.x");
        assert!(
            b.contains("NOT FOR PRODUCTION: built-in development provider with fixed passwords")
        );
        assert!(b.contains("alice") && b.contains("alice-password"));
        assert!(b.contains("-H 'Authorization: Bearer tok.en.x'"));
        assert!(b.contains("--client-id billing-service --client-secret billing-secret"));
        assert!(b.trim_end().ends_with("demo ready: http://127.0.0.1:8080/"));
    }
}
