//! apt/dpkg: inventory from `dpkg-query` and apt's own upgrade simulation, CVE ids from the
//! candidates' changelogs when the `.deb` is on the machine, operations through `apt-get`.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;

use crate::inventory::{Inventory, Package, Update, UpdateKind};
use crate::runner::{Runner, argv};
use crate::spec::Family;

use super::{Op, WorkCtx, WorkError, classify};

/// What apt prints while it waits for the dpkg lock.
const LOCK_MARKERS: &[&str] = &["Could not get lock", "Waiting for cache lock"];

/// apt-get's messages, and what they mean.
const FAILURES: &[(&str, &str)] = &[
    ("Could not get lock", "LockHeld"),
    ("Unable to acquire the dpkg frontend lock", "LockHeld"),
    ("Unable to locate package", "PackageNotFound"),
    ("has no installation candidate", "PackageNotFound"),
    ("was not found", "PackageNotFound"),
    ("Couldn't find any package", "PackageNotFound"),
    ("No space left on device", "DiskFull"),
    ("You don't have enough free space", "DiskFull"),
    ("dpkg was interrupted", "Interrupted"),
    ("Unmet dependencies", "DependencyProblem"),
    ("unmet dependencies", "DependencyProblem"),
    ("held broken packages", "DependencyProblem"),
    ("dependency problems", "DependencyProblem"),
    ("Broken packages", "DependencyProblem"),
];

#[derive(Debug, Clone)]
pub struct Apt {
    runner: Runner,
}

impl Apt {
    pub fn new(runner: Runner) -> Apt {
        Apt { runner }
    }

    pub fn reboot_required(&self) -> bool {
        self.runner.host_path("/var/run/reboot-required").exists()
            || self.runner.host_path("/run/reboot-required").exists()
    }

    pub async fn audit(&self) -> String {
        match self.runner.capture(&argv(["dpkg", "--audit"])).await {
            Ok((_, out, err)) => {
                let text = String::from_utf8_lossy(&out).trim().to_string();
                if text.is_empty() && err.trim().is_empty() {
                    "dpkg --audit finds nothing wrong".into()
                } else {
                    format!("dpkg --audit: {} {}", text, err.trim())
                }
            }
            Err(e) => format!("dpkg --audit could not run: {e}"),
        }
    }

    async fn output(&self, args: &[&str]) -> Result<String, String> {
        let (code, out, err) = self
            .runner
            .capture(&argv(args.iter().copied()))
            .await
            .map_err(|e| format!("{}: {e}", args[0]))?;
        if code != Some(0) {
            return Err(format!("{} failed: {}", args.join(" "), err.trim()));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    pub async fn scan(&self) -> Result<Inventory, String> {
        let installed_text = self
            .output(&[
                "dpkg-query",
                "-W",
                "-f=${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
            ])
            .await?;
        let mut installed = parse_dpkg_query(&installed_text);
        for p in &mut installed {
            p.install_time = self.install_time(p);
        }
        // Debug::NoLocking: a scan must work while an install holds the lock.
        let sim = self
            .output(&["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"])
            .await?;
        let mut updates = parse_simulation(&sim);
        self.add_changelog_cves(&mut updates).await;
        let names: BTreeSet<&str> = installed.iter().map(|p| p.name.as_str()).collect();
        let available = match self.output(&["apt-cache", "dumpavail"]).await {
            Ok(text) => parse_dumpavail(&text)
                .into_iter()
                .filter(|p| !names.contains(p.name.as_str()))
                .collect(),
            Err(e) => {
                tracing::warn!("listing available packages: {e}");
                vec![]
            }
        };
        Ok(Inventory {
            installed,
            available,
            updates,
        })
    }

    /// dpkg keeps no install time; the file list's change time is when it was last unpacked.
    fn install_time(&self, p: &Package) -> Option<String> {
        let info = "/var/lib/dpkg/info";
        let candidates = [
            format!("{info}/{}.list", p.name),
            format!("{info}/{}:{}.list", p.name, p.architecture.as_deref()?),
        ];
        let meta = candidates
            .iter()
            .find_map(|c| std::fs::metadata(self.runner.host_path(c)).ok())?;
        let modified = meta.modified().ok()?;
        let ts = jiff::Timestamp::try_from(modified).ok()?;
        Some(osm_core::time::format_rfc3339(ts))
    }

    /// CVE ids named by the changelog entries between the installed version and the
    /// candidate, for candidates whose `.deb` is local (a `file:` repository or apt's cache).
    async fn add_changelog_cves(&self, updates: &mut [Update]) {
        if updates.is_empty() {
            return;
        }
        let mut args = vec![
            "apt-get".to_string(),
            "--print-uris".into(),
            "-o".into(),
            "Debug::NoLocking=1".into(),
            "download".into(),
        ];
        args.extend(
            updates
                .iter()
                .map(|u| format!("{}={}", u.name, u.available_version)),
        );
        let Ok((Some(0), out, _)) = self.runner.capture(&args).await else {
            return;
        };
        let local: HashMap<String, String> = parse_print_uris(&String::from_utf8_lossy(&out))
            .into_iter()
            .filter_map(|(uri, file)| {
                let path = match uri.strip_prefix("file:") {
                    Some(p) => format!("/{}", p.trim_start_matches('/')),
                    None => format!("/var/cache/apt/archives/{file}"),
                };
                self.runner
                    .host_path(&path)
                    .is_file()
                    .then_some((file, path))
            })
            .collect();
        for u in updates.iter_mut() {
            let file_prefix = format!("{}_", u.name);
            let Some(path) = local.iter().find_map(|(file, path)| {
                (file.starts_with(&file_prefix)
                    && file.contains(&u.available_version.replace(':', "%3a")))
                .then_some(path)
            }) else {
                continue;
            };
            if let Some(changelog) = self.read_changelog(path, &u.name).await {
                u.cves = cves_since(&changelog, &u.installed_version);
            }
        }
    }

    async fn read_changelog(&self, deb: &str, name: &str) -> Option<String> {
        let (code, tar_bytes, _) = self
            .runner
            .capture(&argv(["dpkg-deb", "--fsys-tarfile", deb]))
            .await
            .ok()?;
        if code != Some(0) {
            return None;
        }
        let wanted = [
            format!("usr/share/doc/{name}/changelog.Debian.gz"),
            format!("usr/share/doc/{name}/changelog.gz"),
        ];
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        for entry in archive.entries().ok()? {
            let mut entry = entry.ok()?;
            let path = entry.path().ok()?.to_string_lossy().into_owned();
            if wanted.iter().any(|w| path.trim_start_matches("./") == w) {
                let mut gz = Vec::new();
                entry.read_to_end(&mut gz).ok()?;
                let mut text = String::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_string(&mut text)
                    .ok()?;
                return Some(text);
            }
        }
        None
    }

    pub async fn execute(&self, op: &Op, ctx: &WorkCtx) -> Result<(), WorkError> {
        let lock = format!("DPkg::Lock::Timeout={}", ctx.lock_wait.as_secs());
        let base = |verb: &[&str]| -> Vec<String> {
            let mut v = argv(["apt-get", "-y", "-q", "-o", &lock]);
            v.extend(argv([
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
            ]));
            v.extend(argv(verb.iter().copied()));
            v
        };
        let names = |specs: &[crate::spec::PackageSpec]| -> Vec<String> {
            specs.iter().map(|s| s.argument(Family::Deb)).collect()
        };
        let argv_final = match op {
            Op::Remove(specs) => {
                let mut v = base(&["remove"]);
                v.extend(names(specs));
                v
            }
            Op::Install(specs) | Op::Update(specs) => {
                self.refresh(ctx).await?;
                let mut v = if matches!(op, Op::Install(_)) {
                    base(&["install"])
                } else {
                    base(&["install", "--only-upgrade"])
                };
                v.extend(names(specs));
                v
            }
            Op::UpdateAll(None) => {
                self.refresh(ctx).await?;
                base(&["upgrade", "--with-new-pkgs"])
            }
            Op::UpdateAll(Some(kind)) => {
                self.refresh(ctx).await?;
                let sim = self
                    .output(&["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"])
                    .await
                    .map_err(|e| WorkError::new("PackageManagerFailed", e))?;
                let chosen: Vec<String> = parse_simulation(&sim)
                    .into_iter()
                    .filter(|u| u.update_type == *kind)
                    .map(|u| u.name)
                    .collect();
                if chosen.is_empty() {
                    ctx.say(format!("no {kind:?} updates are available: nothing to do"));
                    return Ok(());
                }
                ctx.say(format!("{kind:?} updates: {}", chosen.join(" ")));
                let mut v = base(&["install", "--only-upgrade"]);
                v.extend(chosen);
                v
            }
        };
        ctx.safe_point().await?;
        let result = ctx.run(&argv_final, LOCK_MARKERS).await?;
        if result.success() {
            Ok(())
        } else {
            Err(classify("apt-get", &result, ctx.lock_wait, FAILURES))
        }
    }

    /// `apt-get update`; a failure is logged, not fatal (the lists on disk still serve).
    async fn refresh(&self, ctx: &WorkCtx) -> Result<(), WorkError> {
        let lock = format!("DPkg::Lock::Timeout={}", ctx.lock_wait.as_secs());
        let r = ctx
            .run(
                &argv(["apt-get", "-q", "-o", &lock, "update"]),
                LOCK_MARKERS,
            )
            .await?;
        if !r.success() {
            ctx.say("apt-get update failed; going on with the package lists on disk");
        }
        ctx.safe_point().await
    }
}

/// Installed packages from `dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t…'`.
pub fn parse_dpkg_query(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (status, name, version, arch) = (f.next()?, f.next()?, f.next()?, f.next()?);
            // Wanted state (u, i, h, r, p) then current state: only fully installed ones.
            (status.as_bytes().get(1) == Some(&b'i')).then(|| Package {
                name: name.to_string(),
                version: version.to_string(),
                architecture: Some(arch.to_string()),
                kind: Some("deb".into()),
                install_time: None,
            })
        })
        .collect()
}

/// Upgrades from `apt-get -s dist-upgrade`: `Inst NAME [OLD] (NEW RELEASES [ARCH])` where
/// RELEASES is `Origin:Version/Archive, …`.
pub fn parse_simulation(text: &str) -> Vec<Update> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let rest = rest.strip_prefix('[')?;
            let (old, rest) = rest.split_once("] (")?;
            let inner = rest.strip_suffix(')')?;
            let (new, rest) = inner.split_once(' ').unwrap_or((inner, ""));
            let (releases, arch) = match rest.rfind(" [") {
                Some(i) => (&rest[..i], rest[i + 2..].strip_suffix(']')),
                None if rest.starts_with('[') => ("", rest[1..].strip_suffix(']')),
                None => (rest, None),
            };
            Some(Update {
                name: name.to_string(),
                architecture: arch.map(str::to_string),
                installed_version: old.to_string(),
                available_version: new.to_string(),
                update_type: release_kind(releases),
                cves: vec![],
                advisories: vec![],
            })
        })
        .collect()
}

/// SECURITY when any source is a security archive or origin; ENHANCEMENT for backports;
/// BUG for the rest of a distribution's archives (stable releases only take fixes); OTHER
/// when apt does not say where the version comes from.
pub fn release_kind(releases: &str) -> UpdateKind {
    let r = releases.to_ascii_lowercase();
    if r.trim().is_empty() {
        UpdateKind::Other
    } else if r.contains("-security") || r.contains("security:") || r.contains("security/") {
        UpdateKind::Security
    } else if r.contains("-backports") {
        UpdateKind::Enhancement
    } else {
        UpdateKind::Bug
    }
}

/// `'URI' FILE SIZE HASH` lines of `apt-get --print-uris download`.
pub fn parse_print_uris(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix('\'')?;
            let (uri, rest) = l.split_once("' ")?;
            let file = rest.split_whitespace().next()?;
            Some((uri.to_string(), file.to_string()))
        })
        .collect()
}

/// CVE ids in the changelog entries newer than `installed` (entries come newest first).
pub fn cves_since(changelog: &str, installed: &str) -> Vec<String> {
    let mut cves = BTreeSet::new();
    for line in changelog.lines() {
        let is_header = !line.starts_with(' ') && line.contains(" (") && line.contains(';');
        if is_header {
            let version = line
                .split_once(" (")
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(v, _)| v);
            if version == Some(installed) {
                break;
            }
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(pos) = line[i..].find("CVE-") {
            let start = i + pos;
            let mut end = start + 4;
            let digits = |from: usize| {
                bytes[from..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count()
            };
            let year = digits(end);
            if year == 4 && bytes.get(end + 4) == Some(&b'-') {
                let seq = digits(end + 5);
                if seq >= 4 {
                    end += 5 + seq;
                    cves.insert(line[start..end].to_string());
                }
            }
            i = start + 4;
        }
    }
    cves.into_iter().collect()
}

/// Candidate packages from `apt-cache dumpavail` (name, version, architecture).
pub fn parse_dumpavail(text: &str) -> Vec<Package> {
    let mut out = vec![];
    let (mut name, mut version, mut arch) = (None, None, None);
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if let (Some(n), Some(v)) = (name.take(), version.take()) {
                out.push(Package {
                    name: n,
                    version: v,
                    architecture: arch.take(),
                    kind: Some("deb".into()),
                    install_time: None,
                });
            }
            arch = None;
        } else if let Some(v) = line.strip_prefix("Package: ") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version: ") {
            version = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Architecture: ") {
            arch = Some(v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dpkg_query() {
        let text = "ii \tbash\t5.2.15-2+b7\tamd64\nrc \told\t1.0\tamd64\nhi \tlibc6\t2.36-9+deb12u4\tamd64\niU \thalf\t1\tall\n";
        let p = parse_dpkg_query(text);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bash", "libc6"]);
        assert_eq!(p[0].version, "5.2.15-2+b7");
        assert_eq!(p[0].architecture.as_deref(), Some("amd64"));
    }

    #[test]
    fn parses_the_upgrade_simulation() {
        // Lines as apt 2.6 prints them (Debian 12 and a local repository).
        let text = "Reading package lists...\n\
Inst libssl3 [3.0.15-1~deb12u1] (3.0.16-1~deb12u1 Debian-Security:12/stable-security [amd64])\n\
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable, Debian:12.11/stable [all])\n\
Inst osm-demo [1.0] (1.1 osmtest:osmtest-security [all])\n\
Inst osm-tool [1.0] (1.1 osmtest:osmtest-updates [all])\n\
Inst newdep (2.0 Debian:12.11/stable [amd64])\n\
Inst foo [1.0] (1.2 Debian Backports:stable-backports/stable-backports [amd64])\n\
Inst bar [1] (2 [amd64])\n\
Conf libssl3 (3.0.16-1~deb12u1 Debian-Security:12/stable-security [amd64])\n";
        let u = parse_simulation(text);
        let got: Vec<(&str, &str, &str, UpdateKind, Option<&str>)> = u
            .iter()
            .map(|u| {
                (
                    u.name.as_str(),
                    u.installed_version.as_str(),
                    u.available_version.as_str(),
                    u.update_type,
                    u.architecture.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "libssl3",
                    "3.0.15-1~deb12u1",
                    "3.0.16-1~deb12u1",
                    UpdateKind::Security,
                    Some("amd64")
                ),
                (
                    "tzdata",
                    "2024a-0+deb12u1",
                    "2025b-0+deb12u1",
                    UpdateKind::Bug,
                    Some("all")
                ),
                ("osm-demo", "1.0", "1.1", UpdateKind::Security, Some("all")),
                ("osm-tool", "1.0", "1.1", UpdateKind::Bug, Some("all")),
                ("foo", "1.0", "1.2", UpdateKind::Enhancement, Some("amd64")),
                ("bar", "1", "2", UpdateKind::Other, Some("amd64")),
            ]
        );
        assert_eq!(
            release_kind("Ubuntu:22.04/jammy-security"),
            UpdateKind::Security
        );
    }

    #[test]
    fn cves_come_from_entries_newer_than_the_installed_version() {
        let changelog = "openssl (3.0.16-1~deb12u1) bookworm-security; urgency=medium\n\n  * Fix CVE-2024-13176 and CVE-2024-9143.\n  * Not a CVE-12-1 nor CVE-2024-12.\n\n -- X <x@example.org>  Mon, 01 Jan 2025 00:00:00 +0000\n\nopenssl (3.0.15-1~deb12u1) bookworm; urgency=medium\n\n  * CVE-2023-0001 (already installed)\n\n -- X <x@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n\nopenssl (3.0.14-1) bookworm; urgency=medium\n\n  * CVE-2022-0002\n";
        assert_eq!(
            cves_since(changelog, "3.0.15-1~deb12u1"),
            ["CVE-2024-13176", "CVE-2024-9143"]
        );
        assert_eq!(cves_since(changelog, "3.0.14-1").len(), 3);
    }

    #[test]
    fn parses_print_uris_and_dumpavail() {
        let uris = "'file:/srv/repo/pool/sec/osm-demo_1.1_all.deb' osm-demo_1.1_all.deb 924 SHA256:4a1f\n'http://deb.debian.org/debian/pool/main/t/tzdata/tzdata_2025b-0%2bdeb12u1_all.deb' tzdata_2025b-0+deb12u1_all.deb 255 SHA256:aa\n";
        let u = parse_print_uris(uris);
        assert_eq!(u[0].0, "file:/srv/repo/pool/sec/osm-demo_1.1_all.deb");
        assert_eq!(u[1].1, "tzdata_2025b-0+deb12u1_all.deb");
        let avail = "Package: a\nVersion: 1\nArchitecture: amd64\nDescription: x\n more\n\nPackage: b\nVersion: 2\n";
        let p = parse_dumpavail(avail);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].name, "b");
        assert_eq!(p[1].architecture, None);
    }
}
