//! `shared::kafka::Admin` against a real Apache Kafka broker (KRaft, single node).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use koperator_e2e::kafka::SingleNode;
use koperator_shared::kafka::{
    AclBinding, AclFilter, AclOperation, Admin, ConfigOp, ConfigResource, ConfigSource, ConnectOptions, Error,
    NewTopic, PatternType, ResourceType, ResponseError,
};

fn broker() -> &'static SingleNode {
    static NODE: OnceLock<SingleNode> = OnceLock::new();
    NODE.get_or_init(|| SingleNode::start(Duration::from_secs(90)).expect("start Kafka"))
}

fn admin() -> Admin {
    Admin::new(vec![broker().bootstrap.clone()], ConnectOptions::default())
}

/// Polls `f` until it returns `Some` (Kafka applies admin changes asynchronously: a describe
/// right after an alter may still show the old state).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not reached within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn config(admin: &Admin, res: &ConfigResource, key: &str) -> Option<koperator_shared::kafka::ConfigEntry> {
    admin.describe_configs(res).await.unwrap().into_iter().find(|c| c.name == key)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn metadata_cluster_and_quorum() {
    rt().block_on(async {
        let admin = admin();
        let meta = admin.metadata(None).await.unwrap();
        assert_eq!(meta.brokers.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(meta.brokers[&1].port.to_string(), broker().bootstrap.rsplit(':').next().unwrap());
        let cluster = admin.describe_cluster().await.unwrap();
        assert_eq!(cluster.cluster_id, "a0tvcGVyYXRvci10ZXN0MQ");
        assert_eq!(cluster.brokers.len(), 1);
        assert!(!cluster.brokers[0].fenced);
        let quorum = admin.describe_quorum().await.unwrap();
        assert_eq!(quorum.leader_id, 1);
        assert_eq!(quorum.voters.iter().map(|v| v.id).collect::<Vec<_>>(), vec![1]);
        assert!(quorum.high_watermark > 0, "{quorum:?}");
    });
}

#[test]
fn topic_lifecycle() {
    rt().block_on(async {
        let admin = admin();
        let topic = NewTopic {
            name: "lifecycle".into(),
            partitions: 2,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".to_string(), "3600000".to_string())]),
        };
        admin.create_topic(&topic).await.unwrap();
        let again = admin.create_topic(&topic).await.unwrap_err();
        assert_eq!(again.code(), Some(ResponseError::TopicAlreadyExists), "{again}");
        assert!(again.to_string().contains("lifecycle"), "{again}");

        let meta = admin.metadata(Some(&["lifecycle"])).await.unwrap();
        let t = meta.topic("lifecycle").expect("topic listed");
        assert_eq!((t.partitions.len(), t.replication_factor()), (2, 1));

        // The broker's one log directory holds both replicas of the topic (once it made them).
        let node = *meta.brokers.keys().next().unwrap();
        let dirs = eventually("the topic's replicas in the log directory", || async {
            let dirs = admin.describe_log_dirs(node).await.unwrap();
            (dirs.len() == 1 && dirs[0].replicas >= 2).then_some(dirs)
        })
        .await;
        assert!(dirs[0].path.ends_with("/data") && dirs[0].error.is_none(), "{dirs:?}");
        assert!(matches!(admin.describe_log_dirs(node + 100).await, Err(Error::UnknownNode(_))));

        let configs = admin.describe_configs(&ConfigResource::Topic("lifecycle".into())).await.unwrap();
        let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!((retention.value.as_deref(), retention.source), (Some("3600000"), ConfigSource::DynamicTopic));

        let res = ConfigResource::Topic("lifecycle".into());
        admin
            .alter_configs(
                &res,
                &[ConfigOp::Set("cleanup.policy".into(), "compact".into()), ConfigOp::Delete("retention.ms".into())],
            )
            .await
            .unwrap();
        eventually("topic config altered", || async {
            // The deleted override falls back to a broker-level value (static, default or dynamic).
            let policy = config(&admin, &res, "cleanup.policy").await?;
            let retention = config(&admin, &res, "retention.ms").await?;
            (policy.value.as_deref() == Some("compact") && retention.source != ConfigSource::DynamicTopic).then_some(())
        })
        .await;

        admin.create_partitions("lifecycle", 4).await.unwrap();
        let shrink = admin.create_partitions("lifecycle", 3).await.unwrap_err();
        assert_eq!(shrink.code(), Some(ResponseError::InvalidPartitions), "{shrink}");
        eventually("4 partitions", || async {
            let t = admin.metadata(Some(&["lifecycle"])).await.unwrap();
            (t.topic("lifecycle").unwrap().partitions.len() == 4).then_some(())
        })
        .await;

        admin.delete_topic("lifecycle").await.unwrap();
        let gone = admin.delete_topic("lifecycle").await.unwrap_err();
        assert_eq!(gone.code(), Some(ResponseError::UnknownTopicOrPartition), "{gone}");
    });
}

#[test]
fn dynamic_broker_configs_apply_without_restart() {
    rt().block_on(async {
        let admin = admin();
        let broker = ConfigResource::Broker(1);
        admin.alter_configs(&broker, &[ConfigOp::Set("log.cleaner.threads".into(), "2".into())]).await.unwrap();
        eventually("per-broker config applied", || async {
            let e = config(&admin, &broker, "log.cleaner.threads").await?;
            (e.value.as_deref() == Some("2") && e.source == ConfigSource::DynamicBroker).then_some(())
        })
        .await;

        let defaults = ConfigResource::BrokerDefaults;
        admin.alter_configs(&defaults, &[ConfigOp::Set("log.retention.ms".into(), "7200000".into())]).await.unwrap();
        eventually("cluster-wide default applied", || async {
            let e = config(&admin, &defaults, "log.retention.ms").await?;
            (e.value.as_deref() == Some("7200000") && e.source == ConfigSource::DynamicDefaultBroker).then_some(())
        })
        .await;

        // A static-only key is refused by Kafka, with the key named.
        let err = admin.alter_configs(&broker, &[ConfigOp::Set("log.dirs".into(), "/x".into())]).await.unwrap_err();
        assert_eq!(err.code(), Some(ResponseError::InvalidRequest), "{err}");
        assert!(err.to_string().contains("log.dirs"), "{err}");
    });
}

#[test]
fn acls_create_describe_delete() {
    rt().block_on(async {
        let admin = admin();
        let read =
            AclBinding::allow("User:alice", ResourceType::Topic, "orders", PatternType::Literal, AclOperation::Read);
        let group = AclBinding::allow("User:alice", ResourceType::Group, "*", PatternType::Literal, AclOperation::Read);
        let prefixed =
            AclBinding::allow("User:alice", ResourceType::Topic, "logs-", PatternType::Prefixed, AclOperation::Write);
        admin.create_acls(&[read.clone(), group.clone(), prefixed.clone()]).await.unwrap();
        // Creating again is idempotent.
        admin.create_acls(std::slice::from_ref(&read)).await.unwrap();

        let mut want = vec![read.clone(), group, prefixed.clone()];
        want.sort();
        let alice = AclFilter::principal("User:alice");
        let listed = |n: usize| {
            let (admin, alice) = (&admin, &alice);
            async move {
                let mut acls = admin.describe_acls(alice).await.unwrap();
                acls.sort();
                (acls.len() == n).then_some(acls)
            }
        };
        assert_eq!(eventually("3 ACLs listed", || listed(3)).await, want);

        assert_eq!(admin.delete_acls(&[prefixed.to_filter()]).await.unwrap(), 1);
        eventually("2 ACLs left", || listed(2)).await;
        assert_eq!(admin.delete_acls(std::slice::from_ref(&alice)).await.unwrap(), 2);
        eventually("no ACL left", || listed(0)).await;
    });
}

#[test]
fn unreachable_cluster_fails_fast_with_the_address() {
    rt().block_on(async {
        let port = koperator_e2e::process::free_port().unwrap();
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            ..ConnectOptions::default()
        };
        let admin = Admin::new(vec![format!("127.0.0.1:{port}")], opts).with_retry_for(Duration::from_secs(2));
        let start = Instant::now();
        let err = admin.metadata(Some(&[])).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        assert!(matches!(err, Error::NoBroker { .. }), "{err}");
        assert!(err.is_retriable());
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");

        let err = Admin::new(vec!["no-such-host.invalid:9092".into()], ConnectOptions::default())
            .with_retry_for(Duration::ZERO)
            .metadata(None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    });
}

/// A hung broker (its kernel accepts the connection, nothing answers) costs one timeout, not
/// one per call: the client tries it after the brokers that answer, and a kept connection the
/// broker closed is replaced instead of failing the call.
#[test]
fn a_hung_bootstrap_broker_is_tried_last() {
    rt().block_on(async {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hung_addr = hung.local_addr().unwrap().to_string();
        let opts = ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            ..ConnectOptions::default()
        };
        let admin = Admin::new(vec![hung_addr.clone(), broker().bootstrap.clone()], opts);
        let first = Instant::now();
        admin.describe_cluster().await.unwrap();
        let first = first.elapsed();
        assert!(first >= Duration::from_secs(2), "the hung broker was not tried first: {first:?}");
        let second = Instant::now();
        for _ in 0..3 {
            admin.describe_cluster().await.unwrap();
        }
        let second = second.elapsed();
        assert!(second < Duration::from_secs(2), "the hung broker was tried again: {second:?}");
        eprintln!("FIGURE: first call past a hung broker {first:?}, the next three {second:?}");
        drop(hung);
    });
}

#[test]
fn hosts_file_maps_advertised_names() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 kafka-all-broker.test.svc.cluster.local\n").unwrap();
        let port = broker().bootstrap.rsplit(':').next().unwrap();
        let opts = ConnectOptions {
            resolver: koperator_shared::kafka::Resolver::with_hosts_file(Some(hosts)),
            ..ConnectOptions::default()
        };
        let admin = Admin::new(vec![format!("kafka-all-broker.test.svc.cluster.local:{port}")], opts);
        assert_eq!(admin.describe_cluster().await.unwrap().brokers.len(), 1);
    });
}

#[test]
fn scram_credentials_upsert_describe_delete() {
    rt().block_on(async {
        let admin = admin();
        assert!(!admin.has_scram_credential("carol").await.unwrap());
        admin.upsert_scram_credential("carol", "s3cret-password").await.unwrap();
        eventually("credential listed", || async { admin.has_scram_credential("carol").await.unwrap().then_some(()) })
            .await;
        admin.delete_scram_credential("carol").await.unwrap();
        eventually("credential gone", || async { (!admin.has_scram_credential("carol").await.unwrap()).then_some(()) })
            .await;
        // Deleting again is not an error.
        admin.delete_scram_credential("carol").await.unwrap();
    });
}

/// The client's TLS path against a real SSL listener (PEM keystore, ECDSA P-256 certificate).
#[test]
fn ssl_listener_with_a_trusted_and_an_untrusted_ca() {
    let pki = koperator_e2e::pki::generate().unwrap();
    let node =
        SingleNode::start_with_ssl(Duration::from_secs(90), Some((&pki.serving_cert, &pki.serving_key))).unwrap();
    let ssl = node.ssl_bootstrap.clone().unwrap();
    let tls_for = |ca_pem: &str| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        ConnectOptions { tls: Some(std::sync::Arc::new(config)), ..ConnectOptions::default() }
    };
    rt().block_on(async {
        let admin = Admin::new(vec![ssl.clone()], tls_for(&pki.ca_cert));
        let cluster = admin.describe_cluster().await.unwrap();
        assert_eq!(cluster.brokers.len(), 1);
        let meta = admin.metadata(Some(&[])).await.unwrap();
        assert_eq!(meta.brokers[&1].port.to_string(), ssl.rsplit(':').next().unwrap(), "the SSL listener answered");

        let other = koperator_e2e::pki::generate().unwrap();
        let err = Admin::new(vec![ssl.clone()], tls_for(&other.ca_cert))
            .with_retry_for(Duration::ZERO)
            .metadata(None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("TLS handshake"), "{err}");
    });
}
