//! The gateway's own endpoints under `/_portcullis/`: forward-auth, userinfo, and the
//! browser login's start, callback, logout and back-channel logout.

use std::sync::Arc;

use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::admission::{Admission, Target};
use super::respond::{self, Refusal};
use super::{Ctx, Handled, Serving};
use crate::auth::error::Unavailable;
use crate::auth::verifier::Verified;
use crate::auth::{self, Bearer};
use crate::headers;
use crate::policy::path;
use crate::session::browser::is_navigation;
use crate::session::cookies::request_cookies;
use crate::session::login::LoginError;
use crate::session::token_endpoint::Tokens;

use crate::session::revocation::Ended;
use crate::session::target::return_target;

/// The reserved path prefix of the gateway's own endpoints.
pub const RESERVED_PREFIX: &str = "/_portcullis/";

impl Serving {
    /// The gateway's own endpoints under `/_portcullis/`.
    pub(super) async fn endpoint(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Handled> {
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
        let forwarded = match forwarded_request(session.req_header()) {
            Ok(f) => f,
            Err(refusal) => return self.refuse(session, ctx, refusal).await,
        };
        let req = session.req_header();
        let query = req
            .headers
            .get("x-forwarded-uri")
            .and_then(|v| v.to_str().ok())
            .and_then(|u| u.split_once('?'))
            .map(|(_, q)| q);
        let host = forwarded.host.as_deref();
        let reinterpreted =
            self.reinterpreted_as(req, &forwarded.method, host, &forwarded.path, query);
        if let Some(refusal) = reinterpreted {
            return self.refuse(session, ctx, refusal).await;
        }
        let target = Target {
            host: forwarded.host.as_deref(),
            path: &forwarded.path,
            method: &forwarded.method,
        };
        let mut identity = match self.admit(session.req_header(), target, ctx).await {
            Admission::Admitted(None) => Vec::new(),
            Admission::Admitted(Some(v)) => {
                headers::identity_headers(&v.identity, &self.config.headers)
            }
            // Forward-auth decides; it never redirects.
            Admission::LoginRequired => {
                let refusal = Refusal::MissingCredentials {
                    bearer_challenge: false,
                };
                return self.refuse(session, ctx, refusal).await;
            }
            Admission::Refused(r) => return self.refuse(session, ctx, r).await,
        };
        // The client's cookies without the gateway's, for a proxy that cannot drop one
        // cookie itself to put on the backend's request (Traefik: `authResponseHeaders:
        // [Cookie]`); absent when none is left, which such a proxy reads as "no Cookie".
        // A `Cookie` that is not text is not answered.
        let others = headers::others_cookies(session.req_header(), &self.cookies)
            .and_then(|c| String::from_utf8(c).ok());
        identity.extend(others.map(|c| (http::header::COOKIE, c)));
        // A renewed session reaches the browser when the proxy in front passes these on
        // (nginx: `auth_request_set`, Traefik: `addAuthCookiesToResponse`).
        identity.extend(
            ctx.set_cookies
                .drain(..)
                .map(|c| (http::header::SET_COOKIE, c)),
        );
        let route = ctx.route.as_ref().map_or("-", |r| r.name.as_str());
        let body = serde_json::json!({ "route": route });
        respond::send_json(session, 200, &body, &identity).await?;
        Ok(Handled::Responded)
    }

    /// The caller's identity as JSON, or as a page for a browser's page load (the same
    /// fields): the bearer token's, else the browser session's.
    async fn userinfo(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Handled> {
        let req = session.req_header();
        let credential = auth::bearer(req);
        // The session is only opened (decrypted) when no bearer token was sent.
        let found: Result<Arc<Verified>, Refusal> = match credential {
            Bearer::Absent => match self.browser_session(req, ctx).await {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Err(Refusal::MissingCredentials {
                    bearer_challenge: true,
                }),
                Err(u) => Err(Refusal::Unavailable(u)),
            },
            Bearer::Token(_) | Bearer::Malformed => {
                let max = self.config.server.max_token_bytes;
                auth::verify_bearer(&self.verifier, credential, max)
                    .await
                    .map_err(Refusal::from)
            }
        };
        match found {
            Ok(v) => {
                let cookies: Vec<_> = ctx
                    .set_cookies
                    .drain(..)
                    .map(|c| (http::header::SET_COOKIE, c))
                    .collect();
                if is_navigation(session.req_header()) {
                    let page = crate::html::userinfo(&v.identity);
                    respond::send_html(session, 200, page, &cookies).await?;
                } else {
                    let who = serde_json::to_value(&v.identity).unwrap_or_default();
                    respond::send_json(session, 200, &who, &cookies).await?;
                }
                Ok(Handled::Responded)
            }
            Err(r) => self.refuse(session, ctx, r).await,
        }
    }

    /// Sends the browser to the provider to log in, then back to `target`.
    pub(super) async fn start_login(
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
                .refuse(session, ctx, Refusal::Unavailable(Unavailable::Provider))
                .await;
        };
        let (location, attempt_cookies) =
            match sessions.start(&auth_endpoint, target, self.verifier.now()) {
                Ok(started) => started,
                Err(e) => return self.refuse(session, ctx, e.into()).await,
            };
        ctx.refusal = Some("login_required");
        let mut cookies = std::mem::take(&mut ctx.set_cookies);
        cookies.extend(attempt_cookies);
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
        let owned = owned_cookies(session.req_header());
        let request_cookies = pairs(&owned);
        let now = self.verifier.now();
        let state = param("state").unwrap_or_default();
        let (attempt, clear_attempt) = match sessions.attempt(&state, &request_cookies, now) {
            Ok(a) => a,
            Err(e) => return self.refuse(session, ctx, e.into()).await,
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
                    .refuse(session, ctx, Refusal::Unavailable(Unavailable::Provider))
                    .await;
            };
            sessions
                .finish(&self.http, provider, &token_endpoint, &attempt, &code, now)
                .await
        };
        match finished {
            Ok(data) => {
                let Ok(mut cookies) = sessions.save(&data, now, &request_cookies).await else {
                    let refusal = Refusal::Unavailable(Unavailable::SessionStore);
                    return self.refuse(session, ctx, refusal).await;
                };
                cookies.extend(clear_attempt);
                tracing::info!(user = data.identity.user.as_deref().unwrap_or("-"), "login");
                respond::send_redirect(session, &attempt.rd, &cookies).await?;
                Ok(Handled::Responded)
            }
            Err(e) => self.refuse(session, ctx, e.into()).await,
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
            .revocations()
            .verify_logout_token(&token, provider, sessions.client_id(), now)
            .await
        {
            Ok(ended) => {
                if sessions.end_everywhere(&ended, now).await.is_err() {
                    // The provider retries a logout that was not acknowledged.
                    let refusal = Refusal::Unavailable(Unavailable::SessionStore);
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
        // A session the store could not end is not reported ended: the answer is a 503 and
        // the cookie stays, so that the logout can be tried again (while the store cannot
        // be reached, the session opens nowhere either). A 302 here would leave the session
        // usable, with `store = "redis"`, to whoever else holds the cookie.
        let owned = owned_cookies(req);
        let request_cookies = pairs(&owned);
        let ended = match sessions.open(&request_cookies, now).await {
            Ok(Some(opened)) => sessions
                .discard(&opened.data, now, &request_cookies)
                .await
                .map(|clear| (Some((opened.data, opened.caller)), clear)),
            Ok(None) => Ok((None, sessions.clear(&request_cookies))),
            Err(e) => Err(e),
        };
        let (current, clear) = match ended {
            Ok(ended) => ended,
            Err(_) => {
                let refusal = Refusal::Unavailable(Unavailable::SessionStore);
                return self.refuse(session, ctx, refusal).await;
            }
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
                    q.append_pair("client_id", sessions.client_id());
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

    pub(super) async fn refuse(
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

/// The request a forward-auth subrequest describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// `X-Forwarded-Host`, else the subrequest's own `Host`.
    pub host: Option<String>,
    /// The path of `X-Forwarded-Uri` (before `?` and `#`), normalized.
    pub path: String,
    /// `X-Forwarded-Method`, exactly as sent.
    pub method: String,
}

/// Reads what a forward-auth subrequest asks about from `X-Forwarded-Method`, `-Host` and
/// `-Uri`. Without the method or the URI the decision would be for `/` and for the
/// subrequest's own method (always GET behind nginx): a DELETE would pass as a GET, so
/// either missing is a 400, and so is a path that does not normalize.
pub fn forwarded_request(req: &RequestHeader) -> Result<Forwarded, Refusal> {
    // A proxy in front that added its value to the client's instead of replacing it leaves
    // two: which one it acts on cannot be told, so neither is decided on.
    let header = |n: &str, shown: &'static str| {
        let mut values = req.headers.get_all(n).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => Ok(v.to_str().ok()),
            (Some(_), Some(_)) => Err(Refusal::AmbiguousForwardedHeader(shown)),
        }
    };
    let host = match header("x-forwarded-host", "X-Forwarded-Host")? {
        Some(h) if h.contains(',') => {
            return Err(Refusal::AmbiguousForwardedHeader("X-Forwarded-Host"))
        }
        Some(h) => Some(h.to_owned()),
        None => request_host(req),
    };
    let uri = header("x-forwarded-uri", "X-Forwarded-Uri")?
        .ok_or(Refusal::MissingForwardedHeader("X-Forwarded-Uri"))?;
    let method = header("x-forwarded-method", "X-Forwarded-Method")?
        .ok_or(Refusal::MissingForwardedHeader("X-Forwarded-Method"))?;
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(Refusal::AmbiguousForwardedHeader("X-Forwarded-Method"));
    }
    // The fragment too: pingora drops it from a request line and backends ignore it, so
    // `/admin#x` is served as `/admin` and must be decided as `/admin`.
    let raw_path = uri.split(['?', '#']).next().unwrap_or("/");
    let path = path::normalize(raw_path).map_err(Refusal::BadPath)?;
    Ok(Forwarded {
        host,
        path,
        method: method.to_owned(),
    })
}

/// Whether `b` may be in an HTTP token, such as a method (RFC 9110 §5.6.2).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
pub(super) fn request_host(req: &RequestHeader) -> Option<String> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
}

/// The request's cookies, owned: for endpoints that answer (borrowing the session mutably)
/// after reading them.
fn owned_cookies(req: &RequestHeader) -> Vec<(String, String)> {
    request_cookies(req)
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn pairs(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}
