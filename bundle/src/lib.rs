//! Bundles from folders: reading `fleet.yaml` and bundle folders into `Bundle`s (what
//! `fleet apply` and the GitOps controller do), matching bundles to clusters, merging target
//! customizations, templating Helm values per cluster, and rendering the manifests an agent
//! deploys (what `fleet test` prints).
//!
//! Module names follow Fleet's Go packages where the concept exists there:
//! [`bundlereader`] (folder → Bundle), [`fleetyaml`], [`target`] (matcher), [`options`]
//! (merge), [`values`] (Helm values templating), [`render`] (helmdeployer: overlays, kustomize,
//! Helm, objectset labels), [`names`], [`manifest`], [`content`], plus [`apply`] (the folder walk
//! of `fleet apply`) and [`goyaml`] (Go-compatible YAML output).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod apply;
pub mod bundlereader;
pub mod content;
pub mod fleetyaml;
pub mod goyaml;
pub mod ignore;
pub mod manifest;
pub mod names;
pub mod options;
pub mod render;
pub mod target;
pub mod values;
