//! What a provider's refusal says, read from wherever it put it: a redirect to the
//! callback, a `form_post` page, Keycloak's error page, a JSON answer. Every text is
//! sanitized for one line of output.

use serde_json::Value;
use url::Url;

use crate::commands::answer::sanitize;

/// An OAuth error the provider sent back (`error`, `error_description`), sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProviderError {
    pub(super) error: String,
    pub(super) description: Option<String>,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)?;
        match &self.description {
            Some(d) => write!(f, ": \"{d}\""),
            None => Ok(()),
        }
    }
}

pub(super) fn provider_error(error: &str, description: Option<&str>) -> Option<ProviderError> {
    let error = sanitize(error);
    (!error.is_empty()).then(|| ProviderError {
        error,
        description: description.map(sanitize).filter(|d| !d.is_empty()),
    })
}

/// `error` and `error_description` of a redirect to the callback.
pub(super) fn error_in_redirect(location: &Url) -> Option<ProviderError> {
    let get = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    provider_error(&get("error")?, get("error_description").as_deref())
}

/// `error` and `error_description` of a form_post page that submits itself to the callback.
pub(super) fn form_post_error(html: &str, callback: &str) -> Option<ProviderError> {
    if !html.contains(callback) {
        return None;
    }
    let inputs = hidden_inputs(html);
    let get = |name: &str| {
        inputs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    provider_error(get("error")?, get("error_description"))
}

/// The `name` and `value` of every `<input>` of a page (in any case, as Keycloak writes
/// them in capitals), entities decoded.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<input") {
        let start = from + at;
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let tag = &html[start..end];
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            found.push((name, value));
        }
        from = end;
    }
    found
}

/// The value of attribute `name` in one tag (double or single quotes), entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let start = from + at;
        from = start + name.len();
        let before_ok = start == 0 || lower.as_bytes()[start - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=').filter(|_| before_ok) else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let value = &rest[1..];
        let value = &value[..value.find(quote)?];
        return Some(html_text(value));
    }
    None
}

/// The text of Keycloak's error page (`<div id="kc-error-message"><p …>text</p>`), or of
/// a JSON error answer.
pub(super) fn page_message(body: &str) -> Option<String> {
    if let Some(e) = json_error(body) {
        return Some(e.to_string());
    }
    let div = body.find("kc-error-message")?;
    let after = &body[div..];
    let p = after.find("<p")?;
    let text_start = p + after[p..].find('>')? + 1;
    let text = &after[text_start..];
    let text = &text[..text.find('<').unwrap_or(text.len())];
    let text = sanitize(&html_text(text));
    (!text.is_empty()).then_some(text)
}

/// `error` and `error_description` of a JSON answer.
pub(super) fn json_error(body: &str) -> Option<ProviderError> {
    let v: Value = serde_json::from_str(body).ok()?;
    provider_error(
        v.get("error")?.as_str()?,
        v.get("error_description").and_then(Value::as_str),
    )
}

/// HTML text with the common entities decoded (what Keycloak's templates escape).
fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest.find(';').filter(|&e| e <= 10).map(|e| &rest[1..e]);
        let decoded = entity.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => match e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok().and_then(char::from_u32),
                None => e.strip_prefix('#')?.parse().ok().and_then(char::from_u32),
            },
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &rest[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::answer::MAX_QUOTED;

    #[test]
    fn keycloak_form_post_error_is_read_in_capitals() {
        let page = r#"<HTML><BODY><FORM METHOD="POST" ACTION="http://gw/_portcullis/callback">  <INPUT TYPE="HIDDEN" NAME="error_description" VALUE="Client is not allowed. Implicit flow is disabled for the client." />  <INPUT TYPE="HIDDEN" NAME="state" VALUE="x" />  <INPUT TYPE="HIDDEN" NAME="error" VALUE="unauthorized_client" /></FORM></BODY></HTML>"#;
        let e = form_post_error(page, "http://gw/_portcullis/callback").unwrap();
        assert_eq!(e.error, "unauthorized_client");
        assert!(e.description.unwrap().contains("Implicit flow is disabled"));
        assert_eq!(
            form_post_error(page, "http://other/_portcullis/callback"),
            None
        );
    }

    #[test]
    fn hostile_pages_are_no_panic_and_no_control_characters() {
        for page in [
            "<input",
            "<input name=",
            "<input name=\"error",
            "<input name='error' value='x",
            "&",
            "&#xffffffff;",
            "&#99999999999;",
            "<div id=\"kc-error-message\"><p",
            "\u{0}<input value=\"\u{1b}[31m\" name=error>",
        ] {
            let _ = form_post_error(page, "");
            let _ = page_message(page);
            let _ = html_text(page);
        }
        let e = provider_error("bad\u{1b}[2J", Some(&"\u{202e}x\n".repeat(1000))).unwrap();
        assert!(!e.error.chars().any(char::is_control));
        let d = e.description.unwrap();
        assert!(
            d.chars().count() <= MAX_QUOTED + 1 && !d.contains('\u{202e}'),
            "{d}"
        );
    }

    #[test]
    fn keycloak_error_page_message() {
        let page = "<div id=\"kc-error-message\">\n   <p class=\"instruction\">Invalid redirect uri &amp; more</p>";
        assert_eq!(
            page_message(page).as_deref(),
            Some("Invalid redirect uri & more")
        );
        assert_eq!(
            page_message(r#"{"error":"invalid_request","error_description":"bad"}"#).as_deref(),
            Some("invalid_request: \"bad\"")
        );
    }
}
