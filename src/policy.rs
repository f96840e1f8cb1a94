//! Routing and rules: which route a request belongs to, and what it requires.

pub mod path;
pub mod route;
pub mod rules;
