//! The session's cookies as the browser sees them: their attributes (`Path=/`, `HttpOnly`,
//! `SameSite`, `Secure` on https, the configured `Domain`), the `Set-Cookie` values that
//! carry a sealed value in one cookie or in chunks, and the ones that clear them.

use std::time::Duration;

use super::codec::Codec;

/// Writes the session's `Set-Cookie` values.
#[derive(Debug)]
pub struct CookieJar {
    /// Knows which names are the session cookie and its chunks.
    names: Codec,
    same_site: cookie::SameSite,
    domain: Option<String>,
    /// `Secure` (the public URL is https).
    pub secure: bool,
}

impl CookieJar {
    pub fn new(
        names: Codec,
        same_site: crate::config::SameSite,
        domain: Option<String>,
        secure: bool,
    ) -> CookieJar {
        let same_site = match same_site {
            crate::config::SameSite::Lax => cookie::SameSite::Lax,
            crate::config::SameSite::Strict => cookie::SameSite::Strict,
            crate::config::SameSite::None => cookie::SameSite::None,
        };
        CookieJar {
            names,
            same_site,
            domain,
            secure,
        }
    }

    /// A `Set-Cookie` value with the session attributes.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        self.cookie_with(name, value, max_age, self.same_site)
    }

    /// A `Set-Cookie` value with the session attributes but `same_site`; `SameSite=None`
    /// is always `Secure` (browsers drop it otherwise).
    pub fn cookie_with(
        &self,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
        same_site: cookie::SameSite,
    ) -> String {
        let mut c = cookie::Cookie::build((name.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .same_site(same_site)
            .secure(self.secure || same_site == cookie::SameSite::None);
        if let Some(d) = &self.domain {
            c = c.domain(d.clone());
        }
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
        }
        c.build().to_string()
    }

    /// A `Set-Cookie` value that deletes `name`.
    pub fn clear_cookie(&self, name: &str) -> String {
        self.set_cookie(name, "", Some(Duration::ZERO))
    }

    /// The `Set-Cookie` values that carry `sealed` (the session cookie, or its chunks, as
    /// [`Codec::seal`] made them) until `exp`, and clear any other session cookie (an old
    /// chunk) the request carried. `cookies` are the request's.
    pub fn carrying(
        &self,
        sealed: &[(String, String)],
        exp: u64,
        now: u64,
        cookies: &[(&str, &str)],
    ) -> Vec<String> {
        let max_age = Duration::from_secs(exp.saturating_sub(now));
        let mut out: Vec<String> = sealed
            .iter()
            .map(|(n, v)| self.set_cookie(n, v, Some(max_age)))
            .collect();
        let mut stale: Vec<&str> = self
            .carried(cookies)
            .filter(|n| !sealed.iter().any(|(used, _)| used == n))
            .collect();
        stale.sort_unstable();
        stale.dedup();
        out.extend(stale.into_iter().map(|n| self.clear_cookie(n)));
        out
    }

    /// `Set-Cookie` values that end the session: one for each session cookie the request
    /// carried (`cookies`), not one for every name a session could use.
    pub fn clear(&self, cookies: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<&str> = self.carried(cookies).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| self.clear_cookie(n)).collect()
    }

    /// The names of the session cookies (the cookie and its chunks) that `cookies` carry.
    fn carried<'c>(&'c self, cookies: &'c [(&'c str, &'c str)]) -> impl Iterator<Item = &'c str> {
        cookies
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| self.names.owns(n))
    }
}

/// Cookie pairs from a request's `Cookie` headers.
pub fn request_cookies(req: &pingora::http::RequestHeader) -> Vec<(&str, &str)> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect()
}
