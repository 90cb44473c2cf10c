//! Agent settings: defaults, then a TOML file (`--config`, or `/etc/osm-agent/config.toml`
//! when it exists), then `OSM_AGENT_*` environment variables, then flags.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG: &str = "/etc/osm-agent/config.toml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// osmd's URL, e.g. `https://osm.example.org:9443` (needed to enrol).
    pub server: Option<String>,
    /// CA bundle osmd's certificate chains to (needed to enrol; copied to the state dir).
    pub ca: Option<PathBuf>,
    /// Install key: its text, or the path of a file holding it (needed to enrol).
    pub install_key: Option<String>,
    /// Enrol into this compartment (in the install key's subtree).
    pub compartment_id: Option<String>,
    /// Name the instance gets (default: the host name).
    pub hostname: Option<String>,
    pub state_dir: PathBuf,
    /// Test/advanced: manage the system installed in this directory instead of `/`
    /// (apt and dpkg run inside it through chroot; dnf drives it with `--installroot`).
    pub root: Option<PathBuf>,
    /// `auto`, `apt`, `dnf` or `yum`.
    pub backend: String,
    /// How long to wait for the package database lock before failing the work.
    pub lock_wait_secs: u64,
    /// Full inventory scan at least this often (also at start and after every action).
    pub inventory_interval_secs: u64,
    /// Heartbeat interval; by default the server's (`heartbeatSeconds`, 30).
    pub heartbeat_secs: Option<u64>,
    /// Longest long-poll for work.
    pub poll_wait_secs: u64,
    /// Longest wait between attempts while the server cannot be reached.
    pub max_backoff_secs: u64,
    /// Report packages available for install (not only installed ones and updates).
    pub report_available: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: None,
            ca: None,
            install_key: None,
            compartment_id: None,
            hostname: None,
            state_dir: PathBuf::from("/var/lib/osm-agent"),
            root: None,
            backend: "auto".into(),
            lock_wait_secs: 120,
            inventory_interval_secs: 3600,
            heartbeat_secs: None,
            poll_wait_secs: 25,
            max_backoff_secs: 300,
            report_available: true,
        }
    }
}

/// Flags that override the lower layers.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// osmd's URL [env: OSM_AGENT_SERVER]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// CA bundle of osmd's certificate [env: OSM_AGENT_CA]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Install key, or a file holding it [env: OSM_AGENT_INSTALL_KEY]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_key: Option<String>,
    /// Compartment to enrol into [env: OSM_AGENT_COMPARTMENT_ID]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compartment_id: Option<String>,
    /// Instance name [env: OSM_AGENT_HOSTNAME] [default: the host name]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// State directory [env: OSM_AGENT_STATE_DIR] [default: /var/lib/osm-agent]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Test/advanced: manage the system in DIR instead of / (chroot) [env: OSM_AGENT_ROOT]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// auto, apt, dnf or yum [env: OSM_AGENT_BACKEND] [default: auto]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl Settings {
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Settings, String> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match config_file {
            Some(file) if !file.exists() => {
                return Err(format!("config file {} does not exist", file.display()));
            }
            Some(file) => figment = figment.merge(Toml::file(file)),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                figment = figment.merge(Toml::file(DEFAULT_CONFIG))
            }
            None => {}
        }
        figment
            .merge(Env::prefixed("OSM_AGENT_").ignore(&["config"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| e.to_string())
    }

    /// The install key: the text itself, or the content of the file it names.
    pub fn install_key_text(&self) -> Option<String> {
        let key = self.install_key.as_deref()?.trim();
        match std::fs::read_to_string(key) {
            Ok(text) => Some(text.trim().to_string()),
            Err(_) => Some(key.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's own Jail signature
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "agent.toml",
                "server = \"https://file:1\"\nstate_dir = \"/from/file\"\nlock_wait_secs = 5\n",
            )?;
            jail.create_file("key", "osmik_abc\n")?;
            jail.set_env("OSM_AGENT_STATE_DIR", "/from/env");
            jail.set_env("OSM_AGENT_INSTALL_KEY", "key");
            let flags = Overrides {
                server: Some("https://flag:2".into()),
                ..Default::default()
            };
            let s = Settings::load(Some(Path::new("agent.toml")), &flags)?;
            assert_eq!(s.server.as_deref(), Some("https://flag:2"));
            assert_eq!(s.state_dir, PathBuf::from("/from/env"));
            assert_eq!(s.lock_wait_secs, 5);
            assert_eq!(s.install_key_text().as_deref(), Some("osmik_abc"));
            assert_eq!(s.backend, "auto");
            assert!(Settings::load(Some(Path::new("missing.toml")), &flags).is_err());
            Ok(())
        });
    }
}
