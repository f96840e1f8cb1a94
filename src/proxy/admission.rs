//! The one admission path, for proxied requests and forward-auth alike: the route of a
//! (host, normalized path), the credential the request carries (worked out once), the caller
//! it yields — a verified bearer token or a browser session — and the route's rules.

use std::sync::Arc;

use pingora::http::RequestHeader;

use super::respond::Refusal;
use super::{Ctx, Serving};
use crate::auth::error::Unavailable;
use crate::auth::verifier::Verified;
use crate::auth::{self, AuthError, Bearer};
use crate::policy::form_method::Named;
use crate::policy::route::Route;
use crate::policy::rules;
use crate::policy::AuthMode;
use crate::session::browser::is_page_load;
use crate::session::cookies::request_cookies;
use crate::session::Resumed;

/// What a request asks for: the host and normalized path the route is found by, and the
/// method the rules see (forward-auth's `X-Forwarded-Method`).
pub struct Target<'a> {
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub method: &'a str,
}

/// What admission concluded.
#[derive(Debug)]
pub enum Admission {
    /// Let through: with the caller whose identity the backend receives, or `None` on a
    /// `public` route and for an allowed CORS preflight.
    Admitted(Option<Arc<Verified>>),
    /// A browser page load without a session: send it to log in.
    LoginRequired,
    Refused(Refusal),
}

impl Serving {
    /// Decides a request: its route (left in `ctx.route`), its caller, the route's rules.
    /// Cookies that renew or clear a session on the way are left in `ctx.set_cookies`.
    pub(super) async fn admit(
        &self,
        req: &RequestHeader,
        target: Target<'_>,
        ctx: &mut Ctx,
    ) -> Admission {
        let Some(route) = self.config.routes.find(target.host, target.path).cloned() else {
            return Admission::Refused(Refusal::NoRoute);
        };
        ctx.route = Some(route.clone());
        let credential = auth::bearer(req);
        let caller = match (route.auth, credential) {
            (AuthMode::Public, _) => return Admission::Admitted(None),
            (AuthMode::Bearer | AuthMode::Login | AuthMode::Any, Bearer::Absent)
                if route.cors_preflight && is_cors_preflight(req) =>
            {
                return Admission::Admitted(None)
            }
            (AuthMode::Bearer, _) | (AuthMode::Any, Bearer::Token(_) | Bearer::Malformed) => {
                let max = self.config.server.max_token_bytes;
                auth::verify_bearer(&self.verifier, credential, max).await
            }
            (AuthMode::Login | AuthMode::Any, _) => match self.browser_session(req, ctx).await {
                Ok(Some(verified)) => Ok(verified),
                Ok(None) if is_page_load(target.method, req) => return Admission::LoginRequired,
                Ok(None) => Err(AuthError::Missing {
                    bearer_challenge: route.auth == AuthMode::Any,
                }),
                Err(unavailable) => Err(AuthError::Unavailable(unavailable)),
            },
        };
        match caller {
            Ok(verified) => judge(&route, target.method, verified),
            Err(e) => Admission::Refused(e.into()),
        }
    }

    /// The browser session a request carries, taken up (and renewed when due). Cookies that
    /// renew or clear it are left in `ctx` for the answer.
    pub(super) async fn browser_session(
        &self,
        req: &RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<Option<Arc<Verified>>, Unavailable> {
        let Some(sessions) = self.sessions.as_ref() else {
            return Ok(None);
        };
        let provider = self.verifier.issuers().first();
        let now = self.verifier.now();
        match sessions
            .resume(&request_cookies(req), &self.http, provider, now)
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
            Resumed::ProviderUnavailable => Err(Unavailable::Provider),
            Resumed::StoreUnavailable => Err(Unavailable::SessionStore),
        }
    }
}

/// Applies the route's rules to an authenticated caller.
fn judge(route: &Route, method: &str, verified: Arc<Verified>) -> Admission {
    match rules::check(route, method, &verified.identity) {
        Ok(()) => Admission::Admitted(Some(verified)),
        Err(denial) => Admission::Refused(denial.into()),
    }
}

/// Whether a form body's `_method` may name another method: when the route's rules do not
/// depend on the method (no `scopes`), or the caller would be admitted for that method too
/// (upper-cased, as Rails and Laravel read it). A value not read is not admitted.
pub fn admits_override(route: Option<&Route>, caller: Option<&Verified>, named: &Named) -> bool {
    let Some(route) = route else {
        return true;
    };
    if route.scopes.is_none() {
        return true;
    }
    match (named, caller) {
        (Named::Method(Some(method)), Some(caller)) => {
            rules::check(route, &method.to_ascii_uppercase(), &caller.identity).is_ok()
        }
        _ => false,
    }
}

/// Whether the request is a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
fn is_cors_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}
