//! Parsing Fleet objects from user-supplied text with errors that name the failing field.

use serde::de::DeserializeOwned;

/// Why a Fleet object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The text is not YAML, or the YAML does not fit the type; `path` is the field path
    /// (`spec.helm.values`), `.` for the document root.
    #[error("{path}: {message}")]
    Yaml {
        /// Field path where deserialisation failed.
        path: String,
        /// What was wrong, with the line and column when known.
        message: String,
    },
    /// The JSON does not fit the type.
    #[error("{path}: {message}")]
    Json {
        /// Field path where deserialisation failed.
        path: String,
        /// What was wrong, with the line and column when known.
        message: String,
    },
}

impl ApiError {
    /// Field path of the error (`.` when the document itself is wrong).
    pub fn path(&self) -> &str {
        match self {
            ApiError::Yaml { path, .. } | ApiError::Json { path, .. } => path,
        }
    }
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    // `Path`'s Display prints "." for the root and "a.b[0].c" otherwise.
    path.to_string()
}

/// Parses one YAML document into `T`; the error names the field path.
pub fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = path_string(err.path());
        let message = err.into_inner().to_string();
        // serde_norway already prefixes some messages with the path it tracks itself.
        let message = match message.strip_prefix(&format!("{path}: ")) {
            Some(rest) => rest.to_string(),
            None => message,
        };
        ApiError::Yaml { path, message }
    })
}

/// Parses JSON text into `T`; the error names the field path.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| ApiError::Json {
            path: path_string(err.path()),
            message: err.into_inner().to_string(),
        })?;
    deserializer.end().map_err(|err| ApiError::Json {
        path: ".".to_string(),
        message: err.to_string(),
    })?;
    Ok(value)
}

/// Converts an already parsed JSON value (e.g. a dynamic object) into `T`; the error names
/// the field path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| ApiError::Json {
        path: path_string(err.path()),
        message: err.into_inner().to_string(),
    })
}
