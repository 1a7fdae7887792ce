//! Child processes of the control plane: started with their output in a log file, killed when
//! the test binary dies, stopped gracefully on request.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Children are spawned from one thread that lives as long as the process, so that
/// `PR_SET_PDEATHSIG` (which fires when the spawning *thread* exits) kills them only when the
/// test binary itself goes away.
fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("e2e-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the e2e spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it is SIGKILLed when the test binary goes away (also when the binary
/// itself is killed, which would otherwise leave the child running and holding its files).
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    // SAFETY: prctl is async-signal-safe and touches no Rust state.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = channel();
    spawner().lock().expect("spawner lock").send((cmd, tx)).expect("spawner thread alive");
    rx.recv().expect("spawner replies")
}

/// One running component.
pub struct Component {
    /// Name used in messages (`etcd`, `kube-apiserver`...).
    pub name: String,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    child: Mutex<Option<Child>>,
    pid: u32,
}

impl Component {
    /// Starts `program` with `args`, output to `log`. With `detached`, the process survives the
    /// caller (for `make cluster-up`); otherwise it dies with the test binary.
    pub fn start(name: &str, program: &Path, args: &[String], log: PathBuf, detached: bool) -> Result<Component> {
        Self::start_with_env(name, program, args, &[], log, detached)
    }

    /// Like [`Component::start`] with extra environment variables.
    pub fn start_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: PathBuf,
        detached: bool,
    ) -> Result<Component> {
        let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args).envs(env.iter().cloned()).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        let child = if detached {
            // SAFETY: setsid is async-signal-safe and touches no Rust state.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            cmd.spawn()
        } else {
            spawn_tied(cmd)
        }
        .with_context(|| format!("start {name} ({})", program.display()))?;
        Ok(Component { name: name.into(), log, pid: child.id(), child: Mutex::new(Some(child)) })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` when the process has exited.
    pub fn exited(&self) -> Option<String> {
        let mut guard = self.child.lock().expect("child lock");
        match guard.as_mut().map(Child::try_wait) {
            None => Some("stopped".into()),
            Some(Ok(Some(status))) => Some(status.to_string()),
            _ => None,
        }
    }

    /// The exit code once the process has exited: its own, or 128 + the signal that ended it
    /// (as a container runtime reports it).
    pub fn exit_code(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let mut guard = self.child.lock().expect("child lock");
        let status = guard.as_mut()?.try_wait().ok()??;
        status.code().or_else(|| status.signal().map(|s| 128 + s))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the process.
    pub fn stop(&self, grace: Duration) {
        let Some(mut child) = self.child.lock().expect("child lock").take() else { return };
        terminate(child.id(), grace, || matches!(child.try_wait(), Ok(Some(_))));
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends SIGTERM to `pid`, waits up to `grace` for `gone()`, then SIGKILL.
pub fn terminate(pid: u32, grace: Duration, mut gone: impl FnMut() -> bool) {
    // SAFETY: plain kill(2) on a pid we started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if gone() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// The last `n` lines of a file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    // Bytes, not a String: the cut may fall inside a UTF-8 character.
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let s = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (the listener is closed before returning).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
