//! What can be wrong with a config: errors that stop it loading, warnings that do not, and the
//! constructors every section reader uses. Kept apart from `config` so that section readers in
//! other modules (`routing`) report problems without importing the loader that calls them.

use std::fmt;

use serde::Serialize;

/// A problem that does not stop the config from loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    /// YAML path, e.g. `litellm_settings.callbacks` or `model_list[2].litellm_params.api_key`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}:{column}: YAML syntax error: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A value that cannot be served; `line`/`column` are those of the offending node when the
    /// file could be mapped (see [`crate::source_map`]).
    #[error("{file}{}: {path}: {message}", at(*.line, *.column))]
    Invalid {
        file: String,
        path: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

pub(crate) fn invalid(file: &str, path: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        path: path.to_string(),
        message,
        line: None,
        column: None,
    }
}

pub(crate) fn warn(path: &str, message: &str) -> ConfigWarning {
    ConfigWarning {
        path: path.to_string(),
        message: message.to_string(),
    }
}
