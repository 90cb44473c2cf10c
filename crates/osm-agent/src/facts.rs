//! Host facts sent with every heartbeat: OS, kernel, last boot, reboot required, counts.

use serde_json::{Value, json};

use crate::inventory::Counts;
use crate::runner::Runner;

/// `NAME` and `VERSION_ID` (falling back to `VERSION`) of an os-release file.
pub fn parse_os_release(text: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut version_id = None;
    let mut version = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "NAME" => name = Some(v),
            "VERSION_ID" => version_id = Some(v),
            "VERSION" => version = Some(v),
            _ => {}
        }
    }
    (name, version_id.or(version))
}

/// Boot time from `/proc/stat` (`btime SECONDS`).
pub fn parse_btime(proc_stat: &str) -> Option<jiff::Timestamp> {
    let secs = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<i64>()
        .ok()?;
    jiff::Timestamp::from_second(secs).ok()
}

/// The facts body of a heartbeat.
pub fn collect(runner: &Runner, reboot_required: bool, counts: Option<Counts>) -> Value {
    let os_release = std::fs::read_to_string(runner.host_path("/etc/os-release"))
        .or_else(|_| std::fs::read_to_string(runner.host_path("/usr/lib/os-release")))
        .unwrap_or_default();
    let (name, version) = parse_os_release(&os_release);
    // The kernel and boot are the host's, also for another root.
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_btime(&s))
        .map(osm_core::time::format_rfc3339);
    let mut facts = json!({"osName": name, "osVersion": version, "osKernelVersion": kernel,
                           "lastBoot": boot, "isRebootRequired": reboot_required});
    if let Some(c) = counts {
        facts["updates"] = json!({"security": c.security, "bug": c.bug,
                                  "enhancement": c.enhancement, "other": c.other});
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_os_release_and_boot_time() {
        let deb = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            parse_os_release(deb),
            (Some("Debian GNU/Linux".into()), Some("12".into()))
        );
        let arch = "NAME=Arch Linux\nVERSION=rolling\n";
        assert_eq!(parse_os_release(arch).1.as_deref(), Some("rolling"));
        let stat = "cpu  1 2 3\nbtime 1714000000\nprocesses 5\n";
        assert_eq!(parse_btime(stat).unwrap().as_second(), 1714000000);
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn facts_of_this_machine() {
        let f = collect(
            &Runner::new(None),
            false,
            Some(Counts {
                security: 2,
                ..Default::default()
            }),
        );
        assert!(f["osKernelVersion"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(f["lastBoot"].as_str().is_some_and(|b| b.ends_with('Z')));
        assert_eq!(f["updates"]["security"], 2);
        assert_eq!(f["isRebootRequired"], false);
    }
}
