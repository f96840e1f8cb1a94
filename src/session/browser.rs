//! Whether a request is a browser page load (SPEC §5): only those are sent to log in; an
//! SPA's XHR or fetch without a session gets 401 JSON, never a redirect into a CORS error.

use pingora::http::RequestHeader;

/// GET or HEAD with `Sec-Fetch-Mode: navigate`; or, without `Sec-Fetch-Mode` (older
/// browsers, curl), with `Accept` naming `text/html` and no `X-Requested-With`.
pub fn is_page_load(req: &RequestHeader) -> bool {
    if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
        return false;
    }
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
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

    #[test]
    fn navigations_are_page_loads() {
        assert!(is_page_load(&req(
            "GET",
            &[("Sec-Fetch-Mode", "navigate"), ("Accept", "text/html")]
        )));
        assert!(is_page_load(&req(
            "HEAD",
            &[("Sec-Fetch-Mode", "navigate")]
        )));
        assert!(is_page_load(&req(
            "GET",
            &[("Accept", "text/html,application/xhtml+xml")]
        )));
    }

    #[test]
    fn spa_requests_are_never_page_loads() {
        assert!(!is_page_load(&req(
            "GET",
            &[("Sec-Fetch-Mode", "cors"), ("Accept", "text/html")]
        )));
        assert!(!is_page_load(&req(
            "GET",
            &[("Sec-Fetch-Mode", "same-origin"), ("Accept", "*/*")]
        )));
        assert!(!is_page_load(&req(
            "GET",
            &[
                ("Accept", "text/html"),
                ("X-Requested-With", "XMLHttpRequest")
            ]
        )));
        assert!(!is_page_load(&req(
            "GET",
            &[("Accept", "application/json")]
        )));
        assert!(!is_page_load(&req(
            "POST",
            &[("Sec-Fetch-Mode", "navigate"), ("Accept", "text/html")]
        )));
        assert!(!is_page_load(&req("GET", &[])));
    }
}
