//! The gateway as a pingora proxy: each phase a few lines that call named functions.

pub mod respond;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};

use crate::auth::verifier::{Verified, Verifier};
use crate::auth::{self, Outcome};
use crate::config::{AuthMode, Config};
use crate::headers::{self, OwnCookies, Peer};
use crate::policy::path;
use crate::policy::route::Route;
use crate::session::login::{request_cookies, LoginError, Sessions};
use crate::session::target::return_target;
use crate::telemetry::METRICS;
use respond::Refusal;

/// The reserved path prefix of the gateway's own endpoints.
pub const RESERVED_PREFIX: &str = "/_portcullis/";

/// The proxy. Shared by every worker; per-request state lives in [`Ctx`].
pub struct Gateway {
    config: Arc<Config>,
    verifier: Arc<Verifier>,
    sessions: Option<Sessions>,
    http: reqwest::Client,
    cookies: OwnCookies,
    scheme: &'static str,
}

impl Gateway {
    pub fn new(config: Arc<Config>, verifier: Arc<Verifier>, http: reqwest::Client) -> Self {
        let sessions = match (&config.session, &config.provider) {
            (Some(s), Some(p)) => Some(Sessions::new(
                s.clone(),
                p,
                &config.server.public_url,
                config.claims.clone(),
            )),
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
        Gateway {
            config,
            verifier,
            sessions,
            http,
            cookies,
            scheme,
        }
    }
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    route: Option<Arc<Route>>,
    /// The normalized path: what the route matched and what the backend receives.
    path: String,
    /// The upstream chosen for the current attempt, for the log.
    upstream: Option<Arc<str>>,
    attempts: usize,
    refusal: Option<&'static str>,
    /// The authenticated caller, whose identity the backend receives.
    caller: Option<Arc<Verified>>,
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
            route: None,
            path: String::new(),
            upstream: None,
            attempts: 0,
            refusal: None,
            caller: None,
        }
    }

    /// Decides the request: normalizes the path, answers reserved endpoints, finds the
    /// route, authenticates, and strips what clients may not say. `true` = answered here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        Ok(self.decide(session, ctx).await?.done())
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
        let upstream = route.pick_upstream();
        ctx.attempts += 1;
        ctx.upstream = Some(upstream.url.clone());
        let addr = upstream.address().await.map_err(|e| {
            Error::because(
                ErrorType::ConnectNoRoute,
                format!("cannot resolve {}", upstream.host),
                e,
            )
        })?;
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
        peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
        peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
        peer.group_key = upstream.trust_key;
        if let Some(ca) = &upstream.ca {
            use pingora::utils::tls::WrappedX509;
            let certs: Vec<WrappedX509> = ca
                .iter()
                .map(|der| WrappedX509::new(der.clone(), pingora::utils::tls::parse_x509))
                .collect();
            peer.options.ca = Some(Arc::from(certs));
        }
        Ok(Box::new(peer))
    }

    /// A failed connection is retried on the next upstream while there is one untried.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
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
        let target = match session.req_header().uri.query() {
            Some(q) => format!("{}?{q}", ctx.path),
            None => ctx.path.clone(),
        };
        let uri = target
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "rewriting the path", e))?;
        upstream.set_uri(uri);
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        headers::set_forwarded(
            upstream,
            Peer {
                client,
                scheme: self.scheme,
            },
            &self.config.server.trusted_proxies,
        );
        if let Some(caller) = &ctx.caller {
            headers::set_identity(upstream, &caller.identity, &self.config.headers);
        }
        Ok(())
    }

    /// Answers a failure to reach or read the backend with a JSON 502 (or 504).
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => 0,
                pingora::ErrorSource::Internal | pingora::ErrorSource::Unset => 500,
            },
        };
        if code == 502 && session.response_written().is_none() {
            ctx.refusal = Some(Refusal::UpstreamUnreachable.reason());
            let _ = respond::send(session, &Refusal::UpstreamUnreachable).await;
        } else if code > 0 && session.response_written().is_none() {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
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

impl Gateway {
    async fn decide(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        ctx.path = match path::normalize(session.req_header().uri.path()) {
            Ok(p) => p,
            Err(e) => return self.refuse(session, ctx, Refusal::BadPath(e)).await,
        };
        if ctx.path.starts_with(RESERVED_PREFIX) {
            return self.endpoint(session, ctx).await;
        }
        let host = request_host(session.req_header());
        let Some(route) = self.config.routes.find(host.as_deref(), &ctx.path).cloned() else {
            return self.refuse(session, ctx, Refusal::NoRoute).await;
        };
        ctx.route = Some(route.clone());
        let req = session.req_header();
        let browser = self.route_session(&route, req);
        let max = self.config.server.max_token_bytes;
        let outcome = auth::authenticate(
            &self.verifier,
            &route,
            req,
            req.method.as_str(),
            max,
            browser,
        )
        .await;
        match outcome {
            Outcome::Anonymous => {}
            Outcome::Authenticated(v) => ctx.caller = Some(v),
            Outcome::LoginRequired => {
                let target = match req.uri.query() {
                    Some(q) => format!("{}?{q}", ctx.path),
                    None => ctx.path.clone(),
                };
                return self.start_login(session, ctx, &target).await;
            }
            Outcome::Refused(r) => return self.refuse(session, ctx, r).await,
        }
        let removed = headers::strip_client_identity(
            session.req_header_mut(),
            &self.config.headers,
            &self.cookies,
        );
        if !removed.is_empty() {
            tracing::debug!(route = %route.name, ?removed, "stripped client-supplied identity headers");
        }
        Ok(Handled::Continue)
    }

    /// The gateway's own endpoints under `/_portcullis/`.
    async fn endpoint(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        match ctx.path.as_str() {
            "/_portcullis/auth" => self.forward_auth(session, ctx).await,
            "/_portcullis/userinfo" => self.userinfo(session, ctx).await,
            "/_portcullis/login" if self.sessions.is_some() => {
                let rd = query_param(session.req_header(), "rd").unwrap_or_else(|| "/".to_owned());
                match return_target(&rd) {
                    Some(rd) => self.start_login(session, ctx, rd).await,
                    None => self.refuse(session, ctx, Refusal::BadReturnTarget).await,
                }
            }
            "/_portcullis/callback" if self.sessions.is_some() => self.callback(session, ctx).await,
            "/_portcullis/logout" if self.sessions.is_some() => self.logout(session, ctx).await,
            _ => self.refuse(session, ctx, Refusal::NoEndpoint).await,
        }
    }

    /// Forward-auth for nginx `auth_request`, Traefik `forwardAuth` and Envoy: decides the
    /// request described by `X-Forwarded-Method`, `-Host` and `-Uri`, never redirects.
    async fn forward_auth(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        let req = session.req_header();
        let header = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let host = header("x-forwarded-host").or_else(|| request_host(req));
        let uri = header("x-forwarded-uri").unwrap_or_else(|| "/".to_owned());
        let method = header("x-forwarded-method").unwrap_or_else(|| req.method.as_str().to_owned());
        let raw_path = uri.split('?').next().unwrap_or("/");
        let target = match path::normalize(raw_path) {
            Ok(p) => p,
            Err(e) => return self.refuse(session, ctx, Refusal::BadPath(e)).await,
        };
        let Some(route) = self.config.routes.find(host.as_deref(), &target).cloned() else {
            return self.refuse(session, ctx, Refusal::NoRoute).await;
        };
        ctx.route = Some(route.clone());
        let browser = self.route_session(&route, session.req_header());
        let max = self.config.server.max_token_bytes;
        let outcome = auth::authenticate(
            &self.verifier,
            &route,
            session.req_header(),
            &method,
            max,
            browser,
        )
        .await;
        let identity = match outcome {
            Outcome::Anonymous => Vec::new(),
            Outcome::Authenticated(v) => {
                headers::identity_headers(&v.identity, &self.config.headers)
            }
            // Forward-auth decides; it never redirects.
            Outcome::LoginRequired => {
                return self
                    .refuse(
                        session,
                        ctx,
                        Refusal::MissingCredentials {
                            bearer_challenge: false,
                        },
                    )
                    .await
            }
            Outcome::Refused(r) => return self.refuse(session, ctx, r).await,
        };
        respond::send_json(
            session,
            200,
            &serde_json::json!({ "route": route.name }),
            &identity,
        )
        .await?;
        Ok(Handled::Responded)
    }

    /// The caller's identity as JSON: the bearer token's, else the browser session's.
    async fn userinfo(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        let req = session.req_header();
        // The session is only opened (decrypted) when no bearer token was sent.
        let session_caller = match auth::bearer(req) {
            auth::Bearer::Absent => self.browser_session(req),
            auth::Bearer::Token(_) | auth::Bearer::Malformed => None,
        };
        let found = match session_caller {
            Some(v) => Ok(v),
            None => {
                auth::verify_bearer(&self.verifier, req, self.config.server.max_token_bytes).await
            }
        };
        match found {
            Ok(v) => {
                let who = serde_json::to_value(&v.identity).unwrap_or_default();
                respond::send_json(session, 200, &who, &[]).await?;
                Ok(Handled::Responded)
            }
            Err(r) => self.refuse(session, ctx, r).await,
        }
    }

    /// The session of a request on `route`: opened only on routes that take sessions, so
    /// `public` and `bearer` routes never pay for decrypting a cookie.
    fn route_session(&self, route: &Route, req: &RequestHeader) -> Option<Arc<Verified>> {
        match route.auth {
            AuthMode::Login | AuthMode::Any => self.browser_session(req),
            AuthMode::Public | AuthMode::Bearer => None,
        }
    }

    /// The browser session a request carries, if it opens and has not ended.
    fn browser_session(&self, req: &RequestHeader) -> Option<Arc<Verified>> {
        let sessions = self.sessions.as_ref()?;
        sessions
            .load(request_cookies(req), self.verifier.now())
            .map(|(_, v)| v)
    }

    /// Sends the browser to the provider to log in, then back to `target`.
    async fn start_login(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        target: &str,
    ) -> pingora::Result<Handled> {
        let (Some(sessions), Some(provider)) = (&self.sessions, self.verifier.issuers().first())
        else {
            return self.refuse(session, ctx, Refusal::NoEndpoint).await;
        };
        let Some(auth_endpoint) = provider
            .discovery()
            .and_then(|d| d.authorization_endpoint.clone())
        else {
            return self
                .refuse(session, ctx, Refusal::ProviderUnavailable)
                .await;
        };
        let (location, cookie) = sessions.start(&auth_endpoint, target, self.verifier.now());
        ctx.refusal = Some("login_required");
        respond::send_redirect(session, &location, &[cookie]).await?;
        Ok(Handled::Responded)
    }

    /// The redirect URI: checks the login attempt, exchanges the code, starts a new session
    /// and returns the browser to where it was going.
    async fn callback(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        let (Some(sessions), Some(provider)) = (&self.sessions, self.verifier.issuers().first())
        else {
            return self.refuse(session, ctx, Refusal::NoEndpoint).await;
        };
        let req = session.req_header();
        let now = self.verifier.now();
        let state = query_param(req, "state").unwrap_or_default();
        let (attempt, clear_attempt) = match sessions.attempt(&state, request_cookies(req), now) {
            Ok(a) => a,
            Err(e) => return self.refuse(session, ctx, Refusal::LoginFailed(e)).await,
        };
        let Some(code) = query_param(req, "code") else {
            return self
                .refuse(
                    session,
                    ctx,
                    Refusal::LoginFailed(LoginError::ProviderError),
                )
                .await;
        };
        let Some(token_endpoint) = provider.discovery().and_then(|d| d.token_endpoint.clone())
        else {
            return self
                .refuse(session, ctx, Refusal::ProviderUnavailable)
                .await;
        };
        match sessions
            .finish(&self.http, provider, &token_endpoint, &attempt, &code, now)
            .await
        {
            Ok(data) => {
                let mut cookies = sessions.store(&data, now);
                cookies.push(clear_attempt);
                tracing::info!(user = data.identity.user.as_deref().unwrap_or("-"), "login");
                respond::send_redirect(session, &attempt.rd, &cookies).await?;
                Ok(Handled::Responded)
            }
            Err(e) => self.refuse(session, ctx, Refusal::LoginFailed(e)).await,
        }
    }

    /// Ends the session here and, when the provider has an end-session endpoint, there
    /// (RP-initiated logout), then returns to `rd`.
    async fn logout(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        let Some(sessions) = &self.sessions else {
            return self.refuse(session, ctx, Refusal::NoEndpoint).await;
        };
        let req = session.req_header();
        let rd = query_param(req, "rd").unwrap_or_else(|| "/".to_owned());
        let Some(rd) = return_target(&rd).map(str::to_owned) else {
            return self.refuse(session, ctx, Refusal::BadReturnTarget).await;
        };
        let current = sessions.load(request_cookies(req), self.verifier.now());
        let end_session = self
            .verifier
            .issuers()
            .first()
            .and_then(|p| p.discovery())
            .and_then(|d| d.end_session_endpoint.clone());
        let location = match (end_session, current) {
            (Some(mut url), Some((data, _))) => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(hint) = &data.id_token {
                        q.append_pair("id_token_hint", hint);
                    }
                    q.append_pair("client_id", &sessions.client_id);
                    q.append_pair(
                        "post_logout_redirect_uri",
                        &format!("{}{rd}", sessions.public_url),
                    );
                }
                url.to_string()
            }
            _ => rd,
        };
        respond::send_redirect(session, &location, &sessions.clear()).await?;
        Ok(Handled::Responded)
    }

    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        refusal: Refusal,
    ) -> pingora::Result<Handled> {
        ctx.refusal = Some(refusal.reason());
        tracing::debug!(reason = refusal.reason(), description = %refusal.description(), "refused");
        respond::send(session, &refusal).await?;
        Ok(Handled::Responded)
    }
}

/// The first value of a query parameter, percent-decoded.
fn query_param(req: &RequestHeader, name: &str) -> Option<String> {
    let q = req.uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `Host` of a request: the header, or the authority of an absolute-form target.
fn request_host(req: &RequestHeader) -> Option<String> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
}
