//! The gateway as a pingora proxy: each phase a few lines that call named functions.
//!
//! A request goes through [`Gateway::request_filter`] (path normalized, reserved endpoints
//! answered in `endpoints`, the request admitted in `admission`), then `upstream_peer`,
//! `upstream_request_filter` (identity headers), `response_filter` (a renewed session's
//! cookies) and `logging`. Every refusal is answered by `respond`.

mod admission;
mod endpoints;
pub mod respond;
mod serving;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};

use crate::auth::verifier::{Verified, Verifier};
use crate::config::Config;
use crate::headers::{self, Peer};
use crate::policy::form_method::{FormMethod, FIELD};
use crate::policy::path;
use crate::policy::route::{Route, Upstream};
use crate::telemetry::METRICS;
use admission::{Admission, Target};
pub use endpoints::RESERVED_PREFIX;
/// How forward-auth reads the request it decides; public for the fuzz targets (tests/fuzz).
#[doc(hidden)]
pub use endpoints::{forwarded_request, Forwarded};
use respond::Refusal;
pub use serving::{Live, Serving};

/// The proxy. Shared by every worker; per-request state lives in [`Ctx`].
pub struct Gateway {
    live: Live,
    in_flight: InFlight,
}

/// How many requests are being served: a shutdown waits for them, and no longer.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }
}

/// One request being served; it is done when its context is dropped, however it ended.
struct InFlightGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Gateway {
    /// `in_flight` counts the requests being served, for the shutdown.
    pub fn new(
        config: Arc<Config>,
        verifier: Arc<Verifier>,
        http: reqwest::Client,
        in_flight: InFlight,
    ) -> anyhow::Result<Self> {
        let serving = Serving::new(config, verifier, http, None)?;
        Ok(Gateway {
            live: Arc::new(arc_swap::ArcSwap::from_pointee(serving)),
            in_flight,
        })
    }

    /// The configuration being served, for a reload to swap.
    pub fn live(&self) -> Live {
        self.live.clone()
    }
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    /// The configuration this request is served with, from its start to its end.
    live: Arc<Serving>,
    route: Option<Arc<Route>>,
    /// The normalized path: what the route matched and what the backend receives.
    path: String,
    /// The upstream chosen for the current attempt, for the log.
    upstream: Option<Arc<str>>,
    /// The index in the route of the upstream of the current attempt.
    upstream_index: Option<usize>,
    attempts: usize,
    refusal: Option<&'static str>,
    /// The authenticated caller, whose identity the backend receives.
    caller: Option<Arc<Verified>>,
    /// `Set-Cookie` values for the answer: a session renewed or ended on the way.
    set_cookies: Vec<String>,
    /// A form body read as it passes, for a `_method` field; what it found.
    form_method: Option<FormMethod>,
    body_refusal: Option<Refusal>,
    _in_flight: InFlightGuard,
}

/// Whether a filter answered the request itself or lets it go on to the backend.
enum Handled {
    Responded,
    Continue,
}

impl Handled {
    fn done(self) -> bool {
        matches!(self, Handled::Responded)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            live: self.live.load_full(),
            route: None,
            path: String::new(),
            upstream: None,
            upstream_index: None,
            attempts: 0,
            refusal: None,
            caller: None,
            set_cookies: Vec::new(),
            form_method: None,
            body_refusal: None,
            _in_flight: self.in_flight.enter(),
        }
    }

    /// Decides the request: normalizes the path, answers reserved endpoints, finds the
    /// route, authenticates, and strips what clients may not say. `true` = answered here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        // pingora keeps an HTTP/1.1 connection open forever between requests: bound it.
        let server = &ctx.live.config.server;
        if session.get_keepalive() == Some(0) {
            session.set_keepalive(Some(server.keepalive_timeout.as_secs()));
        }
        // Each read of the body (pingora's read timeout, 60 s unless set).
        session.set_read_timeout(Some(server.body_timeout));
        let live = ctx.live.clone();
        Ok(live.decide(session, ctx).await?.done())
    }

    /// Picks the next upstream of the route, round-robin.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
        let (index, upstream) = route.pick_upstream(ctx.upstream_index);
        ctx.upstream_index = Some(index);
        ctx.attempts += 1;
        ctx.upstream = Some(upstream.url.clone());
        let addr = upstream.address().await.map_err(|e| {
            Error::because(
                ErrorType::ConnectNoRoute,
                format!("cannot resolve {}", upstream.host),
                e,
            )
        })?;
        Ok(Box::new(peer(upstream, addr)))
    }

    /// A form body whose `_method` names a method the route's rules would not admit the
    /// caller for is stopped before that chunk goes on (the backend gets a cut body, which
    /// no form parser acts on); the client gets 400.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let Some(form) = ctx.form_method.as_mut() else {
            return Ok(());
        };
        let allowed = |named: &_| {
            admission::admits_override(ctx.route.as_deref(), ctx.caller.as_deref(), named)
        };
        form.read(body.as_deref(), end_of_stream, allowed)
            .map_err(|_| {
                ctx.body_refusal = Some(Refusal::Override(FIELD));
                Error::explain(
                    ErrorType::HTTPStatus(400),
                    "a form field changes the method",
                )
            })
    }

    /// A failed connection is retried on the next upstream while there is one untried.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(route), Some(i)) = (&ctx.route, ctx.upstream_index) {
            route.upstreams[i].mark_down();
        }
        let upstreams = ctx.route.as_ref().map_or(1, |r| r.upstreams.len());
        if ctx.attempts < upstreams {
            e.set_retry(true);
        }
        e
    }

    /// Sends the backend the normalized path, `X-Forwarded-*`, and the caller's identity.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // The request-target is rewritten unless what goes on the wire is already the
        // normalized path (and the query): normalizing changed nothing, and it came in
        // origin form, not absolute form (`GET http://host/path`, which pingora passes on
        // verbatim).
        let req = session.req_header();
        let sent = &req.uri;
        let wire = req.raw_path();
        let unchanged = wire
            .strip_prefix(ctx.path.as_bytes())
            .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'?'))
            && sent.path() == ctx.path;
        if !unchanged {
            let target = match sent.query() {
                Some(q) => format!("{}?{q}", ctx.path),
                None => ctx.path.clone(),
            };
            let uri = target.parse::<http::Uri>().map_err(|e| {
                Error::because(ErrorType::InvalidHTTPHeader, "rewriting the path", e)
            })?;
            upstream.set_uri(uri);
        }
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        headers::set_forwarded(
            upstream,
            Peer {
                client,
                scheme: ctx.live.scheme,
            },
            &ctx.live.config.server.trusted_proxies,
        );
        if let Some(caller) = &ctx.caller {
            headers::set_identity(upstream, &caller.identity, &ctx.live.config.headers);
        }
        Ok(())
    }

    /// Refuses a protocol switch nobody asked for, and hands the browser a renewed session
    /// along with the backend's answer.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // A 101 to a request that asked for no upgrade would turn the connection into a
        // tunnel whose bytes the gateway no longer reads as requests: a 502 instead.
        if upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS
            && !headers::asks_to_upgrade(session.req_header())
        {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "the upstream switched protocols for a request that asked for no upgrade",
            ));
        }
        if ctx.set_cookies.is_empty() {
            return Ok(());
        }
        for c in ctx.set_cookies.drain(..) {
            upstream_response.append_header(http::header::SET_COOKIE, c)?;
        }
        // An answer carrying someone's session must never be served from a shared cache.
        let private = upstream_response
            .headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.to_ascii_lowercase();
                v.contains("private") || v.contains("no-store")
            });
        if !private {
            upstream_response.insert_header(http::header::CACHE_CONTROL, "private, no-cache")?;
        }
        Ok(())
    }

    /// Answers a failure to reach or read the backend with a JSON 502 (or 504), a client
    /// too slow with 408, a form body that changes the method with 400.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            // The client paused its body past `body_timeout` (nginx answers 408 too).
            ErrorType::ReadTimedout if e.esource() == &pingora::ErrorSource::Downstream => 408,
            // The client hung up or stopped reading: nobody to answer.
            _ if client_went_away(e) => 0,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => 0,
                pingora::ErrorSource::Internal | pingora::ErrorSource::Unset => 500,
            },
        };
        if code > 0 && session.response_written().is_none() {
            let refusal = ctx.body_refusal.take().unwrap_or(match code {
                502 => Refusal::UpstreamUnreachable,
                504 => Refusal::UpstreamTimeout,
                408 => Refusal::ClientTimeout,
                other => Refusal::ProxyFailed(other),
            });
            ctx.refusal = Some(refusal.reason());
            let _ = respond::send(session, &refusal).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Marks a kept-alive connection as reused, so that the vendored pingora-proxy gives its
    /// next head `keepalive_timeout` (the idle wait) on top of `header_timeout`.
    fn persist_connection_context(
        &self,
        _session: &Session,
        _ctx: &Ctx,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        Some(Box::new(()))
    }

    /// A client that hung up or stopped reading is no error an operator can act on: the
    /// access log line records it (`status` 0, `error`), pingora's ERROR line is left out.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        client_went_away(e)
    }

    /// One log line and the metrics for every request.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map(|r| r.status);
        let route = ctx.route.as_ref().map_or("-", |r| r.name.as_str());
        let elapsed = ctx.start.elapsed();
        let status_label = status.as_ref().map_or("0", http::StatusCode::as_str);
        METRICS
            .requests
            .with_label_values(&[route, status_label])
            .inc();
        METRICS
            .duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        // Field values are only evaluated when the access log is enabled.
        tracing::info!(
            target: "portcullis::access",
            method = session.req_header().method.as_str(),
            path = %ctx.path,
            route,
            status = status.map_or(0, |s| s.as_u16()),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream = ctx.upstream.as_deref().unwrap_or("-"),
            client = %session.client_addr().map(ToString::to_string).unwrap_or_default(),
            reason = ctx.refusal.unwrap_or("-"),
            error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
        );
    }
}

impl Serving {
    /// What `request_filter` decides: a malformed path is refused, reserved endpoints are
    /// answered, and any other request goes through admission; an admitted one has the
    /// identity headers clients may not send stripped before it goes on.
    async fn decide(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        if headers::head_bytes(session.req_header()) > self.config.server.max_header_bytes {
            return self.refuse(session, ctx, Refusal::HeadersTooLarge).await;
        }
        ctx.path = match path::normalize(session.req_header().uri.path()) {
            Ok(p) => p,
            Err(e) => return self.refuse(session, ctx, Refusal::BadPath(e)).await,
        };
        if ctx.path.starts_with(RESERVED_PREFIX) {
            return self.endpoint(session, ctx).await;
        }
        let req = session.req_header();
        let host = endpoints::request_host(req);
        if let Some(refusal) = self.reinterpreted(req, host.as_deref(), &ctx.path) {
            return self.refuse(session, ctx, refusal).await;
        }
        let req = session.req_header();
        let path = std::mem::take(&mut ctx.path);
        let target = Target {
            host: host.as_deref(),
            path: &path,
            method: req.method.as_str(),
        };
        let admission = self.admit(req, target, ctx).await;
        ctx.path = path;
        match admission {
            Admission::Admitted(caller) => ctx.caller = caller,
            Admission::LoginRequired => {
                let target = match session.req_header().uri.query() {
                    Some(q) => format!("{}?{q}", ctx.path),
                    None => ctx.path.clone(),
                };
                return self.start_login(session, ctx, &target).await;
            }
            Admission::Refused(r) => return self.refuse(session, ctx, r).await,
        }
        let removed = headers::strip_client_identity(
            session.req_header_mut(),
            &self.config.headers,
            &self.cookies,
        );
        if !removed.is_empty() {
            let route = ctx.route.as_ref().map_or("-", |r| r.name.as_str());
            tracing::debug!(route, ?removed, "stripped client-supplied identity headers");
        }
        let req = session.req_header();
        let content_type = req.headers.get(http::header::CONTENT_TYPE);
        let content_type = content_type.and_then(|v| v.to_str().ok());
        ctx.form_method = FormMethod::for_body(content_type, req.method.as_str());
        Ok(Handled::Continue)
    }
}

impl Serving {
    /// A refusal when a backend could read the request as another host, method or path than
    /// the rules would check: a `Host` that is not one host, a method or path override
    /// (`X-HTTP-Method-Override`, `_method`, `X-Original-URL` …), or `;` parameters that put
    /// the path under another route as servlet containers read it. `method` and `query` are
    /// those of `req` unless given.
    fn reinterpreted(
        &self,
        req: &RequestHeader,
        host: Option<&str>,
        path: &str,
    ) -> Option<Refusal> {
        self.reinterpreted_as(req, req.method.as_str(), host, path, req.uri.query())
    }

    fn reinterpreted_as(
        &self,
        req: &RequestHeader,
        method: &str,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
    ) -> Option<Refusal> {
        if host.is_some_and(|h| !crate::policy::route::valid_host(h)) {
            return Some(Refusal::BadHost);
        }
        if let Some(name) = headers::override_in(&req.headers, method, path, query) {
            return Some(Refusal::Override(name));
        }
        self.config
            .routes
            .parameters_change_route(host, path)
            .then_some(Refusal::ParametersChangeRoute)
    }
}

/// Whether `e` is the client hanging up, or going silent, mid-request.
fn client_went_away(e: &Error) -> bool {
    e.esource() == &pingora::ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout
                | ErrorType::H2Error
        )
}

/// The pingora peer for one attempt on `upstream` at `addr`.
fn peer(upstream: &Upstream, addr: std::net::SocketAddr) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    peer.options.connection_timeout = Some(DEFAULT_UPSTREAM_CONNECT_TIMEOUT);
    peer.options.idle_timeout = Some(DEFAULT_UPSTREAM_IDLE_TIMEOUT);
    peer.group_key = upstream.trust_key;
    peer.options.ca = upstream.ca.clone();
    peer
}

/// How long a connection to an upstream may take to open: 5 s.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long an idle pooled upstream connection is kept: 60 s.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
