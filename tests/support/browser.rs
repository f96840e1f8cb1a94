//! A browser-like HTTP client for login tests: a cookie jar per host:port (as browsers keep
//! them for loopback), and no automatic redirects, so every redirect is inspected before it
//! is followed.

use std::collections::BTreeMap;

/// What one request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Resolved against the request's URL.
    pub location: Option<String>,
    pub body: String,
}

pub struct Browser {
    pub http: reqwest::Client,
    /// host:port → cookie name → value.
    pub jar: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: super::client(),
            jar: BTreeMap::new(),
        }
    }

    /// The jar key of a URL: host:port.
    pub fn origin(url: &str) -> String {
        let u = url::Url::parse(url).unwrap();
        format!(
            "{}:{}",
            u.host_str().unwrap(),
            u.port_or_known_default().unwrap()
        )
    }

    /// The `Cookie` header this browser sends to `url`.
    pub fn cookie_header(&self, url: &str) -> String {
        self.jar
            .get(&Self::origin(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn keep(&mut self, url: &str, resp: &reqwest::Response) {
        let jar = self.jar.entry(Self::origin(url)).or_default();
        for sc in resp.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            let expired = c.max_age().is_some_and(|a| a.is_zero()) || c.value().is_empty();
            if expired {
                jar.remove(c.name());
            } else {
                jar.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
    }

    /// Sends `req` (to `url`) with this browser's cookies, and keeps what it sets.
    pub async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Answer {
        let resp = req
            .header("Cookie", self.cookie_header(url))
            .send()
            .await
            .unwrap();
        self.keep(url, &resp);
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| {
            let l = l.to_str().unwrap();
            url::Url::parse(url).unwrap().join(l).unwrap().to_string()
        });
        Answer {
            status,
            location,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// A page load (what a browser sends when the user opens a URL).
    pub async fn open(&mut self, url: &str) -> Answer {
        let req = self
            .http
            .get(url)
            .header("Accept", "text/html")
            .header("Sec-Fetch-Mode", "navigate");
        self.send(req, url).await
    }

    /// A request the way an SPA's `fetch` sends it (never a page load).
    pub async fn fetch(&mut self, url: &str) -> Answer {
        let req = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .header("Sec-Fetch-Mode", "cors");
        self.send(req, url).await
    }

    /// Follows `a` through the provider (its login form included) until the provider sends
    /// the browser back to the gateway's callback; returns that URL, not yet opened.
    pub async fn through_login(&mut self, mut a: Answer, user: &str, password: &str) -> String {
        for _ in 0..10 {
            let loc = a.location.clone().expect("a redirect");
            if loc.contains("/login-actions/") && a.status == 303 {
                let page = self.open(&loc).await;
                assert!(
                    page.body.contains("name=\"username\""),
                    "no login form: {}",
                    page.body
                );
                let form = self
                    .http
                    .post(&loc)
                    .form(&[("username", user), ("password", password)]);
                a = self.send(form, &loc).await;
                continue;
            }
            if loc.contains("/_portcullis/callback") {
                return loc;
            }
            a = self.open(&loc).await;
        }
        panic!("too many redirects");
    }

    /// Opens `start` and, if sent to log in, logs in and opens the callback.
    pub async fn log_in(&mut self, start: &str, user: &str, password: &str) -> Answer {
        let first = self.open(start).await;
        if first.location.is_none() {
            return first;
        }
        let callback = self.through_login(first, user, password).await;
        self.open(&callback).await
    }
}

/// The action and the hidden fields of the first form of an HTML page.
pub fn hidden_form(html: &str) -> (String, Vec<(String, String)>) {
    fn attr(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + tag[start..].find('"')?;
        Some(
            tag[start..end]
                .replace("&amp;", "&")
                .replace("&quot;", "\"")
                .replace("&#x2F;", "/")
                .replace("&#x3D;", "="),
        )
    }
    let form_at = html.find("<form").expect("a form");
    let form_tag = &html[form_at..form_at + html[form_at..].find('>').unwrap()];
    let action = attr(form_tag, "action").expect("a form action");
    let fields = html[form_at..]
        .split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    (action, fields)
}
