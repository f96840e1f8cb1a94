//! The development provider's HTML: the login form, the auto-submitting `form_post` page,
//! and the page after logout. Every value placed in a page is escaped.

use super::realm::USERS;

const BANNER: &str = "NOT FOR PRODUCTION: built-in development provider with fixed passwords";

/// The login form. `request` names the pending authorization request server-side;
/// `error` is shown above the form after a failed attempt.
pub fn login(action: &str, request: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p id=\"error\" class=\"error\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let users: String = USERS
        .iter()
        .map(|u| {
            format!(
                "<li><code>{}</code> / <code>{}</code></li>",
                escape(u.username),
                escape(u.password)
            )
        })
        .collect();
    page(
        "Log in",
        &format!(
            r#"{error}<form method="post" action="{action}">
<input type="hidden" name="request" value="{request}">
<p><label for="username">Username</label><br><input id="username" name="username" autocomplete="username" autofocus></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password"></p>
<p><button id="login" type="submit">Log in</button></p>
</form>
<p class="hint">Demo users:</p><ul class="hint">{users}</ul>"#,
            action = escape(action),
            request = escape(request),
        ),
    )
}

/// OAuth 2.0 Form Post Response Mode: a page that posts `fields` to `target` at once
/// (and offers a button when scripts are off).
pub fn form_post(target: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Submit this form</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{target}">
{inputs}<noscript><button type="submit">Continue</button></noscript>
</form>
</body></html>
"#,
        target = escape(target)
    )
}

/// What the provider shows after a logout with nowhere to return to.
pub fn logged_out() -> String {
    page(
        "Logged out",
        "<p>You are logged out of the demo provider.</p>",
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title} · portcullis demo provider</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem; }}
.warning {{ background: #fff3cd; border: 1px solid #d39e00; padding: .5rem .75rem; }}
.error {{ color: #b00020; font-weight: bold; }}
.hint {{ color: #555; font-size: .9rem; }}
input {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ padding: .4rem 1.2rem; }}
</style></head>
<body>
<p class="warning">{BANNER}</p>
<h1>{title}</h1>
{body}
</body></html>
"#
    )
}

pub use crate::html::escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_break_out_of_an_attribute() {
        let html = form_post(
            "http://127.0.0.1:1/_portcullis/callback",
            &[("state", "\"><script>alert(1)</script>")],
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn the_login_form_has_the_fields_scripts_look_for() {
        let html = login(
            "/realms/demo/protocol/openid-connect/auth",
            "r1",
            Some("bad"),
        );
        for needle in [
            "name=\"username\"",
            "name=\"password\"",
            "id=\"login\"",
            "name=\"request\" value=\"r1\"",
            "id=\"error\"",
            "NOT FOR PRODUCTION",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
    }
}
