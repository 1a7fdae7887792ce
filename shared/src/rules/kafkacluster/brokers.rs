//! Broker rules (rule 5): ids, config groups, storage, config strings and resources.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::{broker_path, group_path, spec_path};
use crate::api::kafkacluster::{BrokerConfig, KafkaClusterSpec, StorageConfig};
use crate::rules::{FieldError, Path, properties, quantity};

/// Broker ids are unique and within 0..65534; there is at least one broker.
pub fn ids(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.brokers.is_empty() {
        errs.push(FieldError::required(
            &spec_path().child("brokers"),
            "add at least one broker, e.g. brokers: [{id: 0}]",
        ));
    }
    let mut seen = HashSet::new();
    for (i, b) in spec.brokers.iter().enumerate() {
        let path = broker_path(i).child("id");
        if !(0..=65534).contains(&b.id) {
            errs.push(FieldError::invalid(&path, b.id, "broker ids must be between 0 and 65534"));
        }
        if !seen.insert(b.id) {
            errs.push(FieldError::duplicate(&path, b.id, "every broker needs its own id; pick an unused one"));
        }
    }
    errs
}

/// Every `brokerConfigGroup` exists; every broker ends up with storage; each storage config has
/// an absolute, unique mount path and exactly one of `pvcSpec`/`emptyDir` with a parseable size.
pub fn groups_and_storage(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (name, group) in spec.broker_config_groups.iter().flatten() {
        errs.extend(storage_configs(group, &group_path(name)));
    }
    for (i, b) in spec.brokers.iter().enumerate() {
        let path = broker_path(i);
        if let Some(group) = b.broker_config_group.as_deref().filter(|g| !g.is_empty())
            && spec.group_of(b).is_none()
        {
            let known: Vec<&str> = spec.broker_config_groups.iter().flatten().map(|(k, _)| k.as_str()).collect();
            errs.push(FieldError::not_found(
                &path.child("brokerConfigGroup"),
                group,
                format!("no such entry in spec.brokerConfigGroups (defined: {known:?}); add the group or fix the name"),
            ));
            continue;
        }
        if let Some(own) = &b.broker_config {
            errs.extend(storage_configs(own, &path.child("brokerConfig")));
        }
        if b.effective_storage(spec).is_empty() {
            errs.push(FieldError::required(
                &path.child("brokerConfig").child("storageConfigs"),
                format!(
                    "broker {} has no storage: add brokerConfig.storageConfigs, or use a brokerConfigGroup that has storageConfigs",
                    b.id
                ),
            ));
        }
    }
    errs
}

fn storage_configs(config: &BrokerConfig, base: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (j, sc) in config.storage_configs.iter().flatten().enumerate() {
        let path = base.child("storageConfigs").index(j);
        errs.extend(storage_config(sc, &path));
        // `/data` and `/data/` are one directory (and one entry of log.dirs).
        let dir = sc.mount_path.trim_end_matches('/');
        if !sc.mount_path.is_empty() {
            if seen.contains(&dir) {
                errs.push(FieldError::duplicate(
                    &path.child("mountPath"),
                    &sc.mount_path,
                    "each disk needs its own mount path",
                ));
            }
            seen.push(dir);
        }
    }
    errs
}

fn storage_config(sc: &StorageConfig, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if sc.mount_path.is_empty() {
        errs.push(FieldError::required(&path.child("mountPath"), "set an absolute mount path such as /kafka-logs"));
    } else if let Some(why) = mount_path_problem(&sc.mount_path) {
        errs.push(FieldError::invalid(&path.child("mountPath"), &sc.mount_path, why));
    }
    match (&sc.pvc_spec, &sc.empty_dir) {
        (None, None) => errs.push(FieldError::required(
            path,
            "set pvcSpec (a PersistentVolumeClaim, kept across restarts) or emptyDir (data lost with the Pod)",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            &path.child("emptyDir"),
            "set",
            "set only one of pvcSpec and emptyDir; remove emptyDir to keep data on a PersistentVolumeClaim",
        )),
        (Some(pvc), None) => {
            let size = pvc.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage"));
            let size_path = path.child("pvcSpec").child("resources").child("requests").child("storage");
            match size {
                None => errs.push(FieldError::required(&size_path, "set the disk size, e.g. storage: 10Gi")),
                Some(q) => match quantity::parse(&q.0) {
                    Some(v) if v.0 > 0.0 => {}
                    _ => errs.push(FieldError::invalid(
                        &size_path,
                        &q.0,
                        "the size must be a positive quantity such as 10Gi",
                    )),
                },
            }
        }
        (None, Some(ed)) => {
            if let Some(limit) = &ed.size_limit
                && quantity::parse(&limit.0).is_none()
            {
                errs.push(FieldError::invalid(
                    &path.child("emptyDir").child("sizeLimit"),
                    &limit.0,
                    "not a quantity; use a size such as 1Gi",
                ));
            }
        }
    }
    errs
}

/// What is wrong with a storage mount path, if anything. It becomes a Pod volume mount and an
/// entry of Kafka's comma-separated `log.dirs` (`<mountPath>/kafka`), so it is absolute, made of
/// `[A-Za-z0-9._-]` segments (no `,`, whitespace, control characters or backslashes), has no
/// `.` or `..` segment, and is neither `/` nor the broker config directory.
pub fn mount_path_problem(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return Some("the mount path must be absolute (start with /), such as /kafka-logs".into());
    }
    if let Some(c) = p.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))) {
        return Some(format!(
            "the mount path contains {c:?}; use only letters, digits, '/', '.', '_' and '-' (it is written into \
             Kafka's comma-separated log.dirs)"
        ));
    }
    let segments: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Some("a disk cannot be mounted at /; use a directory such as /kafka-logs".into());
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Some("the mount path must not contain '.' or '..' segments; write the directory plainly".into());
    }
    if p.trim_end_matches('/') == crate::render::objects::CONFIG_DIR {
        return Some(format!(
            "{} holds the broker's server.properties; mount the disk elsewhere",
            crate::render::objects::CONFIG_DIR
        ));
    }
    None
}

/// `readOnlyConfig`, `clusterWideConfig` and `brokerConfig.config` parse as properties and do
/// not set keys the operator owns.
pub fn config_strings(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut check = |text: Option<&String>, path: Path| {
        if let Some(text) = text {
            errs.extend(config_string(text, &path));
        }
    };
    check(spec.read_only_config.as_ref(), spec_path().child("readOnlyConfig"));
    check(spec.cluster_wide_config.as_ref(), spec_path().child("clusterWideConfig"));
    for (name, g) in spec.broker_config_groups.iter().flatten() {
        check(g.config.as_ref(), group_path(name).child("config"));
    }
    for (i, b) in spec.brokers.iter().enumerate() {
        check(b.read_only_config.as_ref(), broker_path(i).child("readOnlyConfig"));
        check(
            b.broker_config.as_ref().and_then(|c| c.config.as_ref()),
            broker_path(i).child("brokerConfig").child("config"),
        );
    }
    errs
}

fn config_string(text: &str, path: &Path) -> Vec<FieldError> {
    match properties::parse(text) {
        Err(e) => vec![FieldError::invalid(
            path,
            text,
            format!("not a properties text ({}); write one key=value per line", e.message),
        )],
        Ok(pairs) => pairs
            .iter()
            .filter_map(|(k, _)| {
                properties::owned_key_source(k).map(|src| {
                    FieldError::forbidden(
                        path,
                        format!("{k} is set by the operator from {src}; remove it from this config"),
                    )
                })
            })
            .collect(),
    }
}

/// Resource requests and limits of brokers parse as quantities.
pub fn resources(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (name, g) in spec.broker_config_groups.iter().flatten() {
        errs.extend(resource_requirements(g.resources.as_ref(), &group_path(name).child("resourceRequirements")));
    }
    for (i, b) in spec.brokers.iter().enumerate() {
        let r = b.broker_config.as_ref().and_then(|c| c.resources.as_ref());
        errs.extend(resource_requirements(r, &broker_path(i).child("brokerConfig").child("resourceRequirements")));
    }
    errs
}

fn resource_requirements(r: Option<&ResourceRequirements>, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(r) = r else { return errs };
    for (field, map) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (name, q) in map.iter().flatten() {
            if quantity::parse(&q.0).is_none_or(|v| v.0 < 0.0) {
                errs.push(FieldError::invalid(
                    &path.child(field).child(name),
                    &q.0,
                    "not a valid quantity; use e.g. 500m or 2 for CPU, 2Gi for memory",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::Broker;
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::*;
    use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    #[test]
    fn valid_spec_has_no_broker_errors() {
        let spec = valid_kraft_spec();
        assert_eq!(ids(&spec), vec![]);
        assert_eq!(groups_and_storage(&spec), vec![]);
        assert_eq!(config_strings(&spec), vec![]);
        assert_eq!(resources(&spec), vec![]);
    }

    #[test]
    fn duplicate_and_out_of_range_ids() {
        let mut spec = valid_kraft_spec();
        spec.brokers[2].id = 0;
        spec.brokers.push(Broker { id: 70000, broker_config_group: Some("default".into()), ..Default::default() });
        assert_eq!(
            paths_and_types(&ids(&spec)),
            vec![
                ("spec.brokers[2].id".into(), ErrorType::Duplicate),
                ("spec.brokers[3].id".into(), ErrorType::Invalid)
            ]
        );
    }

    #[test]
    fn no_brokers_is_required() {
        let mut spec = valid_kraft_spec();
        spec.brokers.clear();
        assert_eq!(paths_and_types(&ids(&spec)), vec![("spec.brokers".into(), ErrorType::Required)]);
    }

    #[test]
    fn unknown_group_is_not_found() {
        let mut spec = valid_kraft_spec();
        spec.brokers[1].broker_config_group = Some("missing".into());
        let errs = groups_and_storage(&spec);
        assert_eq!(paths_and_types(&errs), vec![("spec.brokers[1].brokerConfigGroup".into(), ErrorType::NotFound)]);
        assert!(errs[0].message.contains("[\"default\"]"));
    }

    #[test]
    fn broker_without_storage_is_required() {
        let mut spec = valid_kraft_spec();
        spec.brokers[0].broker_config_group = None;
        let errs = groups_and_storage(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.brokers[0].brokerConfig.storageConfigs".into(), ErrorType::Required)]
        );
    }

    #[test]
    fn storage_config_shape_errors() {
        let mut spec = valid_kraft_spec();
        let bad = vec![
            StorageConfig { mount_path: "relative".into(), ..pvc_storage("", "10Gi") },
            StorageConfig { mount_path: "".into(), pvc_spec: None, empty_dir: None },
            StorageConfig { empty_dir: Some(EmptyDirVolumeSource::default()), ..pvc_storage("/both", "1Gi") },
            pvc_storage("/bad-size", "ten gigs"),
            pvc_storage("/bad-size", "1Gi"),
        ];
        spec.brokers[0].broker_config = Some(BrokerConfig { storage_configs: Some(bad), ..Default::default() });
        let p = "spec.brokers[0].brokerConfig.storageConfigs";
        assert_eq!(
            paths_and_types(&groups_and_storage(&spec)),
            vec![
                (format!("{p}[0].mountPath"), ErrorType::Invalid),
                (format!("{p}[1].mountPath"), ErrorType::Required),
                (format!("{p}[1]"), ErrorType::Required),
                (format!("{p}[2].emptyDir"), ErrorType::Invalid),
                (format!("{p}[3].pvcSpec.resources.requests.storage"), ErrorType::Invalid),
                (format!("{p}[4].mountPath"), ErrorType::Duplicate),
            ]
        );
    }

    #[rstest::rstest]
    #[case("/kafka-logs", true)]
    #[case("/data/disk_2/kafka.v1", true)]
    #[case("/kafka-logs/", true)]
    #[case("relative", false)]
    #[case("/", false)]
    #[case("//", false)]
    #[case("/a,/b", false)]
    #[case("/a b", false)]
    #[case("/a\nnode.id=7", false)]
    #[case("/a\\b", false)]
    #[case("/a\u{2028}b", false)]
    #[case("/a/../etc", false)]
    #[case("/a/./b", false)]
    #[case("/config", false)]
    #[case("/config/", false)]
    #[case("/a:b", false)]
    fn mount_paths(#[case] path: &str, #[case] ok: bool) {
        assert_eq!(mount_path_problem(path).is_none(), ok, "{path:?}: {:?}", mount_path_problem(path));
    }

    #[test]
    fn the_same_directory_twice_is_a_duplicate() {
        let mut spec = valid_kraft_spec();
        let disks = vec![pvc_storage("/data", "1Gi"), pvc_storage("/data/", "1Gi")];
        spec.brokers[0].broker_config = Some(BrokerConfig { storage_configs: Some(disks), ..Default::default() });
        assert_eq!(
            paths_and_types(&groups_and_storage(&spec)),
            vec![("spec.brokers[0].brokerConfig.storageConfigs[1].mountPath".into(), ErrorType::Duplicate)]
        );
    }

    #[test]
    fn group_storage_errors_use_the_group_path() {
        let mut spec = valid_kraft_spec();
        let g = spec.broker_config_groups.as_mut().unwrap().get_mut("default").unwrap();
        g.storage_configs.as_mut().unwrap()[0].pvc_spec.as_mut().unwrap().resources = None;
        assert_eq!(
            paths_and_types(&groups_and_storage(&spec)),
            vec![(
                "spec.brokerConfigGroups[default].storageConfigs[0].pvcSpec.resources.requests.storage".into(),
                ErrorType::Required
            )]
        );
    }

    #[test]
    fn owned_keys_and_bad_lines_in_configs() {
        let mut spec = valid_kraft_spec();
        spec.read_only_config = Some("auto.create.topics.enable=false\nlog.dirs=/tmp\n".into());
        spec.cluster_wide_config = Some("background.threads=10\nnot a property\n".into());
        spec.brokers[2].read_only_config = Some("broker.rack=eu-1a\nnode.id=7".into());
        let errs = config_strings(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.readOnlyConfig".into(), ErrorType::Forbidden),
                ("spec.clusterWideConfig".into(), ErrorType::Invalid),
                ("spec.brokers[2].readOnlyConfig".into(), ErrorType::Forbidden),
            ]
        );
        assert!(errs[0].message.contains("log.dirs is set by the operator from brokerConfig.storageConfigs"));
        assert!(errs[1].message.contains("line 2"));
    }

    #[test]
    fn bad_resource_quantities() {
        let mut spec = valid_kraft_spec();
        spec.brokers[0].broker_config = Some(BrokerConfig {
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".to_string(), Quantity("4 GB".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            paths_and_types(&resources(&spec)),
            vec![("spec.brokers[0].brokerConfig.resourceRequirements.limits.memory".into(), ErrorType::Invalid)]
        );
    }
}
