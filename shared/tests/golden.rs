//! Golden files of rendered `server.properties` for every KafkaCluster sample and broker.
//! Regenerate with `make golden` (UPDATE_GOLDEN=1) and review the diff.

use std::path::PathBuf;

use koperator_shared::api::{KafkaCluster, Kind};
use koperator_shared::defaults;
use koperator_shared::render::objects;
use koperator_shared::render::properties::server_properties;

/// Compares `rendered` with the golden `file` (rewriting it first when updating).
fn check(file: &std::path::Path, rendered: &str, update: bool) {
    if update {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, rendered).unwrap();
    }
    let want = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        want == rendered,
        "{} differs from the rendering; run `make golden` and review:\n{rendered}",
        file.display()
    );
}

#[test]
fn server_properties_match_golden_files() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let samples = root.join("../config/samples");
    let golden = root.join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&samples).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut obj: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        if obj["kind"] != "KafkaCluster" {
            continue;
        }
        obj["metadata"]["namespace"] = "kafka".into();
        defaults::apply(Kind::KafkaCluster, &mut obj, "kafka");
        let cluster: KafkaCluster = serde_json::from_value(obj).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        for b in &cluster.spec.brokers {
            let rendered = server_properties(&cluster, b.id).unwrap();
            check(&golden.join(&stem).join(format!("broker-{}.properties", b.id)), &rendered, update);
            checked += 1;
        }
        // The objects of the first broker and the cluster, as YAML.
        let views = koperator_shared::render::brokers(&cluster);
        let first = &views[0];
        let broker = objects::broker_objects(&cluster, first, "CLUSTER-ID");
        let objects = serde_json::json!({
            "pod": broker.pod,
            "configMap": broker.config_map,
            "pvcs": broker.pvcs,
            "services": objects::services(&cluster),
            "pdb": objects::pdb(&cluster),
        });
        let rendered = serde_saphyr::to_string(&objects).unwrap();
        check(&golden.join(&stem).join(format!("objects-broker-{}.yaml", first.broker.id)), &rendered, update);
    }
    assert!(checked >= 20, "only {checked} brokers rendered");
}
