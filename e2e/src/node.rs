//! A test node that plays kubelet for broker, Cruise Control and Envoy Pods: every broker Pod
//! (`app=kafka`) the operator creates runs as a real Kafka process on this machine, every
//! Cruise Control Pod (`app=cruisecontrol`, Koperator's `<cluster>-cruisecontrol` Deployment)
//! as the real Cruise Control server, and every Envoy Pod (`app=envoyingress`) as the real
//! Envoy ([`crate::envoy_pod`] lists its substitutions), each from the Pod's own ConfigMaps.
//!
//! Substitutions (the only ones; everything else runs as rendered):
//! - each Pod gets its own loopback address (`127.x.y.z`, stable per Pod name) and listeners
//!   without a host (`INTERNAL://:29092`) bind to it;
//! - a log dir under a PVC's mount path maps to `<node>/pvcs/<claim>/…`, so data survives a
//!   Pod restart exactly as long as the PVC would;
//! - the Pod's DNS names (`<hostname>.<subdomain>.<ns>.svc.cluster.local` and the names of the
//!   Services that select it) go to a hosts file that the brokers read through
//!   `-Djdk.net.hosts.file` and the operator through `--kafka-hosts-file` (a Service's name
//!   there has the first Pod it selects), and to the node's DNS server ([`crate::dns`], every
//!   Pod a Service selects) that Envoy resolves through;
//! - the container image is not pulled: a KRaft Pod runs the release its image tag names when
//!   the node has it (`…:2.13-4.0.0` runs `e2e/tools/kafka-previous/pom.xml`), else the
//!   release pinned in `e2e/tools/kafka/pom.xml`; a ZooKeeper-mode Pod the one in
//!   `e2e/tools/kafka-zk/pom.xml`; the command is not run, its effect is (format in KRaft mode,
//!   then start); `KAFKA_HEAP_OPTS`, `KAFKA_JVM_PERFORMANCE_OPTS` and `KAFKA_OPTS` from the
//!   container's env are used, the Prometheus JMX exporter agent of `KAFKA_OPTS` loaded from
//!   the jar `make e2e-deps` installs (what the `jmxImage` init container copies) and bound to
//!   the Pod's address;
//! - a broker whose `metric.reporters` loads the Cruise Control metrics reporter gets the
//!   reporter jar `make e2e-deps` compiles (`crate::cruise_control::reporter_jar`) before
//!   Kafka's own jars: the effect of Koperator's `cruise-control-reporter` init container,
//!   which copies it into `/opt/kafka/libs/extensions`, named by the container's `CLASSPATH`;
//! - a Cruise Control Pod runs `KafkaCruiseControlMain` with the jars `make e2e-deps` compiles
//!   from the source snapshot (or `KOP_CRUISE_CONTROL_HOME`'s), not the image's; its
//!   `cruisecontrol.properties` is the one in the ConfigMap volume that holds that key, with
//!   `webserver.http.address` set to the Pod's address, relative file paths taken against the
//!   image's working directory `/opt/cruise-control` and then moved like any path under a
//!   mount (the rest of `/opt/cruise-control` goes to `<pod dir>/workdir`); it logs to
//!   `<pod dir>/cruise-control.log` with the node's log4j2 configuration (not the
//!   ConfigMap's `log4j.properties`); `KAFKA_HEAP_OPTS` (default here 64–256 MiB, not the
//!   image's 1 GiB), `KAFKA_JVM_PERFORMANCE_OPTS` and `KAFKA_OPTS` (the JMX exporter agent as
//!   for brokers) from the container's env;
//! - ConfigMap volumes are written, key by key, to `<pod dir>/configmaps/<volume>`;
//! - a Secret volume is written, key by key, to `<pod dir>/secrets/<volume>` (the Pod waits
//!   while the Secret does not exist, as kubelet does) and rendered paths under its mount path
//!   (`ssl.keystore.location`...) point there.
//!
//! On SSL listeners the readiness check speaks TLS with the broker's own mounted certificate
//! (the one it presents to other brokers) and verifies the broker's name against the CA in
//! the same volume, so a broker is Ready only when its TLS setup works.
//!
//! With [`NodeOptions::node_object`] (off by default) the node also does what a kubelet and
//! kube-proxy do for a Node (`node_object.rs`): it registers a Node object whose
//! `InternalIP` is a loopback address of its own (`127.x.250.y`; `Hostname` its name, and an
//! `ExternalIP` when given), keeps it Ready and renews its Lease, binds every Pod it runs to
//! it, finishes the deletion of its Pods once their process has stopped, and serves the node
//! ports of the namespace's NodePort and LoadBalancer Services on its addresses
//! ([`crate::node_port`]). With [`NodeOptions::load_balancer`] (off by default) it also plays a
//! cloud's load balancer controller: each LoadBalancer Service gets an address of its own
//! (`127.x.251.y`) in `status.loadBalancer.ingress`, whose ports forward to its Ready Pods.
//!
//! Pod status (phase, podIP, Ready) follows the program: a Kafka Pod is Ready once every
//! listener answers ApiVersions and, for a broker, the broker lists itself in its metadata; a
//! Cruise Control Pod once `GET /kafkacruisecontrol/state?json=true` answers 200 on its
//! address (Koperator's probe only checks the TCP port); an Envoy Pod once its admin
//! `GET /ready` answers 200. A deleted Pod's process gets SIGTERM
//! (Kafka's controlled shutdown) and its grace period; an exited process
//! is restarted like `restartPolicy: Always` (at once, then with kubelet's back-off, the
//! container `waiting` in `CrashLoopBackOff`), and reported in `lastState.terminated` with its
//! exit code and, under `terminationMessagePolicy: FallbackToLogsOnError`, kubelet's message:
//! the last 80 lines of its log, at most 2048 bytes.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::cruise_control::{CruiseControlLaunch, IMAGE_WORKDIR};
use crate::dns::{DnsServer, Records};
use crate::envoy_pod::EnvoyLaunch;
use crate::kafka::{BrokerLaunch, Dist};
use crate::node_object::NodeObject;
use crate::node_port::{Backend, NodePorts};
use crate::process::Component;
use koperator_shared::kafka::{Admin, ConnectOptions, Connection, Resolver};

/// What the node saw happen, in order, for tests that check how many brokers were down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A process (Kafka or Cruise Control) started for this Pod.
    Started(String),
    /// The Pod became Ready.
    Ready(String),
    /// The Pod stopped being Ready or its process stopped.
    Down(String),
}

/// What a Pod runs.
enum Launch {
    /// A Kafka broker or controller (`app=kafka`).
    Kafka(BrokerLaunch),
    /// Cruise Control (`app=cruisecontrol`), its REST API at `address` (`<pod ip>:<port>`).
    CruiseControl { launch: CruiseControlLaunch, address: String },
    /// Envoy (`app=envoyingress`).
    Envoy(EnvoyLaunch),
}

impl Launch {
    fn start(&self) -> Result<Component> {
        match self {
            Launch::Kafka(l) => l.start(),
            Launch::CruiseControl { launch, .. } => launch.start(),
            Launch::Envoy(l) => l.start(),
        }
    }
}

struct Slot {
    uid: String,
    ip: String,
    process: Component,
    launch: Launch,
    /// The container's name (in its status).
    container: String,
    listeners: Vec<String>,
    /// TLS client settings for SSL listeners, by Kafka listener name (upper case).
    tls: HashMap<String, Arc<rustls::ClientConfig>>,
    /// The DNS name the Pod is reached at (its certificate names it).
    host: String,
    inter_broker: Option<String>,
    node_id: Option<i32>,
    is_broker: bool,
    ready: bool,
    /// Readiness checks failed in a row since the last that passed.
    failed_checks: u32,
    restarts: i32,
    started_at: String,
    image: String,
    grace: Duration,
    reported: Option<serde_json::Value>,
    /// `terminationMessagePolicy: FallbackToLogsOnError`: a failed process's log tail becomes
    /// its termination message.
    fallback_to_logs: bool,
    /// `lastState.terminated` of the container, once a process has exited.
    last_terminated: Option<serde_json::Value>,
    /// When an exited process is started again (CrashLoopBackOff until then).
    restart_at: Option<Instant>,
}

impl Slot {
    /// A Pod whose process was just started, not Ready yet; no Kafka listeners (a broker's
    /// slot fills them in).
    fn started(
        uid: String,
        ip: &str,
        process: Component,
        launch: Launch,
        container: &k8s_openapi::api::core::v1::Container,
        spec: &k8s_openapi::api::core::v1::PodSpec,
    ) -> Slot {
        Slot {
            tls: HashMap::new(),
            host: ip.to_string(),
            uid,
            ip: ip.to_string(),
            process,
            launch,
            container: container.name.clone(),
            listeners: Vec::new(),
            inter_broker: None,
            node_id: None,
            is_broker: false,
            ready: false,
            failed_checks: 0,
            restarts: 0,
            started_at: now_rfc3339(),
            image: container.image.clone().unwrap_or_default(),
            grace: Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).clamp(5, 60) as u64),
            reported: None,
            fallback_to_logs: container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
            last_terminated: None,
            restart_at: None,
        }
    }
}

/// A running test node for one namespace. Stops every process when dropped.
pub struct Node {
    shared: Arc<Shared>,
    /// The hosts file with every Pod's and Service's name.
    pub hosts_file: PathBuf,
    /// The node's directory (broker logs under `pods/`, data under `pvcs/`).
    pub dir: PathBuf,
    events: Arc<Mutex<Vec<(Instant, NodeEvent)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    node_object: Option<(String, String)>,
    dns: SocketAddr,
    /// Runs the DNS server and the node ports, apart from the node's own loop (which blocks
    /// while a process stops).
    net: Option<tokio::runtime::Runtime>,
    _tmp: tempfile::TempDir,
}

/// How to start a [`Node`]; the default is what [`Node::start`] does.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Register a Node object of this name, bind the Pods to it and serve node ports on its
    /// addresses. `None` (the default): no Node object, Pods stay unbound, no node ports.
    pub node_name: Option<String>,
    /// An `ExternalIP` of the Node object besides its `InternalIP` (a local address such as
    /// `127.0.251.1`); node ports listen on it too.
    pub external_ip: Option<String>,
    /// Play a cloud's load balancer controller: each LoadBalancer Service of the namespace
    /// gets an address of its own (`127.x.251.y`) in `status.loadBalancer.ingress`, where its
    /// ports forward to its Ready Pods.
    pub load_balancer: bool,
}

impl NodeOptions {
    /// A node with a Node object named `name`.
    pub fn node_object(name: impl Into<String>) -> NodeOptions {
        NodeOptions { node_name: Some(name.into()), ..NodeOptions::default() }
    }
}

impl Node {
    /// Starts a node that runs the broker Pods (`app=kafka`), Cruise Control Pods
    /// (`app=cruisecontrol`) and Envoy Pods (`app=envoyingress`) of `namespace`, using
    /// `kubeconfig`, without a Node object.
    pub fn start(kubeconfig: &Path, namespace: &str) -> Result<Node> {
        Node::start_with(kubeconfig, namespace, NodeOptions::default())
    }

    /// Like [`Node::start`], with `options`. With a Node object, returns once it is registered.
    pub fn start_with(kubeconfig: &Path, namespace: &str, options: NodeOptions) -> Result<Node> {
        crate::kafka::libs()?;
        let tmp = tempfile::Builder::new().prefix("kop-node-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let hosts_file = dir.join("hosts");
        std::fs::write(&hosts_file, "")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let net = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("node-net-{namespace}"))
            .enable_all()
            .build()?;
        let dns = DnsServer::start(net.handle())?;
        let node = options.node_name.map(|name| {
            let mut addresses =
                vec![("InternalIP".to_string(), next_address(NODE_BLOCK)), ("Hostname".to_string(), name.clone())];
            addresses.extend(options.external_ip.map(|ip| ("ExternalIP".to_string(), ip)));
            NodeObject::new(name, addresses, "koperator-e2e://kafka-node")
        });
        let node_object =
            node.as_ref().map(|n| (n.name.clone(), n.address("InternalIP").unwrap_or_default().to_string()));
        let mut state = NodeState {
            node,
            load_balancer: options.load_balancer.then(BTreeMap::new),
            dns: dns.records.clone(),
            dns_address: dns.address,
            node_ports: NodePorts::new(net.handle().clone()),
            net: net.handle().clone(),
            shared: shared.clone(),
            ns: namespace.to_string(),
            dir: dir.clone(),
            hosts_file: hosts_file.clone(),
            slots: BTreeMap::new(),
            ips: HashMap::new(),
            events: events.clone(),
            last_check: Instant::now() - Duration::from_secs(10),
        };
        let kubeconfig = kubeconfig.to_path_buf();
        let s = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name(format!("node-{namespace}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let client = client(&kubeconfig).await.expect("node kube client");
                if let Some(node) = state.node.as_mut()
                    && let Err(e) = node.heartbeat(&client).await
                {
                    let _ = ready_tx.send(Err(e.context("register the Node object")));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                let heartbeat = state.node.as_ref().map(|n| n.keep_alive(kubeconfig.clone(), &state.net));
                while !s.load(Ordering::SeqCst) {
                    if let Err(e) = state.step(&client).await {
                        eprintln!("[node {}] {e:#}", state.ns);
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                state.stop_all();
                if let (Some(node), Some(heartbeat)) = (&state.node, heartbeat) {
                    heartbeat.abort();
                    let _ = heartbeat.await;
                    node.remove(&client).await;
                }
            });
        })?;
        ready_rx.recv().map_err(|_| anyhow!("node thread died"))??;
        Ok(Node {
            shared,
            hosts_file,
            dir,
            events,
            stop,
            thread: Some(thread),
            node_object,
            dns: dns.address,
            net: Some(net),
            _tmp: tmp,
        })
    }

    /// The name of the node's Node object, if it has one ([`NodeOptions::node_name`]).
    pub fn node_name(&self) -> Option<&str> {
        self.node_object.as_ref().map(|(name, _)| name.as_str())
    }

    /// The `InternalIP` of the node's Node object (a loopback address of its own), where its
    /// node ports listen.
    pub fn internal_ip(&self) -> Option<&str> {
        self.node_object.as_ref().map(|(_, ip)| ip.as_str())
    }

    /// The node's DNS server (UDP), which answers for the Pods' and Services' names.
    pub fn dns_address(&self) -> SocketAddr {
        self.dns
    }

    /// Freezes a broker: SIGSTOP to its process while its Pod keeps reporting Ready, the way a
    /// hung JVM looks to a TCP readiness probe. Kafka notices (the broker is fenced, its
    /// replicas leave the ISR); Kubernetes does not.
    pub fn pause(&self, pod: &str) -> Result<()> {
        let pid = *self.shared.pids.lock().unwrap().get(pod).ok_or_else(|| anyhow!("no process for {pod}"))?;
        self.shared.frozen.lock().unwrap().insert(pod.to_string());
        // SAFETY: kill(2) on a process this node started.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        Ok(())
    }

    /// Undoes [`Node::pause`].
    pub fn resume(&self, pod: &str) -> Result<()> {
        let pid = *self.shared.pids.lock().unwrap().get(pod).ok_or_else(|| anyhow!("no process for {pod}"))?;
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        self.shared.frozen.lock().unwrap().remove(pod);
        Ok(())
    }

    /// SIGKILLs a broker's process, the way the kernel's OOM killer or a crash ends it; the
    /// node restarts it (`restartPolicy: Always`) in the same Pod, on the same PVCs.
    pub fn kill(&self, pod: &str) -> Result<()> {
        let pid = *self.shared.pids.lock().unwrap().get(pod).ok_or_else(|| anyhow!("no process for {pod}"))?;
        // SAFETY: kill(2) on a process this node started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        Ok(())
    }

    /// Everything the node saw so far, with when.
    pub fn events(&self) -> Vec<(Instant, NodeEvent)> {
        self.events.lock().unwrap().clone()
    }

    /// Largest number of the given Pods that were down (not Ready) at the same time after
    /// `since`, counting from the state at `since`.
    pub fn max_down(&self, pods: &[&str], since: Instant) -> usize {
        let mut ready: HashMap<String, bool> = pods.iter().map(|p| (p.to_string(), false)).collect();
        let mut max = 0;
        for (at, ev) in self.events() {
            match &ev {
                NodeEvent::Ready(p) => {
                    ready.insert(p.clone(), true);
                }
                NodeEvent::Down(p) | NodeEvent::Started(p) => {
                    ready.insert(p.clone(), false);
                }
            }
            if at >= since {
                max = max.max(pods.iter().filter(|p| !ready[**p]).count());
            }
        }
        max
    }

    /// The log of a Pod's current process: `kafka.log` of a broker, `cruise-control.log` of
    /// Cruise Control, `envoy.log` of Envoy.
    pub fn broker_log(&self, pod: &str) -> Option<PathBuf> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("pods"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{pod}-"))))
            .flat_map(|p| [p.join("kafka.log"), p.join("cruise-control.log"), p.join("envoy.log")])
            .filter(|p| p.exists())
            .collect();
        logs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        logs.pop()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(net) = self.net.take() {
            net.shutdown_background();
        }
    }
}

pub(crate) async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// State the test thread and the node thread share.
#[derive(Default)]
struct Shared {
    /// Pod name → pid of its process (Kafka or Cruise Control).
    pids: Mutex<HashMap<String, u32>>,
    /// Pods whose readiness is frozen (their process is paused).
    frozen: Mutex<std::collections::HashSet<String>>,
}

/// The Pods the node runs: brokers, Cruise Control (Koperator's `<cluster>-cruisecontrol`
/// Deployment) and Envoy.
const KAFKA_PODS: &str = "app=kafka";
const CRUISE_CONTROL_PODS: &str = "app=cruisecontrol";
const ENVOY_PODS: &str = "app=envoyingress";

struct NodeState {
    /// The Node object, when the node has one.
    node: Option<NodeObject>,
    /// What the node's DNS server answers.
    dns: Arc<RwLock<Records>>,
    dns_address: SocketAddr,
    /// With [`NodeOptions::load_balancer`]: the addresses given to LoadBalancer Services.
    load_balancer: Option<BTreeMap<String, IpAddr>>,
    node_ports: NodePorts,
    /// The runtime of the DNS server, the node ports and the Node object's heartbeat.
    net: tokio::runtime::Handle,
    shared: Arc<Shared>,
    ns: String,
    dir: PathBuf,
    hosts_file: PathBuf,
    slots: BTreeMap<String, Slot>,
    ips: HashMap<String, String>,
    events: Arc<Mutex<Vec<(Instant, NodeEvent)>>>,
    last_check: Instant,
}

impl NodeState {
    fn event(&self, ev: NodeEvent) {
        self.events.lock().unwrap().push((Instant::now(), ev));
    }

    fn ip_for(&mut self, pod: &str) -> String {
        self.ips.entry(pod.to_string()).or_insert_with(next_ip).clone()
    }

    async fn step(&mut self, client: &kube::Client) -> Result<()> {
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), &self.ns);
        let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
        let mut deleting: Vec<Pod> = Vec::new();
        for selector in [KAFKA_PODS, CRUISE_CONTROL_PODS, ENVOY_PODS] {
            let listed = pods_api.list(&ListParams::default().labels(selector)).await?;
            for p in listed.into_iter().filter(|p| self.node.as_ref().is_none_or(|n| n.may_run(p))) {
                match p.metadata.deletion_timestamp {
                    Some(_) => deleting.push(p),
                    None => {
                        pods.insert(p.name_any(), p);
                    }
                }
            }
        }
        // Stop what no longer has its Pod.
        let gone: Vec<String> = self
            .slots
            .iter()
            .filter(|(name, slot)| pods.get(*name).and_then(|p| p.metadata.uid.as_deref()) != Some(slot.uid.as_str()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            let slot = self.slots.remove(&name).expect("listed");
            self.event(NodeEvent::Down(name.clone()));
            if self.shared.frozen.lock().unwrap().remove(&name) {
                // SAFETY: kill(2) on a process this node started; a paused JVM cannot take SIGTERM.
                unsafe { libc::kill(slot.process.pid() as i32, libc::SIGCONT) };
            }
            slot.process.stop(slot.grace);
            self.shared.pids.lock().unwrap().remove(&name);
        }
        // A Pod bound to the node is deleted once its process has stopped.
        if let Some(node) = &self.node {
            for pod in
                deleting.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(&node.name))
            {
                if let Err(e) = crate::node_object::finish_deletion(&pods_api, pod).await {
                    eprintln!("[node {}] {e:#}", self.ns);
                }
            }
        }
        // Start new Pods.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &self.ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.ns);
        for (name, pod) in &pods {
            if self.slots.contains_key(name) {
                continue;
            }
            if let Some(node) = &self.node
                && pod.spec.as_ref().is_some_and(|s| s.node_name.is_none())
                && let Err(e) = node.bind(&pods_api, name).await
            {
                eprintln!("[node {}] {e:#}", self.ns);
                continue;
            }
            let ip = self.ip_for(name);
            match self.launch(&cms, &secrets, pod, &ip).await {
                Ok(slot) => {
                    self.shared.pids.lock().unwrap().insert(name.clone(), slot.process.pid());
                    self.event(NodeEvent::Started(name.clone()));
                    self.slots.insert(name.clone(), slot);
                }
                Err(e) => eprintln!("[node {}] cannot start {name}: {e:#}", self.ns),
            }
        }
        let svcs: Api<Service> = Api::namespaced(client.clone(), &self.ns);
        let services = svcs.list(&ListParams::default()).await?.items;
        // Replace the file atomically: brokers and the operator read it at any moment.
        let entries = crate::dns::entries(&self.ns, &pods, &services, &self.ips);
        *self.dns.write().unwrap() = crate::dns::records(&entries);
        let text = hosts_text(&entries);
        if std::fs::read_to_string(&self.hosts_file).ok().as_deref() != Some(text.as_str()) {
            let tmp = self.hosts_file.with_extension("tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &self.hosts_file)?;
        }

        // Restart exited processes; check readiness about once a second.
        let check = self.last_check.elapsed() >= Duration::from_millis(900);
        if check {
            self.last_check = Instant::now();
        }
        let host_ip = self.host_ip();
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            let exited = self.slots[&name].process.exited();
            if let Some(status) = exited {
                let slot = self.slots.get_mut(&name).expect("listed");
                let mut went_down = false;
                if slot.restart_at.is_none() {
                    // Like kubelet: the first restart at once, then 10 s, 20 s... up to 5 min.
                    let backoff = match slot.restarts {
                        0 => Duration::ZERO,
                        n => {
                            Duration::from_secs(10 * 2u64.pow((n - 1).clamp(0, 5) as u32)).min(Duration::from_secs(300))
                        }
                    };
                    eprintln!(
                        "[node {}] {name} exited ({status}); restarting in {backoff:?}. Log tail:\n{}",
                        self.ns,
                        slot.process.log_tail(60)
                    );
                    let code = slot.process.exit_code().unwrap_or(1);
                    let message = if slot.fallback_to_logs && code != 0 {
                        termination_message(&slot.process.log_tail(TERMINATION_MESSAGE_LINES))
                    } else {
                        String::new()
                    };
                    slot.last_terminated = Some(json!({
                        "exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" },
                        "message": message,
                        "startedAt": slot.started_at,
                        "finishedAt": now_rfc3339(),
                    }));
                    slot.restart_at = Some(Instant::now() + backoff);
                    slot.ready = false;
                    went_down = true;
                }
                if slot.restart_at.is_some_and(|t| Instant::now() >= t) {
                    slot.restarts += 1;
                    slot.restart_at = None;
                    slot.started_at = now_rfc3339();
                    slot.process = slot.launch.start()?;
                    self.shared.pids.lock().unwrap().insert(name.clone(), slot.process.pid());
                }
                if went_down {
                    self.event(NodeEvent::Down(name.clone()));
                }
                let slot = self.slots.get_mut(&name).expect("listed");
                let status = pod_status(slot, &host_ip);
                if slot.reported.as_ref() != Some(&status) {
                    pods_api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
                        .await
                        .with_context(|| format!("report status of {name}"))?;
                    slot.reported = Some(status);
                }
                continue;
            }
            let frozen = self.shared.frozen.lock().unwrap().contains(&name);
            if check && !frozen {
                let passed = probe(&self.slots[&name], &self.hosts_file).await;
                let slot = self.slots.get_mut(&name).expect("listed");
                slot.failed_checks = if passed { 0 } else { slot.failed_checks + 1 };
                // kubelet's readinessProbe defaults: Ready after one success, not Ready after
                // failureThreshold (3) failures in a row (a machine busy for a second is no
                // broker down).
                let ready = passed || (slot.ready && slot.failed_checks < READINESS_FAILURE_THRESHOLD);
                if ready != slot.ready {
                    slot.ready = ready;
                    self.event(if ready { NodeEvent::Ready(name.clone()) } else { NodeEvent::Down(name.clone()) });
                }
            }
            let slot = self.slots.get_mut(&name).expect("listed");
            let status = pod_status(slot, &host_ip);
            if slot.reported.as_ref() != Some(&status) {
                pods_api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status.clone()})))
                    .await
                    .with_context(|| format!("report status of {name}"))?;
                slot.reported = Some(status);
            }
        }
        // After the readiness checks, so that a Pod reported Ready gets connections.
        self.serve_ports(&svcs, &pods, &services).await;
        Ok(())
    }

    /// The Pods' `hostIP`: the Node object's `InternalIP`, else 127.0.0.1.
    fn host_ip(&self) -> String {
        self.node.as_ref().and_then(|n| n.address("InternalIP")).unwrap_or("127.0.0.1").to_string()
    }

    /// Node ports of the namespace's Services on the Node object's addresses, and the
    /// LoadBalancer Services' own addresses, to the Pods' Ready processes.
    async fn serve_ports(&mut self, svcs: &Api<Service>, pods: &BTreeMap<String, Pod>, services: &[Service]) {
        if let Some(given) = self.load_balancer.as_mut() {
            let balanced: Vec<&Service> = services
                .iter()
                .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
                .collect();
            given.retain(|name, _| balanced.iter().any(|s| s.name_any() == *name));
            for svc in balanced {
                let ip = *given
                    .entry(svc.name_any())
                    .or_insert_with(|| next_address(LOAD_BALANCER_BLOCK).parse().expect("an IP"));
                let ingress =
                    svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
                if !ingress.into_iter().flatten().any(|i| i.ip.as_deref() == Some(&ip.to_string())) {
                    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
                    if let Err(e) =
                        svcs.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(status)).await
                    {
                        eprintln!("[node {}] load balancer address of {}: {e}", self.ns, svc.name_any());
                    }
                }
            }
        }
        let ips: Vec<IpAddr> = self
            .node
            .iter()
            .flat_map(|n| &n.addresses)
            .filter(|(k, _)| k.ends_with("IP"))
            .filter_map(|(_, a)| a.parse().ok())
            .collect();
        let backends: Vec<Backend> = pods
            .iter()
            .filter_map(|(name, pod)| {
                let slot = self.slots.get(name)?;
                Some(Backend { pod, ip: slot.ip.parse().ok()?, ready: slot.ready })
            })
            .collect();
        let mut routes = crate::node_port::routes(&ips, services, &backends);
        if let Some(given) = &self.load_balancer {
            routes.extend(crate::node_port::load_balancer_routes(given, services, &backends));
        }
        self.node_ports.update(&routes);
    }

    /// Writes the Secret and ConfigMap volumes `container` mounts into `dir` (`secrets/<volume>`,
    /// `configmaps/<volume>`, key by key) and returns `(mount path, local directory)` of each.
    /// Fails while a Secret does not exist yet (the Pod waits, as kubelet does).
    async fn write_volumes(
        &self,
        cms: &Api<ConfigMap>,
        secrets: &Api<Secret>,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        container: &k8s_openapi::api::core::v1::Container,
        dir: &Path,
    ) -> Result<Vec<(String, PathBuf)>> {
        let volumes = spec.volumes.clone().unwrap_or_default();
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        let mut secret_dirs: Vec<(String, PathBuf)> = Vec::new();
        for m in &mounts {
            let Some(source) = volumes.iter().find(|v| v.name == m.name).and_then(|v| v.secret.as_ref()) else {
                continue;
            };
            let secret_name = source.secret_name.clone().unwrap_or_default();
            let secret = secrets
                .get_opt(&secret_name)
                .await?
                .ok_or_else(|| anyhow!("Secret {secret_name} does not exist yet"))?;
            let local = dir.join("secrets").join(&m.name);
            std::fs::create_dir_all(&local)?;
            for (key, value) in secret.data.unwrap_or_default() {
                std::fs::write(local.join(&key), &value.0)?;
            }
            secret_dirs.push((m.mount_path.clone(), local));
        }
        // ConfigMap volumes (the JMX exporter's configuration...): written out key by key.
        for m in &mounts {
            let Some(source) = volumes.iter().find(|v| v.name == m.name).and_then(|v| v.config_map.as_ref()) else {
                continue;
            };
            let data = cms.get(&source.name).await.with_context(|| format!("ConfigMap {}", source.name))?.data;
            let local = dir.join("configmaps").join(&m.name);
            std::fs::create_dir_all(&local)?;
            for (key, value) in data.unwrap_or_default() {
                std::fs::write(local.join(&key), value)?;
            }
            secret_dirs.push((m.mount_path.clone(), local));
        }
        Ok(secret_dirs)
    }

    async fn launch(&self, cms: &Api<ConfigMap>, secrets: &Api<Secret>, pod: &Pod, ip: &str) -> Result<Slot> {
        match pod.labels().get("app").map(String::as_str) {
            Some("cruisecontrol") => return self.launch_cruise_control(cms, secrets, pod, ip).await,
            Some(crate::envoy_pod::APP) => return self.launch_envoy(cms, secrets, pod, ip).await,
            _ => {}
        }
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
        let container = spec.containers.iter().find(|c| c.name == "kafka").unwrap_or(&spec.containers[0]);
        let volumes = spec.volumes.clone().unwrap_or_default();
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        // The ConfigMap mounted into the container holds `broker-config`.
        let cm_name = mounts
            .iter()
            .find_map(|m| {
                volumes.iter().find(|v| v.name == m.name).and_then(|v| v.config_map.as_ref()).map(|c| c.name.clone())
            })
            .ok_or_else(|| anyhow!("{name} mounts no ConfigMap"))?;
        let cm = cms.get(&cm_name).await.with_context(|| format!("ConfigMap {cm_name}"))?;
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get("broker-config"))
            .ok_or_else(|| anyhow!("{cm_name} has no broker-config"))?;
        let pvc_dirs: Vec<(String, PathBuf)> = mounts
            .iter()
            .filter_map(|m| {
                let claim = volumes.iter().find(|v| v.name == m.name)?.persistent_volume_claim.as_ref()?;
                Some((m.mount_path.clone(), self.dir.join("pvcs").join(&claim.claim_name)))
            })
            .collect();
        let env = |key: &str| {
            container.env.iter().flatten().find(|e| e.name == key).and_then(|e| e.value.clone()).unwrap_or_default()
        };
        let dir = self.dir.join("pods").join(format!("{name}-{}", &uid[..8.min(uid.len())]));
        std::fs::create_dir_all(&dir)?;
        let secret_dirs = self.write_volumes(cms, secrets, spec, container, &dir).await?;
        // With mount namespaces each disk is bound at its mount path, as in a container, and
        // Kafka reports the log directories the operator rendered; without, log.dirs moves to
        // the node's directories.
        let (rewrite, mounts) = match crate::kafka::mount_namespaces() {
            true => (Vec::new(), pvc_dirs.iter().map(|(mount, local)| (local.clone(), mount.clone())).collect()),
            false => (pvc_dirs, Vec::new()),
        };
        let props = node_properties(text, ip, &rewrite);
        let props = with_secret_paths(&props, &secret_dirs);
        let host = match (spec.hostname.as_ref(), spec.subdomain.as_ref()) {
            (Some(h), Some(sub)) => format!("{h}.{sub}.{}.svc.cluster.local", self.ns),
            (Some(h), None) => format!("{h}.{}.svc.cluster.local", self.ns),
            _ => ip.to_string(),
        };
        let properties = dir.join("server.properties");
        std::fs::write(&properties, &props)?;
        let mut jvm_opts: Vec<String> = Vec::new();
        for key in ["KAFKA_HEAP_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS"] {
            jvm_opts.extend(env(key).split_whitespace().map(String::from));
        }
        jvm_opts.extend(kafka_opts(&env("KAFKA_OPTS"), ip, &secret_dirs)?);
        let launch = BrokerLaunch {
            name: name.clone(),
            dir,
            properties,
            cluster_id: env("KAFKA_CLUSTER_ID"),
            hosts_file: Some(self.hosts_file.clone()),
            jvm_opts,
            dist: Dist::for_pod(&props, container.image.as_deref().unwrap_or_default()),
            format_args: format_arguments(container.command.as_deref().unwrap_or_default(), &secret_dirs)?,
            classpath: broker_classpath(&props)?,
            mounts,
        };
        let launch = Launch::Kafka(launch);
        let process = launch.start()?;
        let get = |k: &str| property(&props, k);
        let tls = tls_settings(&props)?;
        Ok(Slot {
            tls,
            host,
            listeners: get("listeners").map(|l| l.split(',').map(String::from).collect()).unwrap_or_default(),
            inter_broker: get("inter.broker.listener.name").map(String::from),
            node_id: get("node.id").or_else(|| get("broker.id")).and_then(|v| v.parse().ok()),
            is_broker: get("process.roles").is_none_or(|r| r.split(',').any(|r| r.trim() == "broker")),
            ..Slot::started(uid, ip, process, launch, container, spec)
        })
    }

    /// A Cruise Control Pod: the real server from the `cruisecontrol.properties` of the
    /// ConfigMap volume that holds one, on the Pod's address.
    async fn launch_cruise_control(
        &self,
        cms: &Api<ConfigMap>,
        secrets: &Api<Secret>,
        pod: &Pod,
        ip: &str,
    ) -> Result<Slot> {
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
        let container = &spec.containers.first().ok_or_else(|| anyhow!("{name} has no container"))?;
        let dir = self.dir.join("pods").join(format!("{name}-{}", &uid[..8.min(uid.len())]));
        std::fs::create_dir_all(&dir)?;
        let mounts = self.write_volumes(cms, secrets, spec, container, &dir).await?;
        let rendered = mounts
            .iter()
            .find_map(|(_, local)| std::fs::read_to_string(local.join("cruisecontrol.properties")).ok())
            .ok_or_else(|| anyhow!("{name} mounts no ConfigMap with cruisecontrol.properties"))?;
        let workdir = dir.join("workdir");
        std::fs::create_dir_all(&workdir)?;
        let props = cruise_control_properties(&rendered, ip, &mounts, &workdir);
        let properties = dir.join("cruisecontrol.properties");
        std::fs::write(&properties, &props)?;
        let env = |key: &str| {
            container.env.iter().flatten().find(|e| e.name == key).and_then(|e| e.value.clone()).unwrap_or_default()
        };
        let mut jvm_opts: Vec<String> = match env("KAFKA_HEAP_OPTS") {
            heap if heap.trim().is_empty() => vec!["-Xms64m".into(), "-Xmx256m".into()],
            heap => heap.split_whitespace().map(String::from).collect(),
        };
        jvm_opts.extend(env("KAFKA_JVM_PERFORMANCE_OPTS").split_whitespace().map(String::from));
        jvm_opts.extend(kafka_opts(&env("KAFKA_OPTS"), ip, &mounts)?);
        let port = property(&props, "webserver.http.port").unwrap_or("9090");
        let launch = Launch::CruiseControl {
            launch: CruiseControlLaunch {
                name: name.clone(),
                dir: dir.clone(),
                properties,
                hosts_file: Some(self.hosts_file.clone()),
                jvm_opts,
            },
            address: format!("{ip}:{port}"),
        };
        let process = launch.start()?;
        Ok(Slot::started(uid, ip, process, launch, container, spec))
    }

    /// An Envoy Pod: the real Envoy on the Pod's own configuration ([`crate::envoy_pod`]).
    async fn launch_envoy(&self, cms: &Api<ConfigMap>, secrets: &Api<Secret>, pod: &Pod, ip: &str) -> Result<Slot> {
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
        let container = spec.containers.iter().find(|c| c.name == "envoy").or(spec.containers.first());
        let container = container.ok_or_else(|| anyhow!("{name} has no container"))?;
        let dir = self.dir.join("pods").join(format!("{name}-{}", &uid[..8.min(uid.len())]));
        std::fs::create_dir_all(&dir)?;
        let mounts = self.write_volumes(cms, secrets, spec, container, &dir).await?;
        let launch = Launch::Envoy(EnvoyLaunch::prepare(&name, &dir, container, ip, self.dns_address, &mounts)?);
        let process = launch.start()?;
        Ok(Slot::started(uid, ip, process, launch, container, spec))
    }

    fn stop_all(&mut self) {
        for (_, slot) in std::mem::take(&mut self.slots) {
            slot.process.stop(Duration::from_secs(5));
        }
    }
}

/// Ready: every listener answers ApiVersions; a broker also lists itself in the metadata it
/// serves on its inter-broker listener.
/// Readiness checks that fail in a row before a Ready Pod is not Ready (kubelet's default
/// `failureThreshold`).
const READINESS_FAILURE_THRESHOLD: u32 = 3;

async fn probe(slot: &Slot, hosts: &Path) -> bool {
    match &slot.launch {
        Launch::CruiseControl { address, .. } => {
            let address = address.clone();
            let answers = tokio::task::spawn_blocking(move || {
                crate::cruise_control::state_answers(&address, Duration::from_secs(2))
            });
            return answers.await.unwrap_or(false);
        }
        Launch::Envoy(envoy) => return tokio::time::timeout(Duration::from_secs(2), envoy.ready()).await == Ok(true),
        Launch::Kafka(_) => {}
    }
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(800),
        request_timeout: Duration::from_secs(2),
        resolver: Resolver::with_hosts_file(Some(hosts.to_path_buf())),
        ..ConnectOptions::default()
    };
    let mut broker = None;
    for l in &slot.listeners {
        let Some((name, hostport)) = l.split_once("://") else { return false };
        let port = hostport.rsplit(':').next().unwrap_or_default();
        let mut opts = opts.clone();
        // TLS verifies the broker's name, so SSL listeners are reached at the Pod's DNS name.
        let addr = match slot.tls.get(name) {
            Some(config) => {
                opts.tls = Some(config.clone());
                format!("{}:{port}", slot.host)
            }
            None => format!("{}:{port}", slot.ip),
        };
        if let Err(e) = Connection::open(&addr, &opts).await {
            // A broker still starting refuses connections; a TLS failure says more.
            if slot.tls.contains_key(name) && !e.to_string().contains("Connection refused") {
                eprintln!("[node] {addr} ({name}) not ready: {e}");
            }
            return false;
        }
        if slot.inter_broker.as_deref().is_some_and(|ib| ib.eq_ignore_ascii_case(name)) {
            broker = Some((addr, opts));
        }
    }
    if !slot.is_broker {
        return true;
    }
    let (Some((addr, opts)), Some(id)) = (broker, slot.node_id) else { return false };
    let admin = Admin::new(vec![addr], opts).with_retry_for(Duration::ZERO);
    admin.metadata(Some(&[])).await.is_ok_and(|m| m.brokers.contains_key(&id))
}

/// kubelet's limits for a termination message taken from the log: the last 80 lines, at most
/// 2048 bytes.
const TERMINATION_MESSAGE_LINES: usize = 80;
const TERMINATION_MESSAGE_BYTES: usize = 2048;

/// The end of a log tail, cut to kubelet's byte limit on a character boundary.
fn termination_message(tail: &str) -> String {
    let mut start = tail.len().saturating_sub(TERMINATION_MESSAGE_BYTES);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    tail[start..].to_string()
}

fn pod_status(slot: &Slot, host_ip: &str) -> serde_json::Value {
    let ready = if slot.ready { "True" } else { "False" };
    let state = match slot.restart_at {
        Some(_) => {
            let message = format!("back-off restarting failed container {}", slot.container);
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}})
        }
        None => json!({"running": {"startedAt": slot.started_at}}),
    };
    let last_state = slot.last_terminated.as_ref().map(|t| json!({"terminated": t})).unwrap_or_else(|| json!({}));
    json!({
        "phase": "Running",
        "hostIP": host_ip,
        "podIP": slot.ip,
        "podIPs": [{"ip": slot.ip}],
        "startTime": slot.started_at,
        "conditions": [
            {"type": "Ready", "status": ready},
            {"type": "ContainersReady", "status": ready},
        ],
        "containerStatuses": [{
            "name": slot.container,
            "ready": slot.ready,
            "started": true,
            "restartCount": slot.restarts,
            "image": slot.image,
            "imageID": match slot.launch {
                Launch::Kafka(_) => "koperator-e2e-node://apache-kafka",
                Launch::CruiseControl { .. } => "koperator-e2e-node://cruise-control",
                Launch::Envoy(_) => "koperator-e2e-node://envoy",
            },
            "state": state,
            "lastState": last_state,
        }],
    })
}

pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).unwrap_or_default().to_string()
}

/// The value of `key` in a properties text.
fn property<'a>(props: &'a str, key: &str) -> Option<&'a str> {
    props.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::trim)
}

/// A loopback address no other Pod of any node uses: unique within the process (a counter)
/// and, through the second octet, across test processes running at once (their pids).
pub(crate) fn next_ip() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("127.{}.{}.{}", 1 + std::process::id() % 250, n / 250, n % 250 + 1)
}

/// Third octets of the loopback addresses of Node objects (`InternalIP`) and of load
/// balancers, apart from the Pods'.
const NODE_BLOCK: u8 = 250;
const LOAD_BALANCER_BLOCK: u8 = 251;

/// A loopback address in `block` ([`NODE_BLOCK`] or [`LOAD_BALANCER_BLOCK`]) that, like the
/// Pods', is unique across test processes through the second octet.
fn next_address(block: u8) -> String {
    static NEXT: [std::sync::atomic::AtomicU32; 2] = [const { std::sync::atomic::AtomicU32::new(0) }; 2];
    let n = NEXT[usize::from(block == LOAD_BALANCER_BLOCK)].fetch_add(1, Ordering::SeqCst);
    format!("127.{}.{block}.{}", 1 + std::process::id() % 250, n % 250 + 1)
}

/// The rendered properties with the node's substitutions: listeners bound to `ip`, log dirs
/// under PVC mount paths moved to the node's PVC directories.
pub fn node_properties(rendered: &str, ip: &str, pvc_dirs: &[(String, PathBuf)]) -> String {
    let mut out = String::new();
    for line in rendered.lines() {
        let line = if let Some(v) = line.strip_prefix("listeners=") {
            let bound: Vec<String> = v
                .split(',')
                .map(|l| match l.split_once("://") {
                    Some((name, hp)) => {
                        let port = hp.rsplit(':').next().unwrap_or_default();
                        format!("{name}://{ip}:{port}")
                    }
                    None => l.to_string(),
                })
                .collect();
            format!("listeners={}", bound.join(","))
        } else if let Some(v) = line.strip_prefix("log.dirs=") {
            let dirs: Vec<String> = v
                .split(',')
                .map(|d| {
                    pvc_dirs
                        .iter()
                        .filter(|(mount, _)| d.starts_with(mount.as_str()))
                        .max_by_key(|(mount, _)| mount.len())
                        .map(|(mount, local)| format!("{}{}", local.display(), &d[mount.len()..]))
                        .unwrap_or_else(|| d.to_string())
                })
                .collect();
            format!("log.dirs={}", dirs.join(","))
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A Cruise Control Pod's `cruisecontrol.properties` as the node runs it: the web server bound
/// to the Pod's address; relative file paths (`capacity.config.file=config/capacity.json`)
/// taken as relative to the image's working directory ([`IMAGE_WORKDIR`]); paths under a
/// mounted volume moved to the node's copy of it, other paths under the working directory to
/// `workdir`.
pub fn cruise_control_properties(rendered: &str, ip: &str, mounts: &[(String, PathBuf)], workdir: &Path) -> String {
    let text = crate::cruise_control::with_properties(rendered, &[("webserver.http.address", ip)]);
    let text = crate::cruise_control::absolute_paths(&text, IMAGE_WORKDIR);
    // Mounts first (longer mount paths win), then the rest of the working directory.
    let mut dirs = mounts.to_vec();
    dirs.push((IMAGE_WORKDIR.to_string(), workdir.to_path_buf()));
    with_secret_paths(&text, &dirs)
}

/// `properties` with every path under a Secret volume's mount path moved to the directory the
/// node wrote that Secret to: values that are such paths, and such paths inside values (lists,
/// config provider references such as `${dir:<mount>:password}`).
pub fn with_secret_paths(properties: &str, secret_dirs: &[(String, PathBuf)]) -> String {
    let mounts = longest_first(secret_dirs);
    let mut out = String::new();
    for line in properties.lines() {
        match line.split_once('=') {
            Some((k, v)) => {
                out.push_str(k);
                out.push('=');
                out.push_str(&move_paths(v, &mounts));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `value` with every path under a volume's mount path moved to the node's copy of the volume.
pub(crate) fn move_mounted(value: &str, dirs: &[(String, PathBuf)]) -> String {
    move_paths(value, &longest_first(dirs))
}

/// `(mount path, local directory)` without trailing slashes, longer mount paths first.
fn longest_first(dirs: &[(String, PathBuf)]) -> Vec<(&str, String)> {
    let mut mounts: Vec<(&str, String)> =
        dirs.iter().map(|(m, local)| (m.trim_end_matches('/'), local.display().to_string())).collect();
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    mounts
}

/// `value` with each occurrence of a mount path (followed by `/`, `:`, `,`, `}` or the end)
/// replaced by its local directory; longer mounts first.
fn move_paths(value: &str, mounts: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    'scan: while !rest.is_empty() {
        for (mount, local) in mounts {
            if let Some(after) = rest.strip_prefix(mount)
                && (after.is_empty() || after.starts_with(['/', ':', ',', '}']))
            {
                out.push_str(local);
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The jars a broker gets before Kafka's own: the Cruise Control metrics reporter when its
/// properties load it (`metric.reporters`), as Koperator's `cruise-control-reporter` init
/// container copies it into `/opt/kafka/libs/extensions`, which the container's `CLASSPATH`
/// names.
fn broker_classpath(properties: &str) -> Result<Vec<PathBuf>> {
    let reporters = property(properties, "metric.reporters").unwrap_or_default();
    if reporters.split(',').any(|r| r.trim().ends_with(".CruiseControlMetricsReporter")) {
        return Ok(vec![crate::cruise_control::reporter_jar()?]);
    }
    Ok(Vec::new())
}

/// The `kafka-storage format` arguments of a broker container's command that the node acts
/// on: `--add-scram "<mechanism>=[name=<user>,password=$(cat <file>)]"` (the admin SCRAM
/// credential, its password read from a mounted Secret). Any other use of `--add-scram` is an
/// error, not silently dropped.
fn format_arguments(command: &[String], secret_dirs: &[(String, PathBuf)]) -> Result<Vec<String>> {
    let script = command.last().map(String::as_str).unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = script;
    while let Some(at) = rest.find("--add-scram") {
        let after = rest[at + "--add-scram".len()..].trim_start();
        let quoted = after.strip_prefix('"').and_then(|a| a.split_once('"'));
        let Some((value, tail)) = quoted else { bail!("--add-scram without a quoted value in: {script}") };
        let Some((head, file)) = value.split_once("$(cat ") else { bail!("--add-scram without $(cat FILE): {value}") };
        let Some((file, end)) = file.split_once(')') else { bail!("unterminated $(cat ...) in {value}") };
        let local = move_mounted(file, secret_dirs);
        let password = std::fs::read_to_string(&local).with_context(|| format!("read {local} (--add-scram)"))?;
        out.push("--add-scram".to_string());
        out.push(format!("{head}{}{end}", password.trim_end()));
        rest = tail;
    }
    Ok(out)
}

/// The JVM options of a container's `KAFKA_OPTS` as the node runs them: paths under mounted
/// volumes moved to the node's copies, and the Prometheus JMX exporter agent
/// (`-javaagent:<…jmx_prometheus…jar>=[host:]<port>:<config>`) loaded from the jar
/// `make e2e-deps` installed (what the `jmxImage` init container delivers in a cluster),
/// listening on the Pod's own address. Any other java agent is an error.
fn kafka_opts(value: &str, ip: &str, dirs: &[(String, PathBuf)]) -> Result<Vec<String>> {
    let moved = |v: &str| move_mounted(v, dirs);
    let mut out = Vec::new();
    for opt in value.split_whitespace() {
        let Some(agent) = opt.strip_prefix("-javaagent:") else {
            out.push(moved(opt));
            continue;
        };
        let (jar, args) = agent.split_once('=').unwrap_or((agent, ""));
        if !Path::new(jar).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("jmx_prometheus")) {
            bail!("the test node runs only the Prometheus JMX exporter agent, not {jar}");
        }
        // `[host:]port:config`: the port and the configuration file stay, the host is the Pod's.
        let mut parts: Vec<&str> = args.splitn(3, ':').collect();
        if parts.len() == 3 {
            parts.remove(0);
        }
        let [port, config] = parts[..] else { bail!("-javaagent:{jar}: expected <port>:<config>, got {args:?}") };
        out.push(format!("-javaagent:{}={ip}:{port}:{}", crate::kafka::jmx_exporter_jar()?.display(), moved(config)));
    }
    Ok(out)
}

/// The value of a `${dir:<directory>:<file>}` reference: the file's content.
fn resolve_dir_reference(value: &str) -> Result<String> {
    let inner = value
        .strip_prefix("${dir:")
        .and_then(|v| v.strip_suffix('}'))
        .with_context(|| format!("not a ${{dir:...}} reference: {value}"))?;
    let (dir, file) = inner.rsplit_once(':').with_context(|| format!("no file in {value}"))?;
    std::fs::read_to_string(Path::new(dir).join(file)).with_context(|| format!("read {dir}/{file}"))
}

/// TLS client settings for each SSL listener of `properties` (by Kafka listener name): trust
/// the listener's truststore, present the certificate of its keystore (the broker's own). PEM
/// stores (the operator's) and JKS stores of the user's own, whose password comes from a
/// `${dir:...}` reference.
fn tls_settings(properties: &str) -> Result<HashMap<String, Arc<rustls::ClientConfig>>> {
    let mut out = HashMap::new();
    let Some(map) = property(properties, "listener.security.protocol.map") else { return Ok(out) };
    for entry in map.split(',') {
        let Some((name, protocol)) = entry.split_once(':') else { continue };
        if protocol != "SSL" && protocol != "SASL_SSL" {
            continue;
        }
        let prefix = format!("listener.name.{}.ssl.", name.to_lowercase());
        let (Some(keystore), Some(truststore)) = (
            property(properties, &format!("{prefix}keystore.location")),
            property(properties, &format!("{prefix}truststore.location")),
        ) else {
            continue;
        };
        let config = if property(properties, &format!("{prefix}keystore.type")) == Some("JKS") {
            let reference = property(properties, &format!("{prefix}keystore.password")).unwrap_or_default();
            let password = resolve_dir_reference(reference)?;
            let read = |path: &str| -> Result<koperator_shared::jks::Store> {
                let bytes = std::fs::read(path).with_context(|| format!("read {path}"))?;
                koperator_shared::jks::read(&bytes, &password).map_err(|e| anyhow::anyhow!("{path}: {e}"))
            };
            let keys = read(keystore)?;
            let entry = keys.keys.first().with_context(|| format!("{keystore} has no private key"))?;
            let chain: String = entry.chain.iter().map(|c| koperator_shared::jks::cert_pem(c)).collect();
            let trusted: String =
                read(truststore)?.trusted.iter().map(|c| koperator_shared::jks::cert_pem(c)).collect();
            let key = koperator_shared::jks::key_pem(&entry.pkcs8);
            koperator_shared::kafka::client_config(&trusted, Some((&chain, &key)))?
        } else {
            let ca = std::fs::read_to_string(truststore).with_context(|| format!("truststore {truststore}"))?;
            let pem = std::fs::read_to_string(keystore).with_context(|| format!("keystore {keystore}"))?;
            koperator_shared::kafka::client_config(&ca, Some((&pem, &pem)))?
        };
        out.insert(name.to_string(), config);
    }
    Ok(out)
}

/// `/etc/hosts` lines for the Pods' DNS names and the Services that select them.
pub fn hosts_file(
    ns: &str,
    pods: &BTreeMap<String, Pod>,
    services: &[Service],
    ips: &HashMap<String, String>,
) -> String {
    hosts_text(&crate::dns::entries(ns, pods, services, ips))
}

/// One hosts file line per entry, with its first address.
fn hosts_text(entries: &[crate::dns::Entry]) -> String {
    entries.iter().map(|e| format!("{} {}\n", e.ips[0], e.names.join(" "))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_opts_load_the_jmx_exporter_on_the_pod_ip_with_the_mounted_config() {
        let dirs = vec![("/etc/jmx-exporter/".to_string(), PathBuf::from("/n/pods/p/configmaps/jmx"))];
        let jar = crate::kafka::jmx_exporter_jar().map(|j| j.display().to_string());
        let opts = "-javaagent:/opt/jmx-exporter/jmx_prometheus.jar=9020:/etc/jmx-exporter/config.yaml -Dx=/etc/jmx-exporter/a";
        match (kafka_opts(opts, "127.0.0.9", &dirs), jar) {
            (Ok(out), Ok(jar)) => assert_eq!(
                out,
                [
                    format!("-javaagent:{jar}=127.0.0.9:9020:/n/pods/p/configmaps/jmx/config.yaml"),
                    "-Dx=/n/pods/p/configmaps/jmx/a".to_string()
                ]
            ),
            (Err(e), Err(_)) => assert!(e.to_string().contains("make e2e-deps"), "{e}"),
            other => panic!("{other:?}"),
        }
        let host_given =
            kafka_opts("-javaagent:/x/jmx_prometheus_javaagent.jar=0.0.0.0:9404:/c.yaml", "127.0.0.9", &[]);
        if let Ok(out) = host_given {
            assert!(out[0].ends_with("=127.0.0.9:9404:/c.yaml"), "{out:?}");
        }
        let other = kafka_opts("-javaagent:/opt/otel.jar", "127.0.0.9", &[]).unwrap_err();
        assert!(other.to_string().contains("only the Prometheus JMX exporter agent"), "{other}");
        assert_eq!(kafka_opts("", "127.0.0.9", &[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn cruise_control_binds_the_pod_ip_and_reads_files_from_the_node_copies() {
        let rendered = "bootstrap.servers=kafka-all-broker.ns.svc.cluster.local:29092\n\
                        webserver.http.address=0.0.0.0\nwebserver.http.port=8090\n\
                        capacity.config.file=config/capacity.json\n\
                        cluster.configs.file=/opt/cruise-control/config/clusterConfigs.json\n\
                        webserver.ui.diskpath=./cruise-control-ui/dist/\n\
                        ssl.truststore.location=/var/run/secrets/java.io/keystores/truststore.jks\n";
        let mounts = vec![
            ("/opt/cruise-control/config".to_string(), PathBuf::from("/n/p/configmaps/cc")),
            ("/var/run/secrets/java.io/keystores".to_string(), PathBuf::from("/n/p/secrets/ks")),
        ];
        assert_eq!(
            cruise_control_properties(rendered, "127.0.3.4", &mounts, Path::new("/n/p/workdir")),
            "bootstrap.servers=kafka-all-broker.ns.svc.cluster.local:29092\n\
             webserver.http.address=127.0.3.4\nwebserver.http.port=8090\n\
             capacity.config.file=/n/p/configmaps/cc/capacity.json\n\
             cluster.configs.file=/n/p/configmaps/cc/clusterConfigs.json\n\
             webserver.ui.diskpath=/n/p/workdir/cruise-control-ui/dist/\n\
             ssl.truststore.location=/n/p/secrets/ks/truststore.jks\n"
        );
        assert!(
            cruise_control_properties("a=b\n", "127.0.3.4", &[], Path::new("/w"))
                .contains("webserver.http.address=127.0.3.4\n")
        );
    }

    #[test]
    fn brokers_that_load_the_cruise_control_reporter_get_its_jar() {
        assert!(broker_classpath("metric.reporters=\nnode.id=1\n").unwrap().is_empty());
        assert!(broker_classpath("node.id=1\n").unwrap().is_empty());
        let props = format!("metric.reporters=a.B, {}\n", crate::cruise_control::METRICS_REPORTER);
        match (broker_classpath(&props), crate::cruise_control::reporter_jar()) {
            (Ok(cp), Ok(jar)) => assert_eq!(cp, [jar]),
            (Err(e), Err(_)) => assert!(e.to_string().contains("make e2e-deps"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_hosts_file_names_each_pod_and_a_service_by_its_first_pod() {
        let pod = |name: &str, host: Option<&str>| -> (String, Pod) {
            let mut v = json!({"metadata": {"name": name, "labels": {"app": "kafka"}}, "spec": {"containers": []}});
            if let Some(h) = host {
                v["spec"]["hostname"] = json!(h);
                v["spec"]["subdomain"] = json!("kafka-headless");
            }
            (name.to_string(), serde_json::from_value(v).unwrap())
        };
        let pods: BTreeMap<String, Pod> = [pod("kafka-0-a", Some("kafka-0")), pod("kafka-1-b", None)].into();
        let ips: HashMap<String, String> =
            [("kafka-0-a", "127.0.0.2"), ("kafka-1-b", "127.0.0.3")].map(|(a, b)| (a.into(), b.into())).into();
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": "kafka-all-broker"}, "spec": {"selector": {"app": "kafka"}}}),
        )
        .unwrap();
        assert_eq!(
            hosts_file("ns", &pods, &[svc], &ips),
            "127.0.0.2 kafka-0.kafka-headless.ns.svc.cluster.local kafka-0.kafka-headless.ns.svc\n\
             127.0.0.2 kafka-all-broker.ns.svc.cluster.local kafka-all-broker.ns.svc\n"
        );
    }

    #[test]
    fn a_termination_message_is_the_logs_last_2048_bytes() {
        let tail: String = (0..100).map(|i| format!("line {i} é, and some more text\n")).collect();
        let message = termination_message(&tail);
        assert!(message.len() <= 2048 && message.len() > 2000, "{}", message.len());
        assert!(message.ends_with("line 99 é, and some more text\n"));
        assert_eq!(termination_message("short\n"), "short\n");
    }

    #[test]
    fn listeners_bind_to_the_pod_ip_and_log_dirs_move_to_pvc_dirs() {
        let rendered =
            "listeners=INTERNAL://:29092,CONTROLLER://:29093\nlog.dirs=/kafka-logs/kafka,/other/kafka\nnode.id=0\n";
        let pvcs = vec![("/kafka-logs".to_string(), PathBuf::from("/n/pvcs/kafka-0-storage"))];
        assert_eq!(
            node_properties(rendered, "127.0.1.3", &pvcs),
            "listeners=INTERNAL://127.0.1.3:29092,CONTROLLER://127.0.1.3:29093\nlog.dirs=/n/pvcs/kafka-0-storage/kafka,/other/kafka\nnode.id=0\n"
        );
        assert_eq!(property(rendered, "node.id"), Some("0"));
        assert_eq!(property(rendered, "node"), None);
    }

    #[test]
    fn secret_paths_move_in_values_lists_and_provider_references() {
        let m = "/var/run/secrets/java.io/keystores/server/internal";
        let dirs = vec![(m.to_string(), PathBuf::from("/n/s/internal")), (format!("{m}-x"), PathBuf::from("/n/s/x"))];
        let rendered = format!("a={m}/keystore.jks\nb=${{dir:{m}:password}}\nc={m},{m}-x\nd={m}extra/f\ne=plain\n");
        assert_eq!(
            with_secret_paths(&rendered, &dirs),
            format!(
                "a=/n/s/internal/keystore.jks\nb=${{dir:/n/s/internal:password}}\nc=/n/s/internal,/n/s/x\nd={m}extra/f\ne=plain\n"
            )
        );
    }

    #[test]
    fn add_scram_reads_the_password_from_the_mounted_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
        let mounts = vec![("/var/run/secrets/koperator/admin-scram".to_string(), dir.path().to_path_buf())];
        let script = "kafka-storage.sh format --config c --add-scram \"SCRAM-SHA-512=[name=koperator-admin,password=$(cat /var/run/secrets/koperator/admin-scram/password)]\" && exec start";
        let args = format_arguments(&["bash".into(), "-c".into(), script.into()], &mounts).unwrap();
        assert_eq!(args, vec!["--add-scram", "SCRAM-SHA-512=[name=koperator-admin,password=s3cret]"]);
        assert!(format_arguments(&["bash".into(), "-c".into(), "x --add-scram plain".into()], &mounts).is_err());
        assert!(format_arguments(&["bash".into(), "-c".into(), "exec start".into()], &mounts).unwrap().is_empty());
    }
}
