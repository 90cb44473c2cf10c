//! The package inventory of a simulated host: generated at enrolment (a few hundred installed
//! packages named like Debian's or Oracle Linux's, available updates, Windows updates), and
//! changed by the work the host runs, each change sent to osmd as a diff.
//!
//! Advisories and CVEs are derived from the package, not drawn at random, so the same update
//! carries the same advisory on every simulated host (as on a real fleet).

use std::collections::BTreeMap;

use osm_core::inventory::{
    Advisory, Changes, FullInventory, InventoryDiff, Package, PackageKey, PackageUpdate,
    UpdateName, WindowsUpdate, package_key,
};
use osm_core::{Installable, UpdateClassification, UpdateType, WorkAction};
use rand::RngExt;

/// Stems of library and tool names; each yields a package per flavour.
const STEMS: &[&str] = &[
    "ssl",
    "xml2",
    "curl",
    "png16",
    "jpeg",
    "tiff",
    "gif",
    "webp",
    "z",
    "bz2",
    "lzma",
    "zstd",
    "pcre2",
    "ffi",
    "gmp",
    "mpfr",
    "nettle",
    "tasn1",
    "idn2",
    "unistring",
    "brotli",
    "uv",
    "event",
    "ev",
    "cap",
    "seccomp",
    "apparmor",
    "selinux",
    "semanage",
    "sepol",
    "audit",
    "pam",
    "crypt",
    "gcrypt",
    "gpg-error",
    "assuan",
    "ksba",
    "npth",
    "ldap",
    "sasl2",
    "gssapi",
    "krb5",
    "keyutils",
    "tirpc",
    "nsl",
    "wrap",
    "blkid",
    "mount",
    "uuid",
    "smartcols",
    "fdisk",
    "ncursesw",
    "tinfo",
    "readline",
    "edit",
    "sqlite3",
    "db5",
    "gdbm",
    "expat",
    "yaml",
    "json-c",
    "jansson",
    "icu",
    "intl",
    "magic",
    "archive",
    "elf",
    "dw",
    "bpf",
    "numa",
    "pci",
    "usb",
    "udev",
    "systemd",
    "dbus",
    "glib2",
    "atomic",
    "stdc++",
    "gcc-s",
    "gomp",
    "ssh2",
    "nghttp2",
    "psl",
    "rtmp",
    "brotlienc",
    "lz4",
    "xxhash",
    "acl",
    "attr",
    "kmod",
    "procps",
    "mnl",
    "nftnl",
    "netfilter",
    "iptc",
    "pcap",
    "sensors",
    "snmp",
    "xslt",
    "freetype",
    "fontconfig",
    "harfbuzz",
    "fribidi",
    "pango",
    "cairo",
    "pixman",
    "x11",
    "xcb",
    "xau",
    "xdmcp",
    "xext",
    "xrender",
    "drm",
    "gbm",
    "wayland",
    "input",
    "evdev",
    "mtdev",
    "wacom",
];

/// Tools every host has.
const TOOLS: &[&str] = &[
    "bash",
    "coreutils",
    "openssl",
    "systemd",
    "curl",
    "tar",
    "gzip",
    "sudo",
    "openssh-server",
    "openssh-clients",
    "python3",
    "perl",
    "vim",
    "nano",
    "less",
    "grep",
    "sed",
    "gawk",
    "findutils",
    "util-linux",
    "iproute2",
    "ca-certificates",
    "tzdata",
    "gnupg2",
    "wget",
    "rsync",
    "cronie",
    "logrotate",
    "rsyslog",
    "dbus",
    "e2fsprogs",
    "passwd",
    "git",
    "htop",
    "jq",
    "unzip",
    "xz",
    "bzip2",
    "file",
    "man-db",
    "bash-completion",
    "chrony",
    "audit",
    "polkit",
    "nginx",
    "postgresql",
    "kernel",
];

/// The family of package manager a simulated Linux host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Deb,
    Rpm,
}

impl Flavour {
    fn package_type(self) -> &'static str {
        match self {
            Flavour::Deb => "deb",
            Flavour::Rpm => "rpm",
        }
    }

    fn architecture(self) -> &'static str {
        match self {
            Flavour::Deb => "amd64",
            Flavour::Rpm => "x86_64",
        }
    }

    fn library(self, stem: &str) -> String {
        match self {
            Flavour::Deb => format!("lib{stem}-{}", stem.len() % 3 + 1),
            Flavour::Rpm => format!("lib{stem}"),
        }
    }

    fn version(self, seed: usize, patch: usize) -> String {
        let (major, minor) = (seed % 5 + 1, seed % 17);
        match self {
            Flavour::Deb => format!("{major}.{minor}.{patch}-1+deb12u{}", seed % 4 + 1),
            Flavour::Rpm => format!("{major}.{minor}.{patch}-{}.el9", seed % 9 + 1),
        }
    }

    /// The advisory an update of package number `seed` belongs to.
    fn advisory(self, seed: usize) -> String {
        match self {
            Flavour::Deb => format!("DSA-{}-1", 5400 + seed),
            Flavour::Rpm => format!("ELSA-2024-{}", 1000 + seed),
        }
    }
}

/// Which distribution simulated Linux hosts run (`--distro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Distro {
    /// Half Debian-like, half Oracle-Linux-like packages, reported as "Simulated Linux 1.0"
    /// (no OSV ecosystem: imported advisories do not apply).
    Mixed,
    /// Debian packages, reported as Debian GNU/Linux 12 (OSV ecosystem Debian:12).
    Debian,
    /// Oracle Linux packages, reported as Oracle Linux Server 9.4 (OSV ecosystem Oracle Linux:9).
    Oracle,
}

/// What the simulated host has and what osmd holds of it.
pub struct SimInventory {
    distro: Distro,
    flavour: Option<Flavour>,
    installed: BTreeMap<String, Package>,
    available: BTreeMap<String, Package>,
    updates: BTreeMap<String, PackageUpdate>,
    windows: BTreeMap<String, WindowsUpdate>,
    /// The revision osmd answered for the last upload (0: nothing sent yet).
    pub revision: i64,
}

fn classify(n: usize, security: usize, rest: usize) -> UpdateClassification {
    if n < security {
        UpdateClassification::Security
    } else if n < security + rest / 2 {
        UpdateClassification::Bug
    } else {
        UpdateClassification::Enhancement
    }
}

/// Whether an update of `class` is one an update-all of `update_type` installs.
fn selects(update_type: UpdateType, class: UpdateClassification) -> bool {
    match update_type {
        UpdateType::All => true,
        UpdateType::Security => class == UpdateClassification::Security,
        UpdateType::Bugfix => class == UpdateClassification::Bug,
        UpdateType::Enhancement => class == UpdateClassification::Enhancement,
        UpdateType::Other => class == UpdateClassification::Other,
        UpdateType::Ksplice => false,
    }
}

impl SimInventory {
    /// A fresh host: `updates` pending, of which a third (at least one) are security updates
    /// with CVEs and an advisory when `vulnerable`, the rest bug fixes and enhancements.
    /// Linux hosts run `distro`.
    pub fn generate_for(
        distro: Distro,
        windows: bool,
        vulnerable: bool,
        updates: usize,
    ) -> SimInventory {
        let mut rng = rand::rng();
        let security = if vulnerable { (updates / 3).max(1) } else { 0 };
        let rest = updates.saturating_sub(security);
        let mut inv = SimInventory {
            distro,
            flavour: None,
            installed: BTreeMap::new(),
            available: BTreeMap::new(),
            updates: BTreeMap::new(),
            windows: BTreeMap::new(),
            revision: 0,
        };
        if windows {
            let first = rng.random_range(0..50usize);
            for n in 0..updates + 8 {
                let seed = first + n;
                let kb = 5_030_000 + seed * 37;
                let class = if n < updates {
                    classify(n, security, rest)
                } else {
                    UpdateClassification::Security
                };
                let w = WindowsUpdate {
                    name: format!("{:08x}-5a1e-4c0d-9e11-{:012x}", 0x6f5a_0000 + seed, kb),
                    display_name: format!(
                        "2024-{:02} Cumulative Update for Windows Server 2022 for x64-based Systems (KB{kb})",
                        seed % 12 + 1
                    ),
                    update_type: class,
                    installed: n >= updates,
                    installable: Some(Installable::Installable),
                    reboot_required: Some(class == UpdateClassification::Security),
                    kb_article_ids: vec![kb.to_string()],
                    description: Some(format!(
                        "Install this update to resolve issues in Windows (KB{kb})."
                    )),
                    size_in_bytes: Some(((seed % 40 + 1) * 25_000_000) as i64),
                };
                inv.windows.insert(w.name.clone(), w);
            }
            return inv;
        }
        let flavour = match distro {
            Distro::Debian => Flavour::Deb,
            Distro::Oracle => Flavour::Rpm,
            Distro::Mixed if rng.random_bool(0.5) => Flavour::Deb,
            Distro::Mixed => Flavour::Rpm,
        };
        inv.flavour = Some(flavour);
        let mut names: Vec<String> = TOOLS.iter().map(|t| t.to_string()).collect();
        for stem in STEMS {
            names.push(flavour.library(stem));
            names.push(format!("{}-dev", flavour.library(stem)));
        }
        // A few hundred of them are installed; the rest could be.
        let installed = rng.random_range(200..=names.len().min(300));
        for (seed, name) in names.iter().enumerate() {
            let p = Package {
                name: name.clone(),
                version: flavour.version(seed, 4),
                architecture: Some(flavour.architecture().into()),
                package_type: Some(flavour.package_type().into()),
                install_time: None,
            };
            if seed < installed {
                inv.installed.insert(p.key(), p);
            } else {
                inv.available.insert(p.key(), p);
            }
        }
        let offset = rng.random_range(0..installed.saturating_sub(updates).max(1));
        for n in 0..updates.min(installed) {
            let seed = offset + n;
            let p = &inv.installed[&package_key(&names[seed], Some(flavour.architecture()))];
            let class = classify(n, security, rest);
            let security_fix = class == UpdateClassification::Security;
            let u = PackageUpdate {
                name: p.name.clone(),
                architecture: p.architecture.clone(),
                installed_version: p.version.clone(),
                available_version: flavour.version(seed, 5),
                update_type: class,
                cves: if security_fix {
                    vec![format!("CVE-2024-{}", 20_000 + seed * 3)]
                } else {
                    vec![]
                },
                advisories: if security_fix {
                    vec![Advisory {
                        name: flavour.advisory(seed),
                        advisory_type: Some(UpdateClassification::Security),
                        synopsis: Some(format!("{}: security update", p.name)),
                        issued: None,
                    }]
                } else {
                    vec![]
                },
                package_type: None,
            };
            inv.updates.insert(u.key(), u);
        }
        inv
    }

    /// The `osName` and `osVersion` the host reports.
    pub fn os(&self) -> (&'static str, &'static str) {
        match (self.flavour, self.distro) {
            (_, Distro::Mixed) => ("Simulated Linux", "1.0"),
            (None, _) => ("Microsoft Windows Server 2022 Standard", "10.0.20348"),
            (Some(_), Distro::Debian) => ("Debian GNU/Linux", "12"),
            (Some(_), Distro::Oracle) => ("Oracle Linux Server", "9.4"),
        }
    }

    /// Everything, for a full upload.
    pub fn full(&self) -> FullInventory {
        FullInventory {
            installed: self.installed.values().cloned().collect(),
            available: self.available.values().cloned().collect(),
            updates: self.updates.values().cloned().collect(),
            windows_updates: self.windows.values().cloned().collect(),
        }
    }

    /// Counts by type of what is pending (the heartbeat facts of agents without inventory).
    pub fn pending(&self) -> [i64; 4] {
        let mut counts = [0i64; 4];
        let classes = self.updates.values().map(|u| u.update_type).chain(
            self.windows
                .values()
                .filter(|w| !w.installed)
                .map(|w| w.update_type),
        );
        for c in classes {
            counts[match c {
                UpdateClassification::Security => 0,
                UpdateClassification::Bug => 1,
                UpdateClassification::Enhancement => 2,
                UpdateClassification::Other => 3,
            }] += 1;
        }
        counts
    }

    /// Applies a succeeded action to the host and returns the diff that tells osmd (against
    /// the revision it last acknowledged).
    pub fn apply(&mut self, action: &WorkAction) -> InventoryDiff {
        let mut installed: Changes<Package, PackageKey> = Changes::default();
        let mut available: Changes<Package, PackageKey> = Changes::default();
        let mut updates: Changes<PackageUpdate, PackageKey> = Changes::default();
        let mut windows: Changes<WindowsUpdate, UpdateName> = Changes::default();
        let flavour = self.flavour.unwrap_or(Flavour::Deb);
        let key_of = |name: &str| PackageKey {
            name: name.to_string(),
            architecture: Some(flavour.architecture().into()),
        };
        match action {
            WorkAction::InstallPackage { names } => {
                for name in names {
                    let key = key_of(name).key();
                    if self.installed.contains_key(&key) {
                        continue;
                    }
                    let p = self.available.remove(&key).unwrap_or_else(|| Package {
                        name: name.clone(),
                        version: flavour.version(name.len(), 0),
                        architecture: Some(flavour.architecture().into()),
                        package_type: Some(flavour.package_type().into()),
                        install_time: None,
                    });
                    let p = Package {
                        install_time: Some(jiff::Timestamp::now()),
                        ..p
                    };
                    available.remove.push(key_of(name));
                    self.installed.insert(key, p.clone());
                    installed.upsert.push(p);
                }
            }
            WorkAction::RemovePackage { names } => {
                for name in names {
                    let key = key_of(name).key();
                    if let Some(p) = self.installed.remove(&key) {
                        installed.remove.push(key_of(name));
                        if self.updates.remove(&key).is_some() {
                            updates.remove.push(key_of(name));
                        }
                        self.available.insert(
                            key,
                            Package {
                                install_time: None,
                                ..p
                            },
                        );
                    }
                }
            }
            WorkAction::UpdatePackage { names } => {
                for name in names {
                    self.upgrade(&key_of(name).key(), &mut installed, &mut updates);
                }
            }
            WorkAction::UpdateAll { update_type } => {
                let keys: Vec<String> = self
                    .updates
                    .iter()
                    .filter(|(_, u)| selects(*update_type, u.update_type))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    self.upgrade(&key, &mut installed, &mut updates);
                }
            }
            WorkAction::InstallWindowsUpdate { names } => {
                for name in names {
                    if let Some(w) = self.windows.get_mut(name).filter(|w| !w.installed) {
                        w.installed = true;
                        windows.upsert.push(w.clone());
                    }
                }
            }
            WorkAction::InstallAllWindowsUpdates { update_type } => {
                for w in self.windows.values_mut() {
                    if !w.installed && selects(*update_type, w.update_type) {
                        w.installed = true;
                        windows.upsert.push(w.clone());
                    }
                }
            }
        }
        InventoryDiff {
            base_revision: self.revision,
            installed: nonempty(installed),
            available: nonempty(available),
            updates: nonempty(updates),
            windows_updates: nonempty(windows),
        }
    }

    /// Installs the pending update of `key`: its new version becomes the installed one.
    fn upgrade(
        &mut self,
        key: &str,
        installed: &mut Changes<Package, PackageKey>,
        updates: &mut Changes<PackageUpdate, PackageKey>,
    ) {
        let Some(u) = self.updates.remove(key) else {
            return;
        };
        let flavour = self.flavour.unwrap_or(Flavour::Deb);
        let p = Package {
            name: u.name.clone(),
            version: u.available_version.clone(),
            architecture: u.architecture.clone(),
            package_type: Some(flavour.package_type().into()),
            install_time: Some(jiff::Timestamp::now()),
        };
        self.installed.insert(key.to_string(), p.clone());
        installed.upsert.push(p);
        updates.remove.push(PackageKey {
            name: u.name,
            architecture: u.architecture,
        });
    }
}

/// A section of a diff, when it changes anything.
fn nonempty<T, K>(c: Changes<T, K>) -> Option<Changes<T, K>> {
    (!c.upsert.is_empty() || !c.remove.is_empty()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_inventories_pass_the_server_checks() {
        for (windows, vulnerable) in [(false, true), (false, false), (true, true)] {
            let inv = SimInventory::generate_for(Distro::Mixed, windows, vulnerable, 10);
            let mut full = inv.full();
            full.check().unwrap();
            let pending = inv.pending();
            assert_eq!(pending.iter().sum::<i64>(), 10);
            assert_eq!(pending[0] > 0, vulnerable);
            if !windows {
                assert!((200..=300).contains(&full.installed.len()));
                let security: Vec<_> = full
                    .updates
                    .iter()
                    .filter(|u| u.update_type == UpdateClassification::Security)
                    .collect();
                assert!(
                    security
                        .iter()
                        .all(|u| !u.cves.is_empty() && u.advisories.len() == 1)
                );
            } else {
                assert!(
                    full.windows_updates
                        .iter()
                        .all(|w| w.kb_article_ids.len() == 1)
                );
            }
        }
    }

    #[test]
    fn debian_hosts_report_debian_and_every_package_can_have_an_update() {
        let inv = SimInventory::generate_for(Distro::Debian, false, false, 400);
        assert_eq!(inv.os(), ("Debian GNU/Linux", "12"));
        assert!(
            inv.installed
                .values()
                .all(|p| p.package_type.as_deref() == Some("deb"))
        );
        assert_eq!(inv.updates.len(), inv.installed.len());
        // What the compatibility tests' OSV fixture names (tests/compat/osv).
        let openssl = inv.updates.values().find(|u| u.name == "openssl").unwrap();
        assert_eq!(openssl.installed_version, "3.2.4-1+deb12u3");
        assert_eq!(openssl.available_version, "3.2.5-1+deb12u3");
        assert_eq!(openssl.update_type, UpdateClassification::Bug);
        let oracle = SimInventory::generate_for(Distro::Oracle, false, false, 10);
        assert_eq!(oracle.os(), ("Oracle Linux Server", "9.4"));
        let mixed = SimInventory::generate_for(Distro::Mixed, true, false, 10);
        assert_eq!(mixed.os(), ("Simulated Linux", "1.0"));
    }

    #[test]
    fn actions_become_diffs() {
        let mut inv = SimInventory::generate_for(Distro::Mixed, false, true, 9);
        inv.revision = 4;
        let security = inv.pending()[0] as usize;
        let d = inv.apply(&WorkAction::UpdateAll {
            update_type: UpdateType::Security,
        });
        assert_eq!(d.base_revision, 4);
        assert_eq!(d.updates.as_ref().unwrap().remove.len(), security);
        assert_eq!(d.installed.as_ref().unwrap().upsert.len(), security);
        assert_eq!(inv.pending()[0], 0);
        let mut d = inv.apply(&WorkAction::InstallPackage {
            names: vec!["cowsay".into()],
        });
        d.check().unwrap();
        assert_eq!(d.installed.unwrap().upsert[0].name, "cowsay");
        let d = inv.apply(&WorkAction::RemovePackage {
            names: vec!["cowsay".into()],
        });
        assert_eq!(d.installed.unwrap().remove[0].name, "cowsay");
        let d = inv.apply(&WorkAction::RemovePackage {
            names: vec!["not-there".into()],
        });
        assert!(d.installed.is_none());
    }
}
