//! The `_method` field of a form body, which Rails (`Rack::MethodOverride`), Laravel and
//! Symfony act on as the request's method: a POST checked as POST would be served as the
//! DELETE its form names. The gateway streams bodies, so the form is read as it passes,
//! chunk by chunk, with a few bytes of state — never buffered.
//!
//! `application/x-www-form-urlencoded` bodies are parsed field by field: each `_method`
//! (in any percent-encoding) naming another method than the request's is shown to a judge
//! — the route's rules, for that method. In `multipart/form-data` bodies a part named
//! `_method` is found by its `name="_method"`; its value is not read.

/// Scans one request body: [`FormMethod::read`] each chunk as it comes.
#[derive(Debug)]
pub struct FormMethod {
    method: String,
    kind: Kind,
}

/// A `_method` field naming another method than the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// The method it names, decoded and trimmed (`None`: too long to be a method).
    Method(Option<String>),
    /// A multipart part named `_method`, whose value is not read.
    Unread,
}

#[derive(Debug)]
enum Kind {
    UrlEncoded(Field),
    /// The last bytes of the previous chunk, for a name split across two chunks.
    Multipart(Vec<u8>),
}

/// The field of a urlencoded body being read.
#[derive(Debug, Default)]
struct Field {
    /// The raw name while it is read (up to [`LONGEST_NAME`] bytes), then its value when
    /// the name was `_method` (up to [`LONGEST_VALUE`]).
    bytes: Vec<u8>,
    in_value: bool,
    is_method: bool,
    /// More bytes than kept: a name that cannot be `_method`, or a value that is no method.
    overflow: bool,
}

/// `%5F%6D%65%74%68%6F%64` is the longest spelling of `_method`.
const LONGEST_NAME: usize = 32;
/// Longer than any method name, even percent-encoded.
const LONGEST_VALUE: usize = 64;
const MULTIPART_NAMES: [&[u8]; 2] = [b"name=\"_method\"", b"name=_method"];

/// The form field that would change the method.
pub const FIELD: &str = "_method";

impl FormMethod {
    /// A scanner for a body of `content_type` sent with `method`, or `None` when no framework
    /// reads a method from such a body.
    pub fn for_body(content_type: Option<&str>, method: &str) -> Option<Self> {
        // Asked of every request with a body type: no allocation until it is a form.
        let essence = content_type?.split(';').next().unwrap_or_default().trim();
        let kind = if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Kind::UrlEncoded(Field::default())
        } else if essence.eq_ignore_ascii_case("multipart/form-data") {
            Kind::Multipart(Vec::new())
        } else {
            return None;
        };
        Some(FormMethod {
            method: method.to_owned(),
            kind,
        })
    }

    /// One chunk of the body as pingora hands it (`None`: none this time), and whether the
    /// body ends with it. Each field naming another method goes to `allowed`; the first it
    /// does not allow is the error (and the body must go no further).
    pub fn read(
        &mut self,
        chunk: Option<&[u8]>,
        end: bool,
        allowed: impl Fn(&Named) -> bool,
    ) -> Result<(), Named> {
        let judge = |named: Option<Named>| match named {
            Some(n) if !allowed(&n) => Err(n),
            _ => Ok(()),
        };
        let chunk = chunk.unwrap_or_default();
        match &mut self.kind {
            Kind::UrlEncoded(field) => {
                for &b in chunk {
                    if b == b'&' {
                        judge(field.end(&self.method))?;
                    } else {
                        field.push(b);
                    }
                }
                if end {
                    judge(field.end(&self.method))?;
                }
                Ok(())
            }
            Kind::Multipart(tail) => {
                let longest = MULTIPART_NAMES.iter().map(|n| n.len()).max().unwrap_or(0);
                let mut window = std::mem::take(tail);
                let carried = window.len();
                window.extend_from_slice(chunk);
                // Each name once: those ending in this chunk (the carried bytes alone may
                // hold a short one already seen).
                for name in MULTIPART_NAMES {
                    let seen = window
                        .windows(name.len())
                        .enumerate()
                        .filter(|(at, w)| *w == name && at + name.len() > carried);
                    for _ in seen {
                        judge(Some(Named::Unread))?;
                    }
                }
                let keep = window.len().min(longest - 1);
                *tail = window.split_off(window.len() - keep);
                Ok(())
            }
        }
    }
}

impl Field {
    fn push(&mut self, b: u8) {
        if !self.in_value && b == b'=' {
            self.is_method = !self.overflow && decoded_name(&self.bytes) == FIELD;
            self.in_value = true;
            self.bytes.clear();
            self.overflow = false;
            return;
        }
        if self.in_value && !self.is_method {
            return;
        }
        let bound = if self.in_value {
            LONGEST_VALUE
        } else {
            LONGEST_NAME
        };
        if self.bytes.len() < bound {
            self.bytes.push(b);
        } else {
            self.overflow = true;
        }
    }

    /// The field ends (`&` or the end of the body): what it names, if it is a `_method`
    /// naming another method than `method`.
    fn end(&mut self, method: &str) -> Option<Named> {
        let field = std::mem::take(self);
        // A bare `_method` (no `=`) is an empty value, as form parsers read it.
        let is_method = if field.in_value {
            field.is_method
        } else {
            !field.overflow && !field.bytes.is_empty() && decoded_name(&field.bytes) == FIELD
        };
        if !is_method {
            return None;
        }
        if field.overflow {
            return Some(Named::Method(None));
        }
        let value = if field.in_value {
            decoded_value(&field.bytes)
        } else {
            String::new()
        };
        let value = value.trim();
        (!value.eq_ignore_ascii_case(method)).then(|| Named::Method(Some(value.to_owned())))
    }
}

/// A urlencoded name decoded (`+` is a space, `%XX` a byte).
fn decoded_name(raw: &[u8]) -> String {
    url::form_urlencoded::parse(raw)
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// A urlencoded value decoded, `=` in it kept.
fn decoded_value(raw: &[u8]) -> String {
    let field = [b"v=".as_slice(), raw].concat();
    url::form_urlencoded::parse(&field)
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict with a judge that allows nothing but `allowed`.
    fn scan(
        content_type: &str,
        method: &str,
        chunks: &[&[u8]],
        allowed: &[&str],
    ) -> Result<(), Named> {
        let mut f = FormMethod::for_body(Some(content_type), method).expect("a form");
        let judge =
            |n: &Named| matches!(n, Named::Method(Some(m)) if allowed.contains(&m.as_str()));
        for (i, c) in chunks.iter().enumerate() {
            f.read(Some(c), i == chunks.len() - 1, judge)?;
        }
        if chunks.is_empty() {
            f.read(None, true, judge)?;
        }
        Ok(())
    }

    const FORM: &str = "application/x-www-form-urlencoded";
    const MULTIPART: &str = "multipart/form-data; boundary=b";

    fn named(m: &str) -> Result<(), Named> {
        Err(Named::Method(Some(m.to_owned())))
    }

    #[test]
    fn a_form_field_naming_another_method_is_found_in_any_spelling() {
        for (body, found) in [
            ("_method=DELETE", "DELETE"),
            ("a=1&_method=delete&b=2", "delete"),
            ("%5Fmethod=DELETE", "DELETE"),
            ("%5f%6D%65%74%68%6F%64=PUT", "PUT"),
            ("_method=%44ELETE", "DELETE"),
            ("_method=+PATCH+", "PATCH"),
            ("_method=", ""),
            ("_method", ""),
            ("a=1&_method", ""),
            ("_method=DEL=ETE", "DEL=ETE"),
        ] {
            assert_eq!(
                scan(FORM, "POST", &[body.as_bytes()], &[]),
                named(found),
                "{body}"
            );
        }
        let long = format!("_method={}", "A".repeat(100));
        assert_eq!(
            scan(FORM, "POST", &[long.as_bytes()], &[]),
            Err(Named::Method(None))
        );
    }

    #[test]
    fn every_field_goes_to_the_judge_not_only_the_first() {
        // Rack and PHP act on the last of several: each must be allowed.
        let body = b"_method=GET&_method=DELETE";
        assert_eq!(scan(FORM, "POST", &[body], &["GET"]), named("DELETE"));
        assert_eq!(scan(FORM, "POST", &[body], &["GET", "DELETE"]), Ok(()));
        let parts = b"--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nGET\r\n--b--";
        assert_eq!(
            scan(MULTIPART, "POST", &[parts], &["GET"]),
            Err(Named::Unread)
        );
    }

    #[test]
    fn a_field_split_across_chunks_is_found() {
        let body = b"title=hello&_method=DELETE";
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(
                scan(FORM, "POST", &[a, b], &[]),
                named("DELETE"),
                "cut at {cut}"
            );
        }
        let body = b"--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE";
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(
                scan(MULTIPART, "POST", &[a, b], &[]),
                Err(Named::Unread),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn ordinary_forms_and_the_same_method_pass() {
        for body in [
            "",
            "a=1&b=2",
            "_method=POST",
            "_method=+post+",
            "x_method=DELETE",
            "_methods=DELETE",
            "note=_method%3DDELETE",
            "a=_method",
        ] {
            assert_eq!(
                scan(FORM, "POST", &[body.as_bytes()], &[]),
                Ok(()),
                "{body}"
            );
        }
        let long = format!("{}=1&b=2", "k".repeat(10_000));
        assert_eq!(scan(FORM, "POST", &[long.as_bytes()], &[]), Ok(()));
        assert_eq!(scan(FORM, "POST", &[], &[]), Ok(()));
    }

    #[test]
    fn only_form_bodies_are_read() {
        assert!(FormMethod::for_body(Some("application/json"), "POST").is_none());
        assert!(FormMethod::for_body(None, "POST").is_none());
        let ct = "Application/X-WWW-Form-Urlencoded; charset=utf-8";
        assert!(FormMethod::for_body(Some(ct), "POST").is_some());
    }

    #[test]
    fn state_stays_bounded_whatever_the_body() {
        let big = vec![b'a'; 1 << 20];
        let mut f = FormMethod::for_body(Some(FORM), "POST").unwrap();
        f.read(Some(&big), false, |_| false).unwrap();
        let Kind::UrlEncoded(field) = &f.kind else {
            panic!("urlencoded")
        };
        assert!(field.bytes.len() <= LONGEST_VALUE);
        let mut m = FormMethod::for_body(Some(MULTIPART), "POST").unwrap();
        m.read(Some(&big), false, |_| false).unwrap();
        let Kind::Multipart(tail) = &m.kind else {
            panic!("multipart")
        };
        assert!(tail.len() < 16);
    }
}
