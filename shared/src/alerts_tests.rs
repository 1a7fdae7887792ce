use super::*;
use rstest::rstest;
use serde_json::json;

fn alert(labels: serde_json::Value, annotations: serde_json::Value) -> Alert {
    serde_json::from_value(json!({"labels": labels, "annotations": annotations, "startsAt": "2026-12-05T03:00:00Z"}))
        .unwrap()
}

fn cluster(mut spec: serde_json::Value) -> KafkaCluster {
    spec["listenersConfig"] = json!({"internalListeners": []});
    serde_json::from_value(json!({
        "apiVersion": "kafka.banzaicloud.io/v1beta1",
        "kind": "KafkaCluster",
        "metadata": {"name": "kafka", "namespace": "kafka"},
        "spec": spec,
    }))
    .unwrap()
}

fn three_brokers(limits: serde_json::Value) -> KafkaCluster {
    cluster(json!({
        "brokerConfigGroups": {"default": {"storageConfigs": [{"mountPath": "/kafka-logs", "pvcSpec": {"resources": {"requests": {"storage": "10Gi"}}}}]}},
        "brokers": [{"id": 0, "brokerConfigGroup": "default"}, {"id": 1, "brokerConfigGroup": "default"}, {"id": 2, "brokerConfigGroup": "default"}],
        "alertManagerConfig": limits,
    }))
}

fn up(annotations: serde_json::Value) -> Command {
    let mut a = json!({"command": "upScale"});
    a.as_object_mut().unwrap().extend(annotations.as_object().unwrap().clone());
    command(&alert(json!({"kafka_cr": "kafka", "namespace": "kafka"}), a)).unwrap().unwrap()
}

#[test]
fn both_formats_parse_and_garbage_says_what_is_expected() {
    let push = br#"[{"labels": {"alertname": "a"}, "annotations": {}, "startsAt": "2026-12-05T03:00:00Z"}]"#;
    let webhook = br#"{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "a"}, "fingerprint": "x"}]}"#;
    assert_eq!(parse(push).unwrap()[0].labels["alertname"], "a");
    assert_eq!(parse(webhook).unwrap()[0].status.as_deref(), Some("firing"));
    for bad in [&b"{"[..], b"{\"alerts\": 3}", b"\"x\"", b"[1]"] {
        assert!(parse(bad).unwrap_err().contains("expected a JSON array"), "{}", String::from_utf8_lossy(bad));
    }
    assert!(parse(&vec![b' '; MAX_BODY + 1]).unwrap_err().contains("at most"));
}

/// What Alertmanager 0.31.1's webhook posted (captured from the binary `make e2e-deps` builds).
#[test]
fn alertmanagers_own_webhook_message_parses() {
    let body = br#"{"receiver":"koperator","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","kafka_cr":"kafka","namespace":"kafka"},"annotations":{"command":"upScale"},"startsAt":"2026-12-05T03:37:54.274Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://vm:19090/graph?g0.expr=vector%281%29+%3E+0\u0026g0.tab=1","fingerprint":"d2c6efc389df0927"}],"groupLabels":{"alertname":"A"},"commonLabels":{"alertname":"A"},"commonAnnotations":{"command":"upScale"},"externalURL":"http://vm:19093","version":"4","groupKey":"{}:{alertname=\"A\"}","truncatedAlerts":0}"#;
    let alerts = parse(body).unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(!alerts[0].resolved("2026-12-05T04:00:00Z".parse().unwrap()), "the zero endsAt of a firing alert");
    assert!(matches!(command(&alerts[0]), Ok(Some(Command::UpScale { .. }))));
}

#[test]
fn the_fingerprint_is_the_label_set_and_the_key_adds_the_start() {
    let a = alert(json!({"a": "1", "b": "2"}), json!({"command": "upScale"}));
    let same_labels = alert(json!({"b": "2", "a": "1"}), json!({"other": "annotation"}));
    let other = alert(json!({"a": "12"}), json!({}));
    assert_eq!(a.fingerprint(), same_labels.fingerprint());
    assert_ne!(a.fingerprint(), other.fingerprint());
    let mut later = a.clone();
    later.starts_at = Some("2026-12-05T04:00:00Z".into());
    assert_ne!(a.key(), later.key());
}

#[rstest]
#[case(json!({}), false)]
#[case(json!({"endsAt": "0001-01-01T00:00:00Z"}), false)]
#[case(json!({"endsAt": "2026-12-05T03:10:00Z"}), false)]
#[case(json!({"endsAt": "2026-12-05T02:50:00Z"}), true)]
#[case(json!({"status": "resolved"}), true)]
#[case(json!({"status": "firing", "endsAt": "2026-12-05T02:50:00Z"}), false)]
fn resolved_from_the_status_or_a_past_end(#[case] a: serde_json::Value, #[case] resolved: bool) {
    let a: Alert = serde_json::from_value(a).unwrap();
    assert_eq!(a.resolved("2026-12-05T03:00:00Z".parse().unwrap()), resolved);
}

#[rstest]
#[case(json!({}), json!({}), "")]
#[case(json!({"kafka_cr": "k"}), json!({"command": "scaleSideways"}), "not one of upScale, downScale, addPvc, resizePvc")]
#[case(json!({"namespace": "n"}), json!({"command": "upScale"}), "label kafka_cr is missing")]
#[case(json!({"kafka_cr": "k", "namespace": "n"}), json!({"command": "upScale", "diskSize": "10Gi"}), "mountPath and diskSize go together")]
#[case(json!({"kafka_cr": "k", "namespace": "n"}), json!({"command": "upScale", "mountPath": "/d", "diskSize": "lots"}), "not a positive quantity")]
#[case(json!({"kafka_cr": "k", "namespace": "n"}), json!({"command": "upScale", "brokerAnnotations": "[1]"}), "brokerAnnotations must be a JSON object")]
#[case(json!({"kafka_cr": "k", "namespace": "n", "brokerId": "x"}), json!({"command": "downScale"}), "is not a broker id")]
#[case(json!({"namespace": "n"}), json!({"command": "addPvc", "mountPathPrefix": "/d", "diskSize": "1Gi"}), "label persistentvolumeclaim is missing")]
#[case(json!({"namespace": "n", "persistentvolumeclaim": "p"}), json!({"command": "addPvc", "diskSize": "1Gi"}), "mountPathPrefix is missing")]
#[case(json!({"namespace": "n", "persistentvolumeclaim": "p"}), json!({"command": "resizePvc"}), "incrementBy is missing")]
#[case(json!({"namespace": "n", "persistentvolumeclaim": "p"}), json!({"command": "resizePvc", "incrementBy": "-1Gi"}), "not a positive quantity")]
fn incomplete_alerts_say_what_to_fix(
    #[case] labels: serde_json::Value,
    #[case] annotations: serde_json::Value,
    #[case] error: &str,
) {
    match command(&alert(labels, annotations)) {
        Ok(None) => assert_eq!(error, "", "an alert without a command is not for the operator"),
        Ok(Some(c)) => panic!("accepted {c:?}"),
        Err(e) => assert!(!error.is_empty() && e.contains(error), "{e}"),
    }
}

#[test]
fn commands_carry_their_parameters() {
    let pvc = || PvcKey { namespace: "n".into(), name: "p".into() };
    let labels = json!({"namespace": "n", "persistentvolumeclaim": "p", "kafka_cr": "k", "brokerId": "4"});
    let cases = [
        (
            json!({"command": "downScale"}),
            Command::DownScale { cluster: ClusterKey { namespace: "n".into(), name: "k".into() }, broker: Some(4) },
        ),
        (
            json!({"command": "addPvc", "mountPathPrefix": "/kafka-extra/", "diskSize": "5Gi", "storageClass": "fast"}),
            Command::AddPvc {
                pvc: pvc(),
                mount_path_prefix: "/kafka-extra".into(),
                size: "5Gi".into(),
                storage_class: Some("fast".into()),
            },
        ),
        (
            json!({"command": "resizePvc", "incrementBy": "10G"}),
            Command::ResizePvc { pvc: pvc(), increment_by: "10G".into() },
        ),
    ];
    for (annotations, want) in cases {
        assert_eq!(command(&alert(labels.clone(), annotations)).unwrap(), Some(want));
    }
}

#[test]
fn up_scale_adds_the_next_id_in_the_named_or_the_last_group_or_with_its_own_disk() {
    let kc = three_brokers(json!({}));
    let b = up_scale(&kc, &up(json!({"brokerConfigGroup": "default"}))).unwrap();
    assert_eq!((b.id, b.broker_config_group.as_deref(), b.broker_config.is_none()), (3, Some("default"), true));
    let b = up_scale(&kc, &up(json!({}))).unwrap();
    assert_eq!(b.broker_config_group.as_deref(), Some("default"), "the highest broker's group");
    let b = up_scale(&kc, &up(json!({"mountPath": "/data", "diskSize": "20Gi", "image": "kafka:4.1.1"}))).unwrap();
    let config = b.broker_config.unwrap();
    let disk = &config.storage_configs.unwrap()[0];
    assert_eq!(disk.mount_path, "/data");
    assert_eq!(
        disk.pvc_spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "20Gi"
    );
    assert_eq!(config.image.as_deref(), Some("kafka:4.1.1"));
    assert_eq!(b.broker_config_group, None);
    let Err(Refusal(e)) = up_scale(&kc, &up(json!({"brokerConfigGroup": "nope"}))) else { panic!() };
    assert!(e.contains("not in spec.brokerConfigGroups"), "{e}");
}

#[rstest]
#[case(json!({"upScaleLimit": 3}), false)]
#[case(json!({"upScaleLimit": 4}), true)]
#[case(json!({"upScaleLimit": 0}), true)]
#[case(json!({}), true)]
fn up_scale_stops_at_the_limit(#[case] limits: serde_json::Value, #[case] adds: bool) {
    match up_scale(&three_brokers(limits), &up(json!({}))) {
        Ok(b) => assert!(adds, "added broker {}", b.id),
        Err(Refusal(e)) => assert!(!adds && e.contains("upScaleLimit is 3"), "{e}"),
    }
}

#[rstest]
#[case(json!({"downScaleLimit": 3}), None, Err("downScaleLimit is 3"))]
#[case(json!({"downScaleLimit": 2}), None, Ok(1))]
#[case(json!({}), Some(2), Ok(2))]
#[case(json!({}), Some(7), Err("broker 7 is not in spec.brokers"))]
fn down_scale_removes_the_named_or_the_emptiest_broker(
    #[case] limits: serde_json::Value,
    #[case] named: Option<i32>,
    #[case] want: Result<i32, &str>,
) {
    let replicas = BTreeMap::from([(0, 10), (1, 4), (2, 9)]);
    match (down_scale(&three_brokers(limits), named, &replicas), want) {
        (Ok(id), Ok(w)) => assert_eq!(id, w),
        (Err(Refusal(e)), Err(w)) => assert!(e.contains(w), "{e}"),
        (got, want) => panic!("{got:?}, want {want:?}"),
    }
}

#[test]
fn add_disk_appends_one_disk_per_firing_to_the_brokers_own_configs() {
    let mut kc = three_brokers(json!({}));
    let labels = json!({"namespace": "kafka", "persistentvolumeclaim": "p"});
    let cmd =
        command(&alert(labels, json!({"command": "addPvc", "mountPathPrefix": "/kafka-extra", "diskSize": "5Gi"})))
            .unwrap()
            .unwrap();
    let path = add_disk(&mut kc, 1, &cmd, "f@t1").unwrap();
    assert!(path.starts_with("/kafka-extra-") && path.len() == "/kafka-extra-".len() + 6, "{path}");
    assert_eq!(add_disk(&mut kc, 1, &cmd, "f@t1").unwrap(), path, "the same firing adds nothing more");
    let paths = |kc: &KafkaCluster| -> Vec<String> {
        kc.spec.brokers[1].effective_storage(&kc.spec).iter().map(|s| s.mount_path.clone()).collect()
    };
    assert_eq!(paths(&kc), vec!["/kafka-logs".to_string(), path.clone()], "the first disk stays first");
    let other = add_disk(&mut kc, 1, &cmd, "f@t2").unwrap();
    assert_ne!(other, path, "a later firing adds another disk");
    assert_eq!(paths(&kc).len(), 3);
    assert!(paths(&kc.clone()).len() == 3 && kc.spec.brokers[0].broker_config.is_none(), "other brokers untouched");
    assert!(matches!(add_disk(&mut kc, 9, &cmd, "k"), Err(Refusal(e)) if e.contains("broker 9")));
}

#[test]
fn grow_disk_adds_the_increment_to_the_brokers_copy_of_the_disk() {
    let mut kc = three_brokers(json!({}));
    let labels = json!({"namespace": "kafka", "persistentvolumeclaim": "p"});
    let cmd = command(&alert(labels, json!({"command": "resizePvc", "incrementBy": "10Gi"}))).unwrap().unwrap();
    let size = grow_disk(&mut kc, 2, "/kafka-logs", "10Gi", &cmd).unwrap();
    assert_eq!(size, (20u64 << 30).to_string());
    let own = kc.spec.brokers[2].broker_config.as_ref().unwrap().storage_configs.as_ref().unwrap();
    assert_eq!(
        own[0].pvc_spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        size
    );
    let group = &kc.spec.broker_config_groups.as_ref().unwrap()["default"].storage_configs.as_ref().unwrap()[0];
    assert_eq!(
        group.pvc_spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "10Gi"
    );
    let size = grow_disk(&mut kc, 2, "/kafka-logs/", &size, &cmd).unwrap();
    assert_eq!(size, (30u64 << 30).to_string(), "grows again from the PVC's request");
    assert!(
        matches!(grow_disk(&mut kc, 2, "/nope", "1Gi", &cmd), Err(Refusal(e)) if e.contains("no disk mounted at /nope"))
    );
}

#[test]
fn the_acted_on_record_keeps_the_newest() {
    let mut v = record_acted_on(None, "a");
    v = record_acted_on(Some(&v), "b");
    v = record_acted_on(Some(&v), "a");
    assert_eq!(v, "b,a");
    for i in 0..40 {
        v = record_acted_on(Some(&v), &format!("k{i}"));
    }
    assert_eq!(v.split(',').count(), ACTED_ON_KEPT);
    assert!(v.ends_with("k39") && !v.contains("k7,"));
    let mut kc = three_brokers(json!({}));
    kc.metadata.annotations = Some(BTreeMap::from([(ACTED_ON_ANNOTATION.to_string(), v)]));
    assert!(acted_on(&kc, "k39") && !acted_on(&kc, "k3"));
}
