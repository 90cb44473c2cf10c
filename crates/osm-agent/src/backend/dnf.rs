//! dnf (falling back to yum): inventory from `rpm -qa`, `check-update` and `updateinfo`
//! (advisories, their types and CVEs), operations through `dnf -y`.
//!
//! With `--root DIR` and no dnf inside DIR, the host's dnf drives DIR with `--installroot`
//! (and rpm with `--root`) instead of entering it with chroot.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::inventory::{Advisory, Inventory, Package, Update, UpdateKind};
use crate::runner::Runner;
use crate::spec::Family;

use super::{Op, WorkCtx, WorkError, classify};

const LOCK_MARKERS: &[&str] = &[
    "Waiting for process with pid",
    "is currently holding the yum lock",
    "Existing lock",
];

const FAILURES: &[(&str, &str)] = &[
    ("Waiting for process with pid", "LockHeld"),
    ("is currently holding the yum lock", "LockHeld"),
    ("No match for argument", "PackageNotFound"),
    ("Unable to find a match", "PackageNotFound"),
    ("No package ", "PackageNotFound"),
    ("No space left on device", "DiskFull"),
    ("Disk Requirements", "DiskFull"),
    ("nothing provides", "DependencyProblem"),
    ("conflicting requests", "DependencyProblem"),
    ("Depsolve Error", "DependencyProblem"),
    ("Problem: ", "DependencyProblem"),
    ("Requires:", "DependencyProblem"),
];

#[derive(Debug, Clone)]
pub struct Dnf {
    /// Runs the commands: inside the managed root, or on the host with `--installroot`.
    runner: Runner,
    installroot: Option<PathBuf>,
    program: &'static str,
}

impl Dnf {
    pub fn new(runner: Runner, program: &'static str) -> Dnf {
        match runner.root() {
            Some(root) if !runner.has_program(program) => Dnf {
                installroot: Some(root.to_path_buf()),
                runner: Runner::new(None),
                program,
            },
            _ => Dnf {
                runner,
                installroot: None,
                program,
            },
        }
    }

    pub fn program(&self) -> &'static str {
        self.program
    }

    /// `dnf ARGS…` with the install root and quiet, non-interactive options.
    fn dnf(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![self.program.to_string()];
        if let Some(r) = &self.installroot {
            v.push(format!("--installroot={}", r.display()));
        }
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn rpm(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec!["rpm".to_string()];
        if let Some(r) = &self.installroot {
            v.push("--root".into());
            v.push(r.display().to_string());
        }
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn managed_path(&self, path: &str) -> PathBuf {
        match &self.installroot {
            Some(r) => r.join(path.trim_start_matches('/')),
            None => self.runner.host_path(path),
        }
    }

    pub async fn reboot_required(&self) -> bool {
        if self.managed_path("/var/run/reboot-required").exists() {
            return true;
        }
        if self.installroot.is_none() && self.runner.has_program("needs-restarting") {
            // Exit status 1 means a reboot is needed.
            let cmd = vec!["needs-restarting".to_string(), "-r".into()];
            return matches!(self.runner.capture(&cmd).await, Ok((Some(1), _, _)));
        }
        false
    }

    pub async fn audit(&self) -> String {
        match self.runner.capture(&self.dnf(&["-q", "check"])).await {
            Ok((code, out, err)) => {
                let text = format!("{} {}", String::from_utf8_lossy(&out).trim(), err.trim());
                if code == Some(0) && text.trim().is_empty() {
                    format!("{} check finds nothing wrong", self.program)
                } else {
                    format!("{} check: {}", self.program, text.trim())
                }
            }
            Err(e) => format!("{} check could not run: {e}", self.program),
        }
    }

    async fn output(&self, argv: Vec<String>, ok_codes: &[i32]) -> Result<String, String> {
        let (code, out, err) = self
            .runner
            .capture(&argv)
            .await
            .map_err(|e| format!("{}: {e}", argv[0]))?;
        if !code.is_some_and(|c| ok_codes.contains(&c)) {
            return Err(format!("{} failed: {}", argv.join(" "), err.trim()));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    pub async fn scan(&self) -> Result<Inventory, String> {
        let installed = parse_rpm_qa(
            &self
                .output(
                    self.rpm(&[
                        "-qa",
                        "--qf",
                        "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{INSTALLTIME}\\n",
                    ]),
                    &[0],
                )
                .await?,
        );
        // `check-update` exits 100 when updates exist.
        let check = self
            .output(self.dnf(&["-q", "check-update"]), &[0, 100])
            .await?;
        let advisories = self
            .output(self.dnf(&["-q", "updateinfo", "list", "--updates"]), &[0])
            .await
            .unwrap_or_default();
        let cves = self
            .output(
                self.dnf(&["-q", "updateinfo", "list", "--updates", "--with-cve"]),
                &[0],
            )
            .await
            .unwrap_or_default();
        let updates = merge_updates(
            &installed,
            &parse_check_update(&check),
            &parse_updateinfo_list(&advisories),
            &parse_updateinfo_list(&cves),
        );
        Ok(Inventory {
            installed,
            available: vec![],
            updates,
        })
    }

    pub async fn execute(&self, op: &Op, ctx: &WorkCtx) -> Result<(), WorkError> {
        let upgrade = if self.program == "yum" {
            "update"
        } else {
            "upgrade"
        };
        let names = |specs: &[crate::spec::PackageSpec]| -> Vec<String> {
            specs.iter().map(|s| s.argument(Family::Rpm)).collect()
        };
        let mut argv = self.dnf(&["-y"]);
        match op {
            Op::Install(specs) => {
                argv.push("install".into());
                argv.extend(names(specs));
            }
            Op::Remove(specs) => {
                argv.push("remove".into());
                argv.extend(names(specs));
            }
            Op::Update(specs) => {
                argv.push(upgrade.into());
                argv.extend(names(specs));
            }
            Op::UpdateAll(None) => argv.push(upgrade.into()),
            Op::UpdateAll(Some(kind)) => {
                let inv = self
                    .scan()
                    .await
                    .map_err(|e| WorkError::new("PackageManagerFailed", e))?;
                let chosen: Vec<String> = inv
                    .updates
                    .into_iter()
                    .filter(|u| u.update_type == *kind)
                    .map(|u| u.name)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if chosen.is_empty() {
                    ctx.say(format!("no {kind:?} updates are available: nothing to do"));
                    return Ok(());
                }
                ctx.say(format!("{kind:?} updates: {}", chosen.join(" ")));
                argv.push(upgrade.into());
                argv.extend(chosen);
            }
        }
        ctx.safe_point().await?;
        let result = ctx.run(&argv, LOCK_MARKERS).await?;
        if result.success() {
            Ok(())
        } else {
            Err(classify(self.program, &result, ctx.lock_wait, FAILURES))
        }
    }
}

/// `rpm -qa --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n'`.
/// Versions drop a zero epoch, as dnf prints them.
pub fn parse_rpm_qa(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, evr, arch, time) = (f.next()?, f.next()?, f.next()?, f.next());
            if name == "gpg-pubkey" {
                return None;
            }
            let install_time = time
                .and_then(|t| t.trim().parse::<i64>().ok())
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(osm_core::time::format_rfc3339);
            Some(Package {
                name: name.to_string(),
                version: evr.strip_prefix("0:").unwrap_or(evr).to_string(),
                architecture: Some(arch.to_string()),
                kind: Some("rpm".into()),
                install_time,
            })
        })
        .collect()
}

/// `dnf check-update`: `name.arch  [epoch:]version-release  repo` rows, until the
/// "Obsoleting Packages" section.
pub fn parse_check_update(text: &str) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for line in text.lines() {
        if line.starts_with("Obsoleting") || line.starts_with("Security:") {
            break;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 || line.starts_with(' ') {
            continue;
        }
        let Some((name, arch)) = f[0].rsplit_once('.') else {
            continue;
        };
        if !f[1].contains('-') {
            continue;
        }
        out.push((name.to_string(), arch.to_string(), f[1].to_string()));
    }
    out
}

/// One row of `dnf updateinfo list` (`ID TYPE NEVRA`); with `--with-cve` the id is a CVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInfoRow {
    pub id: String,
    pub kind: UpdateKind,
    /// The severity of security advisories (`Important/Sec.` → `Important`).
    pub severity: Option<String>,
    pub name: String,
    pub arch: String,
}

pub fn parse_updateinfo_list(text: &str) -> Vec<UpdateInfoRow> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (kind, severity) = match f[1] {
                t if t.ends_with("Sec.") || t == "security" => (
                    UpdateKind::Security,
                    t.strip_suffix("/Sec.").map(str::to_string),
                ),
                "bugfix" => (UpdateKind::Bug, None),
                "enhancement" => (UpdateKind::Enhancement, None),
                _ => (UpdateKind::Other, None),
            };
            let (name, arch) = split_nevra(f[2])?;
            Some(UpdateInfoRow {
                id: f[0].to_string(),
                kind,
                severity,
                name,
                arch,
            })
        })
        .collect()
}

/// `name-[epoch:]version-release.arch` → (name, arch).
fn split_nevra(nevra: &str) -> Option<(String, String)> {
    let (nevr, arch) = nevra.rsplit_once('.')?;
    let (nev, _release) = nevr.rsplit_once('-')?;
    let (name, _version) = nev.rsplit_once('-')?;
    Some((name.to_string(), arch.to_string()))
}

/// Updates from `check-update`, typed by the most severe advisory naming them.
pub fn merge_updates(
    installed: &[Package],
    available: &[(String, String, String)],
    advisories: &[UpdateInfoRow],
    cves: &[UpdateInfoRow],
) -> Vec<Update> {
    let installed: BTreeMap<(&str, &str), &str> = installed
        .iter()
        .map(|p| {
            (
                (p.name.as_str(), p.architecture.as_deref().unwrap_or("")),
                p.version.as_str(),
            )
        })
        .collect();
    available
        .iter()
        .map(|(name, arch, version)| {
            let matches = |r: &&UpdateInfoRow| &r.name == name && &r.arch == arch;
            let mine: Vec<&UpdateInfoRow> = advisories.iter().filter(matches).collect();
            let kind = mine
                .iter()
                .map(|r| r.kind)
                .min()
                .unwrap_or(UpdateKind::Other);
            let mut seen = BTreeSet::new();
            let advisories = mine
                .iter()
                .filter(|r| seen.insert(r.id.clone()))
                .map(|r| Advisory {
                    name: r.id.clone(),
                    kind: Some(
                        match r.kind {
                            UpdateKind::Security => "SECURITY",
                            UpdateKind::Bug => "BUG",
                            UpdateKind::Enhancement => "ENHANCEMENT",
                            UpdateKind::Other => "OTHER",
                        }
                        .into(),
                    ),
                    synopsis: r.severity.clone(),
                    issued: None,
                })
                .collect();
            let cves: BTreeSet<String> = cves
                .iter()
                .filter(matches)
                .filter(|r| r.id.starts_with("CVE-"))
                .map(|r| r.id.clone())
                .collect();
            Update {
                name: name.clone(),
                architecture: Some(arch.clone()),
                installed_version: installed
                    .get(&(name.as_str(), arch.as_str()))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                available_version: version.clone(),
                update_type: kind,
                cves: cves.into_iter().collect(),
                advisories,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rpm_qa_and_check_update() {
        let qa = "bash\t0:5.1.8-9.el9\tx86_64\t1714000000\ngpg-pubkey\t0:8d8b756f-629e59ec\t(none)\t1\nopenssl\t1:3.0.7-25.el9\tx86_64\t1714000001\n";
        let p = parse_rpm_qa(qa);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].version, "5.1.8-9.el9");
        assert_eq!(p[1].version, "1:3.0.7-25.el9");
        assert_eq!(
            p[0].install_time.as_deref(),
            Some("2024-04-24T23:06:40.000Z")
        );
        let check = "\nopenssl.x86_64        1:3.0.7-27.el9       ol9_baseos_latest\nosm-demo.noarch   1.1-1     osmtest\nObsoleting Packages\nfoo.x86_64 2-1 repo\n";
        assert_eq!(
            parse_check_update(check),
            [
                ("openssl".into(), "x86_64".into(), "1:3.0.7-27.el9".into()),
                ("osm-demo".into(), "noarch".into(), "1.1-1".into())
            ]
        );
    }

    #[test]
    fn types_updates_by_their_advisories() {
        let adv = "ELSA-2024-1234 Important/Sec. openssl-1:3.0.7-27.el9.x86_64\nELBA-2024-9 bugfix     openssl-1:3.0.7-27.el9.x86_64\nELBA-2024-7 bugfix tzdata-2024b-1.el9.noarch\n";
        let cve = "CVE-2024-0727 Important/Sec. openssl-1:3.0.7-27.el9.x86_64\nCVE-2023-6237 Moderate/Sec. openssl-1:3.0.7-27.el9.x86_64\n";
        let installed = parse_rpm_qa("openssl\t1:3.0.7-25.el9\tx86_64\t1\n");
        let avail = vec![
            (
                "openssl".to_string(),
                "x86_64".to_string(),
                "1:3.0.7-27.el9".to_string(),
            ),
            (
                "tzdata".to_string(),
                "noarch".to_string(),
                "2024b-1.el9".to_string(),
            ),
            ("other".to_string(), "noarch".to_string(), "2-1".to_string()),
        ];
        let u = merge_updates(
            &installed,
            &avail,
            &parse_updateinfo_list(adv),
            &parse_updateinfo_list(cve),
        );
        assert_eq!(u[0].update_type, UpdateKind::Security);
        assert_eq!(u[0].installed_version, "1:3.0.7-25.el9");
        assert_eq!(u[0].cves, ["CVE-2023-6237", "CVE-2024-0727"]);
        assert_eq!(u[0].advisories.len(), 2);
        assert_eq!(u[0].advisories[0].name, "ELSA-2024-1234");
        assert_eq!(u[0].advisories[0].synopsis.as_deref(), Some("Important"));
        assert_eq!(u[1].update_type, UpdateKind::Bug);
        assert_eq!(u[2].update_type, UpdateKind::Other);
        assert!(u[2].advisories.is_empty());
    }
}
