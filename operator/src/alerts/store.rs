//! The firing alerts the receiver holds: which firing was handled, which waits, and how many
//! fire for each cluster (`status.alertCount`).

use std::collections::HashMap;
use std::sync::Mutex;

use futures::channel::mpsc;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use koperator_shared::alerts::{Alert, ClusterKey, Command};
use koperator_shared::api::KafkaCluster;

use super::act::Outcome;

struct Entry {
    alert: Alert,
    /// The firing ([`Alert::key`]) this entry is about.
    key: String,
    /// The cluster it acts on, once known (a PVC names it indirectly).
    cluster: Option<ClusterKey>,
    /// Handled (done or refused) rather than waiting.
    handled: bool,
    /// The last notification of it.
    seen: std::time::Instant,
}

/// How long an alert no notification repeats is held: longer than Alertmanager's default
/// `repeat_interval` (4 h); a sender that went away without resolving its alerts leaves no
/// count behind for longer.
pub const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The alerts the receiver holds, by fingerprint.
pub struct Store {
    entries: Mutex<HashMap<String, Entry>>,
    /// Held while a notification is handled: one command at a time.
    pub acting: tokio::sync::Mutex<()>,
    trigger: mpsc::UnboundedSender<ObjectRef<KafkaCluster>>,
    triggered: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<KafkaCluster>>>>,
}

impl Default for Store {
    fn default() -> Self {
        let (trigger, rx) = mpsc::unbounded();
        Store { entries: Default::default(), acting: Default::default(), trigger, triggered: Mutex::new(Some(rx)) }
    }
}

impl Store {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clusters whose alert count changed, for the KafkaCluster controller to reconcile
    /// (`status.alertCount`); `None` after the first call.
    pub fn take_triggers(&self) -> Option<mpsc::UnboundedReceiver<ObjectRef<KafkaCluster>>> {
        self.triggered.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn poke(&self, cluster: Option<&ClusterKey>) {
        if let Some(c) = cluster {
            // Nobody listens when the controllers do not run (tests of the receiver alone).
            let _ = self.trigger.unbounded_send(ObjectRef::new(&c.name).within(&c.namespace));
        }
    }

    /// Whether this firing of `alert` was handled already (a notification of it: it is still
    /// firing).
    pub fn handled(&self, alert: &Alert) -> bool {
        let mut entries = self.entries();
        let Some(e) = entries.get_mut(&alert.fingerprint()).filter(|e| e.key == alert.key()) else {
            return false;
        };
        e.seen = std::time::Instant::now();
        e.handled
    }

    /// Holds `alert` (a new firing replaces an older one of the same label set).
    pub fn hold(&self, alert: &Alert, cmd: &Command) {
        let cluster = cmd.cluster().cloned();
        let mut entries = self.entries();
        let fresh =
            Entry { alert: alert.clone(), key: alert.key(), cluster, handled: false, seen: std::time::Instant::now() };
        let entry = entries.entry(alert.fingerprint()).or_insert(fresh);
        if entry.key != alert.key() {
            entry.key = alert.key();
            entry.handled = false;
        }
        entry.alert = alert.clone();
        entry.seen = std::time::Instant::now();
    }

    /// Records what came of `alert`'s command; the cluster's count may have changed.
    pub fn settle(&self, alert: &Alert, cluster: Option<ClusterKey>, outcome: &Outcome) {
        let mut entries = self.entries();
        if let Some(e) = entries.get_mut(&alert.fingerprint()) {
            e.handled = !matches!(outcome, Outcome::Deferred(_));
            if cluster.is_some() {
                e.cluster = cluster;
            }
            let c = e.cluster.clone();
            drop(entries);
            self.poke(c.as_ref());
        }
    }

    /// Forgets `alert` (resolved).
    pub fn forget(&self, alert: &Alert) {
        let gone = self.entries().remove(&alert.fingerprint());
        self.poke(gone.and_then(|e| e.cluster).as_ref());
    }

    /// The alerts whose command waits, after forgetting those that stopped firing (Prometheus
    /// sets an end time that passes when it stops sending an alert) or were not notified for
    /// [`FORGET_AFTER`].
    pub fn deferred(&self) -> Vec<Alert> {
        let now = Timestamp::now();
        let mut entries = self.entries();
        let mut ended = Vec::new();
        entries.retain(|_, e| {
            let keep = !e.alert.resolved(now) && e.seen.elapsed() < FORGET_AFTER;
            if !keep {
                ended.extend(e.cluster.clone());
            }
            keep
        });
        let out = entries.values().filter(|e| !e.handled).map(|e| e.alert.clone()).collect();
        drop(entries);
        for c in &ended {
            self.poke(Some(c));
        }
        out
    }

    /// How many alerts with a command fire for `cluster` (`status.alertCount`).
    pub fn count(&self, namespace: &str, name: &str) -> i32 {
        let n = self
            .entries()
            .values()
            .filter(|e| e.cluster.as_ref().is_some_and(|c| c.namespace == namespace && c.name == name))
            .count();
        i32::try_from(n).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(starts: &str) -> Alert {
        serde_json::from_value(json!({
            "labels": {"alertname": "BrokerOverLoaded", "kafka_cr": "kafka", "namespace": "ns"},
            "annotations": {"command": "upScale"},
            "startsAt": starts,
        }))
        .unwrap()
    }

    fn scale() -> Command {
        Command::DownScale { cluster: ClusterKey { namespace: "ns".into(), name: "kafka".into() }, broker: None }
    }

    #[test]
    fn a_firing_is_handled_once_and_a_new_firing_again() {
        let s = Store::default();
        let a = alert("2026-12-05T03:00:00Z");
        assert!(!s.handled(&a));
        s.hold(&a, &scale());
        assert_eq!(s.deferred().len(), 1, "held, not handled yet");
        s.settle(&a, None, &Outcome::Deferred("busy".into()));
        assert!(!s.handled(&a) && s.deferred().len() == 1);
        s.settle(&a, None, &Outcome::Done("added".into()));
        assert!(s.handled(&a) && s.deferred().is_empty());
        assert_eq!(s.count("ns", "kafka"), 1);
        let again = alert("2026-12-05T05:00:00Z");
        assert!(!s.handled(&again), "a new firing of the same alert");
        s.hold(&again, &scale());
        assert_eq!(s.count("ns", "kafka"), 1, "one alert, fired twice");
        s.forget(&again);
        assert_eq!(s.count("ns", "kafka"), 0);
    }

    #[test]
    fn alerts_whose_end_passed_are_forgotten() {
        let s = Store::default();
        let mut a = alert("2026-12-05T03:00:00Z");
        a.ends_at = Some("2026-12-05T03:01:00Z".into());
        s.hold(&a, &scale());
        assert!(s.deferred().is_empty());
        assert_eq!(s.count("ns", "kafka"), 0);
        let mut rx = s.take_triggers().unwrap();
        assert!(rx.try_recv().is_ok(), "the cluster is reconciled for its count");
    }
}
