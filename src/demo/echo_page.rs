//! The page the demo's echo backend shows a browser's page load: the identity headers the
//! gateway set (user, email, roles, groups, client, scopes, subject) first, then every
//! other header the backend received, and links to what to try next. API clients get the
//! echo backend's JSON as ever.

use crate::config::Headers;
use crate::echo::Received;
use crate::html::{escape, page as html_page, table};

/// The links at the top of the page: the demo's routes and the gateway's endpoints.
const LINKS: [(&str, &str); 4] = [
    ("/app", "/app"),
    ("/admin", "/admin (role admin)"),
    ("/_portcullis/userinfo", "/_portcullis/userinfo"),
    ("/_portcullis/logout?rd=/public/", "log out"),
];

/// The page for `r` (a [`crate::echo::Page`]). The demo's gateway keeps the default
/// `[headers]` names.
pub fn page(r: &Received) -> String {
    let names = Headers::default();
    let identity = [
        ("user", &names.user),
        ("email", &names.email),
        ("roles", &names.roles),
        ("groups", &names.groups),
        ("client", &names.client),
        ("scopes", &names.scopes),
        ("subject", &names.subject),
    ];
    let values = |name: &str| {
        let found: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!found.is_empty()).then(|| found.join(", "))
    };
    let identity_rows: Vec<(String, Option<String>)> = identity
        .iter()
        .map(|(label, name)| (format!("{label} ({name})"), values(name.as_str())))
        .collect();
    let rest: Vec<(String, Option<String>)> = r
        .headers
        .iter()
        .filter(|(n, _)| !identity.iter().any(|(_, name)| name.as_str() == n))
        .map(|(n, v)| (n.clone(), Some(v.clone())))
        .collect();
    let links: String = LINKS
        .iter()
        .map(|(href, text)| format!("<a href=\"{}\">{}</a>", escape(href), escape(text)))
        .collect();
    html_page(
        "What the backend received",
        &format!(
            "<p><code>{} {}</code>, through the gateway. Scripts and API clients get this as \
             JSON.</p>\n<nav>{links}</nav>\n\
             <h2>Identity</h2>\n<p>Set by the gateway; whatever a client sent under these \
             names was removed before.</p>\n{}\
             <h2>Every other request header</h2>\n{}",
            escape(&r.method),
            escape(&r.uri),
            table("identity", &identity_rows),
            table("headers", &rest),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(headers: &[(&str, &str)]) -> Received {
        Received {
            method: "GET".into(),
            uri: "/app?x=<b>".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body_bytes: 0,
            peer: "127.0.0.1:1".parse().unwrap(),
            server: "127.0.0.1:2".parse().unwrap(),
        }
    }

    #[test]
    fn identity_headers_come_before_the_others_whatever_order_they_arrived_in() {
        let html = page(&received(&[
            ("accept", "text/html"),
            ("x-auth-request-groups", "/staff"),
            ("x-auth-request-user", "alice"),
            ("x-forwarded-for", "127.0.0.1"),
        ]));
        let at = |needle: &str| {
            html.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {html}"))
        };
        assert!(at("alice") < at("/staff"), "user before groups");
        assert!(
            at("/staff") < at("<th>accept</th>"),
            "identity before the rest"
        );
        assert!(
            at("<th>accept</th>") < at("<th>x-forwarded-for</th>"),
            "the rest in order"
        );
        assert_eq!(
            html.matches("alice").count(),
            1,
            "an identity header is not repeated"
        );
        assert!(html.contains("<th>email (x-auth-request-email)</th><td><span class=\"absent\">"));
    }

    #[test]
    fn a_header_value_with_markup_shows_as_text() {
        let html = page(&received(&[
            ("x-auth-request-user", "<script>alert(1)</script>"),
            ("x-note", "\"><img src=x onerror=alert(1)>"),
        ]));
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("/app?x=&lt;b&gt;"));
    }
}
