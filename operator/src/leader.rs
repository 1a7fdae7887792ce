//! Leader election through a `coordination.k8s.io/v1` Lease: one replica reconciles, the others
//! wait. Acquire and renew use the Lease's resourceVersion (optimistic concurrency); a leader
//! that cannot renew within its renew deadline stops leading.
//!
//! Clocks: a candidate never compares the holder's `renewTime` with its own wall clock (skewed
//! clocks would let it take a live lease). It notes when it first saw the Lease's current
//! record (holder, `renewTime`) on its own monotonic clock and takes over only when that record
//! has not changed for the Lease's own `leaseDurationSeconds` ([`Observer`]). Every API call is
//! bounded by a timeout, so a hung request cannot keep a leader leading past its deadline.

use std::time::{Duration, Instant};

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

impl LeaseConfig {
    /// How long one API call of an acquire or renew may take, and how long a leader may go
    /// without a successful renewal before it steps down: two thirds of the lease, so it stops
    /// before any candidate may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// The Lease record as a candidate last saw it, and when (its own monotonic clock).
#[derive(Debug, Default)]
pub struct Observer {
    seen: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl Observer {
    /// Whether `me` may take `lease` at local time `at`: it is free, already ours, or its
    /// record (holder and `renewTime`) has not changed for `leaseDurationSeconds` since this
    /// observer first saw it. The holder's timestamps are compared only with each other.
    pub fn may_take(&mut self, lease: &Lease, me: &str, at: Instant) -> bool {
        let Some(spec) = &lease.spec else { return true };
        let Some(holder) = &spec.holder_identity else { return true };
        if holder == me {
            return true;
        }
        let record = (Some(holder.clone()), spec.renew_time.clone());
        let first_seen = match &self.seen {
            Some((h, r, t)) if (h, r) == (&record.0, &record.1) => *t,
            _ => {
                self.seen = Some((record.0, record.1, at));
                at
            }
        };
        let secs = spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
        at.duration_since(first_seen) >= Duration::from_secs(secs)
    }
}

/// Tries once to acquire or renew (each API call bounded by the renew deadline); true when
/// this replica holds the lease afterwards.
pub async fn try_acquire(client: &Client, cfg: &LeaseConfig, observer: &mut Observer) -> kube::Result<bool> {
    match tokio::time::timeout(cfg.renew_deadline(), try_acquire_unbounded(client, cfg, observer)).await {
        Ok(r) => r,
        Err(_) => Err(kube::Error::Service(
            format!("lease {} not read or written within {:?}", cfg.name, cfg.renew_deadline()).into(),
        )),
    }
}

async fn try_acquire_unbounded(client: &Client, cfg: &LeaseConfig, observer: &mut Observer) -> kube::Result<bool> {
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
            if !observer.may_take(&lease, &cfg.identity, Instant::now()) {
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
    let mut observer = Observer::default();
    loop {
        match try_acquire(client, cfg, &mut observer).await {
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

/// Renews the lease until it cannot be renewed within the renew deadline; returns then.
pub async fn hold(client: &Client, cfg: &LeaseConfig) {
    let mut last_ok = Instant::now();
    let mut observer = Observer::default();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_acquire(client, cfg, &mut observer).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                warn!(lease = cfg.name, "leadership lost to another replica");
                return;
            }
            Err(e) => warn!(error = %e, "lease renewal failed"),
        }
        if last_ok.elapsed() >= cfg.renew_deadline() {
            warn!(lease = cfg.name, deadline = ?cfg.renew_deadline(), "lease not renewed within the renew deadline");
            return;
        }
    }
}

/// Gives the lease up when this replica holds it (a graceful shutdown), so that a waiting
/// replica takes over at its next try instead of after the lease's duration. Only a lease
/// still recorded as ours is changed (resourceVersion guards the write); errors are logged.
pub async fn release(client: &Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let attempt = async {
        let Some(mut lease) = api.get_opt(&cfg.name).await? else { return Ok(false) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(false) };
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        api.replace(&cfg.name, &PostParams::default(), &lease).await.map(|_| true)
    };
    match tokio::time::timeout(cfg.renew_deadline(), attempt).await {
        Ok(Ok(true)) => info!(lease = cfg.name, "released leadership"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => warn!(error = %e, lease = cfg.name, "could not release the lease"),
        Err(_) => warn!(lease = cfg.name, "lease not released within the renew deadline"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_at: i64, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
                lease_duration_seconds: Some(secs),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_free_or_own_lease_may_be_taken_at_once() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        assert!(o.may_take(&Lease { metadata: ObjectMeta::default(), spec: None }, "me", t0));
        assert!(o.may_take(&lease(None, 0, 15), "me", t0));
        assert!(o.may_take(&lease(Some("me"), 0, 15), "me", t0));
    }

    #[test]
    fn a_renewed_lease_is_never_taken_whatever_its_timestamps_say() {
        // The holder's clock is a day behind ours: its renewTime looks long expired.
        let day_ago = Timestamp::now().as_second() - 86_400;
        let t0 = Instant::now();
        let mut o = Observer::default();
        assert!(!o.may_take(&lease(Some("other"), day_ago, 15), "me", t0), "taken on the first look");
        // It keeps renewing (renewTime moves): never taken, however long we watch.
        for i in 1..100 {
            let at = t0 + Duration::from_secs(5 * i);
            assert!(!o.may_take(&lease(Some("other"), day_ago + 5 * i as i64, 15), "me", at), "taken at {i}");
        }
    }

    #[test]
    fn a_lease_unchanged_for_its_duration_may_be_taken() {
        // The holder's clock is a day ahead: its renewTime looks valid for a day.
        let ahead = Timestamp::now().as_second() + 86_400;
        let t0 = Instant::now();
        let mut o = Observer::default();
        let stale = lease(Some("other"), ahead, 15);
        assert!(!o.may_take(&stale, "me", t0));
        assert!(!o.may_take(&stale, "me", t0 + Duration::from_secs(14)));
        assert!(o.may_take(&stale, "me", t0 + Duration::from_secs(15)), "15 s unchanged on our own clock");
        // Another holder took it meanwhile: its record starts a new wait.
        let taken = lease(Some("third"), ahead, 15);
        assert!(!o.may_take(&taken, "me", t0 + Duration::from_secs(16)));
        assert!(o.may_take(&taken, "me", t0 + Duration::from_secs(31)));
    }

    #[test]
    fn the_leader_steps_down_before_a_candidate_may_take_over() {
        let cfg = LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
        };
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
        assert!(cfg.renew_deadline() < cfg.duration && cfg.renew_deadline() > cfg.renew_every);
    }
}
