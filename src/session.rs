//! Browser sessions: what a logged-in browser carries, sealed in cookies only the gateway
//! can read, and the small rules around logins (return targets, page loads).
//!
//! Browser login itself (the code flow with PKCE, the callback, refresh and logout) builds
//! on these pieces and is not in this build yet.

pub mod browser;
pub mod codec;
pub mod login;
pub mod target;
