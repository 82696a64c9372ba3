//! Every `bundle.yaml` recorded from Go's `fleet apply -o -` deserialises into `Bundle` and
//! serialises back to the same JSON value: no field lost, renamed, added or defaulted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleet_api::Bundle;
use pretty_assertions::assert_eq;

#[test]
fn recorded_fleet_apply_bundles_round_trip_through_bundle() {
    let expected = common::shared_dir().join("conformance/fleet-examples/tests/expected");
    let files = common::find_files(&expected, "bundle.yaml");
    assert!(
        files.len() >= 5,
        "expected the 5 recorded bundles under {}, found {}",
        expected.display(),
        files.len()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let original: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let bundle: Bundle =
            fleet_api::parse_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let round_tripped = serde_json::to_value(&bundle).unwrap();
        assert_eq!(round_tripped, original, "{}", file.display());
    }
}
