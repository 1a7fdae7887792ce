//! CruiseControlOperation admission rules: the `kafka_cr` label, the spec, and the task in
//! `status.currentTask` (its operation's parameters).

use super::{FieldError, Path};
use crate::api::cruisecontroloperation::{CruiseControlOperation, CruiseControlTask, KAFKA_CR_LABEL, Operation};

/// Parameters with a fixed shape, per operation: (name, shape).
fn parameter_shape(op: Operation, name: &str) -> Option<Shape> {
    use Operation::*;
    match (op, name) {
        (AddBroker | RemoveBroker, "brokerid") => Some(Shape::IdList),
        (RemoveDisks, "brokerid_and_logdirs") => Some(Shape::BrokerLogDirs),
        (Rebalance, "destination_broker_ids") => Some(Shape::IdList),
        (_, "excluded_topics") => Some(Shape::Any),
        (
            _,
            "dryrun"
            | "rebalance_disk"
            | "exclude_recently_demoted_brokers"
            | "exclude_recently_removed_brokers"
            | "skip_hard_goal_check"
            | "json"
            | "verbose",
        ) => Some(Shape::Bool),
        (_, "concurrent_leader_movements" | "concurrent_partition_movements_per_broker" | "replication_throttle") => {
            Some(Shape::Number)
        }
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Shape {
    IdList,
    BrokerLogDirs,
    Bool,
    Number,
    Any,
}

/// The `kafka_cr` label names a cluster; the TTL is not negative; the current task (if any) has
/// the parameters its operation needs, well formed.
pub fn validate(op: &CruiseControlOperation) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let label = op.metadata.labels.as_ref().and_then(|l| l.get(KAFKA_CR_LABEL));
    if label.is_none_or(|v| v.is_empty()) {
        errs.push(FieldError::required(
            &Path::root("metadata").child("labels").key(KAFKA_CR_LABEL),
            "label the operation with kafka_cr: <name of the KafkaCluster> it runs against",
        ));
    }
    if let Some(ttl) = op.spec.ttl_seconds_after_finished
        && ttl < 0
    {
        errs.push(FieldError::invalid(
            &Path::root("spec").child("ttlSecondsAfterFinished"),
            ttl,
            "must be 0 (delete at once) or more seconds",
        ));
    }
    if let Some(task) = op.status.as_ref().and_then(|s| s.current_task.as_ref()) {
        errs.extend(task_parameters(task, &Path::root("status").child("currentTask")));
    }
    errs
}

fn task_parameters(task: &CruiseControlTask, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let params = task.parameters.clone().unwrap_or_default();
    let required = match task.operation {
        Operation::AddBroker | Operation::RemoveBroker => Some("brokerid"),
        Operation::RemoveDisks => Some("brokerid_and_logdirs"),
        _ => None,
    };
    if let Some(req) = required
        && !params.contains_key(req)
    {
        errs.push(FieldError::required(
            &path.child("parameters").key(req),
            format!("{} needs the {req} parameter", task.operation.as_str()),
        ));
    }
    for (name, value) in &params {
        let p = path.child("parameters").key(name);
        let ok = match parameter_shape(task.operation, name) {
            None | Some(Shape::Any) => true,
            Some(Shape::IdList) => value.split(',').all(|s| s.trim().parse::<u16>().is_ok()),
            Some(Shape::BrokerLogDirs) => value.split(',').all(|s| {
                s.split_once('-').is_some_and(|(id, dir)| id.trim().parse::<u16>().is_ok() && dir.starts_with('/'))
            }),
            Some(Shape::Bool) => matches!(value.as_str(), "true" | "false"),
            Some(Shape::Number) => value.parse::<u64>().is_ok(),
        };
        if !ok {
            let hint = match parameter_shape(task.operation, name) {
                Some(Shape::IdList) => "a comma-separated list of broker ids, e.g. 1,2",
                Some(Shape::BrokerLogDirs) => "comma-separated <brokerId>-<logDir> pairs, e.g. 1-/kafka-logs2",
                Some(Shape::Bool) => "true or false",
                _ => "a non-negative number",
            };
            errs.push(FieldError::invalid(&p, value, format!("expected {hint}")));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cruisecontroloperation::{CruiseControlOperationSpec, CruiseControlOperationStatus};
    use crate::rules::ErrorType;
    use std::collections::BTreeMap;

    fn op(task: Option<(Operation, &[(&str, &str)])>) -> CruiseControlOperation {
        let mut o = CruiseControlOperation::new("op", CruiseControlOperationSpec::default());
        o.metadata.labels = Some(BTreeMap::from([(KAFKA_CR_LABEL.to_string(), "kafka".to_string())]));
        o.status = task.map(|(operation, params)| CruiseControlOperationStatus {
            current_task: Some(CruiseControlTask {
                operation,
                parameters: Some(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            }),
            ..Default::default()
        });
        o
    }

    fn kinds(errs: &[FieldError]) -> Vec<(&str, ErrorType)> {
        errs.iter().map(|e| (e.path.as_str(), e.error_type)).collect()
    }

    #[test]
    fn valid_operations_pass() {
        assert_eq!(validate(&op(None)), vec![]);
        assert_eq!(validate(&op(Some((Operation::AddBroker, &[("brokerid", "3,4")])))), vec![]);
        assert_eq!(
            validate(&op(Some((Operation::RemoveDisks, &[("brokerid_and_logdirs", "1-/kafka-logs2")])))),
            vec![]
        );
        assert_eq!(
            validate(&op(Some((Operation::Rebalance, &[("rebalance_disk", "true"), ("excluded_topics", "a.*")])))),
            vec![]
        );
    }

    #[test]
    fn missing_label_and_bad_ttl() {
        let mut o = op(None);
        o.metadata.labels = None;
        o.spec.ttl_seconds_after_finished = Some(-1);
        assert_eq!(
            kinds(&validate(&o)),
            vec![
                ("metadata.labels[kafka_cr]", ErrorType::Required),
                ("spec.ttlSecondsAfterFinished", ErrorType::Invalid)
            ]
        );
    }

    #[test]
    fn bad_task_parameters() {
        assert_eq!(
            kinds(&validate(&op(Some((Operation::RemoveBroker, &[]))))),
            vec![("status.currentTask.parameters[brokerid]", ErrorType::Required)]
        );
        assert_eq!(
            kinds(&validate(&op(Some((Operation::AddBroker, &[("brokerid", "one")]))))),
            vec![("status.currentTask.parameters[brokerid]", ErrorType::Invalid)]
        );
        assert_eq!(
            kinds(&validate(&op(Some((Operation::Rebalance, &[("dryrun", "yes")]))))),
            vec![("status.currentTask.parameters[dryrun]", ErrorType::Invalid)]
        );
        assert_eq!(
            kinds(&validate(&op(Some((Operation::RemoveDisks, &[("brokerid_and_logdirs", "1:/logs")]))))),
            vec![("status.currentTask.parameters[brokerid_and_logdirs]", ErrorType::Invalid)]
        );
    }
}
