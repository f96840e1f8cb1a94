//! The commands besides `run` and `demo`, a module each: `check` (what a configuration
//! holds, and the probes of `check --online`), `explain` (the verdict on a bearer token)
//! and `token` (the client-credentials grant). Each returns the text it prints; `main.rs`
//! prints it and picks the exit status.
//!
//! Helpers two commands share live in modules of their own, so imports go one way, from a
//! command to a helper: `words` writes values as `gateway.toml` does, `answer` reads what a
//! provider answered.

mod answer;
mod check;
mod explain;
mod token;
mod words;

pub use check::{check_online, summary};
pub use explain::explain_bearer;
pub use token::client_credentials;
pub use words::allow_toml;
