//! Browser sessions: what a logged-in browser carries, sealed in cookies only the gateway
//! can read, and the small rules around logins (return targets, page loads).
//!
//! `login` runs the login flows and builds sessions, `refresh` takes a session up at each
//! request and renews its tokens, `revocation` ends sessions early (logout, back-channel
//! logout), `store` keeps them in cookies or in Redis.

pub mod browser;
pub mod codec;
pub mod login;
pub mod refresh;
pub mod revocation;
pub mod store;
pub mod target;
