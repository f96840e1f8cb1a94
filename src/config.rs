//! `gateway.toml`: loading, validation, and the runtime configuration.
//!
//! [`load`] reads the file into the serde mirror in [`file`], where leaf values validate
//! themselves ([`value`]), then [`build`] turns it into [`Config`] ([`runtime`]) in one
//! step. Every error ([`error`]) names the file, line, column and key, and says what would
//! be accepted. Request code only ever sees [`Config`].

mod build;
pub mod error;
pub mod file;
pub mod runtime;
pub mod value;

use std::path::Path;

use build::Builder;
pub use error::ConfigError;
use error::{clean_path, Locator};
pub use runtime::*;

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    parse(&text, path)
}

/// Validates configuration text; `path` names it in errors and anchors relative file paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let here = Locator {
        text,
        file: path.display().to_string(),
    };
    let de = toml::Deserializer::parse(text).map_err(|e| here.toml_error(&e, String::new()))?;
    let raw: file::File = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = clean_path(&e.path().to_string());
        here.toml_error(e.inner(), key)
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Builder {
        here: &here,
        base: &base,
    }
    .build(raw, path)
}
