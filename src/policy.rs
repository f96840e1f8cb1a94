//! Routing and rules: which route a request belongs to, and what it requires.

pub mod form_method;
pub mod path;
pub mod route;
pub mod rules;

/// How a route authenticates its callers (`auth` in `gateway.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A browser session; a page load without one is sent to log in.
    Login,
    /// `Authorization: Bearer` only.
    Bearer,
    /// A bearer token when one is sent, else the browser session.
    Any,
    /// No authentication.
    Public,
}

impl AuthMode {
    /// The word `gateway.toml` uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Login => "login",
            AuthMode::Bearer => "bearer",
            AuthMode::Any => "any",
            AuthMode::Public => "public",
        }
    }
}
