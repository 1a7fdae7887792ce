//! The rendered Contour HTTPProxies and Gateway API TLSRoutes, with their ClusterIP Services,
//! against the real CRDs (Contour v1.33.8's `01-crds.yaml`, Gateway API v1.6.3's standard
//! channel, fetched by `make e2e-deps` into `<cache>/ingress-crds`): for a few shapes (a global
//! configuration, two ingress configurations split by `brokerIngressMapping`, Contour passing TLS
//! through and terminating it) every object is created by server-side apply, read back with the
//! rendered fields, and a broken HTTPProxy and TLSRoute are refused by the CRD schemas (so the
//! schemas are really checked).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use koperator_e2e::controlplane::ControlPlane;
use koperator_e2e::{shared, tools};
use koperator_shared::api::KafkaCluster;
use koperator_shared::render::cluster_ip::Objects;
use koperator_shared::render::{contour, gateway};
use koperator_shared::validated::must;
use serde_json::{Value, json};

/// `<cache>/ingress-crds/<sub>`, or a panic saying how to get it.
fn crds(sub: &str) -> PathBuf {
    let dir = tools::cache_dir().join("ingress-crds").join(sub);
    assert!(dir.is_dir(), "{} is missing: run `make e2e-deps` (e2e/scripts/install-deps.sh)", dir.display());
    dir
}

/// Installs the Contour and Gateway API CRDs once and waits until HTTPProxy and TLSRoute are served.
fn install_crds(cp: &ControlPlane) {
    let started = Instant::now();
    for dir in [crds("contour"), crds("gateway-api")] {
        cp.kubectl(&["apply", "--server-side", "-f", &dir.display().to_string()]).expect("apply the ingress CRDs");
    }
    for crd in ["httpproxies.projectcontour.io", "tlsroutes.gateway.networking.k8s.io"] {
        cp.wait_established(crd, Duration::from_secs(60)).unwrap();
    }
    eprintln!("ingress CRDs installed and Established in {:.1}s", started.elapsed().as_secs_f64());
}

/// A sample KafkaCluster named `name` in `ns`, changed by `f`.
fn sample(file: &str, ns: &str, f: impl FnOnce(&mut Value)) -> KafkaCluster {
    let text = std::fs::read_to_string(tools::repo_root().join("config/samples").join(file)).unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["metadata"]["namespace"] = ns.into();
    f(&mut v);
    serde_json::from_value(v).unwrap()
}

/// Server-side apply of `items`; the error text when the API server refuses.
fn apply(cp: &ControlPlane, items: &[Value]) -> Result<String, String> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let out =
        cp.kubectl_output(&["apply", "--server-side", "--field-manager=koperator", "-f", "-"], Some(&list)).unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every field of `want` is in `got` with the same value (the API server may add defaults).
fn contains(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().all(|(k, v)| g.get(k).is_some_and(|gv| contains(v, gv))),
        (Value::Array(w), Value::Array(g)) => w.len() == g.len() && w.iter().zip(g).all(|(a, b)| contains(a, b)),
        _ => want == got,
    }
}

/// Applies `objects` in `ns`, reads every route and Service back and compares.
fn apply_and_read_back(cp: &ControlPlane, ns: &str, objects: &Objects, resource: &str) {
    let mut items: Vec<Value> = objects.services.iter().map(|s| serde_json::to_value(s).unwrap()).collect();
    items.extend(objects.routes.iter().map(|r| serde_json::to_value(r).unwrap()));
    assert!(!objects.routes.is_empty(), "nothing rendered");
    // Right after Established the new kinds may not be in discovery yet: retry only that.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        match apply(cp, &items) {
            Err(e) if e.contains("no matches for kind") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250))
            }
            other => break other.unwrap_or_else(|e| panic!("the API server refused the rendered objects:\n{e}")),
        }
    };
    assert_eq!(out.matches("serverside-applied").count(), items.len(), "{out}");
    let got: Value = serde_json::from_str(&cp.kubectl(&["get", resource, "-n", ns, "-o", "json"]).unwrap()).unwrap();
    let got = got["items"].as_array().unwrap();
    assert_eq!(got.len(), objects.routes.len(), "{resource} in {ns}");
    for r in &objects.routes {
        let name = r.metadata.name.as_deref().unwrap();
        let stored = got.iter().find(|g| g["metadata"]["name"] == name).unwrap_or_else(|| panic!("{name} not stored"));
        let want = serde_json::to_value(r).unwrap();
        assert!(
            contains(&want["spec"], &stored["spec"]),
            "{name}: rendered {} but stored {}",
            want["spec"],
            stored["spec"]
        );
        assert!(contains(&want["metadata"]["labels"], &stored["metadata"]["labels"]), "{name}: labels");
    }
    for s in &objects.services {
        let name = s.metadata.name.as_deref().unwrap();
        let stored: Value =
            serde_json::from_str(&cp.kubectl(&["get", "service", name, "-n", ns, "-o", "json"]).unwrap()).unwrap();
        let want = serde_json::to_value(s).unwrap();
        assert!(contains(&want["spec"]["ports"], &stored["spec"]["ports"]), "{name}: ports {}", stored["spec"]);
        assert!(contains(&want["spec"]["selector"], &stored["spec"]["selector"]), "{name}: selector");
    }
}

#[test]
fn rendered_httpproxies_and_tlsroutes_are_accepted_by_the_real_crds() {
    let cp = shared();
    install_crds(cp);
    let started = Instant::now();
    let mut checked = 0;

    // Contour terminating TLS (global configuration), and passing it through with two ingress
    // configurations (broker 2 on az2, which has its own template).
    for (file, passthrough) in
        [("simplekafkacluster_with_contour.yaml", false), ("kafkacluster_contour_passthrough.yaml", true)]
    {
        let ns = cp.namespace("ingress-crds").unwrap();
        let c = must(&sample(file, &ns.name, |_| {}));
        let objects = contour::objects(&c);
        assert_eq!(
            objects.routes.iter().all(|r| r.data["spec"]["virtualhost"]["tls"]["passthrough"] == true),
            passthrough,
            "{file}"
        );
        apply_and_read_back(cp, &ns.name, &objects, "httpproxies.projectcontour.io");
        checked += objects.routes.len();
    }

    // Gateway API: the global configuration, then two ingress configurations on two Gateways.
    let ns = cp.namespace("ingress-crds").unwrap();
    let c = must(&sample("kafkacluster_gateway_api.yaml", &ns.name, |_| {}));
    let objects = gateway::objects(&c);
    apply_and_read_back(cp, &ns.name, &objects, "tlsroutes.gateway.networking.k8s.io");
    checked += objects.routes.len();
    let split = cp.namespace("ingress-crds").unwrap();
    let c = must(&sample("kafkacluster_gateway_api.yaml", &split.name, |v| {
        let l = &mut v["spec"]["listenersConfig"]["externalListeners"][0];
        l["config"] = json!({"defaultIngressConfig": "az1", "ingressConfig": {
            "az1": {"hostnameOverride": "az1.kafka.example.com"},
            "az2": {"hostnameOverride": "az2.kafka.example.com",
                    "gatewayIngressConfig": {"gatewayName": "gw-az2", "brokerFQDNTemplate": "az2-%id.kafka.example.com"}}
        }});
        v["spec"]["brokers"][2]["brokerConfig"] = json!({"brokerIngressMapping": ["az2"]});
    }));
    let objects = gateway::objects(&c);
    assert_eq!(objects.routes.len(), 5, "two any-cast hosts and three brokers");
    apply_and_read_back(cp, &split.name, &objects, "tlsroutes.gateway.networking.k8s.io");
    checked += objects.routes.len();

    // The schemas are checked: a host name that is no DNS name, a Service backend without a port.
    let mut proxy = serde_json::to_value(
        &contour::objects(&must(&sample("kafkacluster_contour_passthrough.yaml", &ns.name, |_| {}))).routes[0],
    )
    .unwrap();
    proxy["metadata"]["name"] = "broken".into();
    proxy["spec"]["virtualhost"]["fqdn"] = "Not_A_Host".into();
    let err = apply(cp, &[proxy]).expect_err("an HTTPProxy with an invalid fqdn");
    assert!(err.contains("spec.virtualhost.fqdn"), "{err}");
    let mut route = serde_json::to_value(&objects.routes[0]).unwrap();
    route["metadata"]["name"] = "broken".into();
    route["spec"]["rules"][0]["backendRefs"][0].as_object_mut().unwrap().remove("port");
    let err = apply(cp, &[route]).expect_err("a TLSRoute to a Service without a port");
    assert!(err.contains("spec.rules[0].backendRefs[0]"), "{err}");

    eprintln!(
        "{checked} routes (and their Services) applied and read back, 2 broken ones refused, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
