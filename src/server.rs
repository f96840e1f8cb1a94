//! Starting the gateway: pingora services from a [`Config`].

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::admin::{Admin, Readiness};
use crate::config::Config;
use crate::proxy::Gateway;

/// Builds the pingora server for a configuration: the proxy on every `server.listen`
/// address (TLS when `server.tls` is set), and the admin listener.
pub fn build(config: Config) -> anyhow::Result<Server> {
    let config = Arc::new(config);
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let readiness = Arc::new(Readiness::default());
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(config.clone()),
        "portcullis",
    );
    for addr in &config.server.listen {
        let addr = addr.to_string();
        match &config.server.tls {
            None => proxy.add_tcp(&addr),
            Some(tls) => {
                let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|e| anyhow::anyhow!("cannot load server.tls: {e}"))?;
                settings.enable_h2();
                proxy.add_tls_with_settings(&addr, None, settings);
            }
        }
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
    // Nothing the routes need is fetched yet: ready as soon as the listeners are up.
    readiness.set(true);
    Ok(server)
}
