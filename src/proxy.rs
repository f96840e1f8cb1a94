//! The gateway as a pingora proxy: each phase a few lines that call named functions.

pub mod respond;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};

use crate::auth::verifier::{Verified, Verifier};
use crate::auth::{self, Outcome};
use crate::config::{AuthMode, Config};
use crate::headers::{self, OwnCookies, Peer};
use crate::policy::path;
use crate::policy::route::Route;
use crate::session::login::{request_cookies, LoginError, Sessions, Tokens};
use crate::session::refresh::Resumed;
use crate::session::revocation::Ended;
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
    pub fn new(
        config: Arc<Config>,
        verifier: Arc<Verifier>,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let sessions = match (&config.session, &config.provider) {
            (Some(s), Some(p)) => Some(
                Sessions::new(
                    s.clone(),
                    p,
                    &config.server.public_url,
                    config.claims.clone(),
                    config.headers.access_token.is_some(),
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
        Ok(Gateway {
            config,
            verifier,
            sessions,
            http,
            cookies,
            scheme,
        })
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
    /// `Set-Cookie` values for the answer: a session renewed or ended on the way.
    set_cookies: Vec<String>,
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
            set_cookies: Vec::new(),
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

    /// Hands the browser a renewed session along with the backend's answer.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
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
        let browser = match self.route_session(&route, session.req_header(), ctx).await {
            Ok(b) => b,
            Err(r) => return self.refuse(session, ctx, r).await,
        };
        let req = session.req_header();
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
            "/_portcullis/backchannel-logout" if self.sessions.is_some() => {
                self.backchannel_logout(session, ctx).await
            }
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
        let browser = match self.route_session(&route, session.req_header(), ctx).await {
            Ok(b) => b,
            Err(r) => return self.refuse(session, ctx, r).await,
        };
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
        let mut identity = match outcome {
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
        // A renewed session reaches the browser when the proxy in front passes these on
        // (nginx: `auth_request_set`, Traefik: `authResponseHeaders`).
        identity.extend(
            ctx.set_cookies
                .drain(..)
                .map(|c| (http::header::SET_COOKIE, c)),
        );
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
            auth::Bearer::Absent => match self.browser_session(req, ctx).await {
                Ok(v) => v,
                Err(r) => return self.refuse(session, ctx, r).await,
            },
            auth::Bearer::Token(_) | auth::Bearer::Malformed => None,
        };
        let req = session.req_header();
        let found = match session_caller {
            Some(v) => Ok(v),
            None => {
                auth::verify_bearer(&self.verifier, req, self.config.server.max_token_bytes).await
            }
        };
        match found {
            Ok(v) => {
                let who = serde_json::to_value(&v.identity).unwrap_or_default();
                let cookies: Vec<_> = ctx
                    .set_cookies
                    .drain(..)
                    .map(|c| (http::header::SET_COOKIE, c))
                    .collect();
                respond::send_json(session, 200, &who, &cookies).await?;
                Ok(Handled::Responded)
            }
            Err(r) => self.refuse(session, ctx, r).await,
        }
    }

    /// The session of a request on `route`: opened only where it counts, so `public` and
    /// `bearer` routes (and `any` with a bearer token) never pay for decrypting a cookie.
    async fn route_session(
        &self,
        route: &Route,
        req: &RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<Option<Arc<Verified>>, Refusal> {
        match route.auth {
            AuthMode::Any if auth::bearer(req) != auth::Bearer::Absent => Ok(None),
            AuthMode::Login | AuthMode::Any => self.browser_session(req, ctx).await,
            AuthMode::Public | AuthMode::Bearer => Ok(None),
        }
    }

    /// The browser session a request carries, taken up (and renewed when due). Cookies that
    /// renew or clear it are left in `ctx` for the answer.
    async fn browser_session(
        &self,
        req: &RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<Option<Arc<Verified>>, Refusal> {
        let Some(sessions) = self.sessions.as_ref() else {
            return Ok(None);
        };
        let provider = self.verifier.issuers().first();
        let now = self.verifier.now();
        match sessions
            .resume(request_cookies(req), &self.http, provider, now)
            .await
        {
            Resumed::None => Ok(None),
            Resumed::Valid {
                verified,
                set_cookies,
            } => {
                ctx.set_cookies = set_cookies;
                Ok(Some(verified))
            }
            Resumed::Ended { clear } => {
                ctx.set_cookies = clear;
                Ok(None)
            }
            Resumed::ProviderUnavailable => Err(Refusal::ProviderUnavailable),
            Resumed::StoreUnavailable => Err(Refusal::SessionStoreUnavailable),
        }
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
        let mut cookies = std::mem::take(&mut ctx.set_cookies);
        cookies.push(cookie);
        respond::send_redirect(session, &location, &cookies).await?;
        Ok(Handled::Responded)
    }

    /// The redirect URI: checks the login attempt, completes it (the code exchanged, or the
    /// implicit flow's `form_post` checked), starts a new session and returns the browser to
    /// where it was going.
    async fn callback(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        let (Some(sessions), Some(provider)) = (&self.sessions, self.verifier.issuers().first())
        else {
            return self.refuse(session, ctx, Refusal::NoEndpoint).await;
        };
        let params = match session.req_header().method {
            http::Method::GET => query_pairs(session.req_header()),
            http::Method::POST => match read_body(session, MAX_FORM_BYTES).await? {
                Some(body) => form_pairs(&body),
                None => return self.refuse(session, ctx, Refusal::BodyTooLarge).await,
            },
            _ => {
                let refusal = Refusal::MethodNotAllowed("GET, POST");
                return self.refuse(session, ctx, refusal).await;
            }
        };
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let req = session.req_header();
        let now = self.verifier.now();
        let state = param("state").unwrap_or_default();
        let (attempt, clear_attempt) = match sessions.attempt(&state, request_cookies(req), now) {
            Ok(a) => a,
            Err(e) => return self.refuse(session, ctx, Refusal::LoginFailed(e)).await,
        };
        if let Some(error) = param("error") {
            // The provider's error code (access_denied, login_required …); logged as a code only.
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::warn!(error = %code, "the provider answered the login with an error");
            let refusal = Refusal::LoginFailed(LoginError::ProviderError);
            return self.refuse(session, ctx, refusal).await;
        }
        let finished = if attempt.implicit {
            let tokens = Tokens {
                id_token: param("id_token"),
                access_token: param("access_token"),
                refresh_token: None,
                expires_in: param("expires_in").and_then(|e| e.parse().ok()),
            };
            sessions
                .finish_implicit(provider, &attempt, tokens, now)
                .await
        } else {
            let Some(code) = param("code") else {
                let refusal = Refusal::LoginFailed(LoginError::ProviderError);
                return self.refuse(session, ctx, refusal).await;
            };
            let Some(token_endpoint) = provider.discovery().and_then(|d| d.token_endpoint.clone())
            else {
                return self
                    .refuse(session, ctx, Refusal::ProviderUnavailable)
                    .await;
            };
            sessions
                .finish(&self.http, provider, &token_endpoint, &attempt, &code, now)
                .await
        };
        match finished {
            Ok(data) => {
                let Ok(mut cookies) = sessions.save(&data, now).await else {
                    let refusal = Refusal::SessionStoreUnavailable;
                    return self.refuse(session, ctx, refusal).await;
                };
                cookies.push(clear_attempt);
                tracing::info!(user = data.identity.user.as_deref().unwrap_or("-"), "login");
                respond::send_redirect(session, &attempt.rd, &cookies).await?;
                Ok(Handled::Responded)
            }
            Err(e) => self.refuse(session, ctx, Refusal::LoginFailed(e)).await,
        }
    }

    /// OpenID Connect Back-Channel Logout: the provider posts a logout token; a verified one
    /// ends every session of its `sid` (or `sub`) on this instance.
    async fn backchannel_logout(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Handled> {
        let (Some(sessions), Some(provider)) = (&self.sessions, self.verifier.issuers().first())
        else {
            return self.refuse(session, ctx, Refusal::NoEndpoint).await;
        };
        if session.req_header().method != http::Method::POST {
            return self
                .refuse(session, ctx, Refusal::MethodNotAllowed("POST"))
                .await;
        }
        let Some(body) = read_body(session, MAX_FORM_BYTES).await? else {
            return self.refuse(session, ctx, Refusal::BodyTooLarge).await;
        };
        let token = form_pairs(&body)
            .into_iter()
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let now = self.verifier.now();
        match sessions
            .revocations
            .verify_logout_token(&token, provider, &sessions.client_id, now)
            .await
        {
            Ok(ended) => {
                if sessions.end_everywhere(&ended, now).await.is_err() {
                    // The provider retries a logout that was not acknowledged.
                    let refusal = Refusal::SessionStoreUnavailable;
                    return self.refuse(session, ctx, refusal).await;
                }
                let by = match ended {
                    Ended::Sid(_) => "sid",
                    Ended::Sub(_) => "sub",
                };
                tracing::info!(by, "back-channel logout: sessions ended");
                respond::send_json(session, 200, &serde_json::json!({}), &[]).await?;
                Ok(Handled::Responded)
            }
            Err(e) => {
                tracing::warn!(reason = %e, "back-channel logout refused");
                self.refuse(session, ctx, Refusal::BadLogoutToken(e)).await
            }
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
        let now = self.verifier.now();
        // A store that cannot be reached does not keep anyone logged in: the cookie is
        // cleared whatever happens.
        let current = sessions
            .open(request_cookies(req), now)
            .await
            .ok()
            .flatten();
        let clear = match &current {
            Some((data, _)) => sessions.discard(data, now).await,
            None => sessions.clear(),
        };
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
        respond::send_redirect(session, &location, &clear).await?;
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
        respond::send_with_cookies(session, &refusal, &ctx.set_cookies).await?;
        Ok(Handled::Responded)
    }
}

/// The most a form posted to the gateway (`form_post` callback, logout token) may carry.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The first value of a query parameter, percent-decoded.
fn query_param(req: &RequestHeader, name: &str) -> Option<String> {
    let q = req.uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Every query parameter, percent-decoded.
fn query_pairs(req: &RequestHeader) -> Vec<(String, String)> {
    form_pairs(req.uri.query().unwrap_or_default().as_bytes())
}

/// The fields of an `application/x-www-form-urlencoded` body.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The request body, or `None` when it is longer than `limit` bytes.
async fn read_body(session: &mut Session, limit: usize) -> pingora::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The `Host` of a request: the header, or the authority of an absolute-form target.
fn request_host(req: &RequestHeader) -> Option<String> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
}
