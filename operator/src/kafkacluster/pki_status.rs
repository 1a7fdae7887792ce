//! `status.certificates` of a KafkaCluster: the CA, each broker's and the operator's
//! certificate as they are in their Secrets (the live state), not as the planner orders them.
//! A CA the user supplied (`sslSecrets.create: false`) shows its own expiry; a certificate
//! issued in this reconcile shows in the next one (which comes at once: issuing keeps the
//! cluster busy). Pure; the planner calls it, and the metric is made from its result.

use kube::ResourceExt;

use koperator_shared::api::kafkacluster::ClusterCertificates;
use koperator_shared::render::{self, tls};
use koperator_shared::validated::ValidatedCluster;

use super::certificates::LiveSecrets;
use crate::apply::is_ours;
use crate::certificate_status::{self, series};
use crate::metrics::certificate_expiry::{Expiry, Role};

/// The certificates of `cluster` found in `secrets`; `None` without a cluster PKI, or before
/// any certificate exists. Broker and operator certificates count only in Secrets the cluster
/// controls (a same-named Secret of someone else's is not the cluster's certificate).
pub fn status(cluster: &ValidatedCluster, secrets: &LiveSecrets) -> Option<ClusterCertificates> {
    if !tls::enabled(cluster) {
        return None;
    }
    let uid = cluster.uid().unwrap_or_default();
    let ca = tls::ca_secret(cluster).and_then(|name| certificate_status::ca(name, &secrets.text(name, tls::CA_CERT)?));
    let leaf = |name: String| {
        let ours = secrets.0.get(&name).is_some_and(|s| is_ours(s, &uid));
        ours.then(|| certificate_status::leaf(&name, &secrets.text(&name, tls::TLS_CRT)?)).flatten()
    };
    let brokers = render::brokers(cluster)
        .iter()
        .filter_map(|b| Some((b.broker.id.to_string(), leaf(tls::broker_secret(cluster, b.broker.id))?)))
        .collect();
    let certs = ClusterCertificates { ca, brokers, operator: leaf(tls::operator_secret(cluster)) };
    Some(certs).filter(|c| *c != ClusterCertificates::default())
}

/// The expiry series of a cluster's `status.certificates`.
pub fn expiry_series(certs: Option<&ClusterCertificates>) -> Vec<Expiry> {
    let Some(c) = certs else { return Vec::new() };
    let ca = c.ca.iter().map(|s| series(Role::Ca, s));
    let brokers = c.brokers.values().map(|s| series(Role::Broker, s));
    let operator = c.operator.iter().map(|s| series(Role::OperatorClient, s));
    ca.chain(brokers).chain(operator).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use k8s_openapi::ByteString;
    use koperator_shared::api::KafkaCluster;
    use koperator_shared::pki;

    use super::*;
    use crate::kafkacluster::certificates::fixtures::{NOW, cluster_with as cluster, issued, secret};

    fn bytes(s: &str) -> ByteString {
        ByteString(s.as_bytes().to_vec())
    }

    fn unix(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<u64> {
        t.as_ref().map(|t| t.0.as_second() as u64)
    }

    #[test]
    fn every_certificate_with_its_expiry_and_renewal() {
        let c = cluster(true, 3);
        let secrets = issued(&c, LiveSecrets::default(), NOW);
        let s = status(&c, &secrets).unwrap();
        let ca = s.ca.as_ref().unwrap();
        assert_eq!((ca.secret_name.as_str(), ca.not_after.0.as_second() as u64), ("kafka-ssl-ca", NOW + 100_000));
        assert_eq!(ca.renew_at, None, "the operator never rotates the CA");
        assert_eq!(s.brokers.keys().collect::<Vec<_>>(), ["0", "1", "2"]);
        for (id, b) in &s.brokers {
            assert_eq!(b.secret_name, format!("kafka-ssl-{id}-server-certificate"));
            assert_eq!(b.not_after.0.as_second() as u64, NOW + 3000);
            assert_eq!(unix(&b.renew_at), Some(NOW - 60 + 3060 * 2 / 3));
        }
        let op = s.operator.as_ref().unwrap();
        assert_eq!(op.secret_name, "kafka-ssl-controller");
        assert_eq!(unix(&op.renew_at), Some(NOW - 60 + 3060 * 2 / 3));

        let series = expiry_series(Some(&s));
        let roles: Vec<(&str, &str)> = series.iter().map(|e| (e.secret.as_str(), e.role.as_str())).collect();
        assert_eq!(
            roles,
            [
                ("kafka-ssl-ca", "ca"),
                ("kafka-ssl-0-server-certificate", "broker"),
                ("kafka-ssl-1-server-certificate", "broker"),
                ("kafka-ssl-2-server-certificate", "broker"),
                ("kafka-ssl-controller", "operator-client"),
            ]
        );
        assert_eq!(series[0].not_after, (NOW + 100_000) as i64);
        assert!(expiry_series(None).is_empty());
    }

    #[test]
    fn a_users_ca_shows_its_own_expiry() {
        let c = cluster(false, 1);
        let theirs = pki::new_ca("team-ca", NOW - 1000, Duration::from_secs(7777)).unwrap();
        let ca_secret = secret(
            BTreeMap::from([(tls::CA_CERT.into(), bytes(&theirs.cert)), (tls::CA_KEY.into(), bytes(&theirs.key))]),
            None,
        );
        let secrets = issued(&c, LiveSecrets(BTreeMap::from([("kafka-ssl-ca".into(), ca_secret)])), NOW);
        let s = status(&c, &secrets).unwrap();
        assert_eq!(s.ca.unwrap().not_after.0.as_second() as u64, NOW - 1000 + 7777, "not the operator's lifetime");
        // Leaves never outlive their CA.
        assert_eq!(s.brokers["0"].not_after.0.as_second() as u64, NOW + 3000);
        assert!(s.operator.is_some());
    }

    #[test]
    fn what_is_not_the_clusters_certificate_is_left_out() {
        let c = cluster(true, 3);
        let mut secrets = issued(&c, LiveSecrets::default(), NOW);
        let mut foreign = secrets.0["kafka-ssl-1-server-certificate"].clone();
        foreign.metadata.owner_references = None;
        secrets.0.insert("kafka-ssl-1-server-certificate".into(), foreign);
        secrets.0.get_mut("kafka-ssl-2-server-certificate").unwrap().data.as_mut().unwrap().remove(tls::TLS_CRT);
        secrets.0.remove("kafka-ssl-controller");
        let s = status(&c, &secrets).unwrap();
        assert_eq!(s.brokers.keys().collect::<Vec<_>>(), ["0"], "someone else's, incomplete");
        assert_eq!(s.operator, None, "missing");
        // A broker no longer in the spec is not listed, even while its Secret is still read.
        let fewer = cluster(true, 1);
        let s = status(&fewer, &issued(&c, LiveSecrets::default(), NOW)).unwrap();
        assert_eq!(s.brokers.keys().collect::<Vec<_>>(), ["0"]);
    }

    #[test]
    fn without_a_pki_or_before_any_certificate_there_is_none() {
        let kc: KafkaCluster =
            serde_saphyr::from_str(include_str!("../../../config/samples/kafkacluster_kraft.yaml")).unwrap();
        assert_eq!(status(&koperator_shared::validated::must(&kc), &LiveSecrets::default()), None);
        assert_eq!(status(&cluster(true, 3), &LiveSecrets::default()), None);
        let junk = secret(BTreeMap::from([(tls::CA_CERT.into(), bytes("junk"))]), None);
        assert_eq!(status(&cluster(false, 3), &LiveSecrets(BTreeMap::from([("kafka-ssl-ca".into(), junk)]))), None);
    }
}
