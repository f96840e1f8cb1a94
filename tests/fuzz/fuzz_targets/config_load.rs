//! Configuration loading: `config::parse`, what `config::load` runs on a file's text, then
//! what start-up builds from a configuration that loads (the verifier and the gateway).
//! Relative file paths point into a folder that does not exist.
//!
//! Invariants:
//! - it returns, never panics, and an error says where: line and column within the text
//!   (from 1), a key, a message;
//! - a configuration that loads keeps the promises request code relies on: a listener, an
//!   origin as `public_url`, `max_token_bytes` within 256..=1048576, 1 to 1024 threads, the
//!   admin listener apart from the public ones, at least one route, every route path
//!   normalized and every route with an upstream, unique route names, session secrets of at
//!   least 32 bytes; and the gateway builds from it or says why not.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portcullis::auth::verifier::{http_client, Verifier};
use portcullis::clock::system_clock;
use portcullis::config::{self, ConfigError};
use portcullis::policy::path::normalize;
use portcullis::proxy::{Gateway, InFlight};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/portcullis-fuzz/gateway.toml");
    let cfg = match config::parse(text, path) {
        Err(e) => {
            let shown = e.to_string();
            match e {
                ConfigError::Invalid {
                    line,
                    column,
                    key,
                    message,
                    ..
                } => {
                    let lines = text.split('\n').count();
                    assert!(
                        (1..=lines).contains(&line),
                        "line {line} of {lines}: {shown}"
                    );
                    assert!(column >= 1, "{shown}");
                    assert!(!key.is_empty(), "{shown}");
                    assert!(!message.is_empty() || key == "(file)", "{shown}");
                }
                ConfigError::Read { .. } => panic!("parse read a file: {shown}"),
            }
            return;
        }
        Ok(cfg) => cfg,
    };
    let s = &cfg.server;
    assert!(!s.listen.is_empty());
    assert!(matches!(s.public_url.path(), "" | "/") && s.public_url.query().is_none());
    assert!((256..=1_048_576).contains(&s.max_token_bytes));
    assert!((1..=1024).contains(&s.threads));
    if let Some(admin) = cfg.admin {
        assert!(!s.listen.contains(&admin), "admin on a public listener");
    }
    assert!(!cfg.routes.is_empty());
    let mut names = BTreeSet::new();
    for r in cfg.routes.iter() {
        assert_eq!(
            normalize(&r.path).as_deref(),
            Ok(r.path.as_str()),
            "route {}",
            r.name
        );
        assert!(!r.upstreams.is_empty(), "route {} without upstream", r.name);
        assert!(names.insert(r.name.clone()), "two routes named {}", r.name);
    }
    if let Some(session) = &cfg.session {
        assert!(!session.secrets.is_empty());
        for secret in &session.secrets {
            assert!(secret.expose().len() >= 32, "a short session secret");
        }
    }
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    let http = HTTP.get_or_init(http_client).clone();
    let cfg = Arc::new(cfg);
    let verifier = Arc::new(Verifier::from_config(&cfg, http.clone(), system_clock()));
    let _ = Gateway::new(cfg, verifier, http, InFlight::default());
});
