//! `policy::path::normalize`, the path routes and rules match and the backend receives.
//!
//! Invariants, for any UTF-8 input:
//! - it never panics; `TooLong` exactly above `MAX_PATH_BYTES`, then `NotAbsolute` exactly
//!   when the path does not start with `/`;
//! - a normalized path starts with `/`, is no longer than the input, and normalizes to
//!   itself;
//! - it has no empty segment (`//`), no `.` or `..` segment, none hiding behind `;`
//!   parameters, no `\`, no control character, no encoded `/` or `\`, and every `%` starts
//!   an upper-case escape of a byte that is not unreserved (those are decoded);
//! - the case of hex digits does not matter, and neither does percent-encoding an
//!   unreserved character: both give the same answer as the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::policy::path::{normalize, PathError, MAX_PATH_BYTES};

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn check_normal_form(raw: &str, p: &str) {
    assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
    assert!(p.len() <= raw.len(), "{raw:?} -> {p:?} grew");
    assert_eq!(
        normalize(p).as_deref(),
        Ok(p),
        "{raw:?} -> {p:?} is not a fixed point"
    );
    let segments: Vec<&str> = p[1..].split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        // Only the last segment may be empty: the trailing slash.
        assert!(
            !s.is_empty() || i == segments.len() - 1,
            "{raw:?} -> {p:?}: empty segment"
        );
        let bare = s.split(';').next().unwrap_or(s);
        assert!(
            bare != "." && bare != "..",
            "{raw:?} -> {p:?}: dot segment {s:?}"
        );
    }
    let b = p.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        assert!(
            c != b'\\' && c >= 0x20 && c != 0x7f,
            "{raw:?} -> {p:?}: byte {c:#x}"
        );
        if c == b'%' {
            let (h, l) = (b[i + 1], b[i + 2]);
            assert!(
                h.is_ascii_digit() || h.is_ascii_uppercase(),
                "{raw:?} -> {p:?}: lower-case escape"
            );
            assert!(
                l.is_ascii_digit() || l.is_ascii_uppercase(),
                "{raw:?} -> {p:?}: lower-case escape"
            );
            let v = hex(h).unwrap() << 4 | hex(l).unwrap();
            assert!(
                !is_unreserved(v),
                "{raw:?} -> {p:?}: %{v:02X} should be decoded"
            );
            assert!(
                v != b'/' && v != b'\\' && v >= 0x20 && v != 0x7f,
                "{raw:?} -> {p:?}: %{v:02X} should be refused"
            );
        }
    }
}

/// `raw` with the case of every hex digit letter after a `%` swapped.
fn swap_hex_case(raw: &str) -> String {
    let mut out = raw.as_bytes().to_vec();
    for i in 0..out.len() {
        if out[i] == b'%' {
            for j in [i + 1, i + 2] {
                if let Some(c) = out.get_mut(j) {
                    if c.is_ascii_hexdigit() && c.is_ascii_alphabetic() {
                        *c ^= 0x20;
                    }
                }
            }
        }
    }
    String::from_utf8(out).expect("only ASCII letters changed")
}

/// `raw` with its `pick`-th unreserved character (not a hex digit of an escape) encoded.
fn encode_one_unreserved(raw: &str, pick: u8) -> Option<String> {
    let b = raw.as_bytes();
    let mut candidates = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            i += 3;
            continue;
        }
        if is_unreserved(b[i]) {
            candidates.push(i);
        }
        i += 1;
    }
    if candidates.is_empty() {
        return None;
    }
    let at = candidates[pick as usize % candidates.len()];
    Some(format!("{}%{:02X}{}", &raw[..at], b[at], &raw[at + 1..]))
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    // Which character the re-encoding check encodes: any, as long as it is the same one
    // each time the input comes back.
    let pick = data
        .iter()
        .fold(0u8, |a, &b| a.wrapping_mul(31).wrapping_add(b));
    let got = normalize(raw);
    if raw.len() > MAX_PATH_BYTES {
        assert_eq!(got, Err(PathError::TooLong));
        return;
    }
    if !raw.starts_with('/') {
        assert_eq!(got, Err(PathError::NotAbsolute));
        return;
    }
    if let Ok(p) = &got {
        check_normal_form(raw, p);
    }
    assert_eq!(
        normalize(&swap_hex_case(raw)),
        got,
        "{raw:?}: hex case changed the answer"
    );
    if let Some(encoded) = encode_one_unreserved(raw, pick) {
        if encoded.len() <= MAX_PATH_BYTES {
            assert_eq!(normalize(&encoded), got, "{raw:?} vs {encoded:?}");
        }
    }
});
