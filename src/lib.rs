//! Portcullis: a reverse-proxy authentication gateway on pingora.
//!
//! It sits in front of backends that know nothing about OAuth, logs browsers in against an
//! OpenID Connect provider, verifies the bearer tokens of services, enforces per-route
//! rules, and tells the backend who the caller is in plain headers. The contract users see
//! is the README; this crate is the library the `portcullis` binary, the tests and the
//! benches share.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod echo;
pub mod headers;
pub mod html;
pub mod identity;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod secret;
pub mod server;
pub mod session;
pub mod telemetry;
