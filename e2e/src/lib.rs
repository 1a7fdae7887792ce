//! Real-component test environment (DESIGN §10): etcd, kube-apiserver and
//! kube-controller-manager built by `e2e/scripts/install-deps.sh`, started on free 127.0.0.1
//! ports with RBAC, a service-account key and an admin kubeconfig.
//!
//! Tests share one control plane per test binary ([`shared`]) and work in their own namespace
//! ([`ControlPlane::namespace`]). Every process is killed when the test binary exits, even
//! when a test fails or the binary is killed.

pub mod binary_node;
pub mod controlplane;
pub mod cruise_control;
pub mod dns;
pub mod envoy_pod;
pub mod kafka;
pub mod load;
pub mod loss;
pub mod monitoring;
pub mod node;
mod node_object;
pub mod node_port;
pub mod pki;
pub mod process;
pub mod tools;

pub use controlplane::{ControlPlane, Namespace, Options, shared};
