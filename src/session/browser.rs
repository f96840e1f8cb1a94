//! Whether a request is a browser page load (SPEC §5): only those are sent to log in; an
//! SPA's XHR or fetch without a session gets 401 JSON, never a redirect into a CORS error.

use pingora::http::RequestHeader;

/// GET or HEAD with `Sec-Fetch-Mode: navigate`; or, without `Sec-Fetch-Mode` (older
/// browsers, curl), with `Accept` naming `text/html` and no `X-Requested-With`. `method` is
/// the one the request is decided for (forward-auth's `X-Forwarded-Method`).
pub fn is_page_load(method: &str, req: &RequestHeader) -> bool {
    matches!(method, "GET" | "HEAD") && is_navigation(req)
}

/// Whether a browser shows the answer as a page: a navigation (any method, so a form POST
/// too), as [`is_page_load`] tells it. An XHR or fetch is not one, whatever its `Accept`.
pub fn is_navigation(req: &RequestHeader) -> bool {
    headers_navigate(&req.headers)
}

/// [`is_navigation`] on a request's headers alone (for servers that are not pingora's,
/// such as the demo's echo backend).
pub fn headers_navigate(headers: &http::HeaderMap) -> bool {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    match header("sec-fetch-mode") {
        Some(mode) => mode.eq_ignore_ascii_case("navigate"),
        None => {
            header("accept").is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
                && header("x-requested-with").is_none()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/app/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn page_load(r: RequestHeader) -> bool {
        is_page_load(r.method.as_str(), &r)
    }

    #[test]
    fn a_forwarded_method_other_than_get_is_no_page_load_whatever_the_subrequest() {
        // nginx's auth subrequest is always a GET; what counts is X-Forwarded-Method.
        let r = req("GET", &[("Sec-Fetch-Mode", "navigate")]);
        assert!(!is_page_load("DELETE", &r));
        assert!(!is_page_load("POST", &r));
        assert!(is_page_load("GET", &r));
    }

    #[test]
    fn navigations_are_page_loads() {
        assert!(page_load(req(
            "GET",
            &[("Sec-Fetch-Mode", "navigate"), ("Accept", "text/html")]
        )));
        assert!(page_load(req("HEAD", &[("Sec-Fetch-Mode", "navigate")])));
        assert!(page_load(req(
            "GET",
            &[("Accept", "text/html,application/xhtml+xml")]
        )));
    }

    #[test]
    fn spa_requests_are_never_page_loads() {
        assert!(!page_load(req(
            "GET",
            &[("Sec-Fetch-Mode", "cors"), ("Accept", "text/html")]
        )));
        assert!(!page_load(req(
            "GET",
            &[("Sec-Fetch-Mode", "same-origin"), ("Accept", "*/*")]
        )));
        assert!(!page_load(req(
            "GET",
            &[
                ("Accept", "text/html"),
                ("X-Requested-With", "XMLHttpRequest")
            ]
        )));
        assert!(!page_load(req("GET", &[("Accept", "application/json")])));
        assert!(!page_load(req(
            "POST",
            &[("Sec-Fetch-Mode", "navigate"), ("Accept", "text/html")]
        )));
        assert!(!page_load(req("GET", &[])));
    }
}
