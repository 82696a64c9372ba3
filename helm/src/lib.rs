//! Helm 3 chart engine.
//!
//! Public API (stable; other crates call these):
//! - [`Chart::load`] (folder or `.tgz`) and [`Chart::from_files`] (in-memory files, paths inside the chart).
//! - [`render`]`(chart, user_values, &RenderOptions)` → [`Rendered`]: manifests in Helm's install
//!   order with their source paths, and [`Rendered::to_helm_template_output`] which prints exactly what
//!   `helm template` prints.
//! - [`values`]: Helm's `--set`/`--set-string`/`--set-file`/`-f` parsing and merging.
//! - [`gotemplate::Template`]: the Go template engine on its own (custom delimiters, `missingkey`,
//!   Sprig with or without env) — what Fleet uses for `fleet.yaml` values templating.
//! - [`repo`]: downloading charts from HTTP(S) chart repositories.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod chart;
pub mod error;
pub mod funcs;
pub mod gotemplate;
pub mod render;
pub mod repo;
pub mod values;
pub mod yaml;

pub use chart::{Chart, ChartFile, Dependency, Metadata};
pub use error::HelmError;
pub use render::{Capabilities, Manifest, RenderOptions, Rendered, render};
