//! The one place that turns a refusal into a response.
//!
//! Bodies are JSON `{"error", "error_description"}` unless the client asked for HTML. No
//! refusal carries a token, a secret or an internal error text.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::auth::error::{TokenError, Unavailable};
use crate::auth::AuthError;
use crate::policy::path::PathError;
use crate::policy::rules::Denial;
use crate::session::login::LoginError;
use crate::session::revocation::LogoutTokenError;

/// Why the gateway answered instead of the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path is malformed or tries to escape the root.
    BadPath(PathError),
    /// No route matches the host and path.
    NoRoute,
    /// A reserved `/_portcullis/` path that does not exist (or not in this configuration).
    NoEndpoint,
    /// No credentials; `bearer_challenge` adds `WWW-Authenticate: Bearer realm="portcullis"`.
    MissingCredentials { bearer_challenge: bool },
    /// A bearer token that is not accepted.
    InvalidToken(TokenError),
    /// A bearer token longer than `max_token_bytes`.
    TokenTooLarge,
    /// A request head (target and headers) larger than `max_header_bytes`.
    HeadersTooLarge,
    /// A rule in `allow` is not met (names the kind of rule).
    Forbidden(&'static str),
    /// The scopes the method needs, or `None` when no `scopes` key covers the method.
    InsufficientScope(Option<Vec<String>>),
    /// Something the decision needs is out of reach: the one 503, with its reason.
    Unavailable(Unavailable),
    /// No upstream of the route could be reached.
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The client paused its request body for longer than `server.body_timeout`.
    ClientTimeout,
    /// The proxy failed in another way; pingora's status code (500 for its own errors).
    ProxyFailed(u16),
    /// A login callback that produced no session.
    LoginFailed(LoginError),
    /// A return target (`rd`) that is not a same-origin relative path.
    BadReturnTarget,
    /// A back-channel logout whose logout token is refused.
    BadLogoutToken(LogoutTokenError),
    /// A request body larger than the endpoint takes.
    BodyTooLarge,
    /// An endpoint that takes another method.
    MethodNotAllowed(&'static str),
    /// A forward-auth request without the header that names what it decides.
    MissingForwardedHeader(&'static str),
    /// A header or parameter that makes backends act on another method or path than the
    /// one checked (`X-HTTP-Method-Override`, `_method`, `X-Original-URL` …); names it.
    Override(&'static str),
    /// A `;` parameter that would put the path under another route as servlet containers
    /// read it (`/admin;x/page` is `/admin/page` to Tomcat).
    ParametersChangeRoute,
    /// A `Host` (or forward-auth's `X-Forwarded-Host`) that is not one host (a list,
    /// userinfo, a bad port …).
    BadHost,
    /// A forward-auth header sent more than once, or holding a list: which value the proxy
    /// in front acted on cannot be told.
    AmbiguousForwardedHeader(&'static str),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Refusal {
        match e {
            AuthError::Missing { bearer_challenge } => {
                Refusal::MissingCredentials { bearer_challenge }
            }
            AuthError::InvalidToken(t) => Refusal::InvalidToken(t),
            AuthError::TokenTooLarge => Refusal::TokenTooLarge,
            AuthError::Unavailable(u) => Refusal::Unavailable(u),
        }
    }
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Refusal {
        match d {
            Denial::NotAllowed(kind) => Refusal::Forbidden(kind),
            Denial::InsufficientScope(needed) => Refusal::InsufficientScope(needed),
        }
    }
}

impl From<LoginError> for Refusal {
    fn from(e: LoginError) -> Refusal {
        match e {
            LoginError::ProviderUnreachable => {
                Refusal::Unavailable(Unavailable::ProviderAtCallback)
            }
            LoginError::UnknownState
            | LoginError::ProviderError
            | LoginError::BadIdToken
            | LoginError::WrongFlow
            | LoginError::TargetTooLong => Refusal::LoginFailed(e),
        }
    }
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadPath(_)
            | Refusal::TokenTooLarge
            | Refusal::BadReturnTarget
            | Refusal::BadLogoutToken(_)
            | Refusal::MissingForwardedHeader(_)
            | Refusal::Override(_)
            | Refusal::ParametersChangeRoute
            | Refusal::BadHost
            | Refusal::AmbiguousForwardedHeader(_) => 400,
            Refusal::LoginFailed(
                LoginError::UnknownState
                | LoginError::ProviderError
                | LoginError::BadIdToken
                | LoginError::WrongFlow,
            ) => 400,
            Refusal::LoginFailed(LoginError::TargetTooLong) => 414,
            Refusal::MethodNotAllowed(_) => 405,
            Refusal::HeadersTooLarge => 431,
            Refusal::BodyTooLarge => 413,
            Refusal::MissingCredentials { .. } | Refusal::InvalidToken(_) => 401,
            Refusal::Forbidden(_) | Refusal::InsufficientScope(_) => 403,
            Refusal::NoRoute | Refusal::NoEndpoint => 404,
            Refusal::UpstreamUnreachable => 502,
            Refusal::UpstreamTimeout => 504,
            Refusal::ClientTimeout => 408,
            Refusal::ProxyFailed(code) => *code,
            Refusal::LoginFailed(LoginError::ProviderUnreachable) | Refusal::Unavailable(_) => 503,
        }
    }

    /// The short reason: the `error` field, and the label of logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadPath(_)
            | Refusal::TokenTooLarge
            | Refusal::BadReturnTarget
            | Refusal::BadLogoutToken(_)
            | Refusal::BodyTooLarge
            | Refusal::HeadersTooLarge
            | Refusal::MethodNotAllowed(_)
            | Refusal::MissingForwardedHeader(_)
            | Refusal::Override(_)
            | Refusal::ParametersChangeRoute
            | Refusal::BadHost
            | Refusal::AmbiguousForwardedHeader(_) => "invalid_request",
            Refusal::LoginFailed(
                LoginError::UnknownState
                | LoginError::ProviderError
                | LoginError::BadIdToken
                | LoginError::WrongFlow,
            ) => "login_failed",
            Refusal::LoginFailed(LoginError::TargetTooLong) => "invalid_request",
            Refusal::LoginFailed(LoginError::ProviderUnreachable) | Refusal::Unavailable(_) => {
                "temporarily_unavailable"
            }
            Refusal::NoRoute | Refusal::NoEndpoint => "not_found",
            Refusal::MissingCredentials { .. } => "unauthorized",
            Refusal::InvalidToken(_) => "invalid_token",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::InsufficientScope(_) => "insufficient_scope",
            Refusal::UpstreamUnreachable => "bad_gateway",
            Refusal::UpstreamTimeout => "gateway_timeout",
            Refusal::ClientTimeout => "request_timeout",
            Refusal::ProxyFailed(_) => "server_error",
        }
    }

    pub fn description(&self) -> String {
        match self {
            Refusal::BadPath(e) => e.to_string(),
            Refusal::NoRoute => "no route matches this host and path".to_owned(),
            Refusal::NoEndpoint => "no such gateway endpoint".to_owned(),
            Refusal::MissingCredentials { .. } => "authentication is required".to_owned(),
            Refusal::InvalidToken(e) => e.to_string(),
            Refusal::TokenTooLarge => "the bearer token is too large".to_owned(),
            Refusal::HeadersTooLarge => {
                "the request's headers are larger than the gateway takes (server.max_header_bytes)"
                    .to_owned()
            }
            Refusal::Forbidden(kind) => format!("the route's `allow` {kind} rule is not met"),
            Refusal::InsufficientScope(Some(needed)) => {
                format!("this method needs the scopes: {}", needed.join(" "))
            }
            Refusal::InsufficientScope(None) => {
                "no scope grants this method on this route".to_owned()
            }
            Refusal::Unavailable(u) => u.to_string(),
            Refusal::UpstreamUnreachable => "the backend could not be reached".to_owned(),
            Refusal::UpstreamTimeout => "the backend did not answer in time".to_owned(),
            Refusal::ClientTimeout => {
                "the request body stopped arriving (server.body_timeout)".to_owned()
            }
            Refusal::ProxyFailed(_) => "the gateway could not complete this request".to_owned(),
            Refusal::LoginFailed(e) => e.to_string(),
            Refusal::BadReturnTarget => "the return target must be a path on this site".to_owned(),
            Refusal::BadLogoutToken(e) => e.to_string(),
            Refusal::BodyTooLarge => "the request body is too large for this endpoint".to_owned(),
            Refusal::MethodNotAllowed(allowed) => format!("this endpoint takes {allowed} only"),
            Refusal::MissingForwardedHeader(name) => format!(
                "forward-auth needs {name}: the proxy in front must set X-Forwarded-Method, -Host and -Uri"
            ),
            Refusal::Override(name) => format!(
                "`{name}` would make the backend act on another method or path than the one checked: send that method or path itself"
            ),
            Refusal::BadHost => "the Host must be one host name or address, with an optional port".to_owned(),
            Refusal::AmbiguousForwardedHeader(name) => format!(
                "forward-auth needs exactly one {name}, holding one value: the proxy in front must replace what the client sent, not add to it"
            ),
            Refusal::ParametersChangeRoute => {
                "a `;` parameter in the path would put it under another route (as Tomcat, Jetty and Spring read it)".to_owned()
            }
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), if any.
    fn www_authenticate(&self) -> Option<String> {
        const REALM: &str = "Bearer realm=\"portcullis\"";
        match self {
            Refusal::MissingCredentials {
                bearer_challenge: true,
            } => Some(REALM.to_owned()),
            Refusal::InvalidToken(e) => Some(format!(
                "{REALM}, error=\"invalid_token\", error_description=\"{e}\""
            )),
            Refusal::InsufficientScope(Some(needed)) => Some(format!(
                "{REALM}, error=\"insufficient_scope\", scope=\"{}\"",
                needed.join(" ")
            )),
            Refusal::InsufficientScope(None) => {
                Some(format!("{REALM}, error=\"insufficient_scope\""))
            }
            Refusal::MissingCredentials {
                bearer_challenge: false,
            }
            | Refusal::BadPath(_)
            | Refusal::TokenTooLarge
            | Refusal::HeadersTooLarge
            | Refusal::Forbidden(_)
            | Refusal::NoRoute
            | Refusal::NoEndpoint
            | Refusal::Unavailable(_)
            | Refusal::UpstreamUnreachable
            | Refusal::UpstreamTimeout
            | Refusal::ClientTimeout
            | Refusal::ProxyFailed(_)
            | Refusal::LoginFailed(_)
            | Refusal::BadReturnTarget
            | Refusal::BadLogoutToken(_)
            | Refusal::BodyTooLarge
            | Refusal::MethodNotAllowed(_)
            | Refusal::MissingForwardedHeader(_)
            | Refusal::Override(_)
            | Refusal::ParametersChangeRoute
            | Refusal::BadHost
            | Refusal::AmbiguousForwardedHeader(_) => None,
        }
    }
}

/// Whether the client prefers an HTML page to JSON, by its `Accept` alone.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("text/html"))
}

/// Whether a refusal is answered as an HTML page (SPEC §5): only a browser navigation that
/// asks for HTML gets one; an XHR or fetch gets JSON whatever its `Accept` says.
pub fn answers_html(req: &pingora::http::RequestHeader) -> bool {
    let accept = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    wants_html(accept) && crate::session::browser::is_navigation(req)
}

/// The response head and body for a refusal.
pub fn render(refusal: &Refusal, html: bool) -> (ResponseHeader, Bytes) {
    let status = refusal.status();
    let body = if html {
        let title = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Bytes::from(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
             <body><h1>{status} {title}</h1><p>{}</p></body></html>\n",
            html_escape(&refusal.description())
        ))
    } else {
        let v = serde_json::json!({ "error": refusal.reason(), "error_description": refusal.description() });
        Bytes::from(format!("{v}\n"))
    };
    let mut head = ResponseHeader::build(status, Some(5)).expect("a valid status");
    let content_type = if html {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    let _ = head.insert_header(http::header::CONTENT_TYPE, content_type);
    let _ = head.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    let _ = head.insert_header(http::header::CACHE_CONTROL, "no-store");
    if let Some(challenge) = refusal.www_authenticate() {
        let _ = head.insert_header(http::header::WWW_AUTHENTICATE, challenge);
    }
    (head, body)
}

/// Writes the refusal to the client.
pub async fn send(session: &mut Session, refusal: &Refusal) -> pingora::Result<()> {
    send_with_cookies(session, refusal, &[]).await
}

/// Writes the refusal, setting `cookies` (`Set-Cookie` values: a session that ended).
pub async fn send_with_cookies(
    session: &mut Session,
    refusal: &Refusal,
    cookies: &[String],
) -> pingora::Result<()> {
    let html = answers_html(session.req_header());
    let (mut head, body) = render(refusal, html);
    if let Refusal::MethodNotAllowed(allowed) = refusal {
        let _ = head.insert_header(http::header::ALLOW, *allowed);
    }
    for c in cookies {
        let _ = head.append_header(http::header::SET_COOKIE, c.as_str());
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(head), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Redirects with `302 Found`, setting `cookies` (`Set-Cookie` values).
pub async fn send_redirect(
    session: &mut Session,
    location: &str,
    cookies: &[String],
) -> pingora::Result<()> {
    let mut head = ResponseHeader::build(302, Some(4 + cookies.len())).expect("a valid status");
    let _ = head.insert_header(http::header::LOCATION, location);
    let _ = head.insert_header(http::header::CACHE_CONTROL, "no-store");
    let _ = head.insert_header(http::header::CONTENT_LENGTH, "0");
    for c in cookies {
        let _ = head.append_header(http::header::SET_COOKIE, c.as_str());
    }
    session.write_response_header(Box::new(head), true).await
}

/// Writes a small HTML page of the gateway's own (not a refusal), for a browser's page
/// load; `html` is escaped by its writer (`crate::html`).
pub async fn send_html(
    session: &mut Session,
    status: u16,
    html: String,
    extra: &[(http::HeaderName, String)],
) -> pingora::Result<()> {
    let body = Bytes::from(html);
    let mut head = ResponseHeader::build(status, Some(4 + extra.len())).expect("a valid status");
    let _ = head.insert_header(http::header::CONTENT_TYPE, "text/html; charset=utf-8");
    let _ = head.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    let _ = head.insert_header(http::header::CACHE_CONTROL, "no-store");
    for (k, v) in extra {
        let _ = head.append_header(k.clone(), v.as_str());
    }
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(body), true).await
}

/// Writes a small JSON answer of the gateway's own (not a refusal).
pub async fn send_json(
    session: &mut Session,
    status: u16,
    value: &serde_json::Value,
    extra: &[(http::HeaderName, String)],
) -> pingora::Result<()> {
    let body = Bytes::from(format!("{value}\n"));
    let mut head = ResponseHeader::build(status, Some(4 + extra.len())).expect("a valid status");
    let _ = head.insert_header(http::header::CONTENT_TYPE, "application/json");
    let _ = head.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    let _ = head.insert_header(http::header::CACHE_CONTROL, "no-store");
    for (k, v) in extra {
        let _ = head.append_header(k.clone(), v.as_str());
    }
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(body), true).await
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_carry_error_and_description() {
        let (head, body) = render(&Refusal::NoRoute, false);
        assert_eq!(head.status, 404);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "not_found");
        assert!(v["error_description"].is_string());
        assert_eq!(head.headers["content-length"], body.len().to_string());
    }

    #[test]
    fn bearer_routes_challenge_with_the_realm() {
        let (head, _) = render(
            &Refusal::MissingCredentials {
                bearer_challenge: true,
            },
            false,
        );
        assert_eq!(head.status, 401);
        assert_eq!(
            head.headers["www-authenticate"],
            "Bearer realm=\"portcullis\""
        );
        let (head, _) = render(
            &Refusal::MissingCredentials {
                bearer_challenge: false,
            },
            false,
        );
        assert!(head.headers.get("www-authenticate").is_none());
    }

    #[test]
    fn html_is_served_to_browsers_that_ask_for_it() {
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(None));
        let (head, body) = render(&Refusal::BadPath(PathError::AboveRoot), true);
        assert_eq!(head.headers["content-type"], "text/html; charset=utf-8");
        assert!(std::str::from_utf8(&body).unwrap().contains("400"));
    }

    #[test]
    fn token_refusals_carry_rfc6750_errors() {
        let (head, _) = render(
            &Refusal::InsufficientScope(Some(vec!["a".into(), "b".into()])),
            false,
        );
        assert_eq!(head.status, 403);
        assert_eq!(
            head.headers["www-authenticate"],
            "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"a b\""
        );
        let (head, body) = render(&Refusal::InvalidToken(TokenError::Expired), false);
        assert_eq!(head.status, 401);
        assert_eq!(
            head.headers["www-authenticate"],
            "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "invalid_token");
        assert_eq!(render(&Refusal::TokenTooLarge, false).0.status, 400);
        assert_eq!(render(&Refusal::Forbidden("clients"), false).0.status, 403);
    }
}
