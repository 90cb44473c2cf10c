//! Runs package-manager commands: always an argument vector (never a shell), with a fixed
//! environment, optionally inside another root through `chroot(8)`, with output streamed line
//! by line.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Lines kept for telling what went wrong.
const TAIL_LINES: usize = 400;

/// Where commands run: the host itself, or a root directory entered with `chroot`.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    root: Option<PathBuf>,
}

/// What a streamed command did.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// The last lines of output (stdout and stderr interleaved as they came).
    pub tail: Vec<String>,
    /// Killed because it kept waiting for a lock longer than allowed.
    pub lock_timed_out: bool,
}

impl RunResult {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl Runner {
    pub fn new(root: Option<PathBuf>) -> Runner {
        Runner {
            root: root.filter(|r| r != Path::new("/")),
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// A path of the managed system as seen from this process.
    pub fn host_path(&self, path: &str) -> PathBuf {
        match &self.root {
            Some(r) => r.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    }

    /// Whether a program exists on the managed system's `PATH`.
    pub fn has_program(&self, name: &str) -> bool {
        PATH.split(':')
            .any(|dir| self.host_path(&format!("{dir}/{name}")).is_file())
    }

    pub fn command(&self, argv: &[String]) -> Command {
        let mut cmd = match &self.root {
            Some(root) => {
                let mut c = Command::new("chroot");
                c.arg(root).args(argv);
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.env_clear()
            .env("PATH", PATH)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .env("HOME", "/root")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            .env("NEEDRESTART_MODE", "a")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs to completion and returns (exit code, stdout, stderr).
    pub async fn capture(
        &self,
        argv: &[String],
    ) -> std::io::Result<(Option<i32>, Vec<u8>, String)> {
        let out = self.command(argv).output().await?;
        Ok((
            out.status.code(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs and sends every output line to `sink`. A line containing one of `lock_markers`
    /// starts a clock: if the command is still waiting after `lock_wait`, it is killed.
    pub async fn stream(
        &self,
        argv: &[String],
        sink: &UnboundedSender<String>,
        lock_markers: &[&str],
        lock_wait: Duration,
    ) -> std::io::Result<RunResult> {
        let mut child = self
            .command(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
        let (mut out_open, mut err_open) = (true, true);
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut waiting_since: Option<tokio::time::Instant> = None;
        let mut lock_timed_out = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while out_open || err_open {
            let line = tokio::select! {
                l = out.next_line(), if out_open => l?.or_else(|| { out_open = false; None }),
                l = err.next_line(), if err_open => l?.or_else(|| { err_open = false; None }),
                _ = tick.tick() => {
                    if waiting_since.is_some_and(|t| t.elapsed() >= lock_wait) {
                        // Stop reading at once: a grandchild may keep the pipes open.
                        lock_timed_out = true;
                        let _ = child.start_kill();
                        break;
                    }
                    None
                }
            };
            let Some(line) = line else { continue };
            if lock_markers.iter().any(|m| line.contains(m)) {
                waiting_since.get_or_insert_with(tokio::time::Instant::now);
            }
            let _ = sink.send(line.clone());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let status = child.wait().await?;
        Ok(RunResult {
            code: status.code(),
            tail: tail.into(),
            lock_timed_out,
        })
    }
}

/// `argv` from string slices.
pub fn argv<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_lines_and_never_uses_a_shell() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = Runner::new(None)
            .stream(
                &argv(["printf", "one\\ntwo; echo three\\n"]),
                &tx,
                &[],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(r.success());
        assert_eq!(r.tail, ["one", "two; echo three"]);
        assert_eq!(rx.recv().await.as_deref(), Some("one"));
    }

    #[tokio::test]
    async fn kills_a_command_stuck_on_a_lock() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let started = std::time::Instant::now();
        let r = Runner::new(None)
            .stream(
                &argv(["sh", "-c", "echo 'Waiting for lock'; sleep 30"]),
                &tx,
                &["Waiting for lock"],
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(r.lock_timed_out);
        assert!(!r.success());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn paths_of_another_root() {
        let r = Runner::new(Some("/srv/root".into()));
        assert_eq!(
            r.host_path("/var/run/reboot-required"),
            Path::new("/srv/root/var/run/reboot-required")
        );
        assert_eq!(
            Runner::new(Some("/".into())).host_path("/etc"),
            Path::new("/etc")
        );
    }
}
