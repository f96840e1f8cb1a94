//! Return targets (`rd` and the URL a login started from): same-origin relative paths only.
//!
//! Browsers read `//host`, `/\host`, `/%09/host` and friends as another origin, and
//! `javascript:` or `data:` as code: every such target is refused rather than repaired.

/// The longest return target kept, in bytes: path and query of the URL a login started
/// from, or `rd`. SPAs (Kibana, Grafana) keep their state in query strings of several KB.
pub const MAX_TARGET_BYTES: usize = 8192;

/// `Some(target)` when `rd` is a same-origin relative path (path and query), else `None`.
pub fn return_target(rd: &str) -> Option<&str> {
    let b = rd.as_bytes();
    if rd.is_empty() || rd.len() > MAX_TARGET_BYTES || b[0] != b'/' {
        return None;
    }
    // `//host` and `/\host` are protocol-relative; browsers also skip tabs and newlines,
    // so `/\t/host` becomes `//host`: refuse every control character and backslash anywhere.
    if b.iter().any(|&c| c < 0x20 || c == 0x7f || c == b'\\') {
        return None;
    }
    if b.len() > 1 && b[1] == b'/' {
        return None;
    }
    // Percent-encoded slashes, backslashes and control characters right after the first
    // slash are decoded by some backends and browsers into the forms above.
    let lower = rd.to_ascii_lowercase();
    let after_slash = &lower[1..];
    for bad in ["%2f", "%5c", "%09", "%0a", "%0d", "%00"] {
        if after_slash.starts_with(bad) {
            return None;
        }
    }
    if lower.contains("%00") || lower.contains("%0a") || lower.contains("%0d") {
        return None;
    }
    Some(rd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_paths_with_queries_are_kept_intact() {
        for ok in [
            "/",
            "/app/page?x=1",
            "/minio/ui/browser?prefix=a%2Fb&sort=name",
            "/a#frag",
            "/caf%C3%A9",
        ] {
            assert_eq!(return_target(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn open_redirect_corpus_is_refused() {
        let corpus = [
            "",
            "https://evil.example.com/",
            "http:evil.example.com",
            "//evil.example.com",
            "///evil.example.com",
            "/\\evil.example.com",
            "\\/evil.example.com",
            "/\t/evil.example.com",
            "/\n/evil.example.com",
            "/%09/evil.example.com",
            "/%2F/evil.example.com",
            "/%2f%2fevil.example.com",
            "/%5Cevil.example.com",
            "/%0d%0aSet-Cookie:x=1",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "evil.example.com",
            "@evil.example.com",
            " /app",
            "/app\u{0}",
        ];
        for bad in corpus {
            assert_eq!(return_target(bad), None, "{bad:?}");
        }
        assert_eq!(
            return_target(&format!("/{}", "a".repeat(MAX_TARGET_BYTES))),
            None
        );
    }
}
