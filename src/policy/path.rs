//! The normalized request path: what routes and rules match, and what the backend receives.
//!
//! Percent-encoded unreserved characters are decoded, dot segments removed (RFC 3986
//! §5.2.4), `//` merged. Everything a backend could read differently from us is refused
//! instead of guessed at: an encoded `/` or `\`, a raw `\`, `..` above the root, encoded
//! or raw control characters, dot segments hiding behind `;` parameters (`/..;/`), and
//! percent-encoded bytes that are not valid UTF-8 (overlong encodings of `.` and `/`).

use thiserror::Error;

/// The longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 8192;

/// Why a path was refused. Every variant answers 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("an encoded `/` or `\\` in the path is refused")]
    EncodedSlash,
    #[error("a `\\` in the path is refused")]
    Backslash,
    #[error("a control character in the path is refused")]
    ControlCharacter,
    #[error("a malformed percent-encoding in the path is refused")]
    BadPercentEncoding,
    #[error("percent-encoded bytes in the path are not valid UTF-8")]
    InvalidUtf8,
    #[error("`..` above the root is refused")]
    AboveRoot,
    #[error("a dot segment with `;` parameters is refused")]
    DotSegmentWithParameters,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalizes the path part of a request target (no query).
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }

    // Pass 1: decode unreserved, upper-case the hex of everything kept encoded, and collect
    // every decoded byte to check that the encoded bytes form valid UTF-8.
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut fully_decoded: Vec<u8> = Vec::new();
    let mut has_encoded = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let v = h << 4 | l;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    _ => {}
                }
                has_encoded = true;
                fully_decoded.push(v);
                if is_unreserved(v) {
                    decoded.push(v as char);
                } else {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    decoded.push('%');
                    decoded.push(HEX[(v >> 4) as usize] as char);
                    decoded.push(HEX[(v & 15) as usize] as char);
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                // `raw` is a &str, so a multi-byte character is copied whole, into both.
                let character = &raw[i..i + utf8_len(b)];
                fully_decoded.extend_from_slice(character.as_bytes());
                decoded.push_str(character);
                i += character.len();
                continue;
            }
        }
    }
    if has_encoded && std::str::from_utf8(&fully_decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }

    // Pass 2: dot segments and empty segments.
    let mut out: Vec<&str> = Vec::new();
    let trailing_slash =
        decoded.len() > 1 && (decoded.ends_with('/') || ends_with_dot_segment(&decoded));
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => {
                let bare = s.split(';').next().unwrap_or(s);
                if s.contains(';') && (bare == "." || bare == "..") {
                    return Err(PathError::DotSegmentWithParameters);
                }
                out.push(s);
            }
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for segment in &out {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

fn ends_with_dot_segment(p: &str) -> bool {
    p.ends_with("/.") || p.ends_with("/..")
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let table = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/%61%62c", "/abc"),
            ("/%7euser", "/~user"),
            ("/a%2e%2e/b", "/a../b"),
            ("/a/%2e%2e/b", "/b"),
            ("/a/%2E/b", "/a/b"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/café"),
            // A raw non-ASCII character beside an escape (was refused as invalid UTF-8).
            ("/café%20menu", "/café%20menu"),
            ("/%63afé", "/café"),
            ("/東京/%E6%9D%B1", "/東京/%E6%9D%B1"),
            ("/a%20b", "/a%20b"),
            ("/a;b=c/d", "/a;b=c/d"),
            ("/api/orders/../orders/1", "/api/orders/1"),
            ("/%3F", "/%3F"),
        ];
        for (raw, want) in table {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn attack_corpus_is_refused() {
        use PathError::*;
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        let table: [(&str, PathError); 20] = [
            ("/..", AboveRoot),
            ("/../etc/passwd", AboveRoot),
            ("/a/../../b", AboveRoot),
            ("/%2e%2e/secret", AboveRoot),
            ("/%2E%2E/%2e%2e/x", AboveRoot),
            ("/a%2Fb", EncodedSlash),
            ("/a%2fb", EncodedSlash),
            ("/a%5Cb", EncodedSlash),
            ("/a%5cb", EncodedSlash),
            ("/a\\b", Backslash),
            ("/a%00b", ControlCharacter),
            ("/a\0b", ControlCharacter),
            ("/a%0d%0aSet-Cookie:x", ControlCharacter),
            ("/a%zz", BadPercentEncoding),
            ("/a%4", BadPercentEncoding),
            ("/%c0%ae%c0%ae/x", InvalidUtf8),
            ("/%c0%af", InvalidUtf8),
            ("/public/..;/admin", DotSegmentWithParameters),
            ("/public/.;x/admin", DotSegmentWithParameters),
            ("a/b", NotAbsolute),
        ];
        for (raw, want) in table {
            assert_eq!(normalize(raw), Err(want), "{raw:?}");
        }
        assert_eq!(normalize(&long), Err(TooLong));
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for raw in ["/a/./b/../c//d/", "/%7e/x%20y", "/a;p/b", "/caf%c3%a9/"] {
            let once = normalize(raw).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{raw}");
        }
    }
}
