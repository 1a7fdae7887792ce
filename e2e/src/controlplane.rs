//! etcd + kube-apiserver + kube-controller-manager on free 127.0.0.1 ports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

use crate::pki;
use crate::process::{Component, free_port, tail};
use crate::tools::{cache_dir, tool};

/// How long the API server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Run directories of earlier test runs kept for their logs.
const KEPT_RUNS: usize = 5;

/// How to start a control plane.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory for data, certificates, kubeconfig and logs.
    pub dir: PathBuf,
    /// Survive the calling process (for `make cluster-up`).
    pub detached: bool,
}

impl Options {
    /// A fresh run directory under `<cache>/runs/`, pruning old ones.
    pub fn for_tests() -> Result<Options> {
        let runs = cache_dir().join("runs");
        std::fs::create_dir_all(&runs)?;
        prune_runs(&runs);
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let dir = runs.join(format!("{stamp}-{}", std::process::id()));
        Ok(Options { dir, detached: false })
    }
}

fn prune_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEPT_RUNS - 1);
    for old in dirs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(old);
    }
}

/// A running control plane.
pub struct ControlPlane {
    /// Run directory (logs under `logs/`).
    pub dir: PathBuf,
    /// Admin kubeconfig (token user in `system:masters`).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// CA certificate (PEM) the API server's serving certificate chains to.
    pub ca_pem: String,
    /// Time from start to `/readyz` ok.
    pub ready_after: Duration,
    components: Mutex<Vec<Component>>,
    /// How kube-apiserver was started, for [`ControlPlane::restart_apiserver`].
    apiserver: (PathBuf, Vec<String>, bool),
    restarts: AtomicU32,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits for `/readyz`.
    /// Retries once with new ports when a port was taken in between.
    pub fn start(opts: &Options) -> Result<ControlPlane> {
        match Self::start_once(opts) {
            Err(e) if format!("{e:#}").contains("address already in use") => {
                eprintln!("e2e: a port was taken while starting ({e:#}); retrying with new ports");
                Self::start_once(opts)
            }
            other => other,
        }
    }

    fn start_once(opts: &Options) -> Result<ControlPlane> {
        let started = Instant::now();
        let etcd_bin = tool("etcd")?;
        let apiserver_bin = tool("kube-apiserver")?;
        let kcm_bin = tool("kube-controller-manager")?;
        tool("kubectl")?;

        let dir = opts.dir.clone();
        let logs = dir.join("logs");
        let certs = dir.join("certs");
        for d in [&logs, &certs] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        let pki = pki::generate()?;
        let write = |name: &str, content: &str| -> Result<PathBuf> {
            let p = certs.join(name);
            std::fs::write(&p, content).with_context(|| format!("write {}", p.display()))?;
            Ok(p)
        };
        let ca = write("ca.crt", &pki.ca_cert)?;
        let serving_cert = write("apiserver.crt", &pki.serving_cert)?;
        let serving_key = write("apiserver.key", &pki.serving_key)?;
        let sa_key = write("sa.key", &pki.service_account_key)?;
        let sa_pub = write("sa.pub", &pki.service_account_pub)?;
        let token = pki::random_token()?;
        let tokens = write("tokens.csv", &format!("{token},admin,admin,system:masters\n"))?;

        let (etcd_client, etcd_peer, api_port, kcm_port) = (free_port()?, free_port()?, free_port()?, free_port()?);
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &pki.ca_cert, &token))?;

        let mut cp = ControlPlane {
            dir: dir.clone(),
            kubeconfig: kubeconfig.clone(),
            server: server.clone(),
            ca_pem: pki.ca_cert.clone(),
            ready_after: Duration::ZERO,
            components: Mutex::new(Vec::new()),
            apiserver: (apiserver_bin.clone(), Vec::new(), opts.detached),
            restarts: AtomicU32::new(0),
        };
        let s = |p: &Path| p.display().to_string();

        let etcd_args = vec![
            "--name=e2e".into(),
            format!("--data-dir={}", s(&dir.join("etcd"))),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-cluster=e2e=http://127.0.0.1:{etcd_peer}"),
            "--unsafe-no-fsync=true".into(),
            "--quota-backend-bytes=4294967296".into(),
            "--log-level=warn".into(),
        ];
        cp.components.get_mut().expect("components").push(Component::start(
            "etcd",
            &etcd_bin,
            &etcd_args,
            logs.join("etcd.log"),
            opts.detached,
        )?);
        cp.wait_tcp(etcd_client, "etcd", Duration::from_secs(20))?;

        let api_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", s(&serving_cert)),
            format!("--tls-private-key-file={}", s(&serving_key)),
            format!("--client-ca-file={}", s(&ca)),
            format!("--token-auth-file={}", s(&tokens)),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", s(&sa_pub)),
            format!("--service-account-signing-key-file={}", s(&sa_key)),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            // Webhooks behind a Service are reached at the Pod addresses of its EndpointSlices
            // (there is no kube-proxy for ClusterIPs).
            "--enable-aggregator-routing=true".into(),
            format!("--cert-dir={}", s(&certs)),
            "--profiling=false".into(),
            "--v=1".into(),
        ];
        cp.components.get_mut().expect("components").push(Component::start(
            "kube-apiserver",
            &apiserver_bin,
            &api_args,
            logs.join("kube-apiserver.log"),
            opts.detached,
        )?);
        cp.apiserver.1 = api_args;
        cp.wait_ready(READY_TIMEOUT)?;
        cp.ready_after = started.elapsed();

        let kcm_args = vec![
            format!("--kubeconfig={}", s(&kubeconfig)),
            format!("--authentication-kubeconfig={}", s(&kubeconfig)),
            format!("--authorization-kubeconfig={}", s(&kubeconfig)),
            "--controllers=*".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm_port}"),
            format!("--service-account-private-key-file={}", s(&sa_key)),
            format!("--root-ca-file={}", s(&ca)),
            "--use-service-account-credentials=false".into(),
            "--concurrent-gc-syncs=5".into(),
            "--v=1".into(),
        ];
        cp.components.get_mut().expect("components").push(Component::start(
            "kube-controller-manager",
            &kcm_bin,
            &kcm_args,
            logs.join("kube-controller-manager.log"),
            opts.detached,
        )?);
        std::thread::sleep(Duration::from_millis(300));
        cp.check_alive()?;
        Ok(cp)
    }

    /// Errors when a component has exited, with its log tail and log path.
    pub fn check_alive(&self) -> Result<()> {
        for c in self.components.lock().expect("components").iter() {
            if let Some(status) = c.exited() {
                bail!("{} exited ({status}); log: {}\n--- last lines ---\n{}", c.name, c.log.display(), c.log_tail(15));
            }
        }
        Ok(())
    }

    fn wait_tcp(&self, port: u16, what: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} did not listen on 127.0.0.1:{port} within {timeout:?}; logs in {}",
                    self.dir.join("logs").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let out = self.kubectl_output(&["get", "--raw=/readyz"], None)?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return Ok(());
            }
            let last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if Instant::now() > deadline {
                let log = self.dir.join("logs/kube-apiserver.log");
                bail!(
                    "kube-apiserver at {} not ready within {timeout:?}; last /readyz answer: {}\nlog: {}\n--- last lines ---\n{}",
                    self.server,
                    last.trim(),
                    log.display(),
                    tail(&log, 15)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs kubectl against this control plane; `stdin` is fed to it when given.
    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = Command::new(tool("kubectl")?);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", self.dir.join("kube-cache").display()))
            .args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("run kubectl")?;
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().expect("piped stdin").write_all(input.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    /// Runs kubectl and returns its stdout, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(args, None)
    }

    /// Like [`ControlPlane::kubectl`] with `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.kubectl_output(args, stdin)?;
        if !out.status.success() {
            return Err(anyhow!(
                "kubectl {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs the real helm against this control plane (its own cache, config and data
    /// directories); stdout, or an error with stdout and stderr.
    pub fn helm(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(tool("helm")?)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .output()
            .context("run helm")?;
        if !out.status.success() {
            return Err(anyhow!(
                "helm {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies the project's CRDs (`kubectl apply -k config/crd/bases`) and waits until they are
    /// Established.
    pub fn install_crds(&self) -> Result<()> {
        let dir = crate::tools::repo_root().join("config/crd/bases");
        self.kubectl(&["apply", "--server-side", "-k", &dir.display().to_string()])?;
        for crd in koperator_shared::crd::all() {
            self.wait_established(crd.metadata.name.as_deref().unwrap_or_default(), Duration::from_secs(60))?;
        }
        self.wait_for_openapi(Duration::from_secs(60))
    }

    /// Waits until the CustomResourceDefinition `name` reports `Established=True`. Polls rather
    /// than `kubectl wait`, which fails outright ("accessor error: <nil>") when it reads a CRD
    /// whose status has no conditions yet, as happens right after an apply.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}";
        loop {
            let last = self.kubectl(&["get", &format!("crd/{name}"), "-o", jsonpath]);
            match last {
                Ok(status) if status.trim() == "True" => return Ok(()),
                other if Instant::now() > deadline => bail!(
                    "CRD {name} is not Established after {timeout:?}: {}",
                    match other {
                        Ok(status) => format!("Established={status:?}"),
                        Err(e) => e.to_string(),
                    }
                ),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Waits until the API server's OpenAPI v3 documents describe every kind of our CRDs.
    /// Publishing them lags behind Established, and `kubectl explain` and client-side
    /// validation read them.
    fn wait_for_openapi(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for crd in koperator_shared::crd::all() {
            for version in &crd.spec.versions {
                let path = format!("/openapi/v3/apis/{}/{}", crd.spec.group, version.name);
                let kind = format!("\"kind\":\"{}\"", crd.spec.names.kind);
                loop {
                    match self.kubectl(&["get", "--raw", &path]) {
                        Ok(doc) if doc.contains(&kind) => break,
                        other if Instant::now() > deadline => bail!(
                            "OpenAPI document {path} does not describe {} after {timeout:?}: {}",
                            crd.spec.names.kind,
                            other.err().map(|e| e.to_string()).unwrap_or_else(|| "kind missing".into())
                        ),
                        _ => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates a namespace named `<prefix>-<random>` that is deleted when the guard drops.
    pub fn namespace(&self, prefix: &str) -> Result<Namespace<'_>> {
        let name = format!("{prefix}-{}", &pki::random_token()?[..6]);
        self.kubectl(&["create", "namespace", &name])?;
        Ok(Namespace { cp: self, name })
    }

    /// A kubeconfig for ServiceAccount `sa` of `namespace` (a fresh 2-hour token), so a process
    /// runs with exactly the RBAC rules bound to that account.
    pub fn service_account_kubeconfig(&self, namespace: &str, sa: &str) -> Result<PathBuf> {
        let token = self.kubectl(&["create", "token", sa, "-n", namespace, "--duration=2h"])?;
        let pki_ca = &self.ca_pem;
        let path = self.dir.join(format!("{namespace}-{sa}.kubeconfig"));
        std::fs::write(&path, kubeconfig_yaml(&self.server, pki_ca, token.trim()))?;
        Ok(path)
    }

    /// A kube client for this control plane (call inside a tokio runtime).
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stops kube-apiserver (SIGTERM, then SIGKILL after `grace`), starts it again with the
    /// same flags, etcd and port, and waits for `/readyz`. Its log continues in
    /// `logs/kube-apiserver-<n>.log`. Returns how long the API server was unavailable.
    pub fn restart_apiserver(&self, grace: Duration) -> Result<Duration> {
        let down = Instant::now();
        {
            let components = self.components.lock().expect("components");
            let api = components.iter().find(|c| c.name == "kube-apiserver").context("no kube-apiserver")?;
            api.stop(grace);
        }
        let n = self.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        let (bin, args, detached) = &self.apiserver;
        let log = self.dir.join("logs").join(format!("kube-apiserver-{n}.log"));
        let started = Component::start("kube-apiserver", bin, args, log, *detached)?;
        {
            let mut components = self.components.lock().expect("components");
            let slot = components.iter_mut().find(|c| c.name == "kube-apiserver").context("no kube-apiserver")?;
            *slot = started;
        }
        self.wait_ready(READY_TIMEOUT)?;
        Ok(down.elapsed())
    }

    /// Process ids of the components.
    pub fn pids(&self) -> Vec<u32> {
        self.components.lock().expect("components").iter().map(Component::pid).collect()
    }

    /// Stops every component (controller-manager, API server, etcd) and removes the data,
    /// keeping the logs.
    pub fn stop(&self) {
        for c in self.components.lock().expect("components").iter().rev() {
            c.stop(Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(self.dir.join("etcd"));
        let _ = std::fs::remove_dir_all(self.dir.join("certs"));
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A namespace that is deleted (without waiting) when dropped.
pub struct Namespace<'a> {
    cp: &'a ControlPlane,
    /// The namespace name.
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        let _ = self.cp.kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

pub(crate) fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> String {
    use std::fmt::Write;
    let ca_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca_pem);
    let mut s = String::new();
    let _ = write!(
        s,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca_b64}\n\
         users:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: admin\n\
         current-context: e2e\n"
    );
    s
}

/// The control plane shared by the tests of one test binary, started on first use and stopped
/// when the binary exits.
pub fn shared() -> &'static ControlPlane {
    static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let cp = SHARED.get_or_init(|| {
        let started = Instant::now();
        let result = Options::for_tests().and_then(|o| ControlPlane::start(&o)).map_err(|e| format!("{e:#}"));
        if let Ok(cp) = &result {
            eprintln!(
                "e2e: control plane at {} ready after {:.1}s (run dir {})",
                cp.server,
                started.elapsed().as_secs_f64(),
                cp.dir.display()
            );
            extern "C" fn stop_shared() {
                if let Some(Ok(cp)) = SHARED.get() {
                    cp.stop();
                }
            }
            // SAFETY: registering a plain extern "C" function with atexit.
            unsafe { libc::atexit(stop_shared) };
        }
        result
    });
    match cp {
        Ok(cp) => cp,
        Err(e) => panic!("could not start the e2e control plane: {e}"),
    }
}
