//! Driving kube-runtime watch streams: every stream backs off after an error
//! (`WatchStreamExt::default_backoff`, 0.8 s doubling to 30 s), and each failed list/watch
//! attempt is logged once with what was watched, never dropped.

use std::fmt::Display;

use futures::{Stream, StreamExt};
use tracing::{info, warn};

/// Runs `stream` to its end, calling `on_event` for every event. `what` names the watch in
/// the logs (`KafkaCluster (all namespaces)`, `Secret koperator/koperator-webhook-certs`).
pub async fn drive<S, T, E>(what: String, stream: S, mut on_event: impl FnMut(T))
where
    S: Stream<Item = Result<T, E>>,
    E: Display,
{
    let mut failures: u32 = 0;
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if failures > 0 {
                    info!(watch = what, failures, "watch recovered");
                    failures = 0;
                }
                on_event(event);
            }
            Err(e) => {
                failures += 1;
                warn!(watch = what, error = %e, attempt = failures, "watch failed; retrying with backoff");
            }
        }
    }
    warn!(watch = what, "watch stream ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_event_is_passed_on_and_errors_are_skipped() {
        let items: Vec<Result<i32, String>> = vec![Ok(1), Err("gone".into()), Err("gone".into()), Ok(2)];
        let mut seen = Vec::new();
        drive("test".into(), futures::stream::iter(items), |e| seen.push(e)).await;
        assert_eq!(seen, vec![1, 2]);
    }
}
