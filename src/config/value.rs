//! Leaf values of `gateway.toml` that validate themselves while they are parsed.
//!
//! Each type here fails inside serde, so the TOML parser attaches the line and column of
//! the offending value and `serde_path_to_error` the key path: the error a user sees says
//! where, which key, and what would be accepted, without a second validation pass.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::secret::Secret;

/// Replaces every `${NAME}` with the environment variable `NAME`.
///
/// An unset variable is an error naming it; a `$` not followed by `{` is kept as it is.
pub fn expand_env(raw: &str) -> Result<String, String> {
    expand_env_with(raw, |name| std::env::var(name).ok())
}

/// [`expand_env`] with the environment injected, for tests.
pub fn expand_env_with(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${`: write `${NAME}`".into());
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(format!(
                "`${{{name}}}` is not a variable name: use letters, digits and `_`"
            ));
        }
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A string with `${NAME}` already expanded.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw).map(Text).map_err(de::Error::custom)
    }
}

/// Parses the expanded text with `FromStr`-like logic, mapping errors into serde errors.
fn parse_text<'de, D, T>(d: D, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let Text(s) = Text::deserialize(d)?;
    parse(&s).map_err(de::Error::custom)
}

/// A duration written as `"90s"`, `"10m"`, `"8h"`, `"1h30m"`, `"250ms"` or `"2d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str =
            "a duration such as \"250ms\", \"90s\", \"10m\", \"8h\", \"1h30m\" or \"2d\"";
        let s = s.trim();
        if s.is_empty() {
            return Err(format!("empty duration: expected {ACCEPTED}"));
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("`{s}` is not {ACCEPTED}"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("`{s}` is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                "d" => Duration::from_secs(n.saturating_mul(86_400)),
                "" => return Err(format!("`{s}` has no unit: expected {ACCEPTED}")),
                other => {
                    return Err(format!(
                        "unknown unit `{other}` in `{s}`: expected {ACCEPTED}"
                    ))
                }
            };
            total = total.saturating_add(part);
        }
        Ok(Dur(total))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, str::parse)
    }
}

/// An absolute `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub url::Url);

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s).map_err(|e| {
            format!("`{s}` is not a URL ({e}): expected e.g. \"https://host/path\"")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{s}` must start with http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{s}` has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{}` must not carry credentials",
                url.host_str().unwrap_or("")
            ));
        }
        if url.fragment().is_some() {
            return Err(format!("`{s}` must not have a #fragment"));
        }
        Ok(HttpUrl(url))
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, str::parse)
    }
}

/// A socket address to listen on, such as `"127.0.0.1:8080"` or `"[::]:443"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |s| {
            s.parse().map(Listen).map_err(|_| {
                format!("`{s}` is not an address to listen on: expected IP:PORT such as \"127.0.0.1:8080\" or \"[::]:8080\"")
            })
        })
    }
}

/// A network in CIDR notation, or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |s| {
            if let Ok(net) = s.parse::<ipnet::IpNet>() {
                return Ok(Cidr(net.trunc()));
            }
            s.parse::<std::net::IpAddr>()
                .map(|ip| Cidr(ipnet::IpNet::from(ip)))
                .map_err(|_| format!("`{s}` is not a network: expected CIDR such as \"10.0.0.0/8\" or an address"))
        })
    }
}

/// An HTTP header name, lower-cased for comparisons and kept as written for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderName(pub http::HeaderName);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |s| {
            http::HeaderName::from_bytes(s.as_bytes())
                .map(HeaderName)
                .map_err(|_| {
                    format!("`{s}` is not an HTTP header name: use letters, digits and `-`")
                })
        })
    }
}

/// A JWT signature algorithm from the allow-list. `none` and unknown names are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alg(pub jsonwebtoken::Algorithm);

pub const ACCEPTED_ALGORITHMS: &str =
    "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

impl FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("none") {
            return Err(format!(
                "\"none\" is never accepted: unsigned tokens would let anyone in; use one of {ACCEPTED_ALGORITHMS}"
            ));
        }
        if s.starts_with("HS") {
            return Err(format!(
                "`{s}` needs a shared secret, and tokens are only verified with the issuer's public keys \
                 (an HMAC key made from a public key is a classic forgery); use one of {ACCEPTED_ALGORITHMS}"
            ));
        }
        jsonwebtoken::Algorithm::from_str(s)
            .map(Alg)
            .map_err(|_| format!("unknown algorithm `{s}`: expected one of {ACCEPTED_ALGORITHMS}"))
    }
}

impl<'de> Deserialize<'de> for Alg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, str::parse)
    }
}

/// One string or a list of strings (`user = "sub"` or `user = ["preferred_username", "sub"]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(Text),
            Many(Vec<Text>),
        }
        let list = match Raw::deserialize(d)
            .map_err(|_| de::Error::custom("expected a string or a list of strings"))?
        {
            Raw::One(t) => vec![t.0],
            Raw::Many(v) => v.into_iter().map(|t| t.0).collect(),
        };
        if list.iter().any(|s| s.trim().is_empty()) {
            return Err(de::Error::custom("empty names are not accepted"));
        }
        Ok(OneOrMany(list))
    }
}

/// A session secret: at least 32 bytes once `${NAME}` is expanded.
#[derive(Clone, Debug)]
pub struct SessionSecret(pub Secret);

pub const MIN_SECRET_BYTES: usize = 32;

impl<'de> Deserialize<'de> for SessionSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |s| {
            if s.len() < MIN_SECRET_BYTES {
                Err(format!(
                    "a session secret must be at least {MIN_SECRET_BYTES} bytes, this one has {}: `portcullis secret` prints a fresh one",
                    s.len()
                ))
            } else {
                Ok(SessionSecret(Secret::new(s.to_owned())))
            }
        })
    }
}

/// Any other secret (client secrets): expanded, not empty, never printed.
#[derive(Clone, Debug)]
pub struct ClientSecret(pub Secret);

impl<'de> Deserialize<'de> for ClientSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |s| {
            if s.is_empty() {
                Err("the secret is empty".to_owned())
            } else {
                Ok(ClientSecret(Secret::new(s.to_owned())))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_documented_forms() {
        let table = [
            ("90s", 90_000),
            ("10m", 600_000),
            ("8h", 28_800_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("2d", 172_800_000),
            ("0s", 0),
        ];
        for (text, ms) in table {
            assert_eq!(
                text.parse::<Dur>().unwrap().0,
                Duration::from_millis(ms),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_without_unit_or_with_junk_are_refused() {
        for text in ["", "30", "s", "3x", "1.5h", "-1s", "10 m", "h1"] {
            assert!(text.parse::<Dur>().is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn unset_variable_is_named_in_the_error() {
        let err = expand_env_with("a${MISSING_VAR}b", |_| None).unwrap_err();
        assert!(err.contains("MISSING_VAR"), "{err}");
    }

    #[test]
    fn variables_expand_and_plain_dollars_stay() {
        let got = expand_env_with("x${A}y$z${B}", |n| Some(format!("<{n}>"))).unwrap();
        assert_eq!(got, "x<A>y$z<B>");
    }

    #[test]
    fn malformed_variable_references_are_refused() {
        for raw in ["${", "${}", "${1A}", "${A-B}"] {
            assert!(
                expand_env_with(raw, |_| Some(String::new())).is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn alg_none_in_any_case_is_refused() {
        for text in ["none", "None", "NONE"] {
            let err = text.parse::<Alg>().unwrap_err();
            assert!(err.contains("never"), "{err}");
        }
        assert!("RS256".parse::<Alg>().is_ok());
        assert!("HS256".parse::<Alg>().unwrap_err().contains("public key"));
        assert!("rs256".parse::<Alg>().is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!("https://kc.example.com/realms/x".parse::<HttpUrl>().is_ok());
        for bad in [
            "ftp://x",
            "not a url",
            "https://user:pw@x/",
            "http://x/#f",
            "file:///etc",
        ] {
            assert!(bad.parse::<HttpUrl>().is_err(), "{bad}");
        }
        let err = "https://user:hunter2@x/".parse::<HttpUrl>().unwrap_err();
        assert!(
            !err.contains("hunter2"),
            "credentials leaked into the error: {err}"
        );
    }
}
