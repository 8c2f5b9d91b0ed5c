//! Reading a configuration file from disk, choosing the format, and the configuration errors.

use std::fmt;
use std::path::Path;

use super::{ServerConfig, Support, parse_mosquitto_conf_file, parse_toml};

/// A configuration that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Io(String),
    /// The text is not valid in its format (with line or key details).
    Syntax(String),
    /// The values parse but contradict each other or are out of range.
    Invalid(String),
    /// An option this broker cannot honour (with where and why): it refuses to start rather
    /// than run weaker than configured.
    Refused(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io(why) => write!(f, "cannot read configuration: {why}"),
            ConfigError::Syntax(why) => write!(f, "configuration syntax error: {why}"),
            ConfigError::Invalid(why) => write!(f, "invalid configuration: {why}"),
            ConfigError::Refused(why) => write!(f, "unsupported configuration: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A configuration and the warnings met while reading it (e.g. mosquitto options we ignore).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadedConfig {
    /// The configuration.
    pub config: ServerConfig,
    /// One line per ignored option, for the operator.
    pub warnings: Vec<String>,
    /// Every option line of a mosquitto.conf (and its included files) in reading order, with
    /// what this broker does with it; empty for TOML, whose keys are all honoured.
    pub options: Vec<OptionUse>,
}

/// One option line of a mosquitto.conf and what this broker does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionUse {
    /// `file:line`.
    pub at: String,
    /// The line as written (option and value).
    pub line: String,
    /// Honoured, ignored or refused, with the note of the option table.
    pub support: Support,
}

impl From<ServerConfig> for LoadedConfig {
    fn from(config: ServerConfig) -> Self {
        LoadedConfig {
            config,
            warnings: Vec::new(),
            options: Vec::new(),
        }
    }
}

/// Reads `path` as TOML when it ends in `.toml` or looks like TOML (`key = value`, `[table]`),
/// otherwise as a mosquitto.conf.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Io(format!("{}: {e}", path.display())))?;
    let is_toml = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => true,
        Some("conf") => false,
        _ => looks_like_toml(&text),
    };
    if is_toml {
        Ok(LoadedConfig::from(parse_toml(&text)?))
    } else {
        parse_mosquitto_conf_file(&text, path)
    }
}

/// The first meaningful line decides: TOML has `key = value` or `[table]`, mosquitto.conf has
/// `option value`.
fn looks_like_toml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .is_some_and(|line| line.starts_with('[') || line.contains('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(suffix: &str, text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn format_follows_the_extension() {
        let toml = file_with(".toml", "[[listener]]\nport = 1999\n");
        assert_eq!(
            load_file(toml.path()).unwrap().config.listeners[0].port,
            1999
        );
        let conf = file_with(".conf", "listener 1998\n");
        assert_eq!(
            load_file(conf.path()).unwrap().config.listeners[0].port,
            1998
        );
    }

    #[test]
    fn format_is_sniffed_without_an_extension() {
        let toml = file_with("", "# comment\npersistence = true\n");
        assert_eq!(
            load_file(toml.path()).unwrap().config.persistence,
            Some(true)
        );
        let conf = file_with("", "# comment\npersistence true\n");
        assert_eq!(
            load_file(conf.path()).unwrap().config.persistence,
            Some(true)
        );
    }

    #[test]
    fn missing_file_is_an_io_error() {
        assert!(matches!(
            load_file(Path::new("/nonexistent/mqtt.toml")),
            Err(ConfigError::Io(_))
        ));
    }
}
