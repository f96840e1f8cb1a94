//! Starting the gateway: pingora services from a [`Config`].

use std::sync::Arc;

use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::admin::{Admin, Readiness};
use crate::auth::verifier::{http_client, system_clock, Verifier};
use crate::config::Config;
use crate::proxy::{Gateway, InFlight};
use crate::reload::Reloader;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};

/// On SIGTERM, waits for the requests in flight (at most `grace`), then ends the process.
/// pingora alone stops accepting at once but then always sleeps its whole grace period, so
/// an idle gateway would take `shutdown_grace` to stop.
struct DrainThenExit {
    in_flight: InFlight,
    grace: std::time::Duration,
}

#[async_trait::async_trait]
impl BackgroundService for DrainThenExit {
    async fn start(&self, _shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return; // pingora's own shutdown still applies
        };
        term.recv().await;
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.in_flight.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.in_flight.count();
        if left > 0 {
            tracing::warn!(
                requests = left,
                "shutdown_grace is over: exiting with requests in flight"
            );
        } else {
            tracing::info!("every request in flight is done: exiting");
        }
        std::process::exit(0);
    }
}

/// The buffers of a client connection, below HTTP: no read buffer, and a write buffer of
/// one page. pingora reads a request's head and body into buffers of its own, so a read
/// buffer (64 KiB by pingora's default, held by every idle keep-alive connection) only copied
/// bytes once more. Writes: pingora writes an answer's head, then its body; with pingora's
/// one-packet default (1,460 bytes) an answer over that size took two `send`s, with a page
/// an answer of up to 4 KiB goes out in one.
const WRITE_BUFFER: usize = 4096;

fn client_buffers() -> L4BufferSettings {
    L4BufferSettings::new(0, WRITE_BUFFER)
}

/// Builds the pingora server for a configuration: the proxy on every `server.listen`
/// address (TLS when `server.tls` is set), and the admin listener. SIGHUP reads `source`
/// again (see [`crate::reload`]); the demo has none.
pub fn build(config: Config, source: Option<std::path::PathBuf>) -> anyhow::Result<Server> {
    let config = Arc::new(config);
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let http = http_client();
    let clock = system_clock();
    let verifier = Arc::new(Verifier::from_config(&config, http.clone(), clock.clone()));
    let in_flight = InFlight::default();
    let gateway = Gateway::new(config.clone(), verifier, http.clone(), in_flight.clone())?;
    let live = gateway.live();
    let readiness = Arc::new(Readiness::new(live.clone()));
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "portcullis");
    if let Some(app) = proxy.app_logic_mut() {
        app.request_head_timeout = Some(config.server.header_timeout);
    }
    for addr in &config.server.listen {
        let listener = ListenerConfig::tcp(addr.to_string()).l4_buffer(client_buffers());
        let listener = match &config.server.tls {
            None => listener,
            Some(tls) => {
                let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|e| anyhow::anyhow!("cannot load server.tls: {e}"))?;
                settings.enable_h2();
                listener.tls(settings)
            }
        };
        proxy.add_listener(listener);
    }
    server.add_service(proxy);

    if let Some(addr) = config.admin {
        let mut admin = Service::new(
            "admin".to_owned(),
            Admin {
                readiness: readiness.clone(),
            },
        );
        admin.add_tcp(&addr.to_string());
        admin.threads = Some(1);
        server.add_service(admin);
    }
    server.add_service(background_service(
        "drain",
        DrainThenExit {
            in_flight,
            grace: config.server.shutdown_grace,
        },
    ));
    server.add_service(background_service(
        "issuers and reload",
        Reloader::new(live, source, http, clock),
    ));
    Ok(server)
}
