//! What is wrong with a configuration: [`ConfigError`], which names the file, line, column
//! and key, and the [`Locator`] that turns the parser's byte offsets into them.

use thiserror::Error;

/// A configuration that cannot be used. `Display` is the message a user sees.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: `{key}`: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The key the error is about (`routes[1].auth`), for tests and tooling.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Turns byte offsets into line and column.
pub struct Locator<'a> {
    pub text: &'a str,
    pub file: String,
}

impl Locator<'_> {
    pub fn at(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::Invalid {
            file: self.file.clone(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn span<T>(
        &self,
        s: &toml::Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        self.at(s.span().start, key, message)
    }

    pub fn toml_error(&self, e: &toml::de::Error, key: String) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim().to_owned();
        let key = if key.is_empty() {
            "(file)".to_owned()
        } else {
            key
        };
        self.at(offset, key, message)
    }
}

/// `serde_path_to_error` sees the inside of `toml::Spanned`; hide it from users.
pub fn clean_path(p: &str) -> String {
    p.split('.')
        .filter(|seg| !seg.contains("$__serde_spanned") && *seg != "?")
        .collect::<Vec<_>>()
        .join(".")
        .replace(".[", "[")
}
