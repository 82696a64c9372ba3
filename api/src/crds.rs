//! CustomResourceDefinitions generated from the types in this crate.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD fleet-rs serves, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    Vec::new()
}

/// All CRDs as a multi-document YAML stream (`---` separated), as `fleet crds` prints them.
pub fn to_yaml() -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd)?);
    }
    Ok(out)
}
