//! The test node's cluster DNS: the Pods' and Services' names (the data of its hosts file) as
//! a tiny DNS server over UDP, for programs that resolve names themselves rather than through
//! a hosts file (Envoy's STRICT_DNS clusters, through c-ares).
//!
//! It answers `A` queries with every address a name has (all the Pods a Service selects), a
//! known name's other types with no records (NODATA), and unknown names with NXDOMAIN. TTLs
//! are short ([`TTL`]) so resolvers see Pods come and go.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use anyhow::Result;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

/// Seconds a resolver may keep an answer.
pub const TTL: u32 = 1;

/// A name and its addresses: one line of the hosts file, one set of `A` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `<name>.<ns>.svc.cluster.local` and `<name>.<ns>.svc`.
    pub names: Vec<String>,
    /// Addresses in Pod name order (the hosts file takes the first).
    pub ips: Vec<String>,
}

/// The cluster's DNS names for the Pods in `ips`: each Pod's `<hostname>.<subdomain>` name,
/// and each Service's name with every Pod its selector picks.
pub fn entries(
    ns: &str,
    pods: &BTreeMap<String, Pod>,
    services: &[Service],
    ips: &HashMap<String, String>,
) -> Vec<Entry> {
    let names = |name: &str| vec![format!("{name}.{ns}.svc.cluster.local"), format!("{name}.{ns}.svc")];
    let mut out = Vec::new();
    for (name, pod) in pods {
        let Some(ip) = ips.get(name) else { continue };
        let spec = pod.spec.as_ref();
        if let (Some(host), Some(sub)) =
            (spec.and_then(|s| s.hostname.as_ref()), spec.and_then(|s| s.subdomain.as_ref()))
        {
            out.push(Entry { names: names(&format!("{host}.{sub}")), ips: vec![ip.clone()] });
        }
    }
    for svc in services {
        let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else { continue };
        let selected: Vec<String> = pods
            .iter()
            .filter(|(_, p)| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
            .filter_map(|(name, _)| ips.get(name).cloned())
            .collect();
        if !selected.is_empty() {
            out.push(Entry { names: names(&svc.name_any()), ips: selected });
        }
    }
    out
}

/// Lower-case name → addresses, what the server answers from.
pub type Records = HashMap<String, Vec<Ipv4Addr>>;

/// The records of `entries`.
pub fn records(entries: &[Entry]) -> Records {
    let mut out = Records::new();
    for e in entries {
        let ips: Vec<Ipv4Addr> = e.ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        for name in &e.names {
            out.entry(name.to_ascii_lowercase()).or_default().extend(&ips);
        }
    }
    out
}

const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;

/// The answer to one DNS query message, `None` for what is not a query at all (too short, or
/// itself an answer).
pub fn answer(query: &[u8], records: &Records) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let reply = |rcode: u8, question: &[u8], answers: &[Ipv4Addr]| {
        let mut out = Vec::with_capacity(12 + question.len() + 16 * answers.len());
        out.extend_from_slice(&query[..2]);
        // QR, opcode of the query, AA, RD as asked; RA; the code.
        out.push(0x80 | (query[2] & 0x78) | 0x04 | (query[2] & 0x01));
        out.push(0x80 | rcode);
        let qd = u16::from(!question.is_empty());
        for n in [qd, answers.len() as u16, 0, 0] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(question);
        for ip in answers {
            // The name is a pointer to the question's (offset 12).
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        out
    };
    if (query[2] >> 3) & 0x0f != 0 {
        return Some(reply(NOTIMP, &[], &[]));
    }
    if u16::from_be_bytes([query[4], query[5]]) != 1 {
        return Some(reply(FORMERR, &[], &[]));
    }
    // The question: labels up to the root label, then type and class.
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let Some(&len) = query.get(at) else { return Some(reply(FORMERR, &[], &[])) };
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xc0) have no place in a question; longer labels do not exist.
        let label = query.get(at..at + len as usize).filter(|_| len < 64);
        let Some(label) = label else { return Some(reply(FORMERR, &[], &[])) };
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len as usize;
    }
    let Some(tail) = query.get(at..at + 4) else { return Some(reply(FORMERR, &[], &[])) };
    let question = &query[12..at + 4];
    let (qtype, qclass) = (u16::from_be_bytes([tail[0], tail[1]]), u16::from_be_bytes([tail[2], tail[3]]));
    match records.get(&labels.join(".")) {
        None => Some(reply(NXDOMAIN, question, &[])),
        Some(ips) if qclass == CLASS_IN && (qtype == TYPE_A || qtype == TYPE_ANY) => {
            Some(reply(NOERROR, question, ips))
        }
        Some(_) => Some(reply(NOERROR, question, &[])),
    }
}

/// A running DNS server answering from shared [`Records`]; it stops with its runtime.
pub struct DnsServer {
    /// Where it listens (UDP).
    pub address: SocketAddr,
    /// What it answers; replace the map to change the answers.
    pub records: Arc<RwLock<Records>>,
}

impl DnsServer {
    /// Listens on a free UDP port of 127.0.0.1 and serves on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle) -> Result<DnsServer> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let address = socket.local_addr()?;
        let records = Arc::new(RwLock::new(Records::new()));
        let shared = records.clone();
        let _guard = runtime.enter();
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        runtime.spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
                let reply = answer(&buf[..n], &shared.read().unwrap());
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Ok(DnsServer { address, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    /// (id, rcode, answer addresses) of a reply, checking it repeats the question.
    fn read(reply: &[u8], question: &[u8]) -> (u16, u8, Vec<Ipv4Addr>) {
        assert_eq!(reply[2] & 0x80, 0x80, "an answer");
        assert_eq!(&reply[12..question.len()], &question[12..], "the question repeated");
        let count = u16::from_be_bytes([reply[6], reply[7]]) as usize;
        let mut ips = Vec::new();
        let mut at = question.len();
        for _ in 0..count {
            assert_eq!(&reply[at..at + 12], &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, TTL as u8, 0, 4]);
            ips.push(Ipv4Addr::new(reply[at + 12], reply[at + 13], reply[at + 14], reply[at + 15]));
            at += 16;
        }
        assert_eq!(at, reply.len());
        (u16::from_be_bytes([reply[0], reply[1]]), reply[3] & 0x0f, ips)
    }

    fn pod(name: &str, labels: serde_json::Value, host: Option<(&str, &str)>) -> (String, Pod) {
        let mut p = json!({"metadata": {"name": name, "labels": labels}, "spec": {"containers": []}});
        if let Some((h, s)) = host {
            p["spec"]["hostname"] = json!(h);
            p["spec"]["subdomain"] = json!(s);
        }
        (name.to_string(), serde_json::from_value(p).unwrap())
    }

    #[test]
    fn a_service_resolves_to_every_pod_it_selects_and_a_pod_to_its_own_address() {
        let pods: BTreeMap<String, Pod> = [
            pod("kafka-0-x", json!({"app": "kafka", "brokerId": "0"}), Some(("kafka-0", "kafka-headless"))),
            pod("kafka-1-y", json!({"app": "kafka", "brokerId": "1"}), None),
            pod("kafka-2-z", json!({"app": "kafka", "brokerId": "2"}), None),
        ]
        .into();
        let ips: HashMap<String, String> =
            [("kafka-0-x", "127.0.0.2"), ("kafka-1-y", "127.0.0.3")].map(|(a, b)| (a.into(), b.into())).into();
        let svc = |name: &str, sel: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"selector": sel}})).unwrap()
        };
        let services = [
            svc("kafka-all-broker", json!({"app": "kafka"})),
            svc("kafka-1", json!({"app": "kafka", "brokerId": "1"})),
            svc("kafka-2", json!({"app": "kafka", "brokerId": "2"})),
        ];
        let e = entries("ns", &pods, &services, &ips);
        let r = records(&e);
        let a = |name: &str| read(&answer(&query(name, TYPE_A), &r).unwrap(), &query(name, TYPE_A));
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(a("kafka-all-broker.ns.svc.cluster.local"), (0x1234, 0, vec![ip("127.0.0.2"), ip("127.0.0.3")]));
        assert_eq!(a("KAFKA-1.ns.svc.cluster.local"), (0x1234, 0, vec![ip("127.0.0.3")]));
        assert_eq!(a("kafka-0.kafka-headless.ns.svc"), (0x1234, 0, vec![ip("127.0.0.2")]));
        // A Pod without an address (not running) is in no answer; a Service without one is unknown.
        assert_eq!(a("kafka-2.ns.svc.cluster.local"), (0x1234, NXDOMAIN, vec![]));
        assert_eq!(a("kafka-1.other.svc.cluster.local"), (0x1234, NXDOMAIN, vec![]));
        // A known name has no IPv6 address: NODATA, not NXDOMAIN.
        let aaaa = query("kafka-1.ns.svc.cluster.local", 28);
        assert_eq!(read(&answer(&aaaa, &r).unwrap(), &aaaa), (0x1234, NOERROR, vec![]));
    }

    #[test]
    fn malformed_messages_get_format_errors_and_answers_are_ignored() {
        let r = records(&[Entry { names: vec!["a.ns.svc".into()], ips: vec!["127.0.0.9".into()] }]);
        assert_eq!(answer(&[0; 5], &r), None);
        let mut reply = query("a.ns.svc", TYPE_A);
        reply[2] |= 0x80;
        assert_eq!(answer(&reply, &r), None);
        let q = query("a.ns.svc", TYPE_A);
        let truncated = answer(&q[..q.len() - 2], &r).unwrap();
        assert_eq!((truncated[3] & 0x0f, truncated.len()), (FORMERR, 12));
        let mut two = q.clone();
        two[5] = 2;
        assert_eq!(answer(&two, &r).unwrap()[3] & 0x0f, FORMERR);
        let mut status = q.clone();
        status[2] = 0x10;
        assert_eq!(answer(&status, &r).unwrap()[3] & 0x0f, NOTIMP);
        // EDNS's additional OPT record after the question is fine.
        let mut edns = q.clone();
        edns[11] = 1;
        edns.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(read(&answer(&edns, &r).unwrap(), &q).2, vec![Ipv4Addr::new(127, 0, 0, 9)]);
    }

    #[test]
    fn the_server_answers_over_udp() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let server = DnsServer::start(rt.handle()).unwrap();
        *server.records.write().unwrap() =
            records(&[Entry { names: vec!["b.ns.svc".into()], ips: vec!["127.0.0.7".into()] }]);
        rt.block_on(async {
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let q = query("b.ns.svc", TYPE_A);
            client.send_to(&q, server.address).await.unwrap();
            let mut buf = [0u8; 512];
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(5), client.recv(&mut buf)).await.unwrap().unwrap();
            assert_eq!(read(&buf[..n], &q).2, vec![Ipv4Addr::new(127, 0, 0, 7)]);
        });
    }
}
