//! The state directory (mode 0700): the identity and credential from enrolment, the CA,
//! the ledger of work requests, the last inventory the server acknowledged, and a status
//! file for `osm-agent status`. Every file is replaced atomically and synced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub server: String,
    pub instance_id: String,
    pub compartment_id: String,
    pub secret: String,
}

/// What `osm-agent status` shows besides the identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub last_checkin: Option<String>,
    pub last_error: Option<String>,
    pub backend: Option<String>,
    pub inventory_revision: Option<i64>,
    pub current_work: Option<String>,
}

/// The last inventory the server acknowledged, and its revision there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentInventory {
    pub revision: i64,
    pub inventory: Inventory,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating) the directory and makes sure only root can enter it.
    pub fn open(dir: &Path) -> std::io::Result<StateDir> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `name` atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(name))?;
        File::open(&self.dir)?.sync_all()
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> std::io::Result<Option<T>> {
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.dir.join(name).display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        self.write(
            name,
            &serde_json::to_vec_pretty(value).expect("serialisable"),
        )
    }

    pub fn identity(&self) -> std::io::Result<Option<Identity>> {
        self.read_json("identity.json")
    }

    pub fn save_identity(&self, id: &Identity) -> std::io::Result<()> {
        self.write_json("identity.json", id)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn status(&self) -> Status {
        self.read_json("status.json")
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn save_status(&self, s: &Status) -> std::io::Result<()> {
        self.write_json("status.json", s)
    }

    pub fn sent_inventory(&self) -> Option<SentInventory> {
        self.read_json("inventory.json").ok().flatten()
    }

    pub fn save_sent_inventory(&self, s: &SentInventory) -> std::io::Result<()> {
        self.write(
            "inventory.json",
            &serde_json::to_vec(s).expect("serialisable"),
        )
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.path("ledger.jsonl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_and_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let s = StateDir::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(s.identity().unwrap(), None);
        let id = Identity {
            server: "https://127.0.0.1:9443".into(),
            instance_id: "ocid1.instance.oc1..a".into(),
            compartment_id: "ocid1.tenancy.oc1..t".into(),
            secret: "c2VjcmV0".into(),
        };
        s.save_identity(&id).unwrap();
        let again = StateDir::open(&dir).unwrap();
        assert_eq!(again.identity().unwrap(), Some(id));
        let mode = fs::metadata(dir.join("identity.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(dir.join("identity.json"), "{not json").unwrap();
        assert!(again.identity().is_err());
    }
}
