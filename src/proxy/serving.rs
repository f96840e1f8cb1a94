//! What requests are served with, and the handle a reload swaps it through.

use std::sync::Arc;

use crate::auth::verifier::Verifier;
use crate::config::Config;
use crate::headers::OwnCookies;
use crate::session::Sessions;

/// The configuration being served, swapped whole by a reload: each request takes the one
/// being served when it begins and keeps it to its end.
pub type Live = Arc<arc_swap::ArcSwap<Serving>>;

/// What requests are served with: a configuration and what is built from it.
pub struct Serving {
    pub config: Arc<Config>,
    pub verifier: Arc<Verifier>,
    pub(super) sessions: Option<Sessions>,
    pub(super) http: reqwest::Client,
    pub(super) cookies: OwnCookies,
    pub(super) scheme: &'static str,
}

impl Serving {
    /// What `config` serves with. A reload passes the `previous` one: the sessions it ended
    /// and the refreshes under way carry over.
    pub fn new(
        config: Arc<Config>,
        verifier: Arc<Verifier>,
        http: reqwest::Client,
        previous: Option<&Serving>,
    ) -> anyhow::Result<Self> {
        let sessions = match (&config.session, &config.provider) {
            (Some(s), Some(p)) => Some(
                Sessions::new(
                    s.clone(),
                    p,
                    &config.server.public_url,
                    config.claims.clone(),
                    config.headers.access_token.is_some(),
                    previous.and_then(|p| p.sessions.as_ref()),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
            ),
            _ => None,
        };
        let cookies = OwnCookies {
            base: config
                .session
                .as_ref()
                .map_or(crate::config::DEFAULT_COOKIE, |s| s.cookie.as_str())
                .to_owned(),
        };
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(Serving {
            config,
            verifier,
            sessions,
            http,
            cookies,
            scheme,
        })
    }

    /// The session store, when sessions are kept in one (for `/readyz`).
    pub fn sessions(&self) -> Option<&Sessions> {
        self.sessions.as_ref()
    }
}
