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
        // Own runner: with an install root, dnf runs on the host, not inside the root.
        let result = ctx.run_with(&self.runner, &argv, LOCK_MARKERS).await?;
        if result.success() {
            Ok(())
        } else {
            Err(classify(self.program, &result, ctx.lock_wait, FAILURES))
        }
    }
}

/// `rpm -qa --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n'`.
/// Versions drop a zero epoch, as dnf prints them. Install-only packages (kernels) can be
/// installed in several versions at once; the inventory keys packages by name and
/// architecture, so each is reported once, in its newest version.
pub fn parse_rpm_qa(text: &str) -> Vec<Package> {
    use osm_core::osv::VersionScheme;
    let mut newest: std::collections::BTreeMap<(String, Option<String>), Package> =
        Default::default();
    for p in parse_rpm_qa_rows(text) {
        let key = (p.name.clone(), p.architecture.clone());
        match newest.get(&key) {
            Some(seen)
                if VersionScheme::Rpm.compare(&seen.version, &p.version)
                    != Some(std::cmp::Ordering::Less) => {}
            _ => {
                newest.insert(key, p);
            }
        }
    }
    newest.into_values().collect()
}

fn parse_rpm_qa_rows(text: &str) -> Vec<Package> {
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
    fn several_installed_kernels_are_reported_once_in_the_newest_version() {
        let text = "kernel\t0:5.14.0-362.8.1.el9_3\tx86_64\t1700000000\n\
                    kernel\t0:5.14.0-427.13.1.el9_4\tx86_64\t1710000000\n\
                    kernel\t0:5.14.0-70.13.1.el9_0\tx86_64\t1690000000\n\
                    glibc\t0:2.34-83.el9\ti686\t1690000000\n\
                    glibc\t0:2.34-83.el9\tx86_64\t1690000000\n";
        let p = parse_rpm_qa(text);
        let kernels: Vec<&str> = p
            .iter()
            .filter(|p| p.name == "kernel")
            .map(|p| p.version.as_str())
            .collect();
        assert_eq!(kernels, ["5.14.0-427.13.1.el9_4"]);
        assert_eq!(p.iter().filter(|p| p.name == "glibc").count(), 2);
    }

    // Outputs of the real rpm 4.18 and dnf 4.14, captured by tests/data/dnf/capture.sh.
    const RPM_QA: &str = include_str!("../../tests/data/dnf/rpm-qa.txt");
    const CHECK_UPDATE: &str = include_str!("../../tests/data/dnf/check-update.txt");
    const UPDATEINFO: &str = include_str!("../../tests/data/dnf/updateinfo-list.txt");
    const UPDATEINFO_CVE: &str = include_str!("../../tests/data/dnf/updateinfo-list-cve.txt");
    const INSTALL_MISSING: &str = include_str!("../../tests/data/dnf/install-missing.txt");

    #[test]
    fn parses_rpm_qa_and_check_update() {
        let p = parse_rpm_qa(RPM_QA);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["osm-demo", "osm-lib", "osm-old", "osm-plain", "osm-tool"]
        );
        assert_eq!(p[0].version, "1.0-1");
        assert_eq!(p[0].architecture.as_deref(), Some("noarch"));
        assert_eq!(p[0].kind.as_deref(), Some("rpm"));
        // A non-zero epoch is kept, as dnf prints it.
        assert_eq!(p[1].version, "1:2.0-1");
        assert_eq!(p[1].architecture.as_deref(), Some("x86_64"));
        // INSTALLTIME (seconds) as RFC 3339 with milliseconds.
        let seconds: i64 = RPM_QA
            .lines()
            .next()
            .unwrap()
            .rsplit('\t')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let time = p[0].install_time.as_deref().unwrap();
        assert!(time.ends_with(".000Z"), "{time}");
        assert_eq!(
            time.parse::<jiff::Timestamp>().unwrap().as_second(),
            seconds
        );
        // The key pseudo-package rpm lists once a key is imported is no package.
        assert!(parse_rpm_qa("gpg-pubkey\t0:8d8b756f-629e59ec\t(none)\t1\n").is_empty());

        // The leading blank line, padded columns and the "Obsoleting Packages" section
        // (osm-new replacing osm-old) of the real output.
        assert_eq!(
            parse_check_update(CHECK_UPDATE),
            [
                ("osm-demo".into(), "noarch".into(), "1.1-1".into()),
                ("osm-lib".into(), "x86_64".into(), "1:2.1-1".into()),
                ("osm-plain".into(), "noarch".into(), "1.1-1".into()),
                ("osm-tool".into(), "noarch".into(), "1.1-1".into()),
            ]
        );
    }

    #[test]
    fn types_updates_by_their_advisories() {
        let installed = parse_rpm_qa(RPM_QA);
        let u = merge_updates(
            &installed,
            &parse_check_update(CHECK_UPDATE),
            &parse_updateinfo_list(UPDATEINFO),
            &parse_updateinfo_list(UPDATEINFO_CVE),
        );
        let by_name = |n: &str| u.iter().find(|u| u.name == n).unwrap();
        let demo = by_name("osm-demo");
        assert_eq!(demo.update_type, UpdateKind::Security);
        assert_eq!(demo.installed_version, "1.0-1");
        assert_eq!(demo.available_version, "1.1-1");
        assert_eq!(demo.cves, ["CVE-2024-12345", "CVE-2024-23456"]);
        assert_eq!(demo.advisories.len(), 1);
        assert_eq!(demo.advisories[0].name, "OSMSA-2024-0001");
        assert_eq!(demo.advisories[0].kind.as_deref(), Some("SECURITY"));
        assert_eq!(demo.advisories[0].synopsis.as_deref(), Some("Important"));
        let tool = by_name("osm-tool");
        assert_eq!(tool.update_type, UpdateKind::Bug);
        assert_eq!(tool.advisories[0].name, "OSMBA-2024-0002");
        assert!(tool.cves.is_empty());
        let lib = by_name("osm-lib");
        assert_eq!(lib.update_type, UpdateKind::Enhancement);
        assert_eq!(lib.installed_version, "1:2.0-1");
        assert_eq!(lib.available_version, "1:2.1-1");
        assert_eq!(lib.advisories[0].name, "OSMEA-2024-0003");
        let plain = by_name("osm-plain");
        assert_eq!(plain.update_type, UpdateKind::Other);
        assert!(plain.advisories.is_empty());
        assert_eq!(u.len(), 4);
    }

    #[test]
    fn advisory_rows_name_package_and_arch() {
        let rows = parse_updateinfo_list(UPDATEINFO);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            UpdateInfoRow {
                id: "OSMEA-2024-0003".into(),
                kind: UpdateKind::Enhancement,
                severity: None,
                name: "osm-lib".into(),
                arch: "x86_64".into(),
            }
        );
    }

    #[test]
    fn a_missing_package_is_reported_as_not_found() {
        let result = crate::runner::RunResult {
            code: Some(1),
            tail: INSTALL_MISSING.lines().map(str::to_string).collect(),
            lock_timed_out: false,
        };
        let e = classify("dnf", &result, std::time::Duration::from_secs(3), FAILURES);
        assert_eq!(e.code, "PackageNotFound");
        assert!(e.message.contains("osm-nonexistent"), "{}", e.message);
    }
}
