//! Reading what a provider answered: at most [`MAX_BODY`] bytes of it, and its text made
//! fit for one line of output.

/// The most of a provider's answer any command reads.
pub(super) const MAX_BODY: usize = 64 * 1024;
/// The longest provider text (an error description) a line quotes.
pub(super) const MAX_QUOTED: usize = 200;

/// At most [`MAX_BODY`] bytes of an answer, as text; a broken body ends the reading.
pub(super) async fn read_body(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Provider text made fit for one line: no control or bidi characters, at most
/// [`MAX_QUOTED`] characters.
pub(super) fn sanitize(text: &str) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    let clean: String = text
        .chars()
        .map(|c| if invisible(c) { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    match clean.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}
