//! Leader election through a `coordination.k8s.io/v1` Lease: one replica reconciles, the others
//! wait. Acquire and renew use the Lease's resourceVersion (optimistic concurrency); a leader
//! that cannot renew before the lease runs out stops leading.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the leader renews (and candidates retry).
    pub renew_every: Duration,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Whether `lease` may be taken by `me` now.
fn can_take(lease: &Lease, me: &str) -> bool {
    let Some(spec) = &lease.spec else { return true };
    match (&spec.holder_identity, &spec.renew_time, spec.lease_duration_seconds) {
        (Some(holder), _, _) if holder == me => true,
        (None, _, _) => true,
        (Some(_), Some(renewed), Some(secs)) => {
            let expires = renewed.0.as_second() + i64::from(secs);
            Timestamp::now().as_second() > expires
        }
        _ => true,
    }
}

/// Tries once to acquire or renew; true when this replica holds the lease afterwards.
pub async fn try_acquire(client: &Client, cfg: &LeaseConfig) -> kube::Result<bool> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: acquired.or_else(|| Some(now())),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec(0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !can_take(&lease, &cfg.identity) {
                return Ok(false);
            }
            let old = lease.spec.clone().unwrap_or_default();
            let mine = old.holder_identity.as_deref() == Some(cfg.identity.as_str());
            let transitions = old.lease_transitions.unwrap_or(0) + i32::from(!mine);
            lease.spec = Some(spec(transitions, if mine { old.acquire_time } else { None }));
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica leads.
pub async fn acquire(client: &Client, cfg: &LeaseConfig) {
    let mut announced = false;
    loop {
        match try_acquire(client, cfg).await {
            Ok(true) => {
                info!(lease = cfg.name, identity = cfg.identity, "acquired leadership");
                return;
            }
            Ok(false) if !announced => {
                info!(lease = cfg.name, "another replica leads; waiting");
                announced = true;
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "could not read or write the lease"),
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
}

/// Renews the lease until it cannot be renewed before it expires; returns then.
pub async fn hold(client: &Client, cfg: &LeaseConfig) {
    let mut last_ok = std::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_acquire(client, cfg).await {
            Ok(true) => last_ok = std::time::Instant::now(),
            Ok(false) => {
                warn!(lease = cfg.name, "leadership lost to another replica");
                return;
            }
            Err(e) => warn!(error = %e, "lease renewal failed"),
        }
        if last_ok.elapsed() >= cfg.duration {
            warn!(lease = cfg.name, "lease expired without renewal");
            return;
        }
    }
}
