//! The HTTP client of Cruise Control's REST API (`/kafkacruisecontrol/<endpoint>`).
//!
//! Every call is a [`Call`]: method, endpoint, query parameters, and the type of its answer. The
//! parameters mirror what Koperator's scaler sends (`pkg/scale` over go-cruise-control):
//! `json=true` always; operations with `allow_capacity_estimation=true`, `data_from=VALID_WINDOWS`,
//! `use_ready_default_goals=true` and an explicit `dryrun=false`.
//!
//! Long operations are asynchronous in Cruise Control: when an answer is not ready within its
//! `webserver.request.maxBlockTimeMs` it answers 202 with the operation's progress and a
//! `User-Task-ID` header. That is [`Error::InProgress`]; [`Client::resume`] sends the *same*
//! request again with that header (Cruise Control refuses the id for a different request) and
//! gets the progress again or the final answer. [`Client::user_tasks`] reads the state of tasks
//! by id without re-sending them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use koperator_shared::api::KafkaCluster;
use koperator_shared::kafka::Resolver;
use koperator_shared::render::names;
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::types::*;

/// Cruise Control's port in Koperator's Deployment and Service.
pub const PORT: u16 = 8090;
/// The servlet path of the API.
pub const API_PATH: &str = "kafkacruisecontrol";
/// Response header carrying the id of the user task a request created or resumed.
pub const USER_TASK_ID_HEADER: &str = "User-Task-ID";
/// Largest answer read; a verbose `partition_load` of a large cluster is a few MiB.
const MAX_BODY: usize = 64 << 20;
/// Characters of a body quoted in an error.
const SNIPPET: usize = 200;

/// The API's base URL for `cluster`: `spec.cruiseControlConfig.cruiseControlEndpoint` when set
/// (`host:port` as in Koperator, or a full `http(s)://` URL), else Koperator's Service
/// `http://<cluster>-cruisecontrol-svc.<ns>.svc.<domain>:8090/kafkacruisecontrol/`.
pub fn base_url(cluster: &KafkaCluster) -> String {
    let endpoint = cluster.spec.cruise_control_config.cruise_control_endpoint.as_deref().map(str::trim);
    match endpoint.filter(|e| !e.is_empty()) {
        Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
            let e = e.trim_end_matches('/');
            match e.ends_with(API_PATH) {
                true => format!("{e}/"),
                false => format!("{e}/{API_PATH}/"),
            }
        }
        Some(e) => format!("http://{}/{API_PATH}/", e.trim_end_matches('/')),
        None => format!(
            "http://{}.{}:{PORT}/{API_PATH}/",
            names::cruise_control_service(cluster),
            names::service_domain(cluster)
        ),
    }
}

/// What went wrong with a call. Each variant names the request URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL is not a URL this client can use.
    #[error("invalid Cruise Control URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the Cruise Control client: {0}")]
    Build(String),
    /// No connection: the name did not resolve or nothing listens there.
    #[error("Cruise Control at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// No complete answer within the call's timeout.
    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// The connection broke during the exchange.
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    /// Cruise Control answered with an error status; `message` is its `errorMessage`, or the
    /// start of the body when it sent none.
    #[error("{url} answered {status}: {message}")]
    Status { url: String, status: u16, message: String },
    /// Accepted and still under way (202): resume with this task id.
    #[error("{url} is in progress as user task {task_id}: {progress}")]
    InProgress { url: String, task_id: TaskId, progress: ProgressResult },
    /// The answer is not the JSON expected.
    #[error("cannot decode the answer of {url} (status {status}): {reason}; body starts {snippet:?}")]
    Decode { url: String, status: u16, reason: String, snippet: String },
}

/// Why Cruise Control refused a request, read from its error message (it answers 500 for all
/// of these). Each but [`Refusal::Other`] passes with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max.active.user.tasks` requests are under way (default 5; every request, even a
    /// `state`, counts until Cruise Control's task scanner, every 5 s, retires it).
    Busy,
    /// The executor is moving replicas: a new execution waits for it (or `stop_proposal_execution`).
    OngoingExecution,
    /// The load monitor has no valid window yet (`NotEnoughValidWindowsException`), or is still
    /// loading its samples (`load monitor is in LOADING state`), as after a start.
    NotEnoughData,
    /// Broker or disk capacity is not resolved yet (Koperator's `NullPointerException` case).
    MissingCapacity,
    /// Anything else: a bad request, an unknown broker...
    Other,
}

impl Refusal {
    fn of(message: &str) -> Refusal {
        if message.contains("reached the servlet capacity") {
            Refusal::Busy
        } else if message.contains("while there is an ongoing execution")
            || message.contains("OngoingExecutionException")
        {
            Refusal::OngoingExecution
        } else if message.contains("NotEnoughValidWindowsException") || message.contains("since load monitor is in") {
            Refusal::NotEnoughData
        } else if message.contains("BrokerCapacityResolutionException") || message.contains("NullPointerException") {
            Refusal::MissingCapacity
        } else {
            Refusal::Other
        }
    }
}

impl Error {
    /// Stable label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } | Error::Build(_) => "config",
            Error::Unreachable { .. } => "unreachable",
            Error::Timeout { .. } => "timeout",
            Error::Transport { .. } => "transport",
            Error::Status { .. } => match self.refusal() {
                Some(Refusal::Busy) => "busy",
                Some(Refusal::OngoingExecution) => "ongoing_execution",
                Some(Refusal::NotEnoughData) => "not_enough_data",
                Some(Refusal::MissingCapacity) => "missing_capacity",
                _ => "status",
            },
            Error::InProgress { .. } => "in_progress",
            Error::Decode { .. } => "decode",
        }
    }

    /// Why Cruise Control refused, for an error status.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Status { message, .. } => Some(Refusal::of(message)),
            _ => None,
        }
    }

    /// Trying again later can succeed: Cruise Control was unreachable, slow, busy or not ready.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::Transport { .. } | Error::InProgress { .. } => {
                true
            }
            Error::Status { .. } => self.refusal() != Some(Refusal::Other),
            Error::InvalidUrl { .. } | Error::Build(_) | Error::Decode { .. } => false,
        }
    }

    /// The user task of a 202 answer.
    pub fn in_progress_task(&self) -> Option<&TaskId> {
        match self {
            Error::InProgress { task_id, .. } => Some(task_id),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A completed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// The user task Cruise Control recorded the request as (`User-Task-ID`), when it sent one.
    pub task_id: Option<TaskId>,
    /// The decoded body.
    pub result: T,
}

/// Time allowed per kind of call, from connect to the end of the body.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// `state`, `kafka_cluster_state`, `user_tasks`, `stop_proposal_execution`.
    pub read: Duration,
    /// `load`, `partition_load`: Cruise Control builds a cluster model for them.
    pub load: Duration,
    /// `add_broker`, `remove_broker`, `rebalance`, `remove_disks`: Cruise Control answers 202
    /// after its max block time (10 s by default) when the proposal takes longer.
    pub operation: Duration,
    /// Opening the connection.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            read: Duration::from_secs(15),
            load: Duration::from_secs(30),
            operation: Duration::from_secs(30),
            connect: Duration::from_secs(5),
        }
    }
}

/// How the client reaches Cruise Control.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Host names are looked up here first: the operator's `--kafka-hosts-file` maps Service
    /// names when it runs outside the Pod network.
    pub resolver: Resolver,
    pub timeouts: Timeouts,
    /// TLS for an `https://` endpoint; the system's roots (with ring) when unset.
    pub tls: Option<rustls::ClientConfig>,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            resolver: Resolver::default(),
            timeouts: Timeouts::default(),
            tls: None,
            user_agent: "koperator".into(),
        }
    }
}

impl ClientOptions {
    /// The defaults, with names looked up in `hosts_file` first (the operator's
    /// `--kafka-hosts-file`, re-read on every lookup).
    pub fn with_hosts_file(hosts_file: Option<std::path::PathBuf>) -> Self {
        ClientOptions { resolver: Resolver::with_hosts_file(hosts_file), ..Default::default() }
    }
}

/// Which timeout of [`Timeouts`] a call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Read,
    Load,
    Operation,
}

/// One request to Cruise Control and the type of its answer. Built by the constructors below;
/// the same value is what [`Client::resume`] sends again.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<T> {
    pub method: Method,
    pub endpoint: &'static str,
    pub params: Vec<(&'static str, String)>,
    pub kind: CallKind,
    answer: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    fn new(method: Method, endpoint: &'static str, kind: CallKind) -> Self {
        Call { method, endpoint, params: Vec::new(), kind, answer: PhantomData }
    }

    fn param(mut self, name: &'static str, value: impl ToString) -> Self {
        self.params.push((name, value.to_string()));
        self
    }

    fn flag(self, name: &'static str, on: bool) -> Self {
        match on {
            true => self.param(name, true),
            false => self,
        }
    }

    fn optional(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.param(name, v),
            None => self,
        }
    }

    /// Adds `reason=` (Cruise Control records it with the task; at most 50 characters).
    pub fn reason(self, reason: &str) -> Self {
        self.param("reason", reason.chars().take(50).collect::<String>())
    }

    /// The value of a parameter, for tests and logs.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

fn ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Concurrency limits of an execution; unset ones are Cruise Control's configured defaults
/// (Koperator sends none). The intra-broker limit is [`Rebalance`]'s: `add_broker` and
/// `remove_broker` refuse it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Concurrency {
    pub partition_movements_per_broker: Option<u32>,
    pub leader_movements: Option<u32>,
}

/// A `rebalance`: onto `destination_brokers` only when given; with `rebalance_disk` between
/// the log dirs of each broker (intra-broker, JBOD) instead of between brokers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebalance {
    pub destination_brokers: Vec<i32>,
    pub rebalance_disk: bool,
    /// Concurrent moves between the log dirs of a broker.
    pub intra_broker_partition_movements: Option<u32>,
    pub options: OperationOptions,
}

/// Options common to the operations Koperator starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationOptions {
    pub exclude_recently_demoted_brokers: bool,
    pub exclude_recently_removed_brokers: bool,
    pub concurrency: Concurrency,
    /// Only compute the proposal. Koperator never sets it; it is sent as `dryrun=false` then.
    pub dry_run: bool,
}

impl<T> Call<T> {
    fn operation(method: Method, endpoint: &'static str, opts: &OperationOptions) -> Self {
        Call::new(method, endpoint, CallKind::Operation)
            .param("allow_capacity_estimation", true)
            .param("data_from", "VALID_WINDOWS")
            .param("use_ready_default_goals", true)
            .param("dryrun", opts.dry_run)
            .flag("exclude_recently_demoted_brokers", opts.exclude_recently_demoted_brokers)
            .flag("exclude_recently_removed_brokers", opts.exclude_recently_removed_brokers)
            .optional("concurrent_partition_movements_per_broker", opts.concurrency.partition_movements_per_broker)
            .optional("concurrent_leader_movements", opts.concurrency.leader_movements)
    }
}

impl Call<CruiseControlState> {
    /// `GET state` with `substates` (all four when empty) and `verbose=true` (goal readiness),
    /// as Koperator's status check asks.
    pub fn state(substates: &[Substate]) -> Self {
        let substates = match substates.is_empty() {
            true => &Substate::ALL[..],
            false => substates,
        };
        let list = substates.iter().map(|s| s.as_param()).collect::<Vec<_>>().join(",");
        Call::new(Method::GET, "state", CallKind::Read).param("substates", list).param("verbose", true)
    }
}

impl Call<KafkaClusterState> {
    /// `GET kafka_cluster_state?verbose=true`: replicas and log dirs per broker.
    pub fn kafka_cluster_state() -> Self {
        Call::new(Method::GET, "kafka_cluster_state", CallKind::Read).param("verbose", true)
    }
}

impl Call<BrokerStats> {
    /// `GET load?allow_capacity_estimation=true`: every broker's load and state.
    pub fn load() -> Self {
        Call::new(Method::GET, "load", CallKind::Load).param("allow_capacity_estimation", true)
    }

    /// Asks for the per-log-dir `DiskState` too (`populate_disk_info=true`).
    pub fn with_disk_info(self) -> Self {
        self.param("populate_disk_info", true)
    }
}

impl Call<PartitionLoadState> {
    /// `GET partition_load`, sorted by disk, every partition (Koperator's defaults), optionally
    /// only those on `brokers`.
    pub fn partition_load(brokers: &[i32]) -> Self {
        let call = Call::new(Method::GET, "partition_load", CallKind::Load)
            .param("allow_capacity_estimation", true)
            .param("resource", "disk")
            .param("entries", i32::MAX);
        match brokers.is_empty() {
            true => call,
            false => call.param("brokerid", ids(brokers)),
        }
    }
}

impl Call<OptimizationResult> {
    /// `POST add_broker?brokerid=...`: move replicas onto new brokers.
    pub fn add_broker(brokers: &[i32], opts: &OperationOptions) -> Self {
        Call::operation(Method::POST, "add_broker", opts).param("brokerid", ids(brokers))
    }

    /// `POST remove_broker?brokerid=...`: move every replica off the brokers.
    pub fn remove_broker(brokers: &[i32], opts: &OperationOptions) -> Self {
        Call::operation(Method::POST, "remove_broker", opts).param("brokerid", ids(brokers))
    }

    /// `POST rebalance` (see [`Rebalance`]).
    pub fn rebalance(r: &Rebalance) -> Self {
        let call = Call::operation(Method::POST, "rebalance", &r.options)
            .flag("rebalance_disk", r.rebalance_disk)
            .optional("concurrent_intra_broker_partition_movements", r.intra_broker_partition_movements);
        match r.destination_brokers.is_empty() {
            true => call,
            false => call.param("destination_broker_ids", ids(&r.destination_brokers)),
        }
    }

    /// `POST remove_disks?brokerid_and_logdirs=1-/a,1-/b`: move every replica off these log
    /// dirs onto the broker's other log dirs.
    pub fn remove_disks(log_dirs: &BTreeMap<i32, Vec<String>>, dry_run: bool) -> Self {
        let mut list = String::new();
        for (broker, dir) in log_dirs.iter().flat_map(|(b, dirs)| dirs.iter().map(move |d| (b, d))) {
            if !list.is_empty() {
                list.push(',');
            }
            let _ = write!(list, "{broker}-{dir}");
        }
        Call::new(Method::POST, "remove_disks", CallKind::Operation)
            .param("brokerid_and_logdirs", list)
            .param("dryrun", dry_run)
    }
}

impl Call<StopProposalResult> {
    /// `POST stop_proposal_execution`; `force_stop` also clears a stuck reassignment.
    pub fn stop_proposal_execution(force_stop: bool) -> Self {
        Call::new(Method::POST, "stop_proposal_execution", CallKind::Read).flag("force_stop", force_stop)
    }
}

impl Call<UserTaskState> {
    /// `GET user_tasks?user_task_ids=...`; with `fetch_completed_task` each completed task
    /// carries its own answer (`originalResponse`).
    pub fn user_tasks(task_ids: &[TaskId], fetch_completed_task: bool) -> Self {
        let list = task_ids.iter().map(|t| t.0.as_str()).collect::<Vec<_>>().join(",");
        let call =
            Call::new(Method::GET, "user_tasks", CallKind::Read).flag("fetch_completed_task", fetch_completed_task);
        match task_ids.is_empty() {
            true => call,
            false => call.param("user_task_ids", list),
        }
    }
}

/// A Cruise Control REST client for one base URL. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    timeouts: Timeouts,
}

impl Client {
    /// A client of the API at `base_url` (see [`base_url`]).
    pub fn new(base_url: &str, opts: ClientOptions) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidUrl { url: base_url.into(), reason };
        let mut base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid("expected an http:// or https:// URL with a host".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        let tls = match opts.tls {
            Some(tls) => tls,
            None => default_tls()?,
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(Arc::new(HostsResolver(opts.resolver)))
            .connect_timeout(opts.timeouts.connect)
            .user_agent(opts.user_agent)
            .no_proxy()
            .build()
            .map_err(|e| Error::Build(error_chain(&e)))?;
        Ok(Client { http, base, timeouts: opts.timeouts })
    }

    /// A client of `cluster`'s Cruise Control (see [`base_url`]).
    pub fn for_cluster(cluster: &KafkaCluster, opts: ClientOptions) -> Result<Self> {
        Client::new(&base_url(cluster), opts)
    }

    /// The base URL, ending in `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The full URL `call` is sent to.
    pub fn url<T>(&self, call: &Call<T>) -> Url {
        let mut url = self.base.join(call.endpoint).expect("endpoint names are relative paths");
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in &call.params {
                query.append_pair(name, value);
            }
            query.append_pair("json", "true");
        }
        url
    }

    /// Sends `call`. A 202 is [`Error::InProgress`] with the task to [`resume`](Self::resume).
    pub async fn execute<T: DeserializeOwned>(&self, call: &Call<T>) -> Result<Answer<T>> {
        self.send(call, None).await
    }

    /// Sends `call` again for the user task `task_id` it started: its progress (again
    /// [`Error::InProgress`]) or its final answer.
    pub async fn resume<T: DeserializeOwned>(&self, call: &Call<T>, task_id: &TaskId) -> Result<Answer<T>> {
        self.send(call, Some(task_id)).await
    }

    /// Sends `call` and resumes it every `poll` until it completes or `deadline` has passed
    /// (then the last [`Error::InProgress`]).
    pub async fn execute_and_wait<T: DeserializeOwned>(
        &self,
        call: &Call<T>,
        poll: Duration,
        deadline: Duration,
    ) -> Result<Answer<T>> {
        let start = tokio::time::Instant::now();
        let mut outcome = self.execute(call).await;
        loop {
            let task = match &outcome {
                Err(Error::InProgress { task_id, .. }) if start.elapsed() + poll <= deadline => task_id.clone(),
                _ => return outcome,
            };
            tokio::time::sleep(poll).await;
            outcome = self.resume(call, &task).await;
        }
    }

    /// Cruise Control's state (`substates`: all when empty).
    pub async fn state(&self, substates: &[Substate]) -> Result<Answer<CruiseControlState>> {
        self.execute(&Call::state(substates)).await
    }

    /// Replicas, leaders and log dirs per broker.
    pub async fn kafka_cluster_state(&self) -> Result<Answer<KafkaClusterState>> {
        self.execute(&Call::kafka_cluster_state()).await
    }

    /// Every broker's load and state.
    pub async fn load(&self) -> Result<Answer<BrokerStats>> {
        self.execute(&Call::load()).await
    }

    /// Every partition's load (only those on `brokers` when given).
    pub async fn partition_load(&self, brokers: &[i32]) -> Result<Answer<PartitionLoadState>> {
        self.execute(&Call::partition_load(brokers)).await
    }

    /// Starts moving replicas onto `brokers`.
    pub async fn add_broker(&self, brokers: &[i32], opts: &OperationOptions) -> Result<Answer<OptimizationResult>> {
        self.execute(&Call::add_broker(brokers, opts)).await
    }

    /// Starts draining `brokers`.
    pub async fn remove_broker(&self, brokers: &[i32], opts: &OperationOptions) -> Result<Answer<OptimizationResult>> {
        self.execute(&Call::remove_broker(brokers, opts)).await
    }

    /// Starts a rebalance (between the log dirs of each broker with `rebalance_disk`).
    pub async fn rebalance(&self, rebalance: &Rebalance) -> Result<Answer<OptimizationResult>> {
        self.execute(&Call::rebalance(rebalance)).await
    }

    /// Starts draining log dirs (broker id → dirs).
    pub async fn remove_disks(&self, log_dirs: &BTreeMap<i32, Vec<String>>) -> Result<Answer<OptimizationResult>> {
        self.execute(&Call::remove_disks(log_dirs, false)).await
    }

    /// Stops the running execution.
    pub async fn stop_proposal_execution(&self, force_stop: bool) -> Result<Answer<StopProposalResult>> {
        self.execute(&Call::stop_proposal_execution(force_stop)).await
    }

    /// The state of the user tasks `task_ids` (all recent ones when empty).
    pub async fn user_tasks(&self, task_ids: &[TaskId], fetch_completed_task: bool) -> Result<Answer<UserTaskState>> {
        self.execute(&Call::user_tasks(task_ids, fetch_completed_task)).await
    }

    /// The state of one user task with its own answer once completed, `None` when Cruise
    /// Control does not know it (any more: it keeps completed tasks for a while only).
    pub async fn user_task(&self, task_id: &TaskId) -> Result<Option<UserTask>> {
        let tasks = self.user_tasks(std::slice::from_ref(task_id), true).await?.result.user_tasks;
        Ok(tasks.into_iter().find(|t| t.user_task_id == task_id.0))
    }

    async fn send<T: DeserializeOwned>(&self, call: &Call<T>, task_id: Option<&TaskId>) -> Result<Answer<T>> {
        let url = self.url(call);
        let url_text = url.to_string();
        let timeout = match call.kind {
            CallKind::Read => self.timeouts.read,
            CallKind::Load => self.timeouts.load,
            CallKind::Operation => self.timeouts.operation,
        };
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .timeout(timeout)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(id) = task_id {
            let value = HeaderValue::from_str(&id.0).map_err(|_| Error::InvalidUrl {
                url: url_text.clone(),
                reason: format!("user task id {id:?} is not a header value"),
            })?;
            request = request.header(USER_TASK_ID_HEADER, value);
        }
        let transport = |e: reqwest::Error| classify(&url_text, timeout, e);
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let task = response
            .headers()
            .get(USER_TASK_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(TaskId::from);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Error::Decode {
                    url: url_text,
                    status: status.as_u16(),
                    reason: format!("answer larger than {MAX_BODY} bytes"),
                    snippet: snippet(&body),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let decode_error = |reason: String| Error::Decode {
            url: url_text.clone(),
            status: status.as_u16(),
            reason,
            snippet: snippet(&body),
        };
        match status {
            StatusCode::OK => {
                let result = serde_json::from_slice(&body).map_err(|e| decode_error(e.to_string()))?;
                Ok(Answer { task_id: task, result })
            }
            StatusCode::ACCEPTED => {
                let progress: ProgressResult =
                    serde_json::from_slice(&body).map_err(|e| decode_error(e.to_string()))?;
                let task_id =
                    task.ok_or_else(|| decode_error(format!("202 without a {USER_TASK_ID_HEADER} header")))?;
                Err(Error::InProgress { url: url_text, task_id, progress })
            }
            _ => {
                let message = serde_json::from_slice::<ErrorBody>(&body)
                    .ok()
                    .map(|e| e.error_message)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| snippet(&body));
                Err(Error::Status { url: url_text, status: status.as_u16(), message })
            }
        }
    }
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(SNIPPET).collect();
    if text.chars().nth(SNIPPET).is_some() {
        s.push('…');
    }
    s
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

fn classify(url: &str, timeout: Duration, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout { url: url.into(), after: timeout }
    } else if e.is_connect() {
        Error::Unreachable { url: url.into(), reason: error_chain(&e) }
    } else {
        Error::Transport { url: url.into(), reason: error_chain(&e) }
    }
}

/// ring with the system's roots: reqwest is built without a crypto provider of its own.
fn default_tls() -> Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Build(e.to_string()))?
        .with_platform_verifier()
        .map(|b| b.with_no_client_auth())
        .map_err(|e| Error::Build(e.to_string()))
}

/// Name lookups through the operator's [`Resolver`] (hosts file, then the system).
struct HostsResolver(Resolver);

impl reqwest::dns::Resolve for HostsResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port on every address.
            let addrs = resolver.resolve(&format!("{host}:0")).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
