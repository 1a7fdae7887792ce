//! Golden files of rendered `server.properties` for every KafkaCluster sample and broker, and of
//! the objects around them (the first broker's, Cruise Control's, Envoy's, Contour's and Gateway
//! API's).
//! Regenerate with `make golden` (UPDATE_GOLDEN=1) and review the diff. A sample whose brokers
//! could not start (`support::Effect::CannotStart`, e.g. a SASL_SSL listener without a JAAS configuration)
//! has no golden files: the operator renders nothing for it, and a golden file must never
//! approve output that cannot run.

use std::path::PathBuf;

use koperator_shared::api::KafkaCluster;
use koperator_shared::render::objects;
use koperator_shared::render::properties::server_properties;
use koperator_shared::support;
use koperator_shared::validated::must;

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
    let mut blocked = Vec::new();
    let mut with_cruise_control = 0;
    let mut with_envoy = 0;
    let mut with_routes = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&samples).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut obj: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        if obj["kind"] != "KafkaCluster" {
            continue;
        }
        obj["metadata"]["namespace"] = "kafka".into();
        let cluster = must(&serde_json::from_value::<KafkaCluster>(obj).unwrap());
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if support::blocks_start(cluster.unsupported()) {
            assert!(!golden.join(&stem).exists(), "{stem}: golden files approve a cluster that cannot start");
            blocked.push(stem);
            continue;
        }
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
            "jmxExporterConfigMap": koperator_shared::render::jmx::config_map(&cluster),
            "pvcs": broker.pvcs,
            "services": objects::services(&cluster),
            "pdb": objects::pdb(&cluster),
        });
        let rendered = serde_saphyr::to_string(&objects).unwrap();
        check(&golden.join(&stem).join(format!("objects-broker-{}.yaml", first.broker.id)), &rendered, update);
        // Cruise Control's objects, for the samples that deploy it.
        let cc_file = golden.join(&stem).join("cruise-control.yaml");
        match koperator_shared::render::cruise_control::objects(&cluster) {
            Some(cc) => {
                let objects = serde_json::json!({
                    "deployment": cc.deployment,
                    "service": cc.service,
                    "configMap": cc.config_map,
                    "jmxExporterConfigMap": cc.jmx_config_map,
                    "topic": cc.topic,
                });
                check(&cc_file, &serde_saphyr::to_string(&objects).unwrap(), update);
                with_cruise_control += 1;
            }
            None => {
                if update {
                    let _ = std::fs::remove_file(&cc_file);
                }
                assert!(!cc_file.exists(), "{stem}: a Cruise Control golden file for a cluster without it");
            }
        }
        // Envoy's objects, for the samples with an external listener behind it (its
        // configuration is also checked by the real Envoy in e2e/tests/envoy_config.rs).
        let envoy_file = golden.join(&stem).join("envoy.yaml");
        let envoy = koperator_shared::render::envoy::objects(&cluster);
        if envoy.is_empty() {
            if update {
                let _ = std::fs::remove_file(&envoy_file);
            }
            assert!(!envoy_file.exists(), "{stem}: an Envoy golden file for a cluster without Envoy");
        } else {
            let objects: Vec<serde_json::Value> = envoy
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "configMap": e.config_map, "deployment": e.deployment, "service": e.service, "pdb": e.pdb,
                    })
                })
                .collect();
            check(&envoy_file, &serde_saphyr::to_string(&objects).unwrap(), update);
            with_envoy += 1;
        }
        // Contour's HTTPProxies and Gateway API's TLSRoutes with their Services (the real CRD
        // schemas accept them: e2e/tests/ingress_crds.rs).
        let routed = [
            ("contour.yaml", koperator_shared::render::contour::objects(&cluster)),
            ("gateway-api.yaml", koperator_shared::render::gateway::objects(&cluster)),
        ];
        for (name, objects) in routed {
            let file = golden.join(&stem).join(name);
            if objects.services.is_empty() && objects.routes.is_empty() {
                if update {
                    let _ = std::fs::remove_file(&file);
                }
                assert!(!file.exists(), "{stem}: a {name} golden file for a cluster without such routes");
                continue;
            }
            let value = serde_json::json!({"services": objects.services, "routes": objects.routes});
            check(&file, &serde_saphyr::to_string(&value).unwrap(), update);
            with_routes += 1;
        }
    }
    assert!(checked >= 20, "only {checked} brokers rendered");
    assert!(with_routes >= 3, "only {with_routes} samples route through Contour or Gateway API");
    assert!(with_envoy >= 1, "no sample deploys Envoy");
    assert!(blocked.is_empty(), "samples that cannot start: {blocked:?}");
    assert!(with_cruise_control >= 2, "only {with_cruise_control} samples deploy Cruise Control");
}
