//! Package-manager backends: `apt` (Debian, Ubuntu) and `dnf`/`yum` (Oracle Linux, RHEL,
//! Fedora), chosen by what the managed system has.

pub mod apt;
pub mod dnf;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use osm_core::{UpdateType, WorkAction};
use tokio::sync::mpsc::UnboundedSender;

use crate::inventory::{Inventory, UpdateKind};
use crate::runner::{RunResult, Runner};
use crate::spec::{self, Family, PackageSpec};

/// Why a work request failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkError {
    pub code: String,
    pub message: String,
}

impl WorkError {
    pub fn new(code: &str, message: impl Into<String>) -> WorkError {
        WorkError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The work was cancelled at a safe point (not a failure).
    pub fn canceled() -> WorkError {
        WorkError::new(CANCELED, "canceled at a safe point")
    }

    pub fn is_cancel(&self) -> bool {
        self.code == CANCELED
    }
}

const CANCELED: &str = "Canceled";

/// What one running work request can use: the command runner, its log, and its cancel flag.
pub struct WorkCtx {
    pub runner: Runner,
    pub log: UnboundedSender<String>,
    pub cancel: Arc<AtomicBool>,
    /// Asks the agent for a heartbeat now (so a fresh cancel is seen) and waits for it.
    pub refresh_cancel: Arc<dyn Fn() -> futures_lite::BoxFuture<()> + Send + Sync>,
    pub lock_wait: Duration,
}

/// A small boxed-future alias without pulling in `futures`.
pub mod futures_lite {
    pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

impl WorkCtx {
    pub fn say(&self, line: impl Into<String>) {
        let _ = self.log.send(line.into());
    }

    /// A point where stopping leaves the system consistent: honour a cancel here.
    pub async fn safe_point(&self) -> Result<(), WorkError> {
        (self.refresh_cancel)().await;
        if self.cancel.load(Ordering::SeqCst) {
            self.say("cancel requested: stopping before the next step");
            return Err(WorkError::canceled());
        }
        Ok(())
    }

    /// Runs one command on the managed system, streaming its output to the log.
    pub async fn run(
        &self,
        argv: &[String],
        lock_markers: &[&str],
    ) -> Result<RunResult, WorkError> {
        self.run_with(&self.runner, argv, lock_markers).await
    }

    /// [`WorkCtx::run`] through another runner (the host's dnf driving an install root).
    pub async fn run_with(
        &self,
        runner: &Runner,
        argv: &[String],
        lock_markers: &[&str],
    ) -> Result<RunResult, WorkError> {
        self.say(format!("$ {}", argv.join(" ")));
        runner
            .stream(argv, &self.log, lock_markers, self.lock_wait)
            .await
            .map_err(|e| {
                WorkError::new(
                    "PackageManagerMissing",
                    format!("could not run {}: {e}", argv[0]),
                )
            })
    }
}

/// The package manager of the managed system.
#[derive(Debug, Clone)]
pub enum Backend {
    Apt(apt::Apt),
    Dnf(dnf::Dnf),
}

impl Backend {
    /// Picks the backend from the programs the system has (`kind` forces one: apt, dnf, yum).
    pub fn detect(runner: &Runner, kind: Option<&str>) -> Result<Backend, String> {
        match kind.unwrap_or("auto") {
            "apt" => Ok(Backend::Apt(apt::Apt::new(runner.clone()))),
            "dnf" => Ok(Backend::Dnf(dnf::Dnf::new(runner.clone(), "dnf"))),
            "yum" => Ok(Backend::Dnf(dnf::Dnf::new(runner.clone(), "yum"))),
            "auto" if runner.has_program("apt-get") && runner.has_program("dpkg-query") => {
                Ok(Backend::Apt(apt::Apt::new(runner.clone())))
            }
            "auto" if runner.has_program("dnf") => {
                Ok(Backend::Dnf(dnf::Dnf::new(runner.clone(), "dnf")))
            }
            "auto" if runner.has_program("yum") => {
                Ok(Backend::Dnf(dnf::Dnf::new(runner.clone(), "yum")))
            }
            "auto" => Err("found neither apt-get nor dnf nor yum on this system".into()),
            other => Err(format!("unknown backend {other:?} (auto, apt, dnf or yum)")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Apt(_) => "apt",
            Backend::Dnf(d) => d.program(),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Backend::Apt(_) => Family::Deb,
            Backend::Dnf(_) => Family::Rpm,
        }
    }

    pub async fn scan(&self) -> Result<Inventory, String> {
        match self {
            Backend::Apt(a) => a.scan().await,
            Backend::Dnf(d) => d.scan().await,
        }
    }

    /// Whether the system says it needs a reboot.
    pub async fn reboot_required(&self) -> bool {
        match self {
            Backend::Apt(a) => a.reboot_required(),
            Backend::Dnf(d) => d.reboot_required().await,
        }
    }

    /// What the package database says after an interruption (`dpkg --audit`, `dnf check`).
    pub async fn audit(&self) -> String {
        match self {
            Backend::Apt(a) => a.audit().await,
            Backend::Dnf(d) => d.audit().await,
        }
    }

    /// Carries out one work action.
    pub async fn execute(&self, action: &WorkAction, ctx: &WorkCtx) -> Result<(), WorkError> {
        let family = self.family();
        let specs = |names: &[String]| -> Result<Vec<PackageSpec>, WorkError> {
            if names.is_empty() {
                return Err(WorkError::new(
                    "InvalidPackageName",
                    "the work request names no package",
                ));
            }
            names
                .iter()
                .map(|n| spec::parse(family, n))
                .collect::<Result<_, _>>()
                .map_err(|e| WorkError::new("InvalidPackageName", format!("refused to run: {e}")))
        };
        let op = match action {
            WorkAction::InstallPackage { names } => Op::Install(specs(names)?),
            WorkAction::RemovePackage { names } => Op::Remove(specs(names)?),
            WorkAction::UpdatePackage { names } => Op::Update(specs(names)?),
            WorkAction::UpdateAll { update_type } => Op::UpdateAll(match update_type {
                UpdateType::All => None,
                UpdateType::Security => Some(UpdateKind::Security),
                UpdateType::Bugfix => Some(UpdateKind::Bug),
                UpdateType::Enhancement => Some(UpdateKind::Enhancement),
                UpdateType::Other => Some(UpdateKind::Other),
                UpdateType::Ksplice => {
                    return Err(WorkError::new(
                        "NotSupported",
                        "Ksplice updates are not supported by osm-agent; use update type ALL or SECURITY",
                    ));
                }
            }),
            WorkAction::InstallWindowsUpdate { .. }
            | WorkAction::InstallAllWindowsUpdates { .. } => {
                return Err(WorkError::new(
                    "NotSupported",
                    "Windows updates cannot be installed on a Linux instance",
                ));
            }
        };
        ctx.safe_point().await?;
        match self {
            Backend::Apt(a) => a.execute(&op, ctx).await,
            Backend::Dnf(d) => d.execute(&op, ctx).await,
        }
    }
}

/// A validated operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Install(Vec<PackageSpec>),
    Remove(Vec<PackageSpec>),
    Update(Vec<PackageSpec>),
    /// All updates, or only those of one type.
    UpdateAll(Option<UpdateKind>),
}

/// Turns a failed package-manager run into an error a person can act on. `patterns` maps
/// output fragments to error codes, first match wins.
pub fn classify(
    tool: &str,
    result: &RunResult,
    lock_wait: Duration,
    patterns: &[(&str, &str)],
) -> WorkError {
    let lock_message = |detail: &str| {
        WorkError::new(
            "LockHeld",
            format!(
                "the package database stayed locked by another process for {} s ({detail}); wait for it to finish and retry",
                lock_wait.as_secs()
            ),
        )
    };
    if result.lock_timed_out {
        let detail = result
            .tail
            .last()
            .map(String::as_str)
            .unwrap_or("no output");
        return lock_message(detail);
    }
    for (fragment, code) in patterns {
        if let Some(line) = result.tail.iter().find(|l| l.contains(fragment)) {
            let line = line.trim();
            return match *code {
                "LockHeld" => lock_message(line),
                "PackageNotFound" => WorkError::new(
                    code,
                    format!(
                        "{tool}: {line} (check the name and version, and that a configured repository has it)"
                    ),
                ),
                "DependencyProblem" => WorkError::new(
                    code,
                    format!(
                        "{tool} cannot resolve dependencies: {}",
                        error_lines(result, line)
                    ),
                ),
                "DiskFull" => WorkError::new(
                    code,
                    format!("not enough disk space: {line}; free some space and retry"),
                ),
                "Interrupted" => WorkError::new(code, format!("{tool}: {line}")),
                _ => WorkError::new(code, format!("{tool}: {line}")),
            };
        }
    }
    let status = match result.code {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".to_string(),
    };
    WorkError::new(
        "PackageManagerFailed",
        format!(
            "{tool} {status}: {}",
            error_lines(result, "no error message")
        ),
    )
}

/// The package manager's own error lines (or the last lines), joined.
fn error_lines(result: &RunResult, fallback: &str) -> String {
    let errors: Vec<&str> = result
        .tail
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("E:") || l.starts_with("Error") || l.starts_with("dpkg: error"))
        .collect();
    let chosen: Vec<&str> = if errors.is_empty() {
        result
            .tail
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|l| l.trim())
            .collect()
    } else {
        errors
    };
    let text = chosen.join(" | ");
    if text.is_empty() {
        fallback.to_string()
    } else if text.len() > 2000 {
        format!("{}…", &text[..text.floor_char_boundary(2000)])
    } else {
        text
    }
}
