//! The HTTP side of the development provider: reading parameters and credentials, and
//! writing answers, every refusal among them in one place.

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Response;
use serde_json::{json, Value};

use crate::demo::realm::REALM;

/// The largest form body read.
const MAX_BODY: usize = 64 * 1024;

/// Why the provider refuses a request: RFC 6749 §5.2 error codes (and the statuses
/// Keycloak answers with), mapped to a response in [`Refusal::response`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    #[error("grant_type must be authorization_code, refresh_token or client_credentials")]
    UnsupportedGrantType,
    #[error("response_type must be `code` or `id_token token`")]
    UnsupportedResponseType,
    #[error("{0}")]
    InvalidScope(String),
    #[error("the access token is not valid")]
    InvalidToken,
    #[error("no such endpoint")]
    NotFound,
    #[error("the request body is larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("the provider failed to sign a token")]
    ServerError,
}

impl Refusal {
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        use StatusCode as S;
        let basic = || Some(format!("Basic realm=\"{REALM}\""));
        let (status, code, challenge) = match &self {
            Refusal::InvalidRequest(_) => (S::BAD_REQUEST, "invalid_request", None),
            Refusal::InvalidClient => (S::UNAUTHORIZED, "invalid_client", basic()),
            Refusal::InvalidGrant(_) => (S::BAD_REQUEST, "invalid_grant", None),
            Refusal::UnauthorizedClient(_) => (S::BAD_REQUEST, "unauthorized_client", None),
            Refusal::UnsupportedGrantType => (S::BAD_REQUEST, "unsupported_grant_type", None),
            Refusal::UnsupportedResponseType => (S::BAD_REQUEST, "unsupported_response_type", None),
            Refusal::InvalidScope(_) => (S::BAD_REQUEST, "invalid_scope", None),
            Refusal::InvalidToken => (
                S::UNAUTHORIZED,
                "invalid_token",
                Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\"")),
            ),
            Refusal::NotFound => (S::NOT_FOUND, "not_found", None),
            Refusal::BodyTooLarge => (S::PAYLOAD_TOO_LARGE, "invalid_request", None),
            Refusal::ServerError => (S::INTERNAL_SERVER_ERROR, "server_error", None),
        };
        let body = json!({ "error": code, "error_description": self.to_string() });
        let mut builder = Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json");
        if let Some(c) = challenge {
            builder = builder.header(WWW_AUTHENTICATE, c);
        }
        finish(builder, body.to_string())
    }
}

pub(super) type Params = HashMap<String, String>;

/// Form or query parameters; a repeated parameter is refused (RFC 6749 §3.1).
pub(super) fn params(raw: &[u8]) -> Result<Params, Refusal> {
    let mut out = Params::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(Refusal::InvalidRequest(format!("`{k}` is repeated")));
        }
    }
    Ok(out)
}

pub(super) async fn form(body: Incoming) -> Result<Params, Refusal> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| Refusal::BodyTooLarge)?
        .to_bytes();
    params(&bytes)
}

pub(super) fn get<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    p.get(key).map(String::as_str)
}

/// Adds `Cache-Control: no-store` and the body; a response that cannot be built becomes
/// a plain 500 rather than a panic.
pub(super) fn finish(
    builder: http::response::Builder,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    builder
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"{\"error\":\"server_error\"}",
            )));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

pub(super) fn json_ok(value: &Value) -> Response<Full<Bytes>> {
    finish(
        Response::builder().header(CONTENT_TYPE, "application/json"),
        value.to_string(),
    )
}

pub(super) fn html(page: String) -> Response<Full<Bytes>> {
    finish(
        Response::builder().header(CONTENT_TYPE, "text/html; charset=utf-8"),
        page,
    )
}

pub(super) fn redirect(location: &str) -> Response<Full<Bytes>> {
    finish(
        Response::builder()
            .status(StatusCode::FOUND)
            .header(LOCATION, location),
        "",
    )
}

/// `response` with one more `Set-Cookie`.
pub(super) fn with_cookie(
    mut response: Response<Full<Bytes>>,
    cookie: &str,
) -> Response<Full<Bytes>> {
    if let Ok(v) = http::HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
}

/// `client_id` and secret from `Authorization: Basic`, if the request has one.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), Refusal>> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(
        decoded
            .as_deref()
            .and_then(|s| s.split_once(':'))
            .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
            .ok_or(Refusal::InvalidClient),
    )
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(params(b"code=a&code=b").is_err());
        assert_eq!(params(b"a=1&b=%20").unwrap()["b"], " ");
    }

    #[test]
    fn malformed_basic_credentials_are_a_failed_authentication() {
        for value in ["Basic !!!", "Basic Zm9v", "basic"] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, value.parse().unwrap());
            assert!(
                matches!(
                    basic_credentials(&h),
                    Some(Err(Refusal::InvalidClient)) | None
                ),
                "{value}"
            );
        }
    }
}
