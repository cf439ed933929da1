//! Configuration: figment layers (built-in defaults < TOML file < `CHATGATE_`
//! environment) deserialized into raw structs that reject unknown keys, then
//! validated all at once into a typed, immutable [`Config`].
//!
//! Validation reports *every* problem in one go, each naming its key path and
//! where the value came from (the file or the environment variable), because ops
//! fix configs in a deploy loop where one error per attempt is expensive.
//!
//! - `raw.rs` holds the serde structs as ops write them (`deny_unknown_fields`,
//!   each table's defaults in one `Default` impl, each field documented);
//! - `validate.rs` turns them into typed values, collecting every problem;
//! - `types.rs` holds the typed [`Config`] and its parts, re-exported here;
//! - this module loads the layers and names each value's origin.
//!
//! ```
//! let config = chatgate::config::from_toml_str(
//!     r#"
//!     [providers.chatling]
//!     api_key = "sk-example"
//!
//!     [bots.helpdesk]
//!     provider = "chatling"
//!     chatbot_id = "5551234001"
//!
//!     [clients.analytics]
//!     key = "analytics-demo-key-0123"
//!     bots = ["helpdesk"]
//!     "#,
//! )
//! .expect("a valid config");
//! assert_eq!(config.providers["chatling"].base_url, "https://api.chatling.ai/v2");
//! ```

mod raw;
#[cfg(test)]
mod tests;
mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;

pub use types::{
    Backend, BotConfig, BotScope, CacheConfig, ClientConfig, Config, ProviderConfig, Rate,
    ServerConfig,
};

use raw::RawConfig;

/// The environment variable prefix for overrides; `__` separates key levels.
pub const ENV_PREFIX: &str = "CHATGATE_";

/// Environment variables with the prefix that are not config keys.
const ENV_NOT_KEYS: [&str; 2] = ["config", "log_format"];

/// A configuration that failed to load or validate: one line per problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// Every problem found, each naming its key path and origin.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

/// Where the config file is looked for: `--config`, else `$CHATGATE_CONFIG`, else
/// `./config.toml` (clap resolves the first two).
pub fn resolve_path(cli: Option<PathBuf>) -> PathBuf {
    cli.unwrap_or_else(|| PathBuf::from("config.toml"))
}

/// Loads and validates the file at `path` with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::one(format!(
            "config file {} not found (set --config PATH or CHATGATE_CONFIG)",
            path.display()
        )));
    }
    let figment = Figment::new()
        .merge(Toml::file_exact(path))
        .merge(env_provider());
    from_figment(&figment, path)
}

/// Validates a TOML document with no environment overrides (tests, demo).
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    from_figment(
        &Figment::new().merge(Toml::string(toml)),
        Path::new("<inline>"),
    )
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(|k| !ENV_NOT_KEYS.iter().any(|n| k == *n))
}

/// Names where a key's value came from: the file, or the exact env variable.
fn origin(figment: &Figment, key: &str) -> String {
    let Some(meta) = figment.find_metadata(key) else {
        return format!("`{key}`");
    };
    let keys: Vec<&str> = key.split('.').collect();
    match &meta.source {
        Some(figment::Source::File(p)) => format!("`{key}` in {}", p.display()),
        _ if meta.name.contains("environment") => format!(
            "`{key}` (environment variable {ENV_PREFIX}{})",
            keys.join("__").to_ascii_uppercase()
        ),
        _ => format!("`{key}`"),
    }
}

/// Extracts the raw structs from the layered `figment` and validates them, each
/// problem naming where its value came from.
fn from_figment(figment: &Figment, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = figment.extract().map_err(|e| ConfigError {
        // Figment names keys with their profile (`default.`), which ops never wrote.
        problems: e
            .into_iter()
            .map(|e| e.to_string().replace("key \"default.", "key \""))
            .collect(),
    })?;
    validate::validate(&raw, path, |key| origin(figment, key))
}
