//! `make cluster-up` / `make cluster-down`: a control plane for people, outside the tests.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use koperator_e2e::{ControlPlane, Options, process::terminate};

/// Start or stop a local etcd + kube-apiserver + kube-controller-manager.
#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the control plane in the background and print how to use it.
    Up {
        /// Run directory (kubeconfig, logs, data).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop the control plane started with `up` and remove its directory.
    Down {
        /// Run directory given to `up`.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Up { dir } => {
            if dir.join("pids").exists() {
                anyhow::bail!(
                    "a control plane is already running from {} (run `make cluster-down` first)",
                    dir.display()
                );
            }
            let cp = ControlPlane::start(&Options { dir: dir.clone(), detached: true })?;
            let pids: Vec<String> = cp.pids().iter().map(u32::to_string).collect();
            std::fs::write(dir.join("pids"), pids.join("\n"))?;
            println!("control plane ready at {} after {:.1}s", cp.server, cp.ready_after.as_secs_f64());
            println!("  export KUBECONFIG={}", cp.kubeconfig.display());
            println!("  logs: {}", dir.join("logs").display());
            println!("stop it with: make cluster-down");
            std::mem::forget(cp); // keep the processes running
        }
        Cmd::Down { dir } => {
            let pids = std::fs::read_to_string(dir.join("pids"))
                .with_context(|| format!("no control plane recorded in {}", dir.display()))?;
            for pid in pids.lines().rev().filter_map(|l| l.trim().parse::<u32>().ok()) {
                // SAFETY: kill with signal 0 only probes whether the pid exists.
                terminate(pid, Duration::from_secs(5), || unsafe { libc::kill(pid as i32, 0) } != 0);
            }
            std::fs::remove_dir_all(&dir)?;
            println!("control plane stopped; removed {}", dir.display());
        }
    }
    Ok(())
}
