//! The small HTML pages people read in a browser: the identity `/_portcullis/userinfo`
//! shows a page load, and the demo's echo backend. Every value placed in a page goes
//! through [`escape`]: a header or claim holding `<script>` shows as text.

use crate::identity::Identity;

/// Escapes text for an HTML element or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (text, escaped here) and `body` (HTML, escaped by the caller).
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }}
th, td {{ text-align: left; vertical-align: top; padding: .25rem .5rem; border-bottom: 1px solid #ddd; }}
th {{ white-space: nowrap; width: 12rem; }}
td {{ font-family: ui-monospace, monospace; word-break: break-all; }}
.absent {{ color: #888; font-family: system-ui, sans-serif; }}
nav a {{ margin-right: 1rem; }}
</style></head>
<body>
<h1>{title}</h1>
{body}
</body></html>
"#,
        title = escape(title)
    )
}

/// A table of `(name, value)` rows with `id`; `None` shows as "not sent" (`absent`).
pub fn table(id: &str, rows: &[(String, Option<String>)]) -> String {
    let rows: String = rows
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Some(v) => escape(v),
                None => "<span class=\"absent\">not sent</span>".to_owned(),
            };
            format!("<tr><th>{}</th><td>{value}</td></tr>\n", escape(name))
        })
        .collect();
    format!("<table id=\"{}\">\n{rows}</table>\n", escape(id))
}

/// A list joined as the identity headers join it (`,`), or `None` when empty.
fn list(values: &[String]) -> Option<String> {
    (!values.is_empty()).then(|| values.join(","))
}

/// The rows of an identity, in the order a person reads them: who (user, email), what
/// they may do (roles, groups), the client and its scopes, then subject and expiry.
pub fn identity_rows(who: &Identity) -> Vec<(String, Option<String>)> {
    [
        ("user", who.user.clone()),
        ("email", who.email.clone()),
        ("roles", list(&who.roles)),
        ("groups", list(&who.groups)),
        ("client", who.client.clone()),
        ("scopes", list(&who.scopes)),
        ("subject", who.subject.clone()),
        ("expires_at", who.expires_at.map(|e| e.to_string())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// What `/_portcullis/userinfo` shows a browser's page load: the same fields as its JSON.
pub fn userinfo(who: &Identity) -> String {
    page(
        "Who you are",
        &format!(
            "<p>The identity the gateway passes to backends for this session or token \
             (JSON for API clients: send <code>Accept: application/json</code>).</p>\n{}\
             <nav><a href=\"/\">home</a><a href=\"/_portcullis/logout\">log out</a></nav>\n",
            table("identity", &identity_rows(who))
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cannot_open_a_tag_or_leave_an_attribute() {
        let who = Identity {
            user: Some("<script>alert(1)</script>".into()),
            email: Some("\"><img src=x onerror=alert(1)>@example.com".into()),
            roles: vec!["a&b".into(), "c".into()],
            ..Identity::default()
        };
        let html = userinfo(&who);
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&quot;&gt;&lt;img"), "{html}");
        assert!(html.contains("<td>a&amp;b,c</td>"), "{html}");
    }

    #[test]
    fn the_userinfo_page_shows_every_field_of_the_json_in_reading_order() {
        let who = Identity {
            user: Some("alice".into()),
            email: Some("alice@example.com".into()),
            roles: vec!["admin".into(), "user".into()],
            groups: vec!["/staff".into()],
            subject: Some("sub-1".into()),
            expires_at: Some(1_800_000_000),
            ..Identity::default()
        };
        let html = userinfo(&who);
        let at = |needle: &str| {
            html.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing: {html}"))
        };
        let order = [
            "<th>user</th><td>alice</td>",
            "<th>email</th><td>alice@example.com</td>",
            "<th>roles</th><td>admin,user</td>",
            "<th>groups</th><td>/staff</td>",
            "<th>client</th><td><span class=\"absent\">",
            "<th>scopes</th>",
            "<th>subject</th><td>sub-1</td>",
            "<th>expires_at</th><td>1800000000</td>",
        ];
        let places: Vec<usize> = order.iter().map(|n| at(n)).collect();
        assert!(places.windows(2).all(|w| w[0] < w[1]), "{html}");
        at("href=\"/_portcullis/logout\"");
    }
}
