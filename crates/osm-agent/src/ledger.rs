//! The ledger: an append-only, fsynced record of every work request this agent accepted,
//! so none is ever executed twice, and one interrupted by a crash is reported, not re-run.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a work request ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    /// `SUCCEEDED`, `FAILED` or `CANCELED`.
    pub outcome: String,
    #[serde(default)]
    pub errors: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
enum Event {
    /// About to run: written (and synced) before anything is executed.
    Started { id: String },
    /// Finished with this outcome; not yet acknowledged by the server.
    Ended { id: String, ended: Ended },
    /// The server has the outcome.
    Reported { id: String },
}

/// Where one work request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Started,
    Ended(Ended),
    Reported,
}

pub struct Ledger {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
    /// Order of first sight, for compaction.
    order: Vec<String>,
}

/// Ids remembered after compaction (the server never hands out an old id again; this only
/// has to outlive redeliveries).
const KEEP: usize = if cfg!(test) { 50 } else { 5000 };

impl Ledger {
    /// Opens the ledger, replaying it; a torn last line (crash mid-write) is ignored.
    pub fn open(path: &Path) -> std::io::Result<Ledger> {
        let mut entries = HashMap::new();
        let mut order = vec![];
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let Ok(event) = serde_json::from_str::<Event>(&line?) else {
                    continue;
                };
                let (id, entry) = match event {
                    Event::Started { id } => (id, Entry::Started),
                    Event::Ended { id, ended } => (id, Entry::Ended(ended)),
                    Event::Reported { id } => (id, Entry::Reported),
                };
                if !entries.contains_key(&id) {
                    order.push(id.clone());
                }
                entries.insert(id, entry);
            }
        }
        // Drop a torn last line so the next record starts on a line of its own.
        if let Ok(bytes) = std::fs::read(path)
            && bytes.last().is_some_and(|b| *b != b'\n')
        {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(keep as u64)?;
        }
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            file: Self::append_handle(path)?,
            entries,
            order,
        };
        if ledger.order.len() > KEEP {
            ledger.compact()?;
        }
        Ok(ledger)
    }

    fn append_handle(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
    }

    /// Keeps the newest `KEEP` ids (and every one not yet reported).
    fn compact(&mut self) -> std::io::Result<()> {
        let cut = self.order.len().saturating_sub(KEEP);
        let keep: Vec<String> = self
            .order
            .iter()
            .enumerate()
            .filter(|(i, id)| *i >= cut || self.entries[*id] != Entry::Reported)
            .map(|(_, id)| id.clone())
            .collect();
        let mut text = String::new();
        for id in &keep {
            let event = match &self.entries[id] {
                Entry::Started => Event::Started { id: id.clone() },
                Entry::Ended(e) => Event::Ended {
                    id: id.clone(),
                    ended: e.clone(),
                },
                Entry::Reported => Event::Reported { id: id.clone() },
            };
            text.push_str(&serde_json::to_string(&event).expect("serialisable"));
            text.push('\n');
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.entries.retain(|id, _| keep.contains(id));
        self.order = keep;
        self.file = Self::append_handle(&self.path)?;
        Ok(())
    }

    fn append(&mut self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_string(event).expect("serialisable");
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Records that `id` is about to run. Returns `false` (and records nothing) when the
    /// ledger already knows it: then it must not run again.
    pub fn begin(&mut self, id: &str) -> std::io::Result<bool> {
        if self.entries.contains_key(id) {
            return Ok(false);
        }
        self.append(&Event::Started { id: id.into() })?;
        self.order.push(id.to_string());
        self.entries.insert(id.to_string(), Entry::Started);
        Ok(true)
    }

    pub fn end(&mut self, id: &str, ended: Ended) -> std::io::Result<()> {
        self.append(&Event::Ended {
            id: id.into(),
            ended: ended.clone(),
        })?;
        if !self.entries.contains_key(id) {
            self.order.push(id.to_string());
        }
        self.entries.insert(id.to_string(), Entry::Ended(ended));
        Ok(())
    }

    pub fn reported(&mut self, id: &str) -> std::io::Result<()> {
        self.append(&Event::Reported { id: id.into() })?;
        self.entries.insert(id.to_string(), Entry::Reported);
        Ok(())
    }

    /// Work that started but never ended: the agent died while running it.
    pub fn interrupted(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| self.entries.get(*id) == Some(&Entry::Started))
            .cloned()
            .collect()
    }

    /// Outcomes the server has not acknowledged yet.
    pub fn unreported(&self) -> Vec<(String, Ended)> {
        self.order
            .iter()
            .filter_map(|id| match self.entries.get(id) {
                Some(Entry::Ended(e)) => Some((id.clone(), e.clone())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_begins_the_same_work_twice_across_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ledger.jsonl");
        let mut l = Ledger::open(&path).unwrap();
        assert!(l.begin("wr1").unwrap());
        assert!(
            !l.begin("wr1").unwrap(),
            "a duplicate delivery must not run"
        );
        assert!(l.begin("wr2").unwrap());
        l.end(
            "wr2",
            Ended {
                outcome: "SUCCEEDED".into(),
                errors: vec![],
            },
        )
        .unwrap();
        drop(l);
        // A crash left a torn line behind.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"state\":\"started\",\"id\":\"wr").unwrap();
        drop(f);
        let mut l = Ledger::open(&path).unwrap();
        assert_eq!(l.interrupted(), ["wr1"]);
        assert_eq!(l.unreported().len(), 1);
        assert!(!l.begin("wr1").unwrap());
        assert!(!l.begin("wr2").unwrap());
        l.reported("wr2").unwrap();
        assert!(l.unreported().is_empty());
        drop(l);
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.get("wr2"), Some(&Entry::Reported));
    }

    #[test]
    fn compaction_keeps_recent_and_unreported_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ledger.jsonl");
        let mut l = Ledger::open(&path).unwrap();
        assert!(l.begin("old-unfinished").unwrap());
        for i in 0..KEEP + 10 {
            let id = format!("wr{i}");
            l.begin(&id).unwrap();
            l.reported(&id).unwrap();
        }
        drop(l);
        let mut l = Ledger::open(&path).unwrap();
        assert_eq!(l.interrupted(), ["old-unfinished"]);
        assert_eq!(l.get("wr0"), None);
        assert!(!l.begin(&format!("wr{}", KEEP + 9)).unwrap());
        assert!(l.order.len() <= KEEP + 1);
    }
}
