//! One connection to one broker: framing, correlation ids and API version negotiation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::{Error, Result, check};
use super::resolver::{Resolver, split_host_port};

/// Largest response accepted, checked against the frame's length prefix before the read buffer
/// is allocated. The admin client's answers (metadata, configs, ACLs of a cluster) are well
/// below it; a peer announcing more is refused with [`Error::Protocol`] instead of making the
/// process hold (or abort on) a buffer of its choosing.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// How to reach brokers: timeouts, TLS and name resolution.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Client id sent in every request header.
    pub client_id: String,
    /// Time allowed to open a connection (TCP + TLS + ApiVersions).
    pub connect_timeout: Duration,
    /// Time allowed for one request and its response.
    pub request_timeout: Duration,
    /// TLS for SSL listeners; `None` for PLAINTEXT.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Name resolution (hosts file, then DNS).
    pub resolver: Resolver,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_id: "koperator".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            tls: None,
            resolver: Resolver::default(),
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An open connection to a broker that knows which API versions the broker speaks.
pub struct Connection {
    addr: String,
    stream: Stream,
    versions: HashMap<i16, (i16, i16)>,
    next_correlation: i32,
    opts: ConnectOptions,
}

impl Connection {
    /// Opens a connection to `addr` (`host:port`) and negotiates API versions.
    pub async fn open(addr: &str, opts: &ConnectOptions) -> Result<Self> {
        let after = opts.connect_timeout;
        tokio::time::timeout(after, Self::open_inner(addr, opts)).await.map_err(|_| Error::Timeout {
            op: "connect",
            addr: addr.into(),
            after,
        })?
    }

    async fn open_inner(addr: &str, opts: &ConnectOptions) -> Result<Self> {
        let targets = opts.resolver.resolve(addr).await?;
        let mut last = None;
        let mut tcp = None;
        for target in targets {
            match TcpStream::connect(target).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| Error::Connect {
            addr: addr.into(),
            reason: last.map(|e| e.to_string()).unwrap_or_else(|| "no address".into()),
        })?;
        tcp.set_nodelay(true).ok();
        let stream = match &opts.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let (host, _) = split_host_port(addr)?;
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| Error::Tls(format!("server name {host}: {e}")))?;
                let tls = TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Error::Connect { addr: addr.into(), reason: format!("TLS handshake: {e}") })?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn =
            Connection { addr: addr.into(), stream, versions: HashMap::new(), next_correlation: 1, opts: opts.clone() };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// The `host:port` this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn negotiate(&mut self) -> Result<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("koperator-rs"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = self.send(&req, 3).await?;
        check("ApiVersions", &self.addr, resp.error_code, None)?;
        self.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The highest version of `R` that both sides speak.
    fn version_of<R: Request>(&self) -> Result<i16> {
        let (min, max) = self.versions.get(&R::KEY).copied().ok_or_else(|| self.unsupported::<R>())?;
        let ours = <R as Message>::VERSIONS;
        let v = max.min(ours.max);
        if v < min.max(ours.min) {
            return Err(self.unsupported::<R>());
        }
        Ok(v)
    }

    fn unsupported<R>(&self) -> Error {
        Error::Unsupported { addr: self.addr.clone(), api: api_name::<R>() }
    }

    /// Sends `req` at the highest common version and returns the decoded response.
    pub async fn call<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send(req, version).await
    }

    async fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        let after = self.opts.request_timeout;
        let addr = self.addr.clone();
        tokio::time::timeout(after, self.send_inner(req, version)).await.map_err(|_| Error::Timeout {
            op: api_name::<R>(),
            addr,
            after,
        })?
    }

    async fn send_inner<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(self.opts.client_id.clone())));
        let mut body = BytesMut::new();
        body.put_i32(0);
        let proto = |e: anyhow::Error| Error::Protocol { addr: self.addr.clone(), message: e.to_string() };
        header.encode(&mut body, R::header_version(version)).map_err(proto)?;
        req.encode(&mut body, version).map_err(proto)?;
        let len = (body.len() - 4) as i32;
        body[..4].copy_from_slice(&len.to_be_bytes());

        let io = |source| Error::Io { addr: self.addr.clone(), source };
        self.stream.write_all(&body).await.map_err(io)?;
        let len = self.stream.read_i32().await.map_err(io)?;
        if len < 0 || len as usize > MAX_RESPONSE_BYTES {
            return Err(Error::Protocol {
                addr: self.addr.clone(),
                message: format!("response of {len} bytes refused (at most {MAX_RESPONSE_BYTES} are read)"),
            });
        }
        let mut buf = BytesMut::zeroed(len as usize);
        self.stream.read_exact(&mut buf).await.map_err(io)?;
        let mut buf = buf.freeze();
        let proto = |e: anyhow::Error| Error::Protocol { addr: self.addr.clone(), message: e.to_string() };
        let rh = ResponseHeader::decode(&mut buf, R::Response::header_version(version)).map_err(proto)?;
        if rh.correlation_id != correlation {
            return Err(Error::Protocol {
                addr: self.addr.clone(),
                message: format!("correlation id {} answered for {correlation}", rh.correlation_id),
            });
        }
        let resp = R::Response::decode(&mut buf, version).map_err(proto)?;
        if buf.has_remaining() {
            tracing::debug!(addr = %self.addr, left = buf.remaining(), api = api_name::<R>(), "trailing bytes in response");
        }
        Ok(resp)
    }
}

impl Stream {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => write_flush(s, data).await,
            Stream::Tls(s) => write_flush(s.as_mut(), data).await,
        }
    }

    async fn read_i32(&mut self) -> std::io::Result<i32> {
        match self {
            Stream::Plain(s) => s.read_i32().await,
            Stream::Tls(s) => s.read_i32().await,
        }
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.read_exact(buf).await.map(drop),
            Stream::Tls(s) => s.read_exact(buf).await.map(drop),
        }
    }
}

async fn write_flush<S: AsyncWrite + AsyncRead + Unpin>(s: &mut S, data: &[u8]) -> std::io::Result<()> {
    s.write_all(data).await?;
    s.flush().await
}

/// `MetadataRequest` → `Metadata`.
pub(crate) fn api_name<R>() -> &'static str {
    let full = std::any::type_name::<R>();
    let short = full.rsplit("::").next().unwrap_or(full);
    short.strip_suffix("Request").unwrap_or(short)
}
