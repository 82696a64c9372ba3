//! Errors of the chart engine.

/// What went wrong while loading, rendering or fetching a chart.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// A chart could not be read (file, archive, path).
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Chart metadata or layout is invalid (text follows Helm's wording).
    #[error("{0}")]
    InvalidChart(String),
    /// A values file or `--set` expression is invalid.
    #[error("{0}")]
    Values(String),
    /// values.schema.json rejected the values.
    #[error(
        "values don't meet the specifications of the schema(s) in the following chart(s):\n{0}"
    )]
    Schema(String),
    /// A template failed to parse or execute (Go/Helm wording, names the file and line).
    #[error("{0}")]
    Template(String),
    /// A rendered manifest is not valid YAML.
    #[error("{0}")]
    Yaml(String),
    /// A chart repository request failed.
    #[error("{0}")]
    Repo(String),
}

impl HelmError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> HelmError {
        HelmError::Io {
            context: context.into(),
            source,
        }
    }
}
