//! The admin listener: `/healthz`, `/readyz`, `/metrics`. Never on the public listener.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::proxy::Live;
use crate::telemetry::METRICS;

/// Whether the gateway can serve every route: every issuer's discovery and keys are
/// loaded, and the Redis session store (when sessions are kept there) answers. Once the keys
/// are loaded that part stays ready through a provider outage, since cached keys keep
/// verifying; Redis is asked at every `/readyz`, since no session can be opened without it.
pub struct Readiness {
    live: Live,
    keys_loaded: AtomicBool,
}

impl Readiness {
    pub fn new(live: Live) -> Self {
        Readiness {
            live,
            keys_loaded: AtomicBool::new(false),
        }
    }

    pub async fn is_ready(&self) -> bool {
        let serving = self.live.load_full();
        if !self.keys_loaded.load(Ordering::Acquire) {
            if !serving.verifier.is_ready() {
                return false;
            }
            self.keys_loaded.store(true, Ordering::Release);
        }
        match serving.sessions() {
            Some(sessions) => sessions.store_reachable().await,
            None => true,
        }
    }
}

pub struct Admin {
    pub readiness: Arc<Readiness>,
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (status, content_type, body) = match session.req_header().uri.path() {
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.readiness.is_ready().await => {
                (200, "text/plain", b"ready\n".to_vec())
            }
            "/readyz" => (503, "text/plain", b"not ready\n".to_vec()),
            "/metrics" => (200, "text/plain; version=0.0.4", METRICS.render()),
            #[cfg(feature = "test-clock")]
            "/test/clock" if session.req_header().method == http::Method::POST => {
                test_clock(session.req_header())
            }
            _ => (
                404,
                "text/plain",
                b"not found: try /healthz, /readyz or /metrics\n".to_vec(),
            ),
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body)
            .expect("a valid response")
    }
}

/// `POST /test/clock?advance=<seconds>`: moves the gateway's clock forward (a `test-clock`
/// build only: the tests' build, never a release). Answers the new offset.
#[cfg(feature = "test-clock")]
fn test_clock(req: &pingora::http::RequestHeader) -> (u16, &'static str, Vec<u8>) {
    let seconds = req
        .uri
        .query()
        .and_then(|q| q.strip_prefix("advance="))
        .and_then(|s| s.parse::<u64>().ok());
    match seconds {
        Some(s) => {
            let offset = crate::clock::advance(s);
            tracing::warn!(offset, "test clock moved forward");
            (200, "text/plain", format!("{offset}\n").into_bytes())
        }
        None => (400, "text/plain", b"advance=<seconds>\n".to_vec()),
    }
}
