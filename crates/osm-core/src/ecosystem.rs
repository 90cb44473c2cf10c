//! Which OSV ecosystem a managed instance belongs to, from the `osName`/`osVersion` its agent
//! reports (the os-release `NAME` and `VERSION_ID`), and which ecosystems of an OSV record apply
//! to it.
//!
//! The names are the ones OSV databases use: `Debian:12`, `Ubuntu:22.04` (OSV writes LTS
//! releases `Ubuntu:22.04:LTS`; both apply), `AlmaLinux:9`, `Rocky Linux:9`,
//! `Red Hat:enterprise_linux:9` (OSV adds a channel: `Red Hat:enterprise_linux:9::baseos`) and
//! `Oracle Linux:9` (OSV has no Oracle feed of its own; records that name this ecosystem apply).

/// The leading run of ASCII digits of `s` (`"12"` of `"12.5 (bookworm)"`), if any.
fn major(version: &str) -> Option<&str> {
    let v = version.trim();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    (end > 0).then(|| &v[..end])
}

/// `YY.MM` of an Ubuntu version (`"22.04"` of `"22.04.3 LTS"`).
fn ubuntu_release(version: &str) -> Option<String> {
    let v = version.trim();
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let year = parts.next().filter(|p| p.len() == 2)?;
    let month = parts.next().filter(|p| p.len() == 2)?;
    let sep = v.as_bytes().get(2).copied();
    (sep == Some(b'.')).then(|| format!("{year}.{month}"))
}

/// The OSV ecosystem of a host, e.g. `("Debian GNU/Linux", "12")` → `Debian:12`. `None` for an
/// operating system osm does not match OSV records against (they then change nothing there).
pub fn of_os(os_name: &str, os_version: &str) -> Option<String> {
    let name = os_name.to_ascii_lowercase();
    if name.contains("ubuntu") {
        return ubuntu_release(os_version).map(|r| format!("Ubuntu:{r}"));
    }
    let family = if name.contains("debian") {
        "Debian"
    } else if name.contains("almalinux") || name.contains("alma linux") {
        "AlmaLinux"
    } else if name.contains("rocky") {
        "Rocky Linux"
    } else if name.contains("oracle") {
        "Oracle Linux"
    } else if name.contains("red hat enterprise linux") || name == "rhel" {
        "Red Hat:enterprise_linux"
    } else {
        return None;
    };
    major(os_version).map(|m| format!("{family}:{m}"))
}

/// The distribution part of an ecosystem (`Debian` of `Debian:12`).
pub fn family(ecosystem: &str) -> &str {
    ecosystem.split(':').next().unwrap_or_default()
}

/// Whether an OSV record's `affected[].package.ecosystem` applies to a host of `instance`
/// (an ecosystem [`of_os`] returns): the same release, the bare distribution (every release),
/// Ubuntu's `:LTS` spelling of the release, or a Red Hat channel of the release. Ubuntu Pro
/// (`Ubuntu:Pro:…`) fixes are not assumed to be installed and do not apply.
pub fn applies(record: &str, instance: &str) -> bool {
    if record == instance || record == family(instance) {
        return true;
    }
    match family(instance) {
        "Ubuntu" => record.strip_suffix(":LTS") == Some(instance),
        "Red Hat" => record
            .strip_prefix(instance)
            .is_some_and(|rest| rest.starts_with("::")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names_map_to_osv_ecosystems() {
        let cases = [
            ("Debian GNU/Linux", "12", Some("Debian:12")),
            ("Debian GNU/Linux", "11.9", Some("Debian:11")),
            ("Ubuntu", "22.04", Some("Ubuntu:22.04")),
            ("Ubuntu", "24.04.1 LTS", Some("Ubuntu:24.04")),
            ("Oracle Linux Server", "9.4", Some("Oracle Linux:9")),
            (
                "Red Hat Enterprise Linux",
                "9.3",
                Some("Red Hat:enterprise_linux:9"),
            ),
            ("AlmaLinux", "9.4", Some("AlmaLinux:9")),
            ("Rocky Linux", "8.10", Some("Rocky Linux:8")),
            ("Debian GNU/Linux", "trixie/sid", None),
            ("Ubuntu", "22", None),
            ("Ubuntu", "2204", None),
            ("Arch Linux", "rolling", None),
            ("Simulated Linux", "1.0", None),
            ("Microsoft Windows Server 2022", "10.0.20348", None),
        ];
        for (name, version, want) in cases {
            assert_eq!(
                of_os(name, version).as_deref(),
                want,
                "{name:?} {version:?}"
            );
        }
    }

    #[test]
    fn which_record_ecosystems_apply() {
        assert!(applies("Debian:12", "Debian:12"));
        assert!(applies("Debian", "Debian:12"));
        assert!(!applies("Debian:11", "Debian:12"));
        assert!(!applies("Debian:1", "Debian:12"));
        assert!(applies("Ubuntu:22.04:LTS", "Ubuntu:22.04"));
        assert!(applies("Ubuntu:22.04", "Ubuntu:22.04"));
        assert!(!applies("Ubuntu:Pro:22.04:LTS", "Ubuntu:22.04"));
        assert!(!applies("Ubuntu:24.04:LTS", "Ubuntu:22.04"));
        assert!(applies(
            "Red Hat:enterprise_linux:9::appstream",
            "Red Hat:enterprise_linux:9"
        ));
        assert!(!applies(
            "Red Hat:enterprise_linux:10::baseos",
            "Red Hat:enterprise_linux:1"
        ));
        assert!(!applies(
            "Red Hat:rhel_eus:9.2::baseos",
            "Red Hat:enterprise_linux:9"
        ));
        assert!(applies("Rocky Linux:9", "Rocky Linux:9"));
        assert!(!applies("AlmaLinux:9", "Rocky Linux:9"));
        assert!(!applies("Debian:12", "Ubuntu:22.04"));
    }
}
