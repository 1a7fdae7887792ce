//! Bounded memory per admission request.
//!
//! Two guards, both applied before a `serde_json::Value` tree is built:
//!
//! - [`scan`] walks the raw object once without building anything, counts the items of the
//!   arrays the CRD bounds with `maxItems` (brokers, listeners, storage configs) and estimates
//!   what the decoded `Value` tree would take. An object over a bound is denied with a field
//!   error at once: on CREATE the API server calls the mutating webhook *before* it checks the
//!   CRD schema, so the webhook is the first to see a KafkaCluster with 100,000 brokers.
//! - [`Budget`] holds the bytes shared by every request: a body is charged its bytes as they
//!   arrive (a large one also its declared size, up front, in the pool of large bodies), and
//!   the decoded estimate ([`DECODED_COPIES`] times, for the copies admission makes) before
//!   decoding, so that many concurrent large requests wait for each other instead of
//!   multiplying memory. A body must arrive at the minimum rate
//!   ([`Budget::body_deadline`]): a client cannot keep what it sent charged longer than
//!   [`BODY_GRACE`] plus its declared size at that rate (a 1 MiB body 2 s, the largest 8 s by
//!   default), and a client that announces a body and sends it slowly holds only the few
//!   bytes it sent, so slow clients cannot hold the budget and make the API server's reviews
//!   wait for it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koperator_shared::api::Kind;
use koperator_shared::api::schema::{MAX_BROKERS, MAX_LISTENERS, MAX_STORAGE_CONFIGS};
use koperator_shared::rules::{FieldError, Path};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Decoded copies of an object admission may hold at once: the `Value`, its defaulted clone
/// and the typed struct (plus the JSON patch on `/mutate-*`).
pub const DECODED_COPIES: usize = 3;

/// Largest estimated `Value` tree of one object. The largest legitimate object is bounded by
/// etcd (1.5 MiB by default) and is mostly strings, which decode to about their own size; a
/// tree of this size is a body of tiny maps (each costs ~700 bytes decoded for ~8 bytes of
/// JSON).
pub const MAX_DECODED_BYTES: usize = 12 * 1024 * 1024;

/// What [`scan`] found in one object.
#[derive(Debug, Default)]
pub struct Shape {
    /// Estimated heap bytes of the decoded `serde_json::Value` tree.
    pub decoded_bytes: usize,
    /// JSON values in the object.
    pub values: usize,
    /// Arrays over their CRD bound (the same bound as the schema's `maxItems`).
    pub errors: Vec<FieldError>,
}

/// Walks `raw` (an object of `kind`) without building it: the decoded size estimate and the
/// arrays over their bounds. `Err` when `raw` is not JSON (cannot happen for a `RawValue`).
pub fn scan(kind: Kind, raw: &RawValue) -> Result<Shape, serde_json::Error> {
    let mut st = State { kind, path: Vec::new(), shape: Shape::default() };
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Node { st: &mut st }.deserialize(&mut de)?;
    de.end()?;
    if st.shape.decoded_bytes > MAX_DECODED_BYTES {
        st.shape.errors.push(FieldError::forbidden(
            &Path::root("<object>"),
            format!(
                "the object would take about {} MiB to decode (at most {} MiB): it has {} JSON values in {} bytes; \
                 remove repeated or empty entries",
                st.shape.decoded_bytes >> 20,
                MAX_DECODED_BYTES >> 20,
                st.shape.values,
                raw.get().len()
            ),
        ));
    }
    Ok(st.shape)
}

/// One step of the path being walked (only the steps the bounds need are named).
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    /// A key the bounds mention.
    Known(&'static str),
    /// The name of a broker config group.
    Group(String),
    /// An array index.
    Index(usize),
    /// Any other key.
    Other,
}

/// The keys that occur in [`BOUNDS`].
const KNOWN_KEYS: &[&str] = &[
    "spec",
    "brokers",
    "brokerConfig",
    "storageConfigs",
    "brokerConfigGroups",
    "listenersConfig",
    "internalListeners",
    "externalListeners",
];

/// A pattern step of a bounded array's path.
#[derive(Clone, Copy)]
enum Pat {
    Key(&'static str),
    AnyIndex,
    AnyGroup,
}

/// The KafkaCluster arrays with a `maxItems` in the CRD, and the bound.
const BOUNDS: &[(&[Pat], usize, &str)] = &[
    (&[Pat::Key("spec"), Pat::Key("brokers")], MAX_BROKERS, "brokers"),
    (
        &[Pat::Key("spec"), Pat::Key("listenersConfig"), Pat::Key("internalListeners")],
        MAX_LISTENERS,
        "internal listeners",
    ),
    (
        &[Pat::Key("spec"), Pat::Key("listenersConfig"), Pat::Key("externalListeners")],
        MAX_LISTENERS,
        "external listeners",
    ),
    (
        &[Pat::Key("spec"), Pat::Key("brokers"), Pat::AnyIndex, Pat::Key("brokerConfig"), Pat::Key("storageConfigs")],
        MAX_STORAGE_CONFIGS,
        "storage configs",
    ),
    (
        &[Pat::Key("spec"), Pat::Key("brokerConfigGroups"), Pat::AnyGroup, Pat::Key("storageConfigs")],
        MAX_STORAGE_CONFIGS,
        "storage configs",
    ),
];

fn matches(pattern: &[Pat], path: &[Seg]) -> bool {
    pattern.len() == path.len()
        && pattern.iter().zip(path).all(|(p, s)| match (p, s) {
            (Pat::Key(k), Seg::Known(s)) => k == s,
            (Pat::AnyIndex, Seg::Index(_)) => true,
            (Pat::AnyGroup, Seg::Group(_)) => true,
            _ => false,
        })
}

fn render(path: &[Seg]) -> Path {
    let mut segs = path.iter();
    let mut out = match segs.next() {
        Some(Seg::Known(k)) => Path::root(k),
        _ => Path::root("<object>"),
    };
    for s in segs {
        out = match s {
            Seg::Known(k) => out.child(k),
            Seg::Group(g) => out.child(g),
            Seg::Index(i) => out.index(*i),
            Seg::Other => out.child("*"),
        };
    }
    out
}

struct State {
    kind: Kind,
    path: Vec<Seg>,
    shape: Shape,
}

impl State {
    /// Deepest path the bounds look at.
    const TRACKED_DEPTH: usize = 6;

    fn add(&mut self, bytes: usize) {
        self.shape.decoded_bytes = self.shape.decoded_bytes.saturating_add(bytes);
    }

    fn check_bound(&mut self, items: usize) {
        if self.kind != Kind::KafkaCluster {
            return;
        }
        if let Some((_, max, what)) = BOUNDS.iter().find(|(p, _, _)| matches(p, &self.path))
            && items > *max
        {
            self.shape.errors.push(FieldError::invalid(
                &render(&self.path),
                items,
                format!("at most {max} {what} are supported; split the cluster or remove entries"),
            ));
        }
    }
}

/// Bytes a `String` of `len` bytes takes on the heap (allocator rounding included).
fn string_bytes(len: usize) -> usize {
    if len == 0 { 0 } else { (len + 16).max(32) }
}

/// A `Value` slot in a `Vec` (with growth slack) or a B-tree node.
const VALUE_SLOT: usize = 64;
/// One B-tree leaf of `BTreeMap<String, Value>` (11 entries).
const MAP_NODE: usize = 640;

struct Node<'s> {
    st: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.st.shape.values += 1;
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.st.shape.values += 1;
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.st.shape.values += 1;
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.st.shape.values += 1;
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.st.shape.values += 1;
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.st.shape.values += 1;
        self.st.add(string_bytes(v.len()));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.st.shape.values += 1;
        let tracked = self.st.path.len() < State::TRACKED_DEPTH;
        let mut n = 0;
        loop {
            if tracked {
                self.st.path.push(Seg::Index(n));
            }
            let more = seq.next_element_seed(Node { st: &mut *self.st })?;
            if tracked {
                self.st.path.pop();
            }
            if more.is_none() {
                break;
            }
            n += 1;
        }
        self.st.add(n * VALUE_SLOT + 16);
        if tracked {
            self.st.check_bound(n);
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.st.shape.values += 1;
        let tracked = self.st.path.len() < State::TRACKED_DEPTH;
        let in_groups = self.st.path == [Seg::Known("spec"), Seg::Known("brokerConfigGroups")];
        let mut n: usize = 0;
        while let Some((seg, key_len)) = map.next_key_seed(Key { group: in_groups })? {
            n += 1;
            self.st.add(string_bytes(key_len.max(1)));
            if tracked {
                self.st.path.push(seg);
            }
            map.next_value_seed(Node { st: &mut *self.st })?;
            if tracked {
                self.st.path.pop();
            }
        }
        if n > 0 {
            // Leaves hold 5 to 11 entries; internal nodes add about a tenth.
            self.st.add(if n <= 11 { MAP_NODE } else { n.div_ceil(5) * MAP_NODE * 11 / 10 });
        }
        Ok(())
    }
}

/// Classifies a key without keeping it (except a broker config group's name).
struct Key {
    group: bool,
}

impl<'de> DeserializeSeed<'de> for Key {
    type Value = (Seg, usize);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(Seg, usize), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = (Seg, usize);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<(Seg, usize), E> {
        let seg = if self.group {
            Seg::Group(v.chars().take(253).collect())
        } else {
            KNOWN_KEYS.iter().find(|k| **k == v).map_or(Seg::Other, |k| Seg::Known(k))
        };
        Ok((seg, v.len()))
    }
}

/// Declared bodies above this are large: they are admitted by declared size into a pool of
/// their own, a part of the body budget, so that clients announcing big bodies and sending
/// them slowly cannot keep small requests (what the API server sends almost always) waiting.
pub const LARGE_BODY: usize = 1024 * 1024;

/// Time a body has on top of its size at the minimum rate (round trips, TCP slow start).
pub const BODY_GRACE: Duration = Duration::from_secs(1);

/// Default of `--min-body-rate`, bytes per second. The API server sends a review from memory
/// over the cluster network, far faster: a 7 MiB review in well under a second.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024 * 1024;

/// Why the memory budget could not be had.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BudgetError {
    /// More than the whole budget: could never run.
    #[error("the request needs {needed} bytes of memory, more than the webhook's budget of {total} bytes for it")]
    TooLarge {
        /// Bytes asked for.
        needed: usize,
        /// The budget.
        total: usize,
    },
    /// Other requests held the budget until the deadline.
    #[error("other admission requests held the webhook's memory budget ({total} bytes) until the deadline")]
    Busy {
        /// The budget.
        total: usize,
    },
}

impl BudgetError {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            BudgetError::TooLarge { .. } => "MemoryBudgetTooSmall",
            BudgetError::Busy { .. } => "MemoryBudgetBusy",
        }
    }
}

/// One pool of bytes.
#[derive(Clone, Debug)]
struct Pool {
    sem: Arc<Semaphore>,
    total: usize,
}

impl Pool {
    fn new(total: usize) -> Pool {
        Pool { sem: Arc::new(Semaphore::new(total)), total }
    }

    async fn take(&self, held: &mut Held, bytes: usize, deadline: Instant) -> Result<(), BudgetError> {
        if bytes == 0 {
            return Ok(());
        }
        let already =
            held.permits.iter().find(|p| Arc::ptr_eq(p.semaphore(), &self.sem)).map_or(0, |p| p.num_permits());
        if already + bytes > self.total {
            return Err(BudgetError::TooLarge { needed: already + bytes, total: self.total });
        }
        let acquire = self.sem.clone().acquire_many_owned(bytes as u32);
        match tokio::time::timeout_at(deadline.into(), acquire).await {
            Ok(Ok(p)) => {
                // One permit per pool: a body charged frame by frame stays one entry.
                match held.permits.iter_mut().find(|h| Arc::ptr_eq(h.semaphore(), &self.sem)) {
                    Some(h) => h.merge(p),
                    None => held.permits.push(p),
                }
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(BudgetError::Busy { total: self.total }),
        }
    }
}

/// The bytes every in-flight admission request may hold together, in pools taken in order
/// (large-body admission, body bytes, decoded objects):
///
/// - large bodies (declared above [`LARGE_BODY`]): 8 MiB of the body pool's 12 MiB (the part
///   above 4 MiB), charged the declared size before the body is read, so that large bodies
///   are read a few at a time, cannot stall each other part-way, and always leave 4 MiB of the
///   body pool to small ones. Their minimum rate counts from this reservation: a slow client
///   keeps it at most [`BODY_GRACE`] plus its size at the rate (8 s for the largest); a large
///   body may wait for it behind such clients, a small one never does;
/// - bodies: a quarter of the budget, charged each body's buffer as it grows with the bytes
///   that arrive (at most twice those, and at most the `Content-Length` a request must
///   declare). Bytes not sent are not charged: a client announcing a body and sending it a
///   byte a second holds a few bytes, for a few seconds. A body must be complete by
///   [`Budget::body_deadline`] (at the minimum rate), or it is refused and its bytes given
///   back at once, so bodies holding part of the pool wait for the rest no longer than that;
/// - decoded objects: the rest, charged [`DECODED_COPIES`] times the [`scan`] estimate, all
///   at once.
///
/// Each pool is a tokio `Semaphore`, which is first in, first out: a request waiting for
/// bytes is served before any that came after it, as soon as the ones before it give theirs
/// back (so reviews queued behind slow clients wait at most for their reservations to end).
#[derive(Clone, Debug)]
pub struct Budget {
    body: Pool,
    large: Pool,
    decoded: Pool,
    /// Bytes per second a charged body must arrive at, on average (at least 1).
    min_body_rate: u64,
}

/// Bytes held from a [`Budget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    permits: Vec<OwnedSemaphorePermit>,
}

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permits.iter().map(OwnedSemaphorePermit::num_permits).sum()
    }
}

impl Budget {
    /// Bytes of the body pool kept for bodies up to [`LARGE_BODY`].
    const SMALL_RESERVE: usize = 4 * 1024 * 1024;

    /// A budget of `total` bytes (clamped to 16 MiB..4 GiB).
    pub fn new(total: usize) -> Budget {
        let total = total.clamp(16 << 20, u32::MAX as usize);
        let body = total / 4;
        Budget {
            body: Pool::new(body),
            large: Pool::new(body - Self::SMALL_RESERVE),
            decoded: Pool::new(total - body),
            min_body_rate: DEFAULT_MIN_BODY_RATE,
        }
    }

    /// The same budget with bodies required to arrive at `bytes_per_second` (at least 1) on
    /// average; [`DEFAULT_MIN_BODY_RATE`] otherwise.
    pub fn with_min_body_rate(mut self, bytes_per_second: u64) -> Budget {
        self.min_body_rate = bytes_per_second.max(1);
        self
    }

    /// Bytes per second a charged body must arrive at.
    pub fn min_body_rate(&self) -> u64 {
        self.min_body_rate
    }

    /// When a body of `declared` bytes charged at `charged_at` must have arrived:
    /// [`BODY_GRACE`] plus its size at the minimum rate. The caller also keeps the request's
    /// own deadline (whichever comes first).
    pub fn body_deadline(&self, charged_at: Instant, declared: usize) -> Instant {
        let nanos = (declared as u128 * 1_000_000_000) / self.min_body_rate as u128;
        charged_at + BODY_GRACE + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.body.total + self.decoded.total
    }

    /// Bytes not held by anyone now.
    pub fn available(&self) -> usize {
        self.body.sem.available_permits() + self.decoded.sem.available_permits()
    }

    /// Before a body of `declared` bytes is read: if it is large, charges its declared size
    /// to the pool of large bodies, waiting for other requests (first come, first served)
    /// until `deadline`. Small bodies are not charged here.
    pub async fn admit_body(&self, held: &mut Held, declared: usize, deadline: Instant) -> Result<(), BudgetError> {
        if declared > LARGE_BODY { self.large.take(held, declared, deadline).await } else { Ok(()) }
    }

    /// Charges `bytes` of a body that have arrived, waiting for other requests (first come,
    /// first served) until `deadline` (the body's, from [`Budget::body_deadline`]). The caller
    /// drops the [`Held`] bytes as soon as the body cannot be read.
    pub async fn charge_body(&self, held: &mut Held, bytes: usize, deadline: Instant) -> Result<(), BudgetError> {
        self.body.take(held, bytes, deadline).await
    }

    /// Charges decoded objects of `bytes`, waiting for other requests until `deadline`.
    pub async fn reserve_decoded(&self, held: &mut Held, bytes: usize, deadline: Instant) -> Result<(), BudgetError> {
        self.decoded.take(held, bytes, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: &serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn brokers(n: usize) -> serde_json::Value {
        json!({"metadata": {"name": "k"}, "spec": {"brokers": (0..n).map(|i| json!({"id": i})).collect::<Vec<_>>()}})
    }

    #[test]
    fn bounded_arrays_are_reported_with_their_path() {
        let ok = scan(Kind::KafkaCluster, &raw(&brokers(MAX_BROKERS))).unwrap();
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        let big = scan(Kind::KafkaCluster, &raw(&brokers(MAX_BROKERS + 1))).unwrap();
        assert_eq!(big.errors.len(), 1);
        assert_eq!(
            big.errors[0].to_string(),
            format!(
                "spec.brokers: Invalid value: {}: at most {MAX_BROKERS} brokers are supported; split the cluster or remove entries",
                MAX_BROKERS + 1
            )
        );
        // Other kinds have no such arrays.
        assert!(scan(Kind::KafkaTopic, &raw(&brokers(MAX_BROKERS + 1))).unwrap().errors.is_empty());
    }

    #[test]
    fn nested_bounds_name_the_broker_and_the_group() {
        let disks: Vec<_> = (0..=MAX_STORAGE_CONFIGS).map(|i| json!({"mountPath": format!("/d{i}")})).collect();
        let obj = json!({"spec": {
            "brokers": [{"id": 0}, {"id": 1, "brokerConfig": {"storageConfigs": disks}}],
            "brokerConfigGroups": {"big": {"storageConfigs": disks}, "small": {"storageConfigs": []}},
            "listenersConfig": {"internalListeners": (0..=MAX_LISTENERS).map(|i| json!({"name": format!("l{i}")})).collect::<Vec<_>>()},
        }});
        let mut paths: Vec<String> =
            scan(Kind::KafkaCluster, &raw(&obj)).unwrap().errors.iter().map(|e| e.path.clone()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "spec.brokerConfigGroups.big.storageConfigs",
                "spec.brokers[1].brokerConfig.storageConfigs",
                "spec.listenersConfig.internalListeners"
            ]
        );
    }

    #[test]
    fn the_estimate_grows_with_maps_not_just_bytes() {
        let strings = json!({"spec": {"readOnlyConfig": "x".repeat(100_000)}});
        let maps = json!({"spec": {"x": (0..10_000).map(|_| json!({"a": 0})).collect::<Vec<_>>()}});
        let s = scan(Kind::KafkaTopic, &raw(&strings)).unwrap();
        let m = scan(Kind::KafkaTopic, &raw(&maps)).unwrap();
        assert!(s.decoded_bytes < 2 * 100_000, "{}", s.decoded_bytes);
        assert!(m.decoded_bytes > 50 * maps.to_string().len(), "{} for {}", m.decoded_bytes, maps.to_string().len());
        assert_eq!(m.values, 1 + 1 + 1 + 2 * 10_000);
    }

    #[test]
    fn a_body_of_tiny_maps_is_refused_before_decoding() {
        let n = MAX_DECODED_BYTES / MAP_NODE + 1;
        let obj = json!({"spec": {"x": vec![json!({"a": 0}); n]}});
        let shape = scan(Kind::KafkaTopic, &raw(&obj)).unwrap();
        assert_eq!(shape.errors.len(), 1);
        assert!(shape.errors[0].to_string().starts_with("<object>: Forbidden: the object would take about"));
    }

    #[tokio::test]
    async fn the_budget_waits_then_gives_up_and_keeps_room_for_small_bodies() {
        let b = Budget::new(48 << 20);
        let soon = || Instant::now() + std::time::Duration::from_millis(50);
        // Large bodies share 8 of the 12 MiB body pool, by declared size.
        let mut big = Held::default();
        b.admit_body(&mut big, 7 << 20, soon()).await.unwrap();
        b.charge_body(&mut big, 7 << 20, soon()).await.unwrap();
        let mut second = Held::default();
        assert_eq!(b.admit_body(&mut second, 2 << 20, soon()).await, Err(BudgetError::Busy { total: 8 << 20 }));
        // Small bodies still get in.
        let mut small = Held::default();
        for _ in 0..5 {
            b.admit_body(&mut small, 1 << 20, soon()).await.unwrap();
            b.charge_body(&mut small, 1 << 20, soon()).await.unwrap();
        }
        assert_eq!(small.bytes(), 5 << 20);
        assert_eq!(small.permits.len(), 1, "one permit per pool");
        assert_eq!(b.charge_body(&mut Held::default(), 1, soon()).await, Err(BudgetError::Busy { total: 12 << 20 }));
        drop(big);
        b.admit_body(&mut second, 2 << 20, soon()).await.unwrap();
        b.charge_body(&mut second, 2 << 20, soon()).await.unwrap();
        // Decoded objects have their own pool; more than all of it can never run.
        b.reserve_decoded(&mut second, 36 << 20, soon()).await.unwrap();
        assert_eq!(second.bytes(), 2 * (2 << 20) + (36 << 20));
        assert!(matches!(b.reserve_decoded(&mut small, 37 << 20, soon()).await, Err(BudgetError::TooLarge { .. })));
        assert_eq!(b.total(), 48 << 20);
    }

    #[tokio::test]
    async fn a_body_is_charged_what_has_arrived() {
        let b = Budget::new(48 << 20);
        let soon = || Instant::now() + std::time::Duration::from_millis(50);
        // Slow clients announcing 1 MiB each hold what they sent, not what they announced.
        let mut slow: Vec<Held> = (0..100).map(|_| Held::default()).collect();
        for h in &mut slow {
            b.admit_body(h, 1 << 20, soon()).await.unwrap();
            b.charge_body(h, 1, soon()).await.unwrap();
        }
        assert_eq!(b.available(), (48 << 20) - 100);
        // Charged frame by frame, a body cannot pass the pool.
        let mut h = Held::default();
        b.charge_body(&mut h, 12 << 20, soon()).await.unwrap_err();
        drop(slow);
        b.charge_body(&mut h, 12 << 20, soon()).await.unwrap();
        assert!(matches!(b.charge_body(&mut h, 1, soon()).await, Err(BudgetError::TooLarge { .. })));
    }

    #[test]
    fn a_body_gets_its_size_at_the_minimum_rate_plus_the_grace() {
        let t = Instant::now();
        let b = Budget::new(48 << 20);
        assert_eq!(b.body_deadline(t, 0), t + BODY_GRACE);
        assert_eq!(b.body_deadline(t, 1 << 20), t + Duration::from_secs(2));
        assert_eq!(b.body_deadline(t, 7 << 20), t + Duration::from_secs(8));
        let slow = Budget::new(48 << 20).with_min_body_rate(1000);
        assert_eq!(slow.body_deadline(t, 500), t + Duration::from_millis(1500));
        assert_eq!(Budget::new(0).with_min_body_rate(0).body_deadline(t, 1), t + BODY_GRACE + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn the_budget_is_first_come_first_served() {
        let b = Budget::new(48 << 20);
        let later = || Instant::now() + std::time::Duration::from_secs(5);
        // 11.5 of the 12 MiB body pool held.
        let mut full = Held::default();
        for _ in 0..11 {
            b.charge_body(&mut full, 1 << 20, later()).await.unwrap();
        }
        b.charge_body(&mut full, 1 << 19, later()).await.unwrap();
        // A 1 MiB request queues first, then a 1-byte one: the small one would fit, but does
        // not overtake.
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let first = {
            let (b, tx) = (b.clone(), order_tx.clone());
            tokio::spawn(async move {
                let mut h = Held::default();
                b.charge_body(&mut h, 1 << 20, later()).await.unwrap();
                tx.send("1 MiB").unwrap();
                h
            })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = {
            let (b, tx) = (b.clone(), order_tx.clone());
            tokio::spawn(async move {
                let mut h = Held::default();
                b.charge_body(&mut h, 1, later()).await.unwrap();
                tx.send("1 byte").unwrap();
                h
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(order.try_recv().is_err(), "the 1-byte request overtook the 1 MiB one");
        // Giving back the reservations serves the queue in order, at once.
        drop(full);
        let (_a, _b) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(order.recv().await, Some("1 MiB"));
        assert_eq!(order.recv().await, Some("1 byte"));
    }
}
