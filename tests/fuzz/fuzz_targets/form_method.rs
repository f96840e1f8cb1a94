//! `policy::form_method::FormMethod`, which reads form bodies as they stream through for a
//! `_method` field that would change the request's method.
//!
//! The input's first byte picks the body's kind (urlencoded or multipart) and where the body
//! is cut into two chunks; the rest is the body. Invariants:
//! - it never panics, whatever the bytes and wherever the chunks are cut;
//! - the verdict does not depend on the cut (a field split across chunks is found);
//! - for urlencoded bodies, every form a whole-body parser (`url::form_urlencoded`) reads as
//!   naming another method in `_method` is refused (refusing more is allowed: values too
//!   long to be a method);
//! - for multipart bodies, a body holding `name="_method"` is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::policy::form_method::{FormMethod, Named};

const METHOD: &str = "POST";

/// The first `_method` found, with a judge that allows none; or, with one that allows all,
/// every one found.
fn verdict(content_type: &str, chunks: &[&[u8]]) -> (Result<(), Named>, Vec<Named>) {
    let mut scan = FormMethod::for_body(Some(content_type), METHOD).expect("a form type");
    let mut first = Ok(());
    for (i, c) in chunks.iter().enumerate() {
        if let Err(n) = scan.read(Some(c), i == chunks.len() - 1, |_| false) {
            first = Err(n);
            break;
        }
    }
    let mut scan = FormMethod::for_body(Some(content_type), METHOD).expect("a form type");
    let all = std::cell::RefCell::new(Vec::new());
    for (i, c) in chunks.iter().enumerate() {
        let kept = scan.read(Some(c), i == chunks.len() - 1, |n| {
            all.borrow_mut().push(n.clone());
            true
        });
        assert_eq!(kept, Ok(()), "a judge that allows all refused");
    }
    (first, all.into_inner())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let multipart = first & 1 == 1;
    let content_type = if multipart {
        "multipart/form-data; boundary=b"
    } else {
        "application/x-www-form-urlencoded"
    };
    let whole = verdict(content_type, &[body]);
    let cut = usize::from(first >> 1).min(body.len());
    let (a, b) = body.split_at(cut);
    assert_eq!(verdict(content_type, &[a, b]), whole, "cut at {cut}");
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    if !bytewise.is_empty() {
        assert_eq!(verdict(content_type, &bytewise), whole, "byte by byte");
    }
    let (first, all) = &whole;
    assert_eq!(first.clone().err(), all.first().cloned(), "the first refused is the first found");
    if multipart {
        if body.windows(14).any(|w| w == b"name=\"_method\"") {
            assert!(first.is_err(), "a part named _method passed");
        }
    } else {
        // Every field a whole-body parser reads as naming another method is shown to the
        // judge, with that method (or as too long to be one).
        let expected: Vec<String> = url::form_urlencoded::parse(body)
            .filter(|(k, _)| k == "_method")
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.eq_ignore_ascii_case(METHOD))
            .collect();
        assert!(!all.contains(&Named::Unread), "unread in a urlencoded body");
        let mut found = all.iter();
        for e in &expected {
            assert!(
                found.any(|f| match f {
                    Named::Method(Some(m)) => m == e,
                    Named::Method(None) => true,
                    Named::Unread => false,
                }),
                "{e:?} expected in order in {all:?}"
            );
        }
    }
});
