//! The commands `make demo` prints to try next, kept in `<dir>/try-next.json` as well, and
//! `demo try` (`make demo-try`), which runs each of them exactly as printed against the
//! running demo and checks that it does what its comment says.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{AUTHORIZER, CLUSTER, KAFKA_NS, OPERATOR_NS, SUPER_USERS, TOPIC};

/// What the printed commands refer to.
pub struct DemoInfo {
    pub kubeconfig: PathBuf,
    pub tools_bin: PathBuf,
    pub hosts: PathBuf,
    pub dir: PathBuf,
    pub java: String,
    pub kafka_libs: String,
    pub bootstrap: String,
}

/// The commands, in the order they are printed and tried.
#[derive(Serialize, Deserialize)]
pub struct TryNext {
    /// The line that sets up the shell (`export KUBECONFIG=… PATH=…`).
    pub env: String,
    pub steps: Vec<Step>,
}

/// One printed command.
#[derive(Serialize, Deserialize)]
pub struct Step {
    /// The comment printed above it (empty: none).
    pub comment: String,
    pub command: String,
    pub expect: Expect,
}

/// What a command must do for `demo try`.
#[derive(Serialize, Deserialize)]
pub enum Expect {
    /// Exits 0 and prints each of these.
    Prints(Vec<String>),
    /// Exits non-zero and prints each of these (an admission denial).
    Refused(Vec<String>),
    /// Exits 0, then `check` (a shell command) succeeds within `within_secs`, with the broker
    /// Pods there before kept or all replaced.
    Then { check: String, within_secs: u64, brokers: Brokers },
}

/// What happens to the broker Pods that existed before a command.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Debug)]
pub enum Brokers {
    /// Every one is still there (same UID): nothing restarted.
    Kept,
    /// Every one was replaced (a rolling restart).
    Replaced,
}

/// Files the commands apply, written to `<dir>/try/`.
fn write_files(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let try_dir = dir.join("try");
    std::fs::create_dir_all(&try_dir)?;
    let sample = std::fs::read_to_string(
        koperator_e2e::tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"),
    )?;
    // Broker ids 0, 1 and 0.
    let duplicate =
        sample.replace("name: kafka-combined", "name: kafka-duplicate-ids").replace("    - id: 2\n", "    - id: 0\n");
    if duplicate == sample || !duplicate.contains("kafka-duplicate-ids") {
        bail!("the KRaft sample changed; the demo cannot derive its rejected KafkaCluster from it");
    }
    let rejected = try_dir.join("kafkacluster-duplicate-ids.yaml");
    std::fs::write(&rejected, duplicate)?;
    let user = try_dir.join("kafkauser.yaml");
    std::fs::write(
        &user,
        format!(
            "apiVersion: kafka.banzaicloud.io/v1alpha1\nkind: KafkaUser\nmetadata:\n  name: demo-reader\nspec:\n  clusterRef:\n    name: {CLUSTER}\n  secretName: demo-reader\n  # the demo's listeners are PLAINTEXT: ACLs only, no client certificate\n  createCert: false\n  topicGrants:\n    - topicName: {TOPIC}\n      accessType: read\n"
        ),
    )?;
    Ok((rejected, user))
}

/// The commands for a demo described by `cx`; writes the files they apply.
pub fn build(cx: &DemoInfo) -> Result<TryNext> {
    let (rejected, user) = write_files(&cx.dir)?;
    let kubectl_state = |kind: &str, name: &str, want: &str| {
        format!("test \"$(kubectl get {kind} {name} -n {KAFKA_NS} -o jsonpath='{{.status.state}}')\" = {want}")
    };
    let running = kubectl_state("kafkacluster", CLUSTER, "ClusterRunning");
    let kafka_tool = |class: &str| {
        format!("{} -cp '{}/*' -Djdk.net.hosts.file={} {class}", cx.java, cx.kafka_libs, cx.hosts.display())
    };
    let read_only = format!(
        "auto.create.topics.enable=false\\noffsets.topic.replication.factor=3\\nmin.insync.replicas=2\\n{AUTHORIZER}\\n{SUPER_USERS}\\nnum.io.threads=9"
    );
    let steps = vec![
        Step {
            comment: String::new(),
            command: format!("kubectl get kafkaclusters,kafkatopics,pods,pvc -n {KAFKA_NS}"),
            expect: Expect::Prints(vec!["ClusterRunning".into(), format!("{CLUSTER}-0-"), format!("{TOPIC}")]),
        },
        Step {
            comment: "the chart's webhook and operator".into(),
            command: format!("kubectl get pods -n {OPERATOR_NS} -o wide"),
            expect: Expect::Prints(vec!["koperator-webhook-".into(), "Running".into()]),
        },
        Step {
            comment: "a rejected apply: a KafkaCluster with two brokers of id 0 (the webhook names the field)".into(),
            command: format!("kubectl apply -n {KAFKA_NS} -f {}", rejected.display()),
            expect: Expect::Refused(vec!["is invalid".into(), "spec.brokers[2].id: Duplicate value: 0".into()]),
        },
        Step {
            comment: "a KafkaTopic from the samples".into(),
            command: format!(
                "kubectl apply -n {KAFKA_NS} -f {}",
                koperator_e2e::tools::repo_root().join("config/samples/example-topic.yaml").display()
            ),
            expect: Expect::Then {
                check: kubectl_state("kafkatopic", "example-topic", "created"),
                within_secs: 120,
                brokers: Brokers::Kept,
            },
        },
        Step {
            comment: format!("a KafkaUser allowed to read {TOPIC} (its ACLs are in its status)"),
            command: format!("kubectl apply -n {KAFKA_NS} -f {}", user.display()),
            expect: Expect::Then {
                check: format!(
                    "{} && kubectl get kafkauser demo-reader -n {KAFKA_NS} -o jsonpath='{{.status.acls}}' | grep -q 'Read on Topic:Literal:{TOPIC} '",
                    kubectl_state("kafkauser", "demo-reader", "created")
                ),
                within_secs: 120,
                brokers: Brokers::Kept,
            },
        },
        Step {
            comment: "Kafka's own clients (broker names resolve through the node's hosts file)".into(),
            command: format!(
                "{} --bootstrap-server {} --topic {TOPIC} --from-beginning --max-messages 3 --timeout-ms 60000",
                kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer"),
                cx.bootstrap
            ),
            expect: Expect::Prints(vec!["hello from koperator-rs".into(), "Processed a total of 3 messages".into()]),
        },
        Step {
            comment: "reconfigure: a cluster-wide dynamic config, applied through Kafka's Admin API without a restart"
                .into(),
            command: format!(
                "kubectl patch kafkacluster {CLUSTER} -n {KAFKA_NS} --type=merge -p '{{\"spec\":{{\"clusterWideConfig\":\"log.retention.ms=86400000\"}}}}'"
            ),
            expect: Expect::Then {
                check: format!(
                    "{} --bootstrap-server {} --entity-type brokers --entity-default --describe | grep -q 'log.retention.ms=86400000'",
                    kafka_tool("kafka.admin.ConfigCommand"),
                    cx.bootstrap
                ),
                within_secs: 120,
                brokers: Brokers::Kept,
            },
        },
        Step {
            comment: "a read-only config: a health-gated rolling restart, one broker at a time".into(),
            command: format!(
                "kubectl patch kafkacluster {CLUSTER} -n {KAFKA_NS} --type=merge -p '{{\"spec\":{{\"readOnlyConfig\":\"{read_only}\"}}}}'"
            ),
            expect: Expect::Then {
                check: format!(
                    "{running} && kubectl get configmap {CLUSTER}-config-2 -n {KAFKA_NS} -o yaml | grep -q num.io.threads=9"
                ),
                within_secs: 600,
                brokers: Brokers::Replaced,
            },
        },
        Step {
            comment: "scale: a fourth broker (broker role only) gets its own Pod, ConfigMap and PVC".into(),
            command: format!(
                "kubectl patch kafkacluster {CLUSTER} -n {KAFKA_NS} --type=json -p '[{{\"op\":\"add\",\"path\":\"/spec/brokerConfigGroups/brokers\",\"value\":{{\"processRoles\":[\"broker\"],\"storageConfigs\":[{{\"mountPath\":\"/kafka-logs\",\"pvcSpec\":{{\"accessModes\":[\"ReadWriteOnce\"],\"resources\":{{\"requests\":{{\"storage\":\"10Gi\"}}}}}}}}]}}}},{{\"op\":\"add\",\"path\":\"/spec/brokers/-\",\"value\":{{\"id\":3,\"brokerConfigGroup\":\"brokers\"}}}}]'"
            ),
            expect: Expect::Then {
                check: format!(
                    "kubectl wait pod -n {KAFKA_NS} -l kafka_cr={CLUSTER},brokerId=3 --for=condition=Ready --timeout=1s >/dev/null \
                     && kubectl get configmap {CLUSTER}-config-3 -n {KAFKA_NS} >/dev/null \
                     && test -n \"$(kubectl get pvc -n {KAFKA_NS} -l kafka_cr={CLUSTER},brokerId=3 -o name)\" && {running}"
                ),
                within_secs: 300,
                brokers: Brokers::Kept,
            },
        },
    ];
    Ok(TryNext {
        env: format!("export KUBECONFIG={} PATH={}:$PATH", cx.kubeconfig.display(), cx.tools_bin.display()),
        steps,
    })
}

impl TryNext {
    /// As printed after the demo is up.
    pub fn render(&self) -> String {
        let mut out = format!("  {}\n", self.env);
        for s in &self.steps {
            if !s.comment.is_empty() {
                let _ = writeln!(out, "\n  # {}", s.comment);
            }
            let _ = writeln!(out, "  {}", s.command);
        }
        out
    }
}

fn file(dir: &Path) -> PathBuf {
    dir.join("try-next.json")
}

/// Saves what `demo try` runs.
pub fn save(dir: &Path, t: &TryNext) -> Result<()> {
    std::fs::write(file(dir), serde_json::to_vec_pretty(t)?)?;
    Ok(())
}

/// `bash -c` of `env` then `command`, stdout and stderr together, killed after `timeout`.
fn shell(env: &str, command: &str, timeout: Duration) -> Result<(bool, String)> {
    let out = Command::new("timeout")
        .arg("--kill-after=5")
        .arg(timeout.as_secs().to_string())
        .arg("bash")
        .arg("-c")
        .arg(format!("{env}\n{command} 2>&1"))
        .stdin(Stdio::null())
        .output()
        .context("run bash")?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Name and UID of every broker Pod of the demo's cluster.
fn broker_pods(env: &str) -> Result<Vec<String>> {
    let (ok, out) = shell(
        env,
        &format!(
            "kubectl get pods -n {KAFKA_NS} -l kafka_cr={CLUSTER} -o jsonpath='{{range .items[*]}}{{.metadata.name}}={{.metadata.uid}}{{\"\\n\"}}{{end}}'"
        ),
        Duration::from_secs(30),
    )?;
    if !ok {
        bail!("list the broker Pods: {out}");
    }
    Ok(out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
}

/// Runs every saved command against the demo in `dir` and checks what it does.
pub fn run(dir: &Path) -> Result<()> {
    let t: TryNext = serde_json::from_slice(
        &std::fs::read(file(dir)).with_context(|| format!("no demo is up in {} (make demo first)", dir.display()))?,
    )?;
    let total = Instant::now();
    for s in &t.steps {
        let started = Instant::now();
        let what = if s.comment.is_empty() { s.command.clone() } else { s.comment.clone() };
        let before = broker_pods(&t.env)?;
        let (ok, out) = shell(&t.env, &s.command, Duration::from_secs(120))?;
        let fail = |why: String| anyhow::anyhow!("{what}\n  $ {}\n{why}\n--- its output ---\n{out}", s.command);
        match &s.expect {
            Expect::Prints(want) => {
                if !ok {
                    return Err(fail("it failed".into()));
                }
                if let Some(w) = want.iter().find(|w| !out.contains(w.as_str())) {
                    return Err(fail(format!("its output lacks {w:?}")));
                }
            }
            Expect::Refused(want) => {
                if ok {
                    return Err(fail("it was accepted".into()));
                }
                if let Some(w) = want.iter().find(|w| !out.contains(w.as_str())) {
                    return Err(fail(format!("its output lacks {w:?}")));
                }
            }
            Expect::Then { check, within_secs, brokers } => {
                if !ok {
                    return Err(fail("it failed".into()));
                }
                let deadline = Instant::now() + Duration::from_secs(*within_secs);
                loop {
                    let (done, check_out) = shell(&t.env, check, Duration::from_secs(60))?;
                    let now = broker_pods(&t.env)?;
                    let state = match brokers {
                        Brokers::Kept => before.iter().all(|p| now.contains(p)),
                        Brokers::Replaced => before.iter().all(|p| !now.contains(p)),
                    };
                    if done && state {
                        break;
                    }
                    if *brokers == Brokers::Kept && !state {
                        return Err(fail(format!("broker Pods were replaced: before {before:?}, now {now:?}")));
                    }
                    if Instant::now() > deadline {
                        return Err(fail(format!(
                            "not done within {within_secs}s: check `{check}` said {check_out:?}; broker Pods before {before:?}, now {now:?}"
                        )));
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
        println!("  ✓ {what} ({:.1}s)", started.elapsed().as_secs_f64());
    }
    println!("all {} printed commands did what they say ({:.0}s)", t.steps.len(), total.elapsed().as_secs_f64());
    Ok(())
}
