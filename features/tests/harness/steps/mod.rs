//! The step vocabulary, one module per domain. Steps speak Fleet's terms (clusters, GitRepos,
//! Bundles, BundleDeployments) and are reusable across scenarios.

mod bundle;
mod ca;
mod cluster_status;
mod clusters;
mod drift;
mod git;
mod gitrepo;
mod helmop;
mod lifecycle;
mod rollout;
mod snapshots;
