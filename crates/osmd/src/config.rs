//! osmd settings: built-in defaults, then a TOML config file, then `OSM_*` environment
//! variables, then command-line flags, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address of the HTTPS listener.
    pub listen: SocketAddr,
    /// Directory for the SQLite database, TLS material and the administrator's files.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; defaults to `sqlite://<data_dir>/osm.db`.
    pub db: Option<String>,
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// Largest agent request body (inventory uploads, batched completions), in bytes.
    pub agent_max_body_bytes: usize,
    /// Region key reported by `GetTenancy`.
    pub home_region_key: String,
    /// Run the scheduler in this process.
    pub scheduler: bool,
    /// Occurrences missed by less than this many seconds (osmd was down) still run on start;
    /// older ones are recorded as missed.
    pub catch_up_secs: u64,
    /// Terminal work requests older than this many days are purged with their logs.
    pub retention_days: u64,
    /// How long, in seconds, a claimed work request stays with its agent without a heartbeat
    /// before it fails with `LeaseExpired`.
    pub lease_secs: u64,
    /// A directory of OSV advisory files (`*.json`) imported at every start, all or none (see
    /// docs/errata.md); a bad file stops the start.
    pub errata_dir: Option<PathBuf>,
    /// Largest body of an errata import (`POST /osm/v1/errata/import`), in bytes.
    pub errata_max_body_bytes: usize,
    /// Most missing updates a compliance report lists with `details=true`; a larger one is
    /// refused (413 `ReportTooLarge`) rather than built in memory (docs/compliance.md).
    pub report_max_detail_updates: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:9443".parse().unwrap(),
            data_dir: PathBuf::from("./osm-data"),
            db: None,
            log_format: LogFormat::Human,
            max_body_bytes: 1024 * 1024,
            agent_max_body_bytes: 32 * 1024 * 1024,
            home_region_key: "LCL".into(),
            scheduler: true,
            catch_up_secs: 3600,
            retention_days: 14,
            lease_secs: 120,
            errata_dir: None,
            errata_max_body_bytes: 64 * 1024 * 1024,
            report_max_detail_updates: osm_core::report::MAX_DETAIL_UPDATES,
        }
    }
}

/// Settings given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address to listen on (HTTPS) [env: OSM_LISTEN] [default: 127.0.0.1:9443]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data directory [env: OSM_DATA_DIR] [default: ./osm-data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [env: OSM_DB]
    /// [default: sqlite://<data-dir>/osm.db]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Log format [env: OSM_LOG_FORMAT] [default: human]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

impl Settings {
    /// Layers defaults, the config file (if given), `OSM_*` variables and the overrides.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = config_file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file(file));
        }
        let settings: Settings = figment
            .merge(Env::prefixed("OSM_"))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)?;
        if settings.lease_secs == 0 {
            return Err(Box::new(figment::Error::from(
                "lease_secs must be at least 1 (seconds a claimed work request stays with its agent)"
                    .to_string(),
            )));
        }
        Ok(settings)
    }

    /// The database URL, defaulting to the SQLite file in the data directory.
    pub fn db_url(&self) -> String {
        self.db
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("osm.db").display()))
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
                "osmd.toml",
                "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\nlog_format = \"json\"",
            )?;
            jail.set_env("OSM_DATA_DIR", "/from/env");
            let flags = Overrides {
                listen: Some("127.0.0.1:2000".parse().unwrap()),
                ..Default::default()
            };
            let s = Settings::load(Some(Path::new("osmd.toml")), &flags).map_err(|e| *e)?;
            assert_eq!(s.listen.port(), 2000);
            assert_eq!(s.data_dir, PathBuf::from("/from/env"));
            assert_eq!(s.log_format, LogFormat::Json);
            assert_eq!(s.db_url(), "sqlite:///from/env/osm.db");
            let d = Settings::load(None, &Overrides::default()).map_err(|e| *e)?;
            assert_eq!(d.listen.to_string(), "127.0.0.1:9443");
            assert_eq!(d.lease_secs, 120);
            jail.set_env("OSM_LEASE_SECS", "15");
            let short = Settings::load(None, &Overrides::default()).map_err(|e| *e)?;
            assert_eq!(short.lease_secs, 15);
            jail.set_env("OSM_ERRATA_DIR", "/srv/osv");
            let errata = Settings::load(None, &Overrides::default()).map_err(|e| *e)?;
            assert_eq!(errata.errata_dir, Some(PathBuf::from("/srv/osv")));
            assert_eq!(d.errata_dir, None);
            assert_eq!(d.errata_max_body_bytes, 64 * 1024 * 1024);
            jail.set_env("OSM_LEASE_SECS", "0");
            assert!(Settings::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        assert!(
            Settings::load(
                Some(Path::new("/nonexistent/osmd.toml")),
                &Overrides::default()
            )
            .is_err()
        );
    }
}
