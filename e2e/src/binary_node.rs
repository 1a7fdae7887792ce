//! A test node that plays kubelet for Pods whose image is one of this project's binaries: the
//! webhook and operator Pods of the helm chart (or of `config/`) run as the locally built
//! binaries, with the Pod's own arguments, environment, ServiceAccount, mounted Secrets and
//! ConfigMaps and probes.
//!
//! What a kubelet does, done here:
//! - the node registers a Node object and renews its Lease, binds the Pods it runs to it (the
//!   EndpointSlice controller only lists Pods of existing Nodes), reports their status (phase,
//!   `podIP`, Ready from the readiness probe, restarts) and finishes their deletion after the
//!   process has stopped (SIGTERM, then SIGKILL after the grace period; each Pod stopped on a
//!   thread of its own, so a draining process holds up neither the others nor the node);
//! - a ServiceAccount token bound to the Pod (TokenRequest) is the process's identity, so it
//!   runs with exactly the RBAC rules of its ServiceAccount;
//! - readiness and liveness probes (`httpGet` over HTTP or HTTPS without verification, as the
//!   kubelet does, or `tcpSocket`) decide readiness and restarts (`restartPolicy: Always`, with
//!   the kubelet's back-off);
//! - `secret`, `configMap` and `emptyDir` volumes are files under the node's directory, kept in
//!   step with their objects.
//!
//! Substitutions (the only ones):
//! - each Pod gets its own address, `10.244.x.y/32` added to the loopback interface (this
//!   needs CAP_NET_ADMIN; EndpointSlices refuse `127.0.0.0/8`), removed when the Pod goes;
//!   `0.0.0.0:<port>` in an argument binds that address instead, so replicas do not collide;
//! - the token reaches the process as a kubeconfig (`KUBECONFIG`), since the in-cluster path
//!   `/var/run/secrets/kubernetes.io/serviceaccount` is fixed; an argument under a volume's
//!   mount path points at the volume's directory;
//! - `KAFKA_HOSTS_FILE` names the Kafka node's hosts file (cluster DNS for broker names);
//! - the image is not pulled: `<repository>:<tag>` maps to a local binary by the last segment
//!   of the repository (`koperator-webhook`, `koperator`), whatever the tag; the image's
//!   entrypoint is that binary;
//! - probes run every second; a liveness failure restarts the container after
//!   `failureThreshold × periodSeconds` of consecutive failures, as with the kubelet.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Probe, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::node_object::NodeObject;
use crate::process::{Component, tail};

/// Volumes are re-read this often (the kubelet's sync period is about a minute).
const VOLUME_SYNC: Duration = Duration::from_secs(5);

/// How to start a [`BinaryNode`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Kubeconfig with rights to bind Pods, create tokens and write Node objects (admin).
    pub kubeconfig: PathBuf,
    /// API server URL and its CA, for the kubeconfigs of the Pods.
    pub server: String,
    /// PEM CA of the API server.
    pub ca_pem: String,
    /// Namespace whose Pods this node runs.
    pub namespace: String,
    /// Last segment of an image repository → the binary that image runs.
    pub binaries: BTreeMap<String, PathBuf>,
    /// Hosts file with the brokers' names, passed as `KAFKA_HOSTS_FILE`.
    pub kafka_hosts_file: Option<PathBuf>,
}

impl Options {
    /// The webhook and operator binaries of `target/<profile>/`.
    pub fn project_binaries(profile: &str) -> BTreeMap<String, PathBuf> {
        let target = crate::tools::repo_root().join("target").join(profile);
        BTreeMap::from([
            ("koperator-webhook".to_string(), target.join("koperator-webhook")),
            ("koperator".to_string(), target.join("koperator")),
        ])
    }
}

/// A running node. Stops its processes and removes its Node object when dropped (the Pods
/// bound to it are then removed by the Pod garbage collector).
pub struct BinaryNode {
    /// Name of the Node object.
    pub name: String,
    /// The node's directory: `pods/<pod>-<uid>/` with each process's `log`, kubeconfig and
    /// volumes.
    pub dir: PathBuf,
    stop: Arc<AtomicBool>,
    logs: Arc<Mutex<HashMap<String, PathBuf>>>,
    pids: Arc<Mutex<HashMap<String, u32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl BinaryNode {
    /// Starts a node in a fresh temporary directory.
    pub fn start(opts: Options) -> Result<BinaryNode> {
        let tmp = tempfile::Builder::new().prefix("kop-binnode-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut node = Self::start_in(opts, &dir)?;
        node._tmp = Some(tmp);
        Ok(node)
    }

    /// Starts a node whose files go to `dir` (kept after it stops).
    pub fn start_in(opts: Options, dir: &Path) -> Result<BinaryNode> {
        for (image, bin) in &opts.binaries {
            if !bin.exists() {
                bail!("binary for image {image} not built: {} (cargo build first)", bin.display());
            }
        }
        std::fs::create_dir_all(dir.join("pods"))?;
        let name = format!("e2e-{}-{}", opts.namespace, std::process::id());
        let stop = Arc::new(AtomicBool::new(false));
        let logs = Arc::new(Mutex::new(HashMap::new()));
        let pids = Arc::new(Mutex::new(HashMap::new()));
        let mut state = State {
            opts,
            node: NodeObject::new(
                name.clone(),
                vec![("InternalIP".into(), "127.0.0.1".into()), ("Hostname".into(), name.clone())],
                "koperator-e2e://local-binaries",
            ),
            dir: dir.to_path_buf(),
            slots: BTreeMap::new(),
            logs: logs.clone(),
            pids: pids.clone(),
            stopping: BTreeMap::new(),
            last_volume_sync: Instant::now(),
        };
        let s = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread =
            std::thread::Builder::new().name(format!("binnode-{}", state.opts.namespace)).spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    let client = match crate::node::client(&state.opts.kubeconfig).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Err(e) = state.heartbeat(&client).await {
                        let _ = ready_tx.send(Err(e.context("register the Node object")));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    while !s.load(Ordering::SeqCst) {
                        if let Err(e) = state.step(&client).await {
                            eprintln!("[binary node {}] {e:#}", state.opts.namespace);
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    state.shutdown(&client).await;
                });
            })?;
        ready_rx.recv().map_err(|_| anyhow!("binary node thread died"))??;
        Ok(BinaryNode { name, dir: dir.to_path_buf(), stop, logs, pids, thread: Some(thread), _tmp: None })
    }

    /// The log file of a Pod's current process.
    pub fn log(&self, pod: &str) -> Option<PathBuf> {
        self.logs.lock().unwrap().get(pod).cloned()
    }

    /// Sends `signal` to the running process of a Pod, as a crash or the OOM killer would
    /// (SIGKILL) or as someone on the node might; the node then sees the exit and restarts
    /// the process per `restartPolicy: Always`. Returns the process id signalled.
    pub fn signal(&self, pod: &str, signal: i32) -> Result<u32> {
        let pid = *self.pids.lock().unwrap().get(pod).ok_or_else(|| anyhow!("no running process for Pod {pod}"))?;
        // SAFETY: kill(2) on a child process this node started and has not reaped yet (its
        // pid is removed from the map before the node stops it).
        if unsafe { libc::kill(pid as i32, signal) } != 0 {
            bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
        }
        Ok(pid)
    }

    /// The last `n` lines of every process's log, for a failure message.
    pub fn log_tails(&self, n: usize) -> String {
        let logs = self.logs.lock().unwrap().clone();
        let mut out = String::new();
        for (pod, log) in logs {
            out.push_str(&format!("--- {pod} ({}) ---\n{}\n", log.display(), tail(&log, n)));
        }
        out
    }
}

impl Drop for BinaryNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Slot {
    uid: String,
    ip: PodAddress,
    container: Container,
    launch: Launch,
    facts: PodFacts,
    process: Component,
    ready: bool,
    restarts: i32,
    started_at: String,
    /// When the current run of failed liveness probes began.
    failing_since: Option<Instant>,
    /// Earliest time of the next start after an exit (back-off).
    restart_at: Option<Instant>,
    last_exit: Option<String>,
    grace: Duration,
    reported: Option<Value>,
}

/// Everything needed to (re)start a Pod's process.
struct Launch {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Launch {
    fn start(&self, run: i32) -> Result<Component> {
        let log = self.dir.join(format!("log.{run}"));
        let c = Component::start_with_env(&self.name, &self.program, &self.args, &self.env, log.clone(), false)?;
        let _ = std::fs::remove_file(self.dir.join("log"));
        let _ = std::os::unix::fs::symlink(&log, self.dir.join("log"));
        Ok(c)
    }
}

struct State {
    opts: Options,
    node: NodeObject,
    dir: PathBuf,
    slots: BTreeMap<String, Slot>,
    logs: Arc<Mutex<HashMap<String, PathBuf>>>,
    /// Pod → process id of its running process, for [`BinaryNode::signal`].
    pids: Arc<Mutex<HashMap<String, u32>>>,
    /// Pods whose process is being stopped (SIGTERM, its grace period, SIGKILL), each on a
    /// thread of its own as the kubelet stops containers: one Pod's graceful shutdown holds
    /// up neither the others nor the node. Its deletion is finished once the thread ends.
    stopping: BTreeMap<String, std::thread::JoinHandle<()>>,
    last_volume_sync: Instant,
}

impl State {
    /// Creates or refreshes the Node object and renews its Lease.
    async fn heartbeat(&mut self, client: &kube::Client) -> Result<()> {
        self.node.heartbeat(client).await
    }

    async fn step(&mut self, client: &kube::Client) -> Result<()> {
        self.heartbeat(client).await?;
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), &self.opts.namespace);
        let pods: BTreeMap<String, Pod> = pods_api
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|p| self.binary_of(p).is_some())
            .filter(|p| self.node.may_run(p))
            .map(|p| (p.name_any(), p))
            .collect();

        // Stop what was deleted (and finish the deletion, as the kubelet does) or replaced.
        let stale: Vec<String> = self
            .slots
            .iter()
            .filter(|(name, slot)| {
                pods.get(*name).is_none_or(|p| {
                    p.metadata.uid.as_deref() != Some(slot.uid.as_str()) || p.metadata.deletion_timestamp.is_some()
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            let slot = self.slots.remove(&name).expect("listed");
            self.pids.lock().unwrap().remove(&name);
            let stopper = std::thread::Builder::new()
                .name(format!("stop-{name}"))
                .spawn(move || {
                    // The whole slot moves here (not only the fields used), so that the Pod's
                    // address stays until the process has stopped.
                    let slot = slot;
                    slot.process.stop(slot.grace);
                })
                .context("spawn a thread to stop a process")?;
            self.stopping.insert(name, stopper);
        }
        self.stopping.retain(|_, t| !t.is_finished());
        for (name, pod) in &pods {
            if pod.metadata.deletion_timestamp.is_some()
                && !self.slots.contains_key(name)
                && !self.stopping.contains_key(name)
                && let Err(e) = crate::node_object::finish_deletion(&pods_api, pod).await
            {
                eprintln!("[binary node {}] {e:#}", self.opts.namespace);
            }
        }

        // Start new Pods.
        for (name, pod) in &pods {
            if self.slots.contains_key(name) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match self.launch(client, pod).await {
                Ok(slot) => {
                    self.logs.lock().unwrap().insert(name.clone(), slot.launch.dir.join("log"));
                    self.pids.lock().unwrap().insert(name.clone(), slot.process.pid());
                    self.slots.insert(name.clone(), slot);
                }
                Err(e) => eprintln!("[binary node {}] cannot start {name}: {e:#}", self.opts.namespace),
            }
        }
        if self.last_volume_sync.elapsed() >= VOLUME_SYNC {
            self.last_volume_sync = Instant::now();
            for (name, slot) in &self.slots {
                if let Some(pod) = pods.get(name)
                    && let Err(e) = sync_volumes(client, pod, &slot.launch.dir, &slot.facts).await
                {
                    eprintln!("[binary node {}] volumes of {name}: {e:#}", self.opts.namespace);
                }
            }
        }

        // Restarts, probes, status.
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            let slot = self.slots.get_mut(&name).expect("listed");
            if let Some(status) = slot.process.exited() {
                if slot.restart_at.is_none() {
                    let backoff = Duration::from_secs(10 * 2u64.pow(slot.restarts.clamp(0, 5) as u32))
                        .min(Duration::from_secs(300));
                    eprintln!(
                        "[binary node {}] {name} exited ({status}); restarting in {backoff:?}. Log tail:\n{}",
                        self.opts.namespace,
                        slot.process.log_tail(30)
                    );
                    slot.last_exit = Some(status);
                    slot.ready = false;
                    slot.restart_at = Some(Instant::now() + if slot.restarts == 0 { Duration::ZERO } else { backoff });
                }
                if slot.restart_at.is_some_and(|t| Instant::now() >= t) {
                    slot.restarts += 1;
                    slot.restart_at = None;
                    slot.failing_since = None;
                    slot.started_at = crate::node::now_rfc3339();
                    slot.process = slot.launch.start(slot.restarts)?;
                    self.pids.lock().unwrap().insert(name.clone(), slot.process.pid());
                }
            } else {
                let ready = match &slot.container.readiness_probe {
                    Some(p) => probe(p, &slot.container, &slot.ip.0).await,
                    None => true,
                };
                slot.ready = ready;
                if let Some(p) = &slot.container.liveness_probe {
                    if probe(p, &slot.container, &slot.ip.0).await {
                        slot.failing_since = None;
                    } else {
                        let since = *slot.failing_since.get_or_insert_with(Instant::now);
                        let allowed = Duration::from_secs(
                            (p.failure_threshold.unwrap_or(3).max(1) * p.period_seconds.unwrap_or(10).max(1)) as u64,
                        );
                        if since.elapsed() >= allowed {
                            eprintln!(
                                "[binary node {}] {name} failed its liveness probe for {allowed:?}; restarting",
                                self.opts.namespace
                            );
                            self.pids.lock().unwrap().remove(&name);
                            slot.process.stop(slot.grace);
                        }
                    }
                }
            }
            let status = pod_status(slot);
            if slot.reported.as_ref() != Some(&status) {
                pods_api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status.clone()})))
                    .await
                    .with_context(|| format!("report status of {name}"))?;
                slot.reported = Some(status);
            }
        }
        Ok(())
    }

    /// The local binary of a Pod's first container image, when it is one of ours.
    fn binary_of(&self, pod: &Pod) -> Option<PathBuf> {
        let image = pod.spec.as_ref()?.containers.first()?.image.as_deref()?;
        let repository = image.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(image, |(r, _)| r);
        let last = repository.rsplit('/').next()?;
        self.opts.binaries.get(last).cloned()
    }

    async fn launch(&self, client: &kube::Client, pod: &Pod) -> Result<Slot> {
        let name = pod.name_any();
        let ns = &self.opts.namespace;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
        if spec.containers.len() != 1 || spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
            bail!("the binary node runs Pods of exactly one container and no init containers");
        }
        let container = spec.containers[0].clone();
        let program = self.binary_of(pod).expect("filtered");
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
        if spec.node_name.is_none() {
            self.node.bind(&pods_api, &name).await?;
        }
        let address = PodAddress::add()?;
        let ip = address.0.clone();
        let dir = self.dir.join("pods").join(format!("{name}-{}", &uid[..8.min(uid.len())]));
        std::fs::create_dir_all(&dir)?;

        // Identity: a token bound to this Pod, in a kubeconfig.
        let sa = spec.service_account_name.clone().unwrap_or_else(|| "default".into());
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let request = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400, "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}},
        });
        let answer: Value = sas
            .create_subresource("token", &sa, &PostParams::default(), &request)
            .await
            .with_context(|| format!("token for ServiceAccount {ns}/{sa}"))?;
        let token = answer["status"]["token"].as_str().ok_or_else(|| anyhow!("TokenRequest without a token"))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, crate::controlplane::kubeconfig_yaml(&self.opts.server, &self.opts.ca_pem, token))?;

        let fields: BTreeMap<String, String> = [
            ("metadata.name", name.clone()),
            ("metadata.namespace", ns.clone()),
            ("metadata.uid", uid.clone()),
            ("spec.nodeName", self.node.name.clone()),
            ("spec.serviceAccountName", sa.clone()),
            ("status.podIP", ip.clone()),
            ("status.hostIP", "127.0.0.1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let facts = PodFacts { token: token.to_string(), fields };
        let mounts = sync_volumes(client, pod, &dir, &facts).await?;
        let mut env: Vec<(String, String)> = Vec::new();
        for e in container.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, None) => String::new(),
                (None, Some(from)) => {
                    if let Some(f) = &from.field_ref {
                        facts
                            .fields
                            .get(&f.field_path)
                            .cloned()
                            .ok_or_else(|| anyhow!("env {}: fieldRef {} unsupported", e.name, f.field_path))?
                    } else if let Some(s) = &from.secret_key_ref {
                        let secret = Api::<Secret>::namespaced(client.clone(), ns).get(&s.name).await?;
                        let bytes = secret.data.and_then(|d| d.get(&s.key).cloned()).map(|b| b.0).unwrap_or_default();
                        String::from_utf8(bytes)?
                    } else if let Some(c) = &from.config_map_key_ref {
                        let cm = Api::<ConfigMap>::namespaced(client.clone(), ns).get(&c.name).await?;
                        cm.data.and_then(|d| d.get(&c.key).cloned()).unwrap_or_default()
                    } else {
                        bail!("env {}: only value, fieldRef, secretKeyRef and configMapKeyRef are supported", e.name);
                    }
                }
            };
            env.push((e.name.clone(), value));
        }
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        if let Some(h) = &self.opts.kafka_hosts_file {
            env.push(("KAFKA_HOSTS_FILE".into(), h.display().to_string()));
        }
        let mut args = container.command.iter().flatten().skip(1).cloned().collect::<Vec<_>>();
        args.extend(container.args.iter().flatten().cloned());
        let args = args.iter().map(|a| substitute(a, &ip, &mounts)).collect();
        let launch = Launch { name: name.clone(), program, args, env, dir };
        let process = launch.start(0)?;
        Ok(Slot {
            uid,
            ip: address,
            container,
            launch,
            facts,
            process,
            ready: false,
            restarts: 0,
            started_at: crate::node::now_rfc3339(),
            failing_since: None,
            restart_at: None,
            last_exit: None,
            grace: Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).clamp(1, 60) as u64),
            reported: None,
        })
    }

    async fn shutdown(&mut self, client: &kube::Client) {
        self.pids.lock().unwrap().clear();
        let stoppers: Vec<_> = std::mem::take(&mut self.slots)
            .into_values()
            .map(|slot| {
                std::thread::spawn(move || {
                    let slot = slot;
                    slot.process.stop(Duration::from_secs(5));
                })
            })
            .chain(std::mem::take(&mut self.stopping).into_values())
            .collect();
        for t in stoppers {
            let _ = t.join();
        }
        self.node.remove(client).await;
    }
}

/// A Pod's address: `10.244.<pid>.<n>/32` on the loopback interface while it exists. The third
/// octet keeps test processes running at once apart, as [`crate::node`] does for brokers.
struct PodAddress(String);

impl PodAddress {
    fn add() -> Result<PodAddress> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let ip = format!("10.244.{}.{}", std::process::id() % 250, n % 250 + 1);
        let out = std::process::Command::new("ip")
            .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
            .output()
            .context("run `ip addr add` (iproute2)")?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !err.contains("File exists") {
            bail!(
                "cannot add Pod address {ip} to the loopback interface ({}); the binary node needs \
                 CAP_NET_ADMIN, because EndpointSlices refuse loopback addresses",
                err.trim()
            );
        }
        Ok(PodAddress(ip))
    }
}

impl Drop for PodAddress {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"]).output();
    }
}

/// What a Pod's volumes may project besides objects: its token and its downward-API fields.
struct PodFacts {
    token: String,
    fields: BTreeMap<String, String>,
}

/// Writes the Pod's `secret`, `configMap`, `projected` (ServiceAccount token, ConfigMaps,
/// Secrets, downward API) and `emptyDir` volumes under `dir/volumes/<name>/` (files replaced
/// atomically, as the kubelet's symlink swap does) and returns each mount path with its
/// directory.
async fn sync_volumes(
    client: &kube::Client,
    pod: &Pod,
    dir: &Path,
    facts: &PodFacts,
) -> Result<Vec<(String, PathBuf)>> {
    let ns = pod.namespace().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
    let mut mounts = Vec::new();
    for m in spec.containers[0].volume_mounts.iter().flatten() {
        let v = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .ok_or_else(|| anyhow!("volumeMount {} has no volume", m.name))?;
        let local = dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&local)?;
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            files.extend(secret_files(client, &ns, &name, s.items.as_deref(), s.optional).await?);
        } else if let Some(c) = &v.config_map {
            files.extend(config_map_files(client, &ns, &c.name, c.items.as_deref(), c.optional).await?);
        } else if let Some(p) = &v.projected {
            for source in p.sources.iter().flatten() {
                if let Some(t) = &source.service_account_token {
                    files.insert(t.path.clone(), facts.token.clone().into_bytes());
                } else if let Some(c) = &source.config_map {
                    files.extend(config_map_files(client, &ns, &c.name, c.items.as_deref(), c.optional).await?);
                } else if let Some(s) = &source.secret {
                    files.extend(secret_files(client, &ns, &s.name, s.items.as_deref(), s.optional).await?);
                } else if let Some(d) = &source.downward_api {
                    for item in d.items.iter().flatten() {
                        let field = item.field_ref.as_ref().map(|f| f.field_path.as_str()).unwrap_or_default();
                        let value = facts
                            .fields
                            .get(field)
                            .ok_or_else(|| anyhow!("downwardAPI field {field:?} unsupported"))?;
                        files.insert(item.path.clone(), value.clone().into_bytes());
                    }
                } else {
                    bail!("volume {}: a projected source the binary node does not support", v.name);
                }
            }
        } else if v.empty_dir.is_none() {
            bail!(
                "volume {}: only secret, configMap, projected and emptyDir volumes are supported by the binary node",
                v.name
            );
        }
        for (key, bytes) in files {
            let path = local.join(&key);
            if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let tmp = local.join(format!(".{}.tmp", key.replace('/', "_")));
                std::fs::write(&tmp, &bytes)?;
                std::fs::rename(&tmp, &path)?;
            }
        }
        mounts.push((m.mount_path.clone(), local));
    }
    Ok(mounts)
}

/// The files of `data` as a volume shows them: every key, or only `items` under their paths.
fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
) -> BTreeMap<String, Vec<u8>> {
    match items {
        None => data,
        Some(items) => items.iter().filter_map(|i| data.get(&i.key).map(|b| (i.path.clone(), b.clone()))).collect(),
    }
}

async fn secret_files(
    client: &kube::Client,
    ns: &str,
    name: &str,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    optional: Option<bool>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    match Api::<Secret>::namespaced(client.clone(), ns).get_opt(name).await? {
        Some(secret) => Ok(select(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect(), items)),
        None if optional == Some(true) => Ok(BTreeMap::new()),
        None => bail!("Secret {ns}/{name} not found"),
    }
}

async fn config_map_files(
    client: &kube::Client,
    ns: &str,
    name: &str,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    optional: Option<bool>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    match Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(name).await? {
        Some(cm) => {
            Ok(select(cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect(), items))
        }
        None if optional == Some(true) => Ok(BTreeMap::new()),
        None => bail!("ConfigMap {ns}/{name} not found"),
    }
}

/// An argument with the node's substitutions: `0.0.0.0:` binds the Pod's address, a path under
/// a mount path points into the volume's directory.
pub fn substitute(arg: &str, ip: &str, mounts: &[(String, PathBuf)]) -> String {
    let arg = arg.replace("0.0.0.0:", &format!("{ip}:"));
    let (flag, value) = match arg.split_once('=') {
        Some((f, v)) if f.starts_with('-') => (format!("{f}="), v.to_string()),
        _ => (String::new(), arg.clone()),
    };
    let best = mounts
        .iter()
        .filter(|(mount, _)| {
            let mount = mount.trim_end_matches('/');
            value == mount || value.strip_prefix(mount).is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(mount, _)| mount.len());
    match best {
        Some((mount, local)) => format!("{flag}{}{}", local.display(), &value[mount.trim_end_matches('/').len()..]),
        None => arg,
    }
}

/// One probe: `httpGet` (2xx/3xx; HTTPS without verifying the certificate, as the kubelet) or
/// `tcpSocket`. An `exec` probe fails (the node cannot run commands in an image).
async fn probe(p: &Probe, container: &Container, ip: &str) -> bool {
    let port_of = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(tcp) = &p.tcp_socket {
        let Some(port) = port_of(&tcp.port) else { return false };
        return tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port)))
            .await
            .is_ok_and(|r| r.is_ok());
    }
    let Some(http) = &p.http_get else { return false };
    let Some(port) = port_of(&http.port) else { return false };
    let https = http.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
    let path = http.path.clone().unwrap_or_else(|| "/".into());
    tokio::time::timeout(timeout, http_get(ip, port, https, &path))
        .await
        .is_ok_and(|r| r.is_ok_and(|code| (200..400).contains(&code)))
}

/// The status code of `GET path` on `ip:port`.
pub(crate) async fn http_get(ip: &str, port: u16, https: bool, path: &str) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect((ip, port)).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.34\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    if https {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(ip.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        tls.write_all(request.as_bytes()).await?;
        let _ = tls.read_to_end(&mut answer).await;
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes()).await?;
        let _ = tcp.read_to_end(&mut answer).await;
    }
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| anyhow!("not an HTTP answer: {head:?}"))
}

/// Accepts any server certificate: the kubelet does not verify probe targets either.
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

fn pod_status(slot: &Slot) -> Value {
    let ready = if slot.ready { "True" } else { "False" };
    let running = slot.process.exited().is_none();
    let state = if running {
        json!({"running": {"startedAt": slot.started_at}})
    } else {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": slot.last_exit.clone().unwrap_or_default()}})
    };
    json!({
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": slot.ip.0,
        "podIPs": [{"ip": slot.ip.0}],
        "startTime": slot.started_at,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": ready},
            {"type": "ContainersReady", "status": ready},
        ],
        "containerStatuses": [{
            "name": slot.container.name,
            "ready": slot.ready,
            "started": running,
            "restartCount": slot.restarts,
            "image": slot.container.image.clone().unwrap_or_default(),
            "imageID": "koperator-e2e-node://local-binary",
            "state": state,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_bind_the_pod_address_and_follow_mounts() {
        let mounts = vec![
            ("/certs".to_string(), PathBuf::from("/n/pods/w-1/volumes/certs")),
            ("/certs/ca".to_string(), PathBuf::from("/n/pods/w-1/volumes/ca")),
        ];
        let ip = "127.3.0.7";
        assert_eq!(substitute("--listen=0.0.0.0:9443", ip, &mounts), "--listen=127.3.0.7:9443");
        assert_eq!(
            substitute("--tls-cert-file=/certs/tls.crt", ip, &mounts),
            "--tls-cert-file=/n/pods/w-1/volumes/certs/tls.crt"
        );
        assert_eq!(substitute("--ca-file=/certs/ca/ca.crt", ip, &mounts), "--ca-file=/n/pods/w-1/volumes/ca/ca.crt");
        assert_eq!(substitute("/certs", ip, &mounts), "/n/pods/w-1/volumes/certs");
        assert_eq!(substitute("--x=/certsfoo/a", ip, &mounts), "--x=/certsfoo/a");
        assert_eq!(substitute("--lease-name=koperator-leader", ip, &mounts), "--lease-name=koperator-leader");
    }
}
