//! `shared::kafka` SASL/SCRAM-SHA-512 against a real Apache Kafka broker (KRaft, single node)
//! with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners; the admin user's credential is
//! bootstrapped at format time (`kafka-storage format --add-scram`). One broker for all tests.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use koperator_e2e::kafka::{SingleNode, SingleNodeOptions};
use koperator_e2e::pki::ControlPlanePki;
use koperator_shared::kafka::{
    Admin, ConnectOptions, Connection, Error, NewTopic, ResponseError, SaslScram, client_config,
};

const ADMIN: &str = "admin";
const PASSWORD: &str = "admin-secret-8f3k2";
/// SASL session lifetime the broker grants (`connections.max.reauth.ms`).
const SESSION: Duration = Duration::from_secs(3);

struct Fixture {
    node: SingleNode,
    pki: ControlPlanePki,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = koperator_e2e::pki::generate().unwrap();
        let start = Instant::now();
        let node = SingleNode::start_with(
            Duration::from_secs(120),
            SingleNodeOptions {
                ssl: Some((pki.serving_cert.clone(), pki.serving_key.clone())),
                scram_admin: Some((ADMIN.into(), PASSWORD.into())),
                extra_properties: format!("connections.max.reauth.ms={}\n", SESSION.as_millis()),
                ..Default::default()
            },
        )
        .expect("start Kafka");
        eprintln!("FIGURE: Kafka with SASL_PLAINTEXT and SASL_SSL listening after {:?}", start.elapsed());
        Fixture { node, pki }
    })
}

fn sasl(user: &str, password: &str) -> ConnectOptions {
    ConnectOptions { sasl: Some(SaslScram::new(user, password)), ..ConnectOptions::default() }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The listener's port as the broker's metadata advertises it: which listener answered.
fn port(addr: &str) -> i32 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_scram_admin_lists_metadata_and_creates_a_topic_on_sasl_plaintext() {
    let addr = fixture().node.sasl_bootstrap.clone().unwrap();
    rt().block_on(async {
        let admin = Admin::new(vec![addr.clone()], sasl(ADMIN, PASSWORD));
        let meta = admin.metadata(Some(&[])).await.unwrap();
        assert_eq!(meta.brokers[&1].port, port(&addr), "the SASL_PLAINTEXT listener answered");
        let topic =
            NewTopic { name: "sasl-plain".into(), partitions: 1, replication_factor: 1, configs: BTreeMap::new() };
        admin.create_topic(&topic).await.unwrap();
        let meta = admin.metadata(Some(&["sasl-plain"])).await.unwrap();
        assert_eq!(meta.topic("sasl-plain").expect("listed").partitions.len(), 1);
        assert_eq!(admin.describe_cluster().await.unwrap().brokers.len(), 1);
    });
}

#[test]
fn the_scram_admin_works_over_tls_on_sasl_ssl() {
    let f = fixture();
    let addr = f.node.sasl_ssl_bootstrap.clone().unwrap();
    rt().block_on(async {
        let opts = ConnectOptions { tls: Some(client_config(&f.pki.ca_cert, None).unwrap()), ..sasl(ADMIN, PASSWORD) };
        let admin = Admin::new(vec![addr.clone()], opts);
        let meta = admin.metadata(Some(&[])).await.unwrap();
        assert_eq!(meta.brokers[&1].port, port(&addr), "the SASL_SSL listener answered");
        let topic =
            NewTopic { name: "sasl-ssl".into(), partitions: 2, replication_factor: 1, configs: BTreeMap::new() };
        admin.create_topic(&topic).await.unwrap();
    });
}

#[test]
fn a_wrong_password_or_an_unknown_user_is_an_authentication_error_at_once() {
    let addr = fixture().node.sasl_bootstrap.clone().unwrap();
    rt().block_on(async {
        for (user, password) in [(ADMIN, "not-the-password"), ("nobody", PASSWORD)] {
            let admin = Admin::new(vec![addr.clone()], sasl(user, password));
            let start = Instant::now();
            let err = admin.metadata(None).await.unwrap_err();
            let took = start.elapsed();
            eprintln!("FIGURE: {user}/wrong credentials refused after {took:?}: {err}");
            assert!(took < Duration::from_secs(3), "took {took:?}");
            assert!(matches!(err, Error::Auth { .. }), "{err:?}");
            assert_eq!(err.code(), Some(ResponseError::SaslAuthenticationFailed), "{err:?}");
            assert!(!err.is_retriable());
            let text = err.to_string();
            assert!(text.contains(&format!("{user:?}")) && text.contains(&addr), "{text}");
            assert!(!text.contains(password) && !format!("{err:?}").contains(password), "{err:?}");
        }
    });
}

#[test]
fn a_client_without_sasl_on_the_sasl_listener_fails_clearly() {
    let addr = fixture().node.sasl_bootstrap.clone().unwrap();
    rt().block_on(async {
        let admin = Admin::new(vec![addr.clone()], ConnectOptions::default()).with_retry_for(Duration::ZERO);
        let start = Instant::now();
        let err = admin.metadata(Some(&[])).await.unwrap_err();
        eprintln!("FIGURE: no SASL on the SASL listener: failed after {:?}: {err}", start.elapsed());
        assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
        let Error::NoBroker { last, .. } = &err else { panic!("{err:?}") };
        assert!(matches!(**last, Error::Io { .. }), "{last:?}");
        assert!(err.to_string().contains("may require SASL authentication"), "{err}");
    });
}

#[test]
fn a_sasl_client_on_the_plaintext_listener_fails_clearly() {
    let addr = fixture().node.bootstrap.clone();
    rt().block_on(async {
        let err = Admin::new(vec![addr.clone()], sasl(ADMIN, PASSWORD)).metadata(None).await.unwrap_err();
        eprintln!("FIGURE: SASL on the PLAINTEXT listener: {err}");
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
        assert_eq!(err.code(), Some(ResponseError::IllegalSaslState), "{err:?}");
        assert!(err.to_string().contains("does not take SASL authentication"), "{err}");
    });
}

/// A credential the admin client creates (its own salting, AlterUserScramCredentials) is one
/// the broker accepts and this client logs in with; after its deletion the login fails.
#[test]
fn a_credential_created_through_the_admin_client_logs_in() {
    let addr = fixture().node.sasl_bootstrap.clone().unwrap();
    rt().block_on(async {
        let admin = Admin::new(vec![addr.clone()], sasl(ADMIN, PASSWORD));
        admin.upsert_scram_credential("carol", "carol-password-1").await.unwrap();
        let carol = Arc::new(Admin::new(vec![addr.clone()], sasl("carol", "carol-password-1")));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match carol.metadata(Some(&[])).await {
                Ok(meta) => break assert_eq!(meta.brokers.len(), 1),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("carol not yet accepted: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("carol never logged in: {e}"),
            }
        }
        admin.delete_scram_credential("carol").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A new client each time: the pooled connection stays authenticated.
            let again = Admin::new(vec![addr.clone()], sasl("carol", "carol-password-1"));
            match again.metadata(Some(&[])).await {
                Err(Error::Auth { .. }) => break,
                other if Instant::now() < deadline => {
                    eprintln!("carol still accepted: {:?}", other.map(|m| m.brokers.len()));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => panic!("carol still logs in after deletion: {other:?}"),
            }
        }
    });
}

/// The broker ends SASL sessions after `connections.max.reauth.ms` (closing the connection on
/// the next request); the admin client does not reuse a connection whose session is ending.
#[test]
fn connections_are_not_reused_past_the_sasl_session_lifetime() {
    let addr = fixture().node.sasl_bootstrap.clone().unwrap();
    rt().block_on(async {
        let conn = Connection::open(&addr, &sasl(ADMIN, PASSWORD)).await.unwrap();
        assert!(!conn.session_expired());
        let admin = Admin::new(vec![addr.clone()], sasl(ADMIN, PASSWORD)).with_retry_for(Duration::ZERO);
        admin.metadata(Some(&[])).await.unwrap();
        tokio::time::sleep(SESSION + Duration::from_millis(300)).await;
        assert!(conn.session_expired());
        // Retries off: reusing the pooled connection would meet a closed socket.
        admin.metadata(Some(&[])).await.unwrap();
    });
}
