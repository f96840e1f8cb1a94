//! Session cookies: the `Cookie` headers a browser sends read by
//! `session::cookies::request_cookies`, then opened by the sealed-cookie codec
//! (`session::codec::Codec`, AES-256-GCM under keys derived from fixed test secrets), whole
//! or reassembled from chunks; and values sealed, split and opened again.
//!
//! The input is `Cookie` values, one a line, or a value to seal (see [`Sealing`]).
//!
//! Invariants:
//! - nothing panics, whatever the headers, however many cookies;
//! - cookie pairs come out trimmed, names without `;` and `=`;
//! - only values this codec sealed open: anything that opens seals and opens to itself;
//! - a sealed value comes back as it was, its chunks in any order, among other cookies,
//!   and with a rotated key list (new secret first, the old one still opening); each
//!   chunk at most `CHUNK_BYTES`, at most `MAX_CHUNKS` of them, every name one the codec
//!   owns; above `MAX_CHUNKS` sealing refuses;
//! - it does not open under another cookie name, with a retired secret, with one chunk
//!   missing, or with any one byte of it changed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::secret::Secret;
use portcullis::session::codec::{Codec, SealError, CHUNK_BYTES, MAX_CHUNKS};
use portcullis::session::cookies::request_cookies;
use portcullis_fuzz::{request, value_lines, write_seeds};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const NAME: &str = "_portcullis";
const OLD: &str = "fuzz-only-old-secret-0123456789abcdef";
const NEW: &str = "fuzz-only-new-secret-0123456789abcdef";

/// A value of the shape of a session: strings, lists, numbers, options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    id: String,
    user: Option<String>,
    groups: Vec<String>,
    exp: u64,
    blob: String,
}

/// A sealing input: `seal` on the first line, then `TIMES ROTATE FLIP_AT FLIP_CHAR`, the
/// id, the user (none when empty), the groups (comma-separated), `exp`, a blob sealed
/// TIMES times over (large values, many chunks), and `name=value` cookies sent along.
struct Sealing {
    value: Stored,
    rotate: usize,
    others: Vec<(String, String)>,
    flip_at: usize,
    flip_to: u8,
}

fn sealing(data: &[u8]) -> Option<Sealing> {
    let text = std::str::from_utf8(data.strip_prefix(b"seal\n")?).ok()?;
    let mut lines = text.split('\n');
    let mut knobs = lines.next().unwrap_or_default().split(' ');
    let mut number = || {
        knobs
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let (times, rotate, flip_at) = (number() % 64, number(), number());
    let flip_to = knobs.next().and_then(|c| c.bytes().next()).unwrap_or(b'A');
    let mut line = || lines.next().unwrap_or_default().to_owned();
    let id = line();
    let user = Some(line()).filter(|u| !u.is_empty());
    let groups = line().split(',').map(str::to_owned).collect();
    let exp = line().parse().unwrap_or(0);
    let blob = line().repeat(times);
    let others = lines
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Some(Sealing {
        value: Stored {
            id,
            user,
            groups,
            exp,
            blob,
        },
        rotate,
        others,
        flip_at,
        flip_to,
    })
}

struct Codecs {
    old: Codec,
    rotated: Codec,
    retired: Codec,
    other_name: Codec,
}

fn codecs() -> &'static Codecs {
    static C: OnceLock<Codecs> = OnceLock::new();
    C.get_or_init(|| {
        let s = |v: &str| Secret::new(v.to_owned());
        let c = Codecs {
            old: Codec::new(NAME, &[s(OLD)]),
            rotated: Codec::new(NAME, &[s(NEW), s(OLD)]),
            retired: Codec::new(NAME, &[s(NEW)]),
            other_name: Codec::new("_portcullis_state_abc", &[s(OLD)]),
        };
        write_seeds("session_cookie", &seeds(&c));
        c
    })
}

/// `Cookie` headers that carry values sealed with the test secrets, whole and in chunks.
fn seeds(c: &Codecs) -> Vec<(&'static str, Vec<u8>)> {
    let value = |blob: usize| Stored {
        id: "s-1".into(),
        user: Some("alice".into()),
        groups: vec!["staff".into()],
        exp: 1_800_000_300,
        blob: "k".repeat(blob),
    };
    let header = |codec: &Codec, v: &Stored, join: &str| {
        let sealed = codec.seal(v).expect("a seed fits");
        let pairs: Vec<String> = sealed.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("theme=dark; {}", pairs.join(join)).into_bytes()
    };
    vec![
        ("whole", header(&c.old, &value(10), "; ")),
        ("by_new_secret", header(&c.rotated, &value(10), "; ")),
        ("chunks", header(&c.old, &value(6000), "; ")),
        ("chunks_in_two_headers", header(&c.old, &value(6000), "\n")),
        ("sixteen_chunks", header(&c.old, &value(40_000), "; ")),
    ]
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

fuzz_target!(|data: &[u8]| {
    let c = codecs();
    match sealing(data) {
        None => {
            // `Cookie` values, one a line.
            let Some(req) = request("GET", b"/", &value_lines("cookie", data)) else {
                return;
            };
            let cookies = request_cookies(&req);
            for (n, v) in &cookies {
                assert!(!n.contains(';') && !n.contains('='), "name {n:?}");
                assert!(!v.contains(';'), "value {v:?}");
                assert_eq!(n.trim_start(), *n);
                assert_eq!(v.trim_end(), *v);
                if c.old.owns(n) {
                    assert!(n.starts_with(NAME), "{n:?} owned");
                }
            }
            for codec in [&c.old, &c.rotated] {
                if let Some(opened) = codec.open::<Value>(cookies.iter().copied()) {
                    // Someone sealed this with our secret: only the fuzzer's seeds can.
                    let sealed = codec.seal(&opened).expect("it fitted before");
                    assert_eq!(codec.open::<Value>(pairs(&sealed)), Some(opened));
                }
            }
        }
        Some(Sealing {
            value,
            rotate,
            others,
            flip_at,
            flip_to,
        }) => {
            let sealed = match c.old.seal(&value) {
                Ok(s) => s,
                Err(SealError::TooLarge) => {
                    let one = c.old.seal_one(&value);
                    assert!(
                        one.len() > CHUNK_BYTES * MAX_CHUNKS,
                        "{} bytes refused",
                        one.len()
                    );
                    return;
                }
            };
            assert!(!sealed.is_empty() && sealed.len() <= MAX_CHUNKS);
            for (n, v) in &sealed {
                assert!(v.len() <= CHUNK_BYTES, "a chunk of {} bytes", v.len());
                assert!(c.old.owns(n), "{n:?} is not the codec's");
                assert!(!c.other_name.owns(n), "{n:?} is another codec's");
            }
            // Sent in another order, among cookies the codec does not own.
            let mut sent: Vec<(String, String)> = sealed.clone();
            sent.extend(others.into_iter().filter(|(n, _)| !c.old.owns(n)));
            let k = rotate % sent.len();
            sent.rotate_left(k);
            assert_eq!(c.old.open::<Stored>(pairs(&sent)).as_ref(), Some(&value));
            assert_eq!(
                c.rotated.open::<Stored>(pairs(&sent)).as_ref(),
                Some(&value)
            );
            assert_eq!(c.retired.open::<Stored>(pairs(&sent)), None);
            let renamed: Vec<(String, String)> = sealed
                .iter()
                .map(|(n, v)| (n.replacen(NAME, "_portcullis_state_abc", 1), v.clone()))
                .collect();
            assert_eq!(c.other_name.open::<Stored>(pairs(&renamed)), None);
            if sealed.len() > 1 {
                let mut short = sealed.clone();
                short.remove(flip_at % sealed.len());
                assert_eq!(c.old.open::<Stored>(pairs(&short)), None, "a chunk missing");
            }
            // One byte changed, anywhere in the sealed value.
            let total: usize = sealed.iter().map(|(_, v)| v.len()).sum();
            let mut at = flip_at % total;
            let mut tampered = sealed.clone();
            for (_, v) in tampered.iter_mut() {
                if at < v.len() {
                    let mut bytes = std::mem::take(v).into_bytes();
                    if bytes[at] == flip_to || !flip_to.is_ascii() {
                        return;
                    }
                    bytes[at] = flip_to;
                    *v = String::from_utf8(bytes).expect("ASCII");
                    break;
                }
                at -= v.len();
            }
            assert_eq!(
                c.old.open::<Stored>(pairs(&tampered)),
                None,
                "{tampered:?} opened"
            );
        }
    }
});
