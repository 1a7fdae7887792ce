//! Every manifest in config/samples parses, defaults and passes the admission rules.

use std::path::PathBuf;

use koperator_shared::api::Kind;
use koperator_shared::{defaults, rules};
use serde_json::Value;

fn samples() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("config/samples exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") && path.file_name().unwrap() != "kustomization.yaml" {
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path, value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_sample_passes_defaults_and_rules() {
    let all = samples();
    assert!(all.len() >= 12, "expected the sample set, found {}", all.len());
    let mut kinds = std::collections::HashSet::new();
    for (path, mut obj) in all {
        let kind = Kind::from_kind(obj["kind"].as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("{}: unknown kind", path.display()));
        assert_eq!(obj["apiVersion"], kind.api_version(), "{}", path.display());
        kinds.insert(kind);
        defaults::apply(kind, &mut obj, "default");
        let verdict = rules::validate_value(kind, &obj, None, &rules::RuleConfig::default())
            .unwrap_or_else(|e| panic!("{}: does not decode: {e}", path.display()));
        let errors: Vec<String> = verdict.errors.iter().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        assert!(verdict.warnings.is_empty(), "{}: {:?}", path.display(), verdict.warnings);
        // An UPDATE to the same object is accepted too.
        let again = rules::validate_value(kind, &obj, Some(&obj), &rules::RuleConfig::default()).unwrap();
        assert!(again.allowed(), "{}: update rejected", path.display());
    }
    assert_eq!(kinds.len(), 4, "samples cover all four kinds");
}

#[test]
fn samples_round_trip_through_the_types_without_losing_fields() {
    for (path, obj) in samples() {
        let kind = Kind::from_kind(obj["kind"].as_str().unwrap()).unwrap();
        let typed: Value = match kind {
            Kind::KafkaCluster => serde_json::to_value(
                serde_json::from_value::<koperator_shared::api::KafkaCluster>(obj.clone()).unwrap(),
            ),
            Kind::KafkaTopic => {
                serde_json::to_value(serde_json::from_value::<koperator_shared::api::KafkaTopic>(obj.clone()).unwrap())
            }
            Kind::KafkaUser => {
                serde_json::to_value(serde_json::from_value::<koperator_shared::api::KafkaUser>(obj.clone()).unwrap())
            }
            Kind::CruiseControlOperation => serde_json::to_value(
                serde_json::from_value::<koperator_shared::api::CruiseControlOperation>(obj.clone()).unwrap(),
            ),
        }
        .unwrap();
        // Every field the sample sets is kept (the typed form may add false/empty zero values).
        let patch = json_patch::diff(&obj, &typed);
        let lost: Vec<_> = serde_json::to_value(&patch)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op["op"] != "add")
            .cloned()
            .collect();
        assert!(lost.is_empty(), "{}: fields changed or lost by the types: {lost:#?}", path.display());
    }
}
