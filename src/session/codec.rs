//! Sealing a value into the session cookie and opening it again.
//!
//! The value is encrypted and authenticated with AES-256-GCM by the `cookie` crate's
//! private jar, the cookie's name bound in as associated data, with a key derived by HKDF
//! from each of `session.secrets`: the first secret seals, every secret opens (rotation).
//! A sealed value over [`CHUNK_BYTES`] is split across `NAME_1`, `NAME_2`, … and at most
//! [`MAX_CHUNKS`] are read back. Anything that does not open — tampered, truncated, planted,
//! sealed with a retired secret — is simply no session.

use cookie::{Cookie, CookieJar, Key};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::secret::Secret;

/// The largest cookie value written; above it the value is chunked.
pub const CHUNK_BYTES: usize = 3800;
/// The most chunks read (and written).
pub const MAX_CHUNKS: usize = 16;

/// Seals and opens values under one cookie name.
pub struct Codec {
    name: String,
    keys: Vec<Key>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("name", &self.name)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Why a value could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the sealed value needs more than {MAX_CHUNKS} cookies")]
    TooLarge,
}

impl Codec {
    /// A codec for cookie `name`, keyed from `secrets` (each at least 32 bytes, as the
    /// configuration checks).
    pub fn new(name: &str, secrets: &[Secret]) -> Codec {
        let keys = secrets
            .iter()
            .map(|s| Key::derive_from(s.expose().as_bytes()))
            .collect();
        Codec {
            name: name.to_owned(),
            keys,
        }
    }

    /// `value` sealed into one string of any length (for a server-side store).
    pub fn seal_one<T: Serialize>(&self, value: &T) -> String {
        let plain = serde_json::to_string(value).expect("session values serialize");
        let mut jar = CookieJar::new();
        jar.private_mut(&self.keys[0])
            .add(Cookie::new(self.name.clone(), plain));
        jar.get(&self.name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default()
    }

    /// Opens what [`Codec::seal_one`] sealed; `None` for anything else.
    pub fn open_one<T: DeserializeOwned>(&self, sealed: &str) -> Option<T> {
        self.keys.iter().find_map(|key| {
            let mut jar = CookieJar::new();
            jar.add_original(Cookie::new(self.name.clone(), sealed.to_owned()));
            let plain = jar.private(key).get(&self.name)?;
            serde_json::from_str(plain.value()).ok()
        })
    }

    /// The cookies (name, value) that carry `value`: one, or numbered chunks.
    pub fn seal<T: Serialize>(&self, value: &T) -> Result<Vec<(String, String)>, SealError> {
        let sealed = self.seal_one(value);
        if sealed.len() <= CHUNK_BYTES {
            return Ok(vec![(self.name.clone(), sealed)]);
        }
        let chunks: Vec<(String, String)> = sealed
            .as_bytes()
            .chunks(CHUNK_BYTES)
            .enumerate()
            // base64 is ASCII, so byte chunks are valid strings.
            .map(|(i, c)| {
                (
                    format!("{}_{}", self.name, i + 1),
                    String::from_utf8_lossy(c).into_owned(),
                )
            })
            .collect();
        if chunks.len() > MAX_CHUNKS {
            return Err(SealError::TooLarge);
        }
        Ok(chunks)
    }

    /// Opens the value carried by `cookies` (name, value pairs as the browser sent them).
    /// `None` for anything that is not a value sealed by one of our secrets.
    pub fn open<'a, T: DeserializeOwned>(
        &self,
        cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<T> {
        self.open_one(&self.sealed_in(cookies)?)
    }

    /// The sealed value `cookies` carry, not yet opened: the whole cookie's, or chunks
    /// 1..k (contiguous from the first) joined.
    pub fn sealed_in<'a>(
        &self,
        cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<std::borrow::Cow<'a, str>> {
        let mut whole: Option<&str> = None;
        let mut chunks: [Option<&str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
        for (name, value) in cookies {
            if name == self.name {
                whole = Some(value);
            } else if let Some(i) = self.chunk_index(name) {
                chunks[i - 1] = Some(value);
            }
        }
        if let Some(v) = whole {
            return Some(std::borrow::Cow::Borrowed(v));
        }
        let present: Vec<&str> = chunks.iter().map_while(|c| *c).collect();
        (!present.is_empty()).then(|| std::borrow::Cow::Owned(present.concat()))
    }

    /// Whether `name` is one this codec writes: the whole value's, or a chunk's.
    pub fn owns(&self, name: &str) -> bool {
        name == self.name || self.chunk_index(name).is_some()
    }

    /// `Some(i)` (1-based) when `name` is the codec's chunk `i`.
    fn chunk_index(&self, name: &str) -> Option<usize> {
        let n = name.strip_prefix(self.name.as_str())?.strip_prefix('_')?;
        match n.parse::<usize>() {
            Ok(i @ 1..=MAX_CHUNKS) => Some(i),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct S {
        user: String,
        blob: String,
    }

    fn secret(s: &str) -> Secret {
        Secret::new(format!("{s:0<32}"))
    }

    fn codec(secrets: &[&str]) -> Codec {
        Codec::new(
            "_portcullis",
            &secrets.iter().map(|s| secret(s)).collect::<Vec<_>>(),
        )
    }

    fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }

    #[test]
    fn a_sealed_value_opens_and_says_nothing_in_clear() {
        let c = codec(&["one"]);
        let v = S {
            user: "alice".into(),
            blob: "x".into(),
        };
        let sealed = c.seal(&v).unwrap();
        assert_eq!(sealed.len(), 1);
        assert!(!sealed[0].1.contains("alice"));
        assert_eq!(c.open::<S>(pairs(&sealed)), Some(v));
    }

    #[test]
    fn tampered_truncated_or_planted_cookies_are_no_session() {
        let c = codec(&["one"]);
        let sealed = c
            .seal(&S {
                user: "alice".into(),
                blob: "x".into(),
            })
            .unwrap();
        let mut bytes = sealed[0].1.clone().into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(c.open::<S>([("_portcullis", tampered.as_str())]), None);
        assert_eq!(
            c.open::<S>([("_portcullis", &sealed[0].1[..sealed[0].1.len() - 4])]),
            None
        );
        assert_eq!(
            c.open::<S>([("_portcullis", "{\"user\":\"admin\",\"blob\":\"\"}")]),
            None
        );
        assert_eq!(c.open::<S>([("_portcullis", "")]), None);
        // Sealed under another name (e.g. a login-state cookie) it does not open as a session.
        let other = Codec::new("_portcullis_state", &[secret("one")]);
        let s2 = other
            .seal(&S {
                user: "alice".into(),
                blob: "x".into(),
            })
            .unwrap();
        assert_eq!(c.open::<S>([("_portcullis", s2[0].1.as_str())]), None);
    }

    #[test]
    fn the_first_secret_seals_and_every_secret_opens() {
        let old = codec(&["old"]);
        let rotated = codec(&["new", "old"]);
        let v = S {
            user: "bob".into(),
            blob: "y".into(),
        };
        let by_old = old.seal(&v).unwrap();
        assert_eq!(rotated.open::<S>(pairs(&by_old)), Some(v));
        let by_new = rotated
            .seal(&S {
                user: "bob".into(),
                blob: "y".into(),
            })
            .unwrap();
        assert_eq!(
            old.open::<S>(pairs(&by_new)),
            None,
            "sealed with the new secret"
        );
        let retired = codec(&["new"]);
        assert_eq!(
            retired.open::<S>(pairs(&by_old)),
            None,
            "a retired secret no longer opens"
        );
    }

    #[test]
    fn large_values_are_chunked_and_reassembled() {
        let c = codec(&["one"]);
        let v = S {
            user: "alice".into(),
            blob: "k".repeat(12_000),
        };
        let sealed = c.seal(&v).unwrap();
        assert!(sealed.len() >= 4, "{}", sealed.len());
        assert!(sealed
            .iter()
            .all(|(n, val)| n.starts_with("_portcullis_") && val.len() <= CHUNK_BYTES));
        let mut shuffled = pairs(&sealed);
        shuffled.reverse();
        assert_eq!(c.open::<S>(shuffled.clone()), Some(v));
        shuffled.remove(1);
        assert_eq!(c.open::<S>(shuffled), None, "a missing chunk is no session");
    }

    #[test]
    fn values_needing_more_than_sixteen_chunks_are_refused() {
        let c = codec(&["one"]);
        let v = S {
            user: "alice".into(),
            blob: "k".repeat(CHUNK_BYTES * MAX_CHUNKS),
        };
        assert_eq!(c.seal(&v), Err(SealError::TooLarge));
        let junk: Vec<(String, String)> = (1..=40)
            .map(|i| (format!("_portcullis_{i}"), "A".repeat(100)))
            .collect();
        assert_eq!(c.open::<S>(pairs(&junk)), None);
    }
}
