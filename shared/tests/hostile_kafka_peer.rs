//! A hostile or broken Kafka peer cannot crash the admin client (issue #14, item 5).
//!
//! The peer is a TCP server in this test that speaks just enough of the Kafka protocol to get
//! the client to the answer under test, then sends crafted bytes: a frame length far above
//! what the client reads, arrays claiming billions of elements, metadata advertising an
//! address the client was not given. Every case must end in a typed error, quickly.
//!
//! Without the bounded decoding of `vendor/kafka-protocol` the two array cases abort this test
//! binary: `Vec::with_capacity` of 2^31-1 or 2^32-2 elements fails to allocate, and Rust
//! aborts on allocation failure (it is not a panic).

#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsResponse, DescribeConfigsResponse, MetadataResponse, ResponseHeader,
    SaslAuthenticateResponse, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use koperator_shared::kafka::{
    Admin, ConfigResource, ConnectOptions, Connection, Error, MAX_RESPONSE_BYTES, NewTopic, SaslScram,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const API_VERSIONS: i16 = 18;
const METADATA: i16 = 3;
const DESCRIBE_CONFIGS: i16 = 32;
const CREATE_TOPICS: i16 = 19;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;

/// The first fields of every request header version.
#[derive(Clone, Copy, Debug)]
struct Req {
    api_key: i16,
    version: i16,
    correlation: i32,
}

/// What the peer sends back for one request (raw bytes: length prefix included).
type Handler = Arc<dyn Fn(Req) -> Vec<u8> + Send + Sync>;

/// A fake broker on 127.0.0.1 that answers each request with what `handler` returns.
struct Peer {
    addr: String,
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Peer {
    async fn start(handler: impl Fn(Req) -> Vec<u8> + Send + Sync + 'static) -> Peer {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, handler.clone()));
            }
        });
        Peer { addr: format!("127.0.0.1:{port}"), port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, handler: Handler) {
    loop {
        let Ok(len) = stream.read_i32().await else { return };
        let mut body = vec![0; len as usize];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let req = Req {
            api_key: i16::from_be_bytes([body[0], body[1]]),
            version: i16::from_be_bytes([body[2], body[3]]),
            correlation: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        };
        if stream.write_all(&handler(req)).await.is_err() {
            return;
        }
    }
}

/// A well-formed response frame: length, header, body.
fn frame<R: Encodable + HeaderVersion>(req: Req, resp: &R) -> Vec<u8> {
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(req.correlation)
        .encode(&mut body, R::header_version(req.version))
        .unwrap();
    resp.encode(&mut body, req.version).unwrap();
    raw(&body)
}

/// `bytes` behind a length prefix that tells the truth.
fn raw(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// An honest ApiVersions answer offering `apis` as `(key, max version)`.
fn api_versions(req: Req, apis: &[(i16, i16)]) -> Vec<u8> {
    let keys = apis
        .iter()
        .map(|&(k, max)| ApiVersion::default().with_api_key(k).with_min_version(0).with_max_version(max))
        .collect();
    frame(req, &ApiVersionsResponse::default().with_api_keys(keys))
}

/// Metadata naming one broker, node 0 at `host:port`, as the controller.
fn metadata_with_broker(host: &str, port: u16) -> MetadataResponse {
    MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_static_str("hostile")))
        .with_controller_id(BrokerId(0))
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(0))
                .with_host(StrBytes::from_string(host.into()))
                .with_port(port as i32),
        ])
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        ..ConnectOptions::default()
    }
}

fn protocol_message(e: &Error) -> &str {
    match e {
        Error::Protocol { message, .. } => message,
        Error::NoBroker { last, .. } => protocol_message(last),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_longer_than_the_cap_is_refused_before_it_is_read() {
    // 64 MiB announced, none sent: a client that allocated and waited would time out.
    let announced: i32 = 64 * 1024 * 1024;
    let peer = Peer::start(move |_| announced.to_be_bytes().to_vec()).await;
    let start = Instant::now();
    let err = Connection::open(&peer.addr, &opts()).await.err().expect("refused");
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    assert_eq!(err.category(), "KafkaProtocol", "{err}");
    let message = protocol_message(&err);
    assert!(message.contains(&format!("response of {announced} bytes refused")), "{message}");
    assert!(message.contains(&MAX_RESPONSE_BYTES.to_string()), "{message}");
    assert!(err.to_string().contains(&peer.addr), "the error names the peer: {err}");
}

#[tokio::test]
async fn an_api_versions_answer_claiming_4_billion_apis_is_an_error() {
    // ApiVersions v3: header v0 (correlation id), error code 0, then the api_keys CompactArray
    // length as an unsigned varint: u32::MAX, that is 2^32-2 elements, in a 11-byte message.
    let peer = Peer::start(|req| {
        let mut body = req.correlation.to_be_bytes().to_vec();
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        raw(&body)
    })
    .await;
    let err = Connection::open(&peer.addr, &opts()).await.err().expect("refused");
    let message = protocol_message(&err);
    assert!(message.contains("CompactArray claims 4294967294 elements"), "{message}");
}

#[tokio::test]
async fn metadata_claiming_2_31_brokers_is_an_error() {
    // Metadata v8 (not flexible): throttle time, then the brokers Array count as an i32.
    let peer = Peer::start(|req| match req.api_key {
        API_VERSIONS => api_versions(req, &[(METADATA, 8)]),
        _ => {
            let mut body = req.correlation.to_be_bytes().to_vec();
            body.extend_from_slice(&0i32.to_be_bytes());
            body.extend_from_slice(&i32::MAX.to_be_bytes());
            raw(&body)
        }
    })
    .await;
    let admin = Admin::new(vec![peer.addr.clone()], opts()).with_retry_for(Duration::ZERO);
    let err = admin.metadata(Some(&[])).await.unwrap_err();
    let message = protocol_message(&err);
    assert!(message.contains("Array claims 2147483647 elements"), "{message}");
    // The client is still usable: the next call fails the same way instead of hanging.
    assert!(admin.metadata(None).await.is_err());
}

/// A peer that answers as broker 0 and controller, advertising `advertised` for node 0, and
/// describes broker 0's config (one entry).
async fn advertising_peer(advertised: (String, u16)) -> Peer {
    Peer::start(move |req| match req.api_key {
        API_VERSIONS => api_versions(req, &[(METADATA, 12), (DESCRIBE_CONFIGS, 4), (CREATE_TOPICS, 7)]),
        METADATA => frame(req, &metadata_with_broker(&advertised.0, advertised.1)),
        DESCRIBE_CONFIGS => frame(
            req,
            &DescribeConfigsResponse::default().with_results(vec![
                DescribeConfigsResult::default().with_resource_type(4).with_resource_name("0".into()).with_configs(
                    vec![
                        DescribeConfigsResourceResult::default()
                            .with_name("log.retention.ms".into())
                            .with_value(Some("1000".into())),
                    ],
                ),
            ]),
        ),
        other => panic!("unexpected request {other}"),
    })
    .await
}

#[tokio::test]
async fn node_requests_never_go_to_an_advertised_foreign_address() {
    // Anything listening where the metadata points: it must never see a connection.
    let foreign = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign_port = foreign.local_addr().unwrap().port();
    let foreign_hits = Arc::new(AtomicUsize::new(0));
    let hits = foreign_hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = foreign.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    });
    let peer = advertising_peer(("127.0.0.1".into(), foreign_port)).await;

    // Built from a bootstrap list: the advertised address is not on it.
    let admin = Admin::new(vec![peer.addr.clone()], opts()).with_retry_for(Duration::ZERO);
    let err = admin.describe_configs(&ConfigResource::Broker(0)).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedAddress { node: 0, .. }), "{err:?}");
    assert_eq!(err.category(), "KafkaUntrustedAddress");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{foreign_port}")) && text.contains(&peer.addr), "{text}");
    assert!(!err.is_retriable());
    // The controller path (topic creation in ZooKeeper mode) refuses the same way.
    let topic = NewTopic { name: "t".into(), partitions: 1, replication_factor: 1, configs: BTreeMap::new() };
    let err = admin.create_topic(&topic).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedAddress { .. }), "{err:?}");

    // Built from the addresses the operator derives per node: node 0's requests go there.
    let derived = BTreeMap::from([(0, peer.addr.clone())]);
    let admin = Admin::for_nodes(derived, opts()).with_retry_for(Duration::ZERO);
    let configs = admin.describe_configs(&ConfigResource::Broker(0)).await.unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].value.as_deref(), Some("1000"));

    // A node the metadata lists but the operator did not derive is not contacted either.
    let derived = BTreeMap::from([(1, peer.addr.clone())]);
    let admin = Admin::for_nodes(derived, opts()).with_retry_for(Duration::ZERO);
    let err = admin.describe_configs(&ConfigResource::Broker(0)).await.unwrap_err();
    assert!(matches!(err, Error::UntrustedAddress { node: 0, .. }), "{err:?}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(foreign_hits.load(Ordering::SeqCst), 0, "no connection to the advertised address");
    assert!(peer.connections() >= 1);
}

#[tokio::test]
async fn an_advertised_address_that_is_a_bootstrap_address_is_used() {
    // The usual case: brokers advertise the names the client bootstraps from. Here the first
    // bootstrap peer advertises the second one as node 0, which then answers for node 0.
    let node0 = advertising_peer(("127.0.0.1".into(), 0)).await;
    let first = advertising_peer(("127.0.0.1".into(), node0.port)).await;
    let admin = Admin::new(vec![first.addr.clone(), node0.addr.clone()], opts()).with_retry_for(Duration::ZERO);
    assert_eq!(admin.describe_configs(&ConfigResource::Broker(0)).await.unwrap().len(), 1);
    assert_eq!(node0.connections(), 1);
}

#[tokio::test]
async fn a_large_honest_metadata_answer_fits_under_the_cap() {
    // 200 topics of 250 partitions, 3 replicas each: 50,000 partitions.
    let (topics, partitions) = (200, 250);
    let big = metadata_with_broker("127.0.0.1", 9092).with_topics(
        (0..topics)
            .map(|t| {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(format!("topic-{t:04}")))))
                    .with_partitions(
                        (0..partitions)
                            .map(|p| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_leader_id(BrokerId(p % 3))
                                    .with_replica_nodes(vec![BrokerId(0), BrokerId(1), BrokerId(2)])
                                    .with_isr_nodes(vec![BrokerId(0), BrokerId(1), BrokerId(2)])
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let size = big.compute_size(12).unwrap();
    let per_partition = size / (topics * partitions) as usize;
    eprintln!(
        "FIGURE: metadata v12 of {} partitions (RF 3) is {size} bytes, {per_partition} B per partition; the {MAX_RESPONSE_BYTES}-byte cap holds ~{} partitions",
        topics * partitions,
        MAX_RESPONSE_BYTES / per_partition
    );
    assert!(size < MAX_RESPONSE_BYTES);
    let peer = Peer::start(move |req| match req.api_key {
        API_VERSIONS => api_versions(req, &[(METADATA, 12)]),
        _ => frame(req, &big),
    })
    .await;
    let admin = Admin::new(vec![peer.addr.clone()], opts()).with_retry_for(Duration::ZERO);
    let meta = admin.metadata(None).await.unwrap();
    assert_eq!(meta.topics.len(), topics as usize);
    assert_eq!(meta.topics.iter().map(|t| t.partitions.len()).sum::<usize>(), (topics * partitions) as usize);
}

/// A controller that leaves the first CreateTopics unanswered (as a busy or restarting broker
/// may, having created the topic) and answers every later one `TopicAlreadyExists`.
async fn lossy_controller() -> (Peer, Arc<AtomicUsize>) {
    let creates = Arc::new(AtomicUsize::new(0));
    let seen = creates.clone();
    let peer = Peer::start(move |req| match req.api_key {
        API_VERSIONS => api_versions(req, &[(METADATA, 12), (CREATE_TOPICS, 7)]),
        METADATA => frame(req, &metadata_with_broker("127.0.0.1", 0)),
        CREATE_TOPICS if seen.fetch_add(1, Ordering::SeqCst) == 0 => Vec::new(),
        CREATE_TOPICS => frame(
            req,
            &CreateTopicsResponse::default().with_topics(vec![
                CreatableTopicResult::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_error_code(36),
            ]),
        ),
        other => panic!("unexpected request {other}"),
    })
    .await;
    (peer, creates)
}

#[tokio::test]
async fn a_topic_that_exists_after_an_unanswered_create_is_the_callers() {
    let topic = NewTopic { name: "t".into(), partitions: 1, replication_factor: 1, configs: BTreeMap::new() };
    let (peer, creates) = lossy_controller().await;
    let admin =
        Admin::for_nodes(BTreeMap::from([(0, peer.addr.clone())]), opts()).with_retry_for(Duration::from_secs(10));
    admin.create_topic(&topic).await.expect("the unanswered attempt created it");
    assert_eq!(creates.load(Ordering::SeqCst), 2, "one retry after the timeout");
    // Answered at once: the topic was there before this call, someone else's.
    let err = admin.create_topic(&topic).await.unwrap_err();
    assert_eq!(err.code(), Some(kafka_protocol::ResponseError::TopicAlreadyExists), "{err:?}");
}

/// A SASL peer answering SaslHandshake with `handshake` and every SaslAuthenticate with
/// `authenticate`.
async fn sasl_peer(handshake: SaslHandshakeResponse, authenticate: SaslAuthenticateResponse) -> Peer {
    Peer::start(move |req| match req.api_key {
        API_VERSIONS => api_versions(req, &[(METADATA, 12), (SASL_HANDSHAKE, 1), (SASL_AUTHENTICATE, 2)]),
        SASL_HANDSHAKE => frame(req, &handshake),
        SASL_AUTHENTICATE => frame(req, &authenticate),
        other => panic!("unexpected request {other} before authentication"),
    })
    .await
}

#[tokio::test]
async fn a_sasl_peer_that_refuses_or_cannot_prove_the_credential_is_an_authentication_error() {
    let scram = || SaslScram::new("admin", "do-not-show-this");
    let ok_handshake = SaslHandshakeResponse::default().with_mechanisms(vec!["SCRAM-SHA-512".into()]);
    let cases = [
        (
            SaslHandshakeResponse::default().with_error_code(33).with_mechanisms(vec!["PLAIN".into()]),
            SaslAuthenticateResponse::default(),
            "does not enable SCRAM-SHA-512 (it enables PLAIN)",
        ),
        (
            SaslHandshakeResponse::default().with_error_code(34),
            SaslAuthenticateResponse::default(),
            "does not take SASL authentication",
        ),
        (
            // A server-first message whose nonce is not the client's own extended: a replay.
            ok_handshake.clone(),
            SaslAuthenticateResponse::default().with_auth_bytes("r=replayed-nonce,s=c2FsdA==,i=4096".into()),
            "nonce",
        ),
        (
            ok_handshake.clone(),
            SaslAuthenticateResponse::default()
                .with_error_code(58)
                .with_error_message(Some("Authentication failed: Invalid user credentials".into())),
            "Invalid user credentials",
        ),
    ];
    for (handshake, authenticate, want) in cases {
        let peer = sasl_peer(handshake, authenticate).await;
        let opts = ConnectOptions { sasl: Some(scram()), ..opts() };
        let start = Instant::now();
        let err = Connection::open(&peer.addr, &opts).await.err().expect("refused");
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
        assert_eq!(err.category(), "KafkaAuthentication");
        assert!(!err.is_retriable());
        let text = err.to_string();
        assert!(text.contains(want) && text.contains("\"admin\"") && text.contains(&peer.addr), "{text}");
        assert!(!text.contains("do-not-show") && !format!("{err:?}").contains("do-not-show"), "{err:?}");

        // Through the admin client: the same error at once, not a retry loop or NoBroker.
        let admin = Admin::new(vec![peer.addr.clone()], opts);
        let start = Instant::now();
        let err = admin.metadata(None).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    }
}
