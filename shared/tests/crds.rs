//! The checked-in CRDs are exactly what the Rust types generate.

use std::path::PathBuf;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/crd/bases");
    let mut expected: Vec<String> = Vec::new();
    for (name, content) in koperator_shared::crd::files() {
        let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(on_disk == content, "config/crd/bases/{name} differs from the Rust types: run `make crds` and commit");
        expected.push(name);
    }
    let mut present: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    present.sort();
    expected.sort();
    assert_eq!(present, expected, "config/crd/bases holds files the types do not generate");
}

#[test]
fn chart_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/koperator/crds");
    for (name, content) in koperator_shared::crd::chart_files() {
        let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            on_disk == content,
            "charts/koperator/crds/{name} differs from the Rust types: run `make crds` and commit"
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        koperator_shared::crd::chart_files().len(),
        "stray files in the chart's crds/"
    );
}

#[test]
fn crds_are_namespaced_with_status_short_names_and_koperator_group() {
    for crd in koperator_shared::crd::all() {
        assert_eq!(crd.spec.group, "kafka.banzaicloud.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert!(crd.spec.names.short_names.as_ref().is_some_and(|s| s.len() == 1));
        let v = &crd.spec.versions[0];
        assert!(
            v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} has a status subresource",
            crd.spec.names.kind
        );
    }
}

/// The bounds of `api::schema` reach the CRDs the API server enforces (#14 item 2): lists and
/// texts a tenant could blow up are limited where they are declared.
#[test]
fn crds_bound_lists_and_texts() {
    use koperator_shared::api::schema::*;
    let schema = |kind: &str| {
        let crd = koperator_shared::crd::all().into_iter().find(|c| c.spec.names.kind == kind).unwrap();
        let v = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
        serde_json::to_value(v).unwrap()
    };
    let spec = |kind: &str| schema(kind)["properties"]["spec"].clone();
    let cluster = spec("KafkaCluster");
    let user = spec("KafkaUser");
    let topic = spec("KafkaTopic");
    let listeners = &cluster["properties"]["listenersConfig"]["properties"];
    for (what, got, want) in [
        ("KafkaCluster spec.brokers", &cluster["properties"]["brokers"]["maxItems"], MAX_BROKERS),
        ("internalListeners", &listeners["internalListeners"]["maxItems"], MAX_LISTENERS),
        ("externalListeners", &listeners["externalListeners"]["maxItems"], MAX_LISTENERS),
        ("readOnlyConfig", &cluster["properties"]["readOnlyConfig"]["maxLength"], MAX_CLUSTER_CONFIG_LENGTH),
        ("KafkaUser spec.topicGrants", &user["properties"]["topicGrants"]["maxItems"], MAX_TOPIC_GRANTS),
        ("KafkaUser spec.dnsNames", &user["properties"]["dnsNames"]["maxItems"], MAX_DNS_NAMES),
        ("KafkaTopic spec.name", &topic["properties"]["name"]["maxLength"], MAX_TOPIC_NAME_LENGTH),
    ] {
        assert_eq!(got.as_u64(), Some(want as u64), "{what}: {got}");
    }
}
