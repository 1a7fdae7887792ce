//! `status.currentTask.parameters` → the Cruise Control request, as Koperator's scaler reads them
//! (`pkg/scale`, `*WithParams`): per operation a fixed set of keys; booleans as Go's
//! `strconv.ParseBool`, broker ids comma-separated. Koperator skips keys it does not know; so do
//! we, but they are named in the status so that a typo is seen. A value that does not parse
//! stops the operation before anything is sent (`InvalidParameters`).

use std::collections::BTreeMap;

use koperator_shared::api::cruisecontroloperation::Operation;

use crate::cruise_control::{Call, OperationOptions, OptimizationResult, Rebalance, StopProposalResult};

/// `brokerid` of `add_broker` and `remove_broker`.
pub const BROKER_ID: &str = "brokerid";
/// Skip brokers demoted recently.
pub const EXCLUDE_DEMOTED: &str = "exclude_recently_demoted_brokers";
/// Skip brokers removed recently.
pub const EXCLUDE_REMOVED: &str = "exclude_recently_removed_brokers";
/// `destination_broker_ids` of `rebalance`.
pub const DESTINATION_BROKER_IDS: &str = "destination_broker_ids";
/// `rebalance_disk` of `rebalance` (between the log dirs of each broker).
pub const REBALANCE_DISK: &str = "rebalance_disk";
/// `brokerid_and_logdirs` of `remove_disks`: `1-/kafka-logs2,2-/kafka-logs2`.
pub const BROKER_ID_AND_LOG_DIRS: &str = "brokerid_and_logdirs";

/// The request an operation sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `add_broker`, `remove_broker`, `rebalance`, `remove_disks`.
    Optimization(Call<OptimizationResult>),
    /// `stop_proposal_execution`.
    Stop(Call<StopProposalResult>),
    /// `remove_disks` without any disk: done without a call (as Koperator).
    Nothing,
}

/// The parsed parameters: the request and the keys that operation does not use.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub request: Request,
    pub unused: Vec<String>,
}

/// The keys each operation reads (Koperator's `*SupportedParams`).
pub fn supported(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::AddBroker | Operation::RemoveBroker => &[BROKER_ID, EXCLUDE_DEMOTED, EXCLUDE_REMOVED],
        Operation::Rebalance => &[DESTINATION_BROKER_IDS, REBALANCE_DISK, EXCLUDE_DEMOTED, EXCLUDE_REMOVED],
        Operation::RemoveDisks => &[BROKER_ID_AND_LOG_DIRS],
        Operation::StopExecution | Operation::Status => &[],
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{key}: {v:?} is not a boolean (true or false)")),
    }
}

/// `1,2,3`; empty means none.
fn parse_ids(key: &str, v: &str) -> Result<Vec<i32>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|s| s.trim().parse::<i32>().map_err(|_| format!("{key}: {s:?} is not a broker id (e.g. \"1,2\")")))
        .collect()
}

/// `1-/a,2-/b` → {1: [/a], 2: [/b]}.
fn parse_log_dirs(v: &str) -> Result<BTreeMap<i32, Vec<String>>, String> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    if v.is_empty() {
        return Ok(out);
    }
    for pair in v.split(',') {
        let Some((id, dir)) = pair.split_once('-') else {
            return Err(format!("{BROKER_ID_AND_LOG_DIRS}: {pair:?} is not <broker id>-<log dir>"));
        };
        let id = id.parse::<i32>().map_err(|_| format!("{BROKER_ID_AND_LOG_DIRS}: {id:?} is not a broker id"))?;
        out.entry(id).or_default().push(dir.to_string());
    }
    Ok(out)
}

/// The request of `op` with `params`, or why the parameters are invalid.
pub fn parse(op: Operation, params: &BTreeMap<String, String>) -> Result<Parsed, String> {
    let known = supported(op);
    let unused: Vec<String> = params.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    let get = |k: &str| params.get(k).map(String::as_str);
    let flag = |k: &str| get(k).map(|v| parse_bool(k, v)).transpose().map(|b| b.unwrap_or(false));
    let options = || -> Result<OperationOptions, String> {
        Ok(OperationOptions {
            exclude_recently_demoted_brokers: flag(EXCLUDE_DEMOTED)?,
            exclude_recently_removed_brokers: flag(EXCLUDE_REMOVED)?,
            ..Default::default()
        })
    };
    let request = match op {
        Operation::AddBroker | Operation::RemoveBroker => {
            let ids = parse_ids(BROKER_ID, get(BROKER_ID).unwrap_or_default())?;
            if ids.is_empty() {
                return Err(format!("{BROKER_ID} is required: the ids of the brokers to {}", op.as_str()));
            }
            let opts = options()?;
            Request::Optimization(match op {
                Operation::AddBroker => Call::add_broker(&ids, &opts),
                _ => Call::remove_broker(&ids, &opts),
            })
        }
        Operation::Rebalance => Request::Optimization(Call::rebalance(&Rebalance {
            destination_brokers: parse_ids(DESTINATION_BROKER_IDS, get(DESTINATION_BROKER_IDS).unwrap_or_default())?,
            rebalance_disk: flag(REBALANCE_DISK)?,
            intra_broker_partition_movements: None,
            options: options()?,
        })),
        Operation::RemoveDisks => {
            let dirs = parse_log_dirs(get(BROKER_ID_AND_LOG_DIRS).unwrap_or_default())?;
            match dirs.is_empty() {
                true => Request::Nothing,
                false => Request::Optimization(Call::remove_disks(&dirs, false)),
            }
        }
        Operation::StopExecution => Request::Stop(Call::stop_proposal_execution(false)),
        Operation::Status => return Err("the status operation is not executed by the operator".into()),
    };
    Ok(Parsed { request, unused })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn call(parsed: Result<Parsed, String>) -> Call<OptimizationResult> {
        match parsed.unwrap().request {
            Request::Optimization(c) => c,
            other => panic!("expected an optimization, got {other:?}"),
        }
    }

    #[test]
    fn rebalance_reads_koperators_keys_and_names_the_others() {
        let parsed = parse(
            Operation::Rebalance,
            &p(&[
                (DESTINATION_BROKER_IDS, "1,2"),
                (REBALANCE_DISK, "True"),
                (EXCLUDE_REMOVED, "1"),
                ("goals", "RackAwareGoal"),
            ]),
        )
        .unwrap();
        assert_eq!(parsed.unused, vec!["goals".to_string()]);
        let Request::Optimization(c) = parsed.request else { panic!() };
        assert_eq!(c.endpoint, "rebalance");
        assert_eq!(c.get("destination_broker_ids"), Some("1,2"));
        assert_eq!(c.get("rebalance_disk"), Some("true"));
        assert_eq!(c.get("exclude_recently_removed_brokers"), Some("true"));
        assert_eq!(c.get("exclude_recently_demoted_brokers"), None);
        assert_eq!(c.get("dryrun"), Some("false"));
    }

    #[test]
    fn rebalance_without_parameters_and_with_an_empty_destination() {
        let c = call(parse(Operation::Rebalance, &p(&[])));
        assert_eq!(c.get("destination_broker_ids"), None);
        let c = call(parse(Operation::Rebalance, &p(&[(DESTINATION_BROKER_IDS, "")])));
        assert_eq!(c.get("destination_broker_ids"), None);
    }

    #[test]
    fn add_and_remove_broker_need_broker_ids() {
        let c = call(parse(Operation::RemoveBroker, &p(&[(BROKER_ID, "3"), (EXCLUDE_DEMOTED, "true")])));
        assert_eq!((c.endpoint, c.get("brokerid")), ("remove_broker", Some("3")));
        assert_eq!(c.get("exclude_recently_demoted_brokers"), Some("true"));
        let c = call(parse(Operation::AddBroker, &p(&[(BROKER_ID, "3,4")])));
        assert_eq!((c.endpoint, c.get("brokerid")), ("add_broker", Some("3,4")));
        assert!(parse(Operation::AddBroker, &p(&[])).unwrap_err().contains("brokerid is required"));
        assert!(parse(Operation::AddBroker, &p(&[(BROKER_ID, "three")])).unwrap_err().contains("not a broker id"));
        assert!(
            parse(Operation::RemoveBroker, &p(&[(BROKER_ID, "3"), (EXCLUDE_REMOVED, "yes")]))
                .unwrap_err()
                .contains("not a boolean")
        );
    }

    #[test]
    fn remove_disks_parses_pairs_and_an_empty_list_sends_nothing() {
        let c = call(parse(Operation::RemoveDisks, &p(&[(BROKER_ID_AND_LOG_DIRS, "1-/kafka-logs2,0-/a-b")])));
        assert_eq!(c.get("brokerid_and_logdirs"), Some("0-/a-b,1-/kafka-logs2"));
        let nothing = parse(Operation::RemoveDisks, &p(&[(BROKER_ID_AND_LOG_DIRS, "")])).unwrap();
        assert_eq!(nothing.request, Request::Nothing);
        assert!(parse(Operation::RemoveDisks, &p(&[(BROKER_ID_AND_LOG_DIRS, "x-/a")])).is_err());
        assert!(parse(Operation::RemoveDisks, &p(&[(BROKER_ID_AND_LOG_DIRS, "/a")])).is_err());
    }

    #[test]
    fn stop_and_status() {
        let stop = parse(Operation::StopExecution, &p(&[])).unwrap();
        assert!(matches!(stop.request, Request::Stop(c) if c.endpoint == "stop_proposal_execution"));
        assert!(parse(Operation::Status, &p(&[])).is_err());
    }
}
