//! Why a broker Pod is not running, in the broker's own words: the `kafka` container's last
//! termination (exit code and, with `terminationMessagePolicy: FallbackToLogsOnError`, the
//! tail of its log that kubelet keeps as the message), reduced to the line that says what went
//! wrong.

use k8s_openapi::api::core::v1::Pod;

/// What made the broker container of `pod` stop, when it failed (a non-zero exit): its error
/// line, exit code and restart count. `None` while it runs or never failed.
pub fn of(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let c = statuses.iter().find(|c| c.name == "kafka").or(statuses.first())?;
    let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
    let last = c.last_state.as_ref()?.terminated.as_ref()?;
    if last.exit_code == 0 || (running && c.ready) {
        return None;
    }
    let said = last.message.as_deref().and_then(error_line).unwrap_or("it left no message (see its log)");
    Some(format!("{said} (exit code {}, restarted {} times)", last.exit_code, c.restart_count))
}

/// The line of a JVM's log tail that says what went wrong: the first exception with a
/// message (from its class name on: `…ConfigException: Invalid value…`, also after `Exception
/// in thread "main"`), else the last `ERROR`/`FATAL` line, else the last line.
pub fn error_line(message: &str) -> Option<&str> {
    let lines = || message.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find_map(exception)
        .or_else(|| lines().rev().find(|l| l.contains(" ERROR ") || l.contains(" FATAL ")))
        .or_else(|| lines().next_back())
}

/// `line` from the first word that names a throwable class followed by its message.
fn exception(line: &str) -> Option<&str> {
    let mut at = 0;
    for word in line.split(' ') {
        let class = word.strip_suffix(':').unwrap_or_default();
        let named = class.ends_with("Exception") || class.ends_with("Error");
        if named && class.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '$' || c == '_') {
            return Some(&line[at..]);
        }
        at += word.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KAFKA_BAD_VALUE: &str = "[2026-12-04 20:08:24,224] INFO Registered `kafka:type=kafka.Log4jController` MBean (kafka.utils.Log4jControllerRegistration$)
[2026-12-04 20:08:24,595] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)
org.apache.kafka.common.config.ConfigException: Invalid value 0 for configuration num.io.threads: Value must be at least 1
\tat org.apache.kafka.common.config.ConfigDef$Range.ensureValid(ConfigDef.java:989) ~[kafka-clients-4.1.1.jar:?]
\tat kafka.Kafka.main(Kafka.scala) [kafka_2.13-4.1.1.jar:?]
";

    #[test]
    fn the_error_line_is_the_exception_else_the_last_error_else_the_last_line() {
        assert_eq!(
            error_line(KAFKA_BAD_VALUE),
            Some(
                "org.apache.kafka.common.config.ConfigException: Invalid value 0 for configuration num.io.threads: Value must be at least 1"
            )
        );
        assert_eq!(
            error_line("[t] INFO x\nException in thread \"main\" org.a.ConfigException: Invalid value 0\n\tat b.C\n"),
            Some("org.a.ConfigException: Invalid value 0")
        );
        assert_eq!(
            error_line("Caused by: java.lang.OutOfMemoryError: Java heap space"),
            Some("java.lang.OutOfMemoryError: Java heap space")
        );
        let errors = "[t] ERROR first (x)\n[t] INFO note: something\n[t] ERROR second (x)\n[t] INFO bye\n";
        assert_eq!(error_line(errors), Some("[t] ERROR second (x)"));
        assert_eq!(error_line("starting\nKilled\n\n"), Some("Killed"));
        assert_eq!(error_line(""), None);
    }

    fn pod(state: serde_json::Value, ready: bool, last: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "kafka-1"},
            "status": {"containerStatuses": [{
                "name": "kafka", "image": "i", "imageID": "", "ready": ready, "restartCount": 3,
                "state": state, "lastState": last,
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn a_failed_container_is_reported_with_its_error_line_and_exit_code() {
        let crashed = json!({"terminated": {"exitCode": 1, "message": KAFKA_BAD_VALUE}});
        let waiting = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let said = of(&pod(waiting.clone(), false, crashed.clone())).unwrap();
        assert!(said.starts_with("org.apache.kafka.common.config.ConfigException: Invalid value 0"), "{said}");
        assert!(said.ends_with("(exit code 1, restarted 3 times)"), "{said}");
        // Running again and Ready: an old failure is history, not a reason.
        let running = json!({"running": {}});
        assert_eq!(of(&pod(running.clone(), true, crashed)), None);
        // A clean exit, or no termination at all, is not a failure.
        assert_eq!(of(&pod(waiting.clone(), false, json!({"terminated": {"exitCode": 0}}))), None);
        assert_eq!(of(&pod(running, false, json!({}))), None);
        let silent = of(&pod(waiting, false, json!({"terminated": {"exitCode": 137}}))).unwrap();
        assert_eq!(silent, "it left no message (see its log) (exit code 137, restarted 3 times)");
    }
}
