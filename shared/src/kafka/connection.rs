//! One connection to one broker: framing, correlation ids and API version negotiation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::{Error, Result, check};
use super::resolver::{Resolver, split_host_port};
use super::scram_client::{MECHANISM, SaslScram, ScramClient};

/// Largest response accepted, checked against the frame's length prefix before the read buffer
/// is allocated. The admin client's answers (metadata, configs, ACLs of a cluster) are well
/// below it; a peer announcing more is refused with [`Error::Protocol`] instead of making the
/// process hold (or abort on) a buffer of its choosing.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// How to reach brokers: timeouts, TLS, SASL and name resolution. The listener's security
/// protocol decides `tls` and `sasl`: PLAINTEXT neither, SSL `tls`, SASL_PLAINTEXT `sasl`,
/// SASL_SSL both.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Client id sent in every request header.
    pub client_id: String,
    /// Time allowed to open a connection (TCP + TLS + ApiVersions + SASL).
    pub connect_timeout: Duration,
    /// Time allowed for one request and its response.
    pub request_timeout: Duration,
    /// TLS for SSL listeners; `None` for PLAINTEXT.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SCRAM-SHA-512 credentials for SASL listeners; `None` for PLAINTEXT and SSL.
    pub sasl: Option<SaslScram>,
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
            sasl: None,
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
    /// Responses read so far (ApiVersions is the first).
    answered: u64,
    /// When the broker ends the SASL session (`connections.max.reauth.ms`), less a margin.
    session_ends: Option<Instant>,
    opts: ConnectOptions,
}

impl Connection {
    /// Opens a connection to `addr` (`host:port`), negotiates API versions and, with
    /// [`ConnectOptions::sasl`], authenticates.
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
        let mut conn = Connection {
            addr: addr.into(),
            stream,
            versions: HashMap::new(),
            next_correlation: 1,
            answered: 0,
            session_ends: None,
            opts: opts.clone(),
        };
        conn.negotiate().await?;
        if let Some(sasl) = &opts.sasl {
            conn.authenticate(sasl).await?;
        }
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

    /// Whether the broker's SASL session is over or nearly so (the broker closes connections
    /// that outlive it): such a connection is not reused.
    pub fn session_expired(&self) -> bool {
        self.session_ends.is_some_and(|end| Instant::now() >= end)
    }

    /// SaslHandshake v1 for SCRAM-SHA-512, then the SCRAM exchange in SaslAuthenticate
    /// requests; the server's signature is verified. Nothing of the password is logged.
    async fn authenticate(&mut self, sasl: &SaslScram) -> Result<()> {
        let fail = |addr: &str, code: Option<ResponseError>, reason: String| Error::Auth {
            addr: addr.to_owned(),
            user: sasl.username.clone(),
            mechanism: MECHANISM,
            code,
            reason,
        };
        // Version 0 sends the SASL tokens as raw frames; from 1 on they go in SaslAuthenticate.
        if self.version_of::<SaslHandshakeRequest>()? < 1 {
            return Err(self.unsupported::<SaslHandshakeRequest>());
        }
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(MECHANISM));
        let resp = self.send(&req, 1).await?;
        match ResponseError::try_from_code(resp.error_code) {
            None => {}
            Some(code @ ResponseError::UnsupportedSaslMechanism) => {
                let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
                let reason = format!("the listener does not enable {MECHANISM} (it enables {})", offered.join(", "));
                return Err(fail(&self.addr, Some(code), reason));
            }
            Some(code @ ResponseError::IllegalSaslState) => {
                let reason =
                    "the listener does not take SASL authentication (PLAINTEXT or SSL, not SASL_PLAINTEXT or SASL_SSL)";
                return Err(fail(&self.addr, Some(code), reason.into()));
            }
            Some(code) => return Err(fail(&self.addr, Some(code), code.to_string())),
        }
        let version = self.version_of::<SaslAuthenticateRequest>()?;
        let client = ScramClient::new(&sasl.username);
        let server_first = self.sasl_authenticate(version, client.client_first(), &fail).await?;
        let (last, client_final) = client
            .client_final(&server_first.auth_bytes, &sasl.password)
            .map_err(|e| fail(&self.addr, None, e.to_string()))?;
        let server_final = self.sasl_authenticate(version, client_final, &fail).await?;
        last.verify_server_final(&server_final.auth_bytes).map_err(|e| fail(&self.addr, None, e.to_string()))?;
        if server_final.session_lifetime_ms > 0 {
            // Kafka's own clients re-authenticate at 85–95 % of the lifetime; this one reconnects.
            let lifetime = Duration::from_millis(server_final.session_lifetime_ms as u64);
            self.session_ends = Some(Instant::now() + lifetime.mul_f64(0.85));
        }
        tracing::debug!(addr = %self.addr, user = %sasl.username, "SASL SCRAM-SHA-512 authenticated");
        Ok(())
    }

    /// One SaslAuthenticate round trip; Kafka's refusal becomes [`Error::Auth`].
    async fn sasl_authenticate(
        &mut self,
        version: i16,
        bytes: Vec<u8>,
        fail: &impl Fn(&str, Option<ResponseError>, String) -> Error,
    ) -> Result<SaslAuthenticateResponse> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
        let resp = self.send(&req, version).await?;
        if let Some(code) = ResponseError::try_from_code(resp.error_code) {
            let reason = resp.error_message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| code.to_string());
            return Err(fail(&self.addr, Some(code), reason));
        }
        Ok(resp)
    }

    /// A broken read as [`Error::Io`]. A SASL listener answers ApiVersions, then closes the
    /// connection on the first other request of a client that does not authenticate: that
    /// case says so.
    fn read_error(&self, e: std::io::Error) -> Error {
        let source = if e.kind() == std::io::ErrorKind::UnexpectedEof && self.answered == 1 && self.opts.sasl.is_none()
        {
            std::io::Error::new(
                e.kind(),
                "the broker closed the connection after ApiVersions without answering: the listener may require SASL authentication (SASL_PLAINTEXT or SASL_SSL), which this client is not configured for",
            )
        } else {
            e
        };
        Error::Io { addr: self.addr.clone(), source }
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
        let len = self.stream.read_i32().await.map_err(|e| self.read_error(e))?;
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
        self.answered += 1;
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
