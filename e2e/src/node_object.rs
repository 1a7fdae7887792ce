//! What a kubelet does for its Node object, shared by the test nodes: register it with its
//! addresses and a Ready condition, renew its Lease (so kube-controller-manager neither
//! marks it NotReady nor evicts its Pods), bind Pods to it, and remove it at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Lease renewal and Node heartbeat period.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// A Node object kept alive by its test node.
#[derive(Clone)]
pub(crate) struct NodeObject {
    pub name: String,
    /// `(type, address)`: `InternalIP`, `ExternalIP`, `Hostname`.
    pub addresses: Vec<(String, String)>,
    /// `nodeInfo.containerRuntimeVersion`: what runs the Pods.
    pub runtime: &'static str,
    last_beat: Option<Instant>,
}

impl NodeObject {
    pub fn new(name: String, addresses: Vec<(String, String)>, runtime: &'static str) -> NodeObject {
        NodeObject { name, addresses, runtime, last_beat: None }
    }

    /// The first address of type `kind`.
    pub fn address(&self, kind: &str) -> Option<&str> {
        self.addresses.iter().find(|(k, _)| k == kind).map(|(_, a)| a.as_str())
    }

    /// Creates or refreshes the Node object and renews its Lease, at most every [`HEARTBEAT`].
    pub async fn heartbeat(&mut self, client: &kube::Client) -> Result<()> {
        if self.last_beat.is_some_and(|t| t.elapsed() < HEARTBEAT) {
            return Ok(());
        }
        let now = crate::node::now_rfc3339();
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        let ssa = PatchParams::apply("koperator-e2e-node").force();
        nodes
            .patch(
                &self.name,
                &ssa,
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name}},
                })),
            )
            .await?;
        let addresses: Vec<Value> =
            self.addresses.iter().map(|(kind, address)| json!({"type": kind, "address": address})).collect();
        let status = json!({
            "status": {
                "addresses": addresses,
                "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "koperator e2e test node", "lastHeartbeatTime": now, "lastTransitionTime": now,
                }],
                "nodeInfo": {
                    "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                    "containerRuntimeVersion": self.runtime, "kubeletVersion": "v1.34.4",
                    "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
                },
            }
        });
        nodes.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(status)).await?;
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let micro = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        leases
            .patch(
                &self.name,
                &ssa,
                &Patch::Apply(json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name},
                    "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": micro},
                })),
            )
            .await?;
        self.last_beat = Some(Instant::now());
        Ok(())
    }

    /// Renews the Node object and its Lease on `runtime` until the task is aborted, apart
    /// from a node loop that may block (stopping a process takes up to its grace period).
    pub fn keep_alive(&self, kubeconfig: PathBuf, runtime: &tokio::runtime::Handle) -> tokio::task::JoinHandle<()> {
        let mut node = self.clone();
        runtime.spawn(async move {
            let mut client = None;
            loop {
                if client.is_none() {
                    client = crate::node::client(&kubeconfig).await.ok();
                }
                if let Some(c) = &client
                    && let Err(e) = node.heartbeat(c).await
                {
                    eprintln!("[node {}] heartbeat: {e:#}", node.name);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Binds Pod `name` to this node (the Binding subresource, as the scheduler does).
    pub async fn bind(&self, pods: &Api<Pod>, name: &str) -> Result<()> {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
        });
        pods.create_subresource::<Value, Value>("binding", name, &PostParams::default(), &binding)
            .await
            .with_context(|| format!("bind {name} to {}", self.name))?;
        Ok(())
    }

    /// Whether `pod` is bound to this node, or to none yet.
    pub fn may_run(&self, pod: &Pod) -> bool {
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(|n| n == self.name)
    }

    /// Deletes the Node object and its Lease.
    pub async fn remove(&self, client: &kube::Client) {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        let _ = nodes.delete(&self.name, &DeleteParams::default()).await;
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let _ = leases.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// Finishes the deletion of a Pod bound to a node once its process has stopped, as the
/// kubelet does (grace period 0, only this very Pod: its uid is a precondition).
pub(crate) async fn finish_deletion(pods: &Api<Pod>, pod: &Pod) -> Result<()> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let dp = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }
        .preconditions(kube::api::Preconditions { uid: pod.metadata.uid.clone(), resource_version: None });
    pods.delete(name, &dp).await.with_context(|| format!("finish deletion of {name}"))?;
    Ok(())
}
