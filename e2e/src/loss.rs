//! The loss harness: Kafka's own `VerifiableProducer` and `VerifiableConsumer` (from the
//! `kafka-tools` jar of the pinned release) run against one topic for the length of a
//! disruptive scenario, and the result says whether any acknowledged message was lost.
//!
//! The producer writes consecutive integers with acks=all and idempotence on (unbounded
//! retries, Kafka's default delivery timeout); the consumer reads the topic from the start in
//! its own group with `--verbose`, so every record it sees is reported with its value,
//! partition and offset. After the scenario the producer stops, the consumer gets time to read
//! everything that was acknowledged, and [`LossReport`] counts:
//! - lost: acknowledged but never consumed — one is a failed scenario;
//! - duplicated: values stored at more than one (partition, offset) — a retried send the
//!   broker wrote twice (a consumer reading the same offset again after a rebalance is not
//!   one);
//! - the longest time without an acknowledgement, and the sends that failed after retries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::kafka::{BackgroundTool, producer_report, spawn_tool};

/// Where and how to run the clients.
#[derive(Debug, Clone)]
pub struct LossOptions {
    /// Bootstrap servers (`host:port,...`), resolved through `hosts_file`.
    pub bootstrap: String,
    /// The topic: created by the caller (RF 3 and `min.insync.replicas=2` for a 3-broker
    /// cluster), used by this run alone.
    pub topic: String,
    /// Messages per second the producer sends.
    pub throughput: u32,
    /// A hosts file the clients resolve broker names with.
    pub hosts_file: Option<PathBuf>,
    /// Client properties both clients need besides the harness's own (TLS, SASL).
    pub client_config: String,
    /// Directory for the clients' logs and properties files.
    pub dir: PathBuf,
}

/// The two clients of one scenario, running.
pub struct LossRun {
    opts: LossOptions,
    producer: BackgroundTool,
    consumer: BackgroundTool,
    started: Instant,
}

/// What one scenario did to the clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossReport {
    /// How long the producer ran.
    pub duration: Duration,
    /// Sends the producer made.
    pub produced: u64,
    /// Sends Kafka acknowledged (acks=all).
    pub acknowledged: u64,
    /// Distinct values the consumer read.
    pub consumed: u64,
    /// Acknowledged values the consumer never read.
    pub lost: Vec<u64>,
    /// Values stored at more than one (partition, offset).
    pub duplicated: u64,
    /// Longest time without an acknowledgement, in milliseconds.
    pub longest_stall_ms: u64,
    /// Sends that failed after the producer's retries.
    pub produce_errors: u64,
}

impl LossRun {
    /// Starts the consumer, then the producer.
    pub fn start(opts: LossOptions) -> Result<LossRun> {
        std::fs::create_dir_all(&opts.dir)?;
        let write = |name: &str, extra: &str| -> Result<PathBuf> {
            let path = opts.dir.join(name);
            std::fs::write(&path, format!("{}{extra}", opts.client_config))?;
            Ok(path)
        };
        // VerifiableProducer sets retries=0 unless told otherwise; idempotence needs them.
        let producer_config = write(
            "producer.properties",
            "enable.idempotence=true\nretries=2147483647\nmax.in.flight.requests.per.connection=5\n",
        )?;
        let consumer_config = write("consumer.properties", "")?;
        let hosts = opts.hosts_file.as_deref();
        let arg = |v: &str| v.to_string();
        let consumer = spawn_tool(
            "org.apache.kafka.tools.VerifiableConsumer",
            &[
                arg("--bootstrap-server"),
                opts.bootstrap.clone(),
                arg("--topic"),
                opts.topic.clone(),
                arg("--group-id"),
                format!("loss-{}", opts.topic),
                arg("--reset-policy"),
                arg("earliest"),
                arg("--verbose"),
                arg("--consumer.config"),
                consumer_config.display().to_string(),
            ],
            hosts,
            &opts.dir.join("consumer.log"),
        )?;
        let producer = spawn_tool(
            "org.apache.kafka.tools.VerifiableProducer",
            &[
                arg("--bootstrap-server"),
                opts.bootstrap.clone(),
                arg("--topic"),
                opts.topic.clone(),
                arg("--throughput"),
                opts.throughput.to_string(),
                arg("--acks"),
                arg("-1"),
                arg("--producer.config"),
                producer_config.display().to_string(),
            ],
            hosts,
            &opts.dir.join("producer.log"),
        )?;
        Ok(LossRun { opts, producer, consumer, started: Instant::now() })
    }

    /// Waits until the producer has `n` acknowledged sends (the scenario starts on a running
    /// flow), or fails after `timeout` with the clients' logs.
    pub fn wait_acknowledged(&self, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let acked = producer_report(&self.producer.output()).acked.len();
            if acked >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{acked} of {n} sends acknowledged after {timeout:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the producer (it reports what was acknowledged as it shuts down), gives the
    /// consumer up to `drain` to read every acknowledged value, stops it and counts.
    pub fn finish(self, drain: Duration) -> Result<LossReport> {
        let duration = self.started.elapsed();
        let produced = self.producer.stop(Duration::from_secs(30));
        let acked: BTreeSet<u64> = producer_report(&produced).acked.into_iter().collect();
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline {
            let seen = consumed_records(&self.consumer.output());
            if acked.iter().all(|v| seen.contains_key(v)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let consumed = self.consumer.stop(Duration::from_secs(15));
        let report = LossReport::of(&produced, &consumed, duration);
        if report.acknowledged == 0 {
            bail!(
                "nothing was acknowledged in {duration:?}\n--- producer log ---\n{}",
                crate::process::tail(&self.opts.dir.join("producer.log"), 30)
            );
        }
        Ok(report)
    }

    fn logs(&self) -> String {
        let tail = |f: &str| crate::process::tail(&self.opts.dir.join(f), 20);
        format!("--- producer log ---\n{}\n--- consumer log ---\n{}", tail("producer.log"), tail("consumer.log"))
    }
}

/// Each consumed value with the distinct (partition, offset) places it was read from.
fn consumed_records(stdout: &str) -> BTreeMap<u64, BTreeSet<(i64, i64)>> {
    let mut out: BTreeMap<u64, BTreeSet<(i64, i64)>> = BTreeMap::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["name"] != "record_data" {
            continue;
        }
        let Some(value) = v["value"].as_str().and_then(|s| s.parse().ok()) else { continue };
        let place = (v["partition"].as_i64().unwrap_or(-1), v["offset"].as_i64().unwrap_or(-1));
        out.entry(value).or_default().insert(place);
    }
    out
}

impl LossReport {
    /// Counts from the producer's and the consumer's JSON lines.
    pub fn of(producer_stdout: &str, consumer_stdout: &str, duration: Duration) -> LossReport {
        let p = producer_report(producer_stdout);
        let acked: BTreeSet<u64> = p.acked.iter().copied().collect();
        let seen = consumed_records(consumer_stdout);
        // The producer's own total (`tool_data.sent`) when it got to print it.
        let sent = producer_stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["name"] == "tool_data")
            .and_then(|v| v["sent"].as_u64());
        LossReport {
            duration,
            produced: sent.unwrap_or(p.acked.len() as u64 + p.errors as u64),
            acknowledged: acked.len() as u64,
            consumed: seen.len() as u64,
            lost: acked.iter().copied().filter(|v| !seen.contains_key(v)).collect(),
            duplicated: seen.values().map(|places| places.len() as u64 - 1).sum(),
            longest_stall_ms: p.longest_stall_ms,
            produce_errors: p.errors as u64,
        }
    }

    /// Panics, with the figures, when one acknowledged message was lost.
    pub fn assert_lossless(&self, scenario: &str) {
        assert!(
            self.lost.is_empty(),
            "{scenario}: {} acknowledged messages lost (first: {:?}); {self:?}",
            self.lost.len(),
            &self.lost[..self.lost.len().min(10)]
        );
    }

    /// A row of the table in `docs/reliability.md`.
    pub fn row(&self, scenario: &str, brokers_down: usize) -> String {
        format!(
            "| {scenario} | {} s | {} | {} | {} | {} | {} ms | {} | {brokers_down} |",
            self.duration.as_secs(),
            self.produced,
            self.acknowledged,
            self.lost.len(),
            self.duplicated,
            self.longest_stall_ms,
            self.produce_errors,
        )
    }

    /// Prints the row and appends it to `<e2e cache>/reliability.md` (the table of the last
    /// runs, from which `docs/reliability.md` is filled).
    pub fn record(&self, scenario: &str, brokers_down: usize) {
        let row = self.row(scenario, brokers_down);
        eprintln!("RELIABILITY: {row}");
        let path = crate::tools::cache_dir().join("reliability.md");
        let _ = append_row(&path, &row);
    }
}

/// The header of the reliability table.
pub const TABLE_HEADER: &str = "| scenario | duration | produced | acknowledged | lost | duplicated | longest stall | produce errors | brokers down at once |\n|---|---|---|---|---|---|---|---|---|";

/// Appends `row` to the table at `path`, writing the header first when the file is new.
pub fn append_row(path: &Path, row: &str) -> Result<()> {
    use std::io::Write;
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if new {
        writeln!(f, "{TABLE_HEADER}")?;
    }
    writeln!(f, "{row}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: u64, ts: u64) -> String {
        format!(
            r#"{{"timestamp":{ts},"name":"producer_send_success","key":null,"value":"{value}","offset":{value},"topic":"t","partition":0}}"#
        )
    }

    fn read(value: u64, partition: i64, offset: i64) -> String {
        format!(
            r#"{{"timestamp":1,"name":"record_data","key":null,"value":"{value}","topic":"t","partition":{partition},"offset":{offset}}}"#
        )
    }

    #[test]
    fn counts_lost_duplicated_stalls_and_errors() {
        let producer = [
            r#"{"timestamp":0,"name":"startup_complete"}"#.to_string(),
            ok(0, 1000),
            ok(1, 1010),
            r#"{"timestamp":1500,"name":"producer_send_error","exception":"class org.apache.kafka.common.errors.TimeoutException","message":"x","topic":"t","key":null,"value":"2"}"#.to_string(),
            ok(3, 4010),
            ok(4, 4020),
            r#"{"timestamp":4100,"name":"tool_data","sent":5,"acked":4,"target_throughput":100,"avg_throughput":1.0}"#.to_string(),
        ]
        .join("\n");
        // 0 read twice at one offset (a rebalance, not a duplicate); 3 stored twice; 4 never read.
        let consumer = [read(0, 0, 0), read(0, 0, 0), read(1, 1, 0), read(3, 0, 1), read(3, 0, 2)].join("\n");
        let r = LossReport::of(&producer, &consumer, Duration::from_secs(7));
        assert_eq!(
            r,
            LossReport {
                duration: Duration::from_secs(7),
                produced: 5,
                acknowledged: 4,
                consumed: 3,
                lost: vec![4],
                duplicated: 1,
                longest_stall_ms: 3000,
                produce_errors: 1,
            }
        );
        assert_eq!(r.row("roll", 1), "| roll | 7 s | 5 | 4 | 1 | 1 | 3000 ms | 1 | 1 |");
        let lossless = std::panic::catch_unwind(|| r.assert_lossless("roll")).unwrap_err();
        let text = lossless.downcast_ref::<String>().unwrap();
        assert!(text.contains("roll: 1 acknowledged messages lost (first: [4])"), "{text}");
    }

    #[test]
    fn nothing_lost_when_every_acknowledged_value_was_read() {
        let producer = [ok(0, 1), ok(1, 2)].join("\n");
        let consumer = [read(1, 0, 1), read(0, 0, 0), "not json".to_string()].join("\n");
        let r = LossReport::of(&producer, &consumer, Duration::ZERO);
        assert!(r.lost.is_empty() && r.duplicated == 0 && r.consumed == 2 && r.produced == 2, "{r:?}");
        r.assert_lossless("ok");
    }

    #[test]
    fn the_table_gets_its_header_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.md");
        append_row(&path, "| a |").unwrap();
        append_row(&path, "| b |").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{TABLE_HEADER}\n| a |\n| b |\n"));
    }
}
