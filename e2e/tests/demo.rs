//! `make demo` when a step fails: the report names the failing component and shows the last
//! lines of the logs that say why, `up` exits non-zero, and nothing of the demo keeps running.
//! (The working demo and the commands it prints are run by `.ci/run`: `make demo`, then
//! `make demo-try`.)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Processes whose command line mentions `dir`.
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn a_failing_step_names_its_component_and_the_log_lines_that_say_why() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("demo");
    let demo = env!("CARGO_BIN_EXE_demo");
    // A swapped range: the chart's schema lets it through, both binaries refuse it at start,
    // so their Deployments never get Ready.
    let started = Instant::now();
    let out = Command::new(demo)
        .args(["up", "--dir"])
        .arg(&dir)
        .args(["--set", "webhook.nodePortRange=32767-30000", "--helm-timeout", "20s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("demo up took {:?}:\n{text}\n{}", started.elapsed(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "up must fail");
    assert!(!text.contains("READY"), "a failed demo reported ready");
    let report = text.split_once("FAILED: ").map(|(_, r)| r).expect("no FAILED line");
    assert!(report.starts_with("helm install:"), "the failing component is not named first: {report}");
    // The last lines of the chart's Pods' logs, where the binaries say what is wrong.
    for pod in ["--- koperator-webhook-", "--- koperator-"] {
        assert!(report.contains(pod), "no log tail of {pod}: {report}");
    }
    assert!(
        report.contains("invalid value '32767-30000' for '--node-port-range"),
        "the binaries' own error is not in the report: {report}"
    );
    // The background process stopped everything it started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_in(&dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(processes_in(&dir), Vec::<String>::new(), "processes of the failed demo still run");
    let down = Command::new(demo).args(["down", "--dir"]).arg(&dir).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!dir.exists(), "make demo-down left {}", dir.display());
}
