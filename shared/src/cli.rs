//! Command-line flags common to both binaries (feature `runtime`), flattened into each
//! binary's own `Args` so that the same setting has the same name, default and environment
//! variable everywhere.

use std::path::PathBuf;
use std::time::Duration;

use crate::rules::RuleConfig;

/// Flags of both `koperator` and `koperator-webhook`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Log as JSON lines (default) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// Hosts file (`/etc/hosts` format) consulted before DNS for broker names; for running the
    /// binary outside the cluster (development, the e2e tests). Re-read on every lookup.
    #[arg(long, env = "KAFKA_HOSTS_FILE")]
    pub kafka_hosts_file: Option<PathBuf>,
    /// Time to open a connection to a Kafka broker.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub kafka_connect_timeout: Duration,
    /// Time budget of a Kafka request. Defaults: 2500ms in the webhook (a KafkaTopic check as a
    /// whole; keep it below the webhook's registration timeout), 10s in the operator.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub kafka_timeout: Option<Duration>,
    /// Service node-port range of the Kubernetes cluster (`--service-node-port-range` of its
    /// API server), for the NodePort rules.
    #[arg(long = "node-port-range", default_value = "30000-32767", value_parser = RuleConfig::with_node_port_range)]
    pub rules: RuleConfig,
    /// This replica's identity: the Lease holder, the Event reporter instance, a log field.
    /// Defaults to `<binary>-<pid>`.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

impl CommonArgs {
    /// Installs logging in the chosen format.
    pub fn init_logging(&self) {
        crate::logging::init(&self.log_format);
    }

    /// The replica identity, `<binary>-<pid>` when none was given.
    pub fn identity_or(&self, binary: &str) -> String {
        self.identity.clone().unwrap_or_else(|| format!("{binary}-{}", std::process::id()))
    }

    /// The Kafka request budget, `default` when not given.
    pub fn kafka_timeout_or(&self, default: Duration) -> Duration {
        self.kafka_timeout.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn defaults_and_a_bad_range() {
        let a = Args::try_parse_from(["x"]).unwrap().common;
        assert_eq!(a.rules, RuleConfig::default());
        assert_eq!(a.kafka_timeout_or(Duration::from_secs(10)), Duration::from_secs(10));
        assert!(a.identity_or("koperator").starts_with("koperator-"));
        let a = Args::try_parse_from(["x", "--node-port-range", "20000-20100", "--kafka-timeout", "1s"]).unwrap();
        assert_eq!(a.common.rules.node_port_range, 20000..=20100);
        assert_eq!(a.common.kafka_timeout, Some(Duration::from_secs(1)));
        let err = Args::try_parse_from(["x", "--node-port-range", "9-1"]).err().unwrap().to_string();
        assert!(err.contains("9 is above 1"), "{err}");
    }
}
