//! Live reload: on SIGHUP the configuration file is read again and, when it is valid, the
//! gateway serves with it from the next request on. A request keeps the configuration it
//! began with to its end, so none in flight is dropped or judged by two configurations.
//!
//! What a reload keeps: the keys of every issuer whose settings did not change (no refetch,
//! so a reload during a provider outage loses nothing), the sessions ended on this instance
//! and the refreshes under way. What it cannot change — the listeners, TLS, the admin
//! address, the worker threads, `shutdown_grace` and `header_timeout` — is kept as it was,
//! with a warning.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::auth::issuer::Issuer;
use crate::auth::verifier::Verifier;
use crate::clock::Clock;
use crate::config::Config;
use crate::proxy::{Live, Serving};

/// How long a reload waits for the keys of an issuer it adds before it serves with them
/// anyway (that issuer's tokens are then refused with 503 until its keys arrive).
const NEW_ISSUERS_WAIT: Duration = Duration::from_secs(10);

/// Keeps every issuer's discovery and keys loaded, and reloads the configuration on
/// SIGHUP, until shutdown.
pub struct Reloader {
    live: Live,
    /// The configuration file; `None` for the demo, which has none to read again.
    source: Option<PathBuf>,
    http: reqwest::Client,
    clock: Clock,
    /// The issuers being kept fresh, each with the task that does it.
    maintained: Mutex<Vec<(Arc<Issuer>, tokio::task::JoinHandle<()>)>>,
}

impl Reloader {
    pub fn new(live: Live, source: Option<PathBuf>, http: reqwest::Client, clock: Clock) -> Self {
        Reloader {
            live,
            source,
            http,
            clock,
            maintained: Mutex::new(Vec::new()),
        }
    }

    /// Starts keeping fresh the issuers of `verifier` that are not kept yet.
    fn maintain(&self, verifier: &Verifier) {
        let mut maintained = self.maintained.lock().unwrap_or_else(|e| e.into_inner());
        for issuer in verifier.issuers() {
            if !maintained.iter().any(|(i, _)| Arc::ptr_eq(i, issuer)) {
                let kept = issuer.clone();
                let task = tokio::spawn(async move { kept.maintain().await });
                maintained.push((issuer.clone(), task));
            }
        }
    }

    /// Stops keeping fresh the issuers that `verifier` does not use.
    fn forget_others(&self, verifier: &Verifier) {
        let mut maintained = self.maintained.lock().unwrap_or_else(|e| e.into_inner());
        maintained.retain(|(issuer, task)| {
            let used = verifier.issuers().iter().any(|i| Arc::ptr_eq(i, issuer));
            if !used {
                task.abort();
            }
            used
        });
    }

    /// Reads the configuration file again and serves with it, or logs why not and goes on
    /// with the one being served.
    async fn reload(&self) {
        let Some(path) = &self.source else {
            tracing::info!("SIGHUP: nothing to reload, this gateway has no configuration file");
            return;
        };
        let mut config = match crate::config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    config = %path.display(),
                    "the configuration was not reloaded, the previous one is still served: {e}"
                );
                return;
            }
        };
        let old = self.live.load_full();
        let kept = keep_restart_only_settings(&old.config, &mut config);
        if !kept.is_empty() {
            tracing::warn!(
                settings = ?kept,
                "these settings only change with a restart: they stay as they were"
            );
        }
        let verifier = Arc::new(Verifier::from_config_keeping(
            &config,
            self.http.clone(),
            self.clock.clone(),
            old.verifier.issuers(),
        ));
        self.maintain(&verifier);
        wait_for_new_issuers(&verifier).await;
        let serving = match Serving::new(
            Arc::new(config),
            verifier.clone(),
            self.http.clone(),
            Some(&old),
        ) {
            Ok(s) => s,
            Err(e) => {
                self.forget_others(&old.verifier);
                tracing::error!(
                    config = %path.display(),
                    "the configuration was not reloaded, the previous one is still served: {e:#}"
                );
                return;
            }
        };
        let routes = serving.config.routes.len();
        self.live.store(Arc::new(serving));
        self.forget_others(&verifier);
        tracing::info!(
            config = %path.display(),
            routes,
            issuers = verifier.issuers().len(),
            "configuration reloaded"
        );
    }
}

#[async_trait::async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        self.maintain(&self.live.load().verifier);
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no live reload: SIGHUP cannot be listened for");
                None
            }
        };
        loop {
            tokio::select! {
                Some(()) = async { hangup.as_mut()?.recv().await } => self.reload().await,
                _ = shutdown.changed() => break,
            }
        }
        let maintained = self.maintained.lock().unwrap_or_else(|e| e.into_inner());
        for (_, task) in maintained.iter() {
            task.abort();
        }
    }
}

/// Waits (at most [`NEW_ISSUERS_WAIT`]) until every issuer of `verifier` has its keys:
/// those kept from before have them already.
async fn wait_for_new_issuers(verifier: &Verifier) {
    let deadline = tokio::time::Instant::now() + NEW_ISSUERS_WAIT;
    while !verifier.is_ready() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "an issuer added by the reload has no keys yet: its tokens get 503 until they load"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts back into `new` the settings a running gateway cannot change, and names those
/// that `new` wanted changed.
fn keep_restart_only_settings(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.server.listen != old.server.listen {
        new.server.listen.clone_from(&old.server.listen);
        kept.push("server.listen");
    }
    if new.server.tls != old.server.tls {
        new.server.tls.clone_from(&old.server.tls);
        kept.push("server.tls");
    }
    if new.server.threads != old.server.threads {
        new.server.threads = old.server.threads;
        kept.push("server.threads");
    }
    if new.server.shutdown_grace != old.server.shutdown_grace {
        new.server.shutdown_grace = old.server.shutdown_grace;
        kept.push("server.shutdown_grace");
    }
    if new.server.header_timeout != old.server.header_timeout {
        new.server.header_timeout = old.server.header_timeout;
        kept.push("server.header_timeout");
    }
    if new.admin != old.admin {
        new.admin = old.admin;
        kept.push("admin.listen");
    }
    kept
}
