//! What a host has installed and what it could update, in the wire form of
//! `POST /agent/v1/inventory`, and the diff between two scans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub architecture: Option<String>,
    /// `deb` or `rpm`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub install_time: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateKind {
    Security,
    Bug,
    Enhancement,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advisory {
    pub name: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub synopsis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub issued: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub architecture: Option<String>,
    pub installed_version: String,
    pub available_version: String,
    pub update_type: UpdateKind,
    #[serde(default)]
    pub cves: Vec<String>,
    #[serde(default)]
    pub advisories: Vec<Advisory>,
}

/// One scan of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub installed: Vec<Package>,
    pub available: Vec<Package>,
    pub updates: Vec<Update>,
}

/// Update counts by type, as heartbeats carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub security: i64,
    pub bug: i64,
    pub enhancement: i64,
    pub other: i64,
}

impl Inventory {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for u in &self.updates {
            match u.update_type {
                UpdateKind::Security => c.security += 1,
                UpdateKind::Bug => c.bug += 1,
                UpdateKind::Enhancement => c.enhancement += 1,
                UpdateKind::Other => c.other += 1,
            }
        }
        c
    }

    /// The `mode: full` body.
    pub fn full_body(&self) -> Value {
        json!({"mode": "full", "installed": self.installed, "available": self.available,
               "updates": self.updates, "windowsUpdates": []})
    }

    /// The `mode: diff` body that turns `old` (the server's `base_revision`) into `self`, or
    /// `None` when nothing changed. Sections without changes are left out.
    pub fn diff_body(&self, old: &Inventory, base_revision: i64) -> Option<Value> {
        let mut body = json!({"mode": "diff", "baseRevision": base_revision});
        let mut changed = false;
        for (section, new, old) in [
            ("installed", &self.installed, &old.installed),
            ("available", &self.available, &old.available),
        ] {
            if let Some(d) = section_diff(new, old, |p| (p.name.clone(), p.architecture.clone())) {
                body[section] = d;
                changed = true;
            }
        }
        if let Some(d) = section_diff(&self.updates, &old.updates, |u| {
            (u.name.clone(), u.architecture.clone())
        }) {
            body["updates"] = d;
            changed = true;
        }
        changed.then_some(body)
    }
}

type Key = (String, Option<String>);

fn section_diff<T: Serialize + PartialEq>(
    new: &[T],
    old: &[T],
    key: impl Fn(&T) -> Key,
) -> Option<Value> {
    let old_by_key: BTreeMap<Key, &T> = old.iter().map(|t| (key(t), t)).collect();
    let new_by_key: BTreeMap<Key, &T> = new.iter().map(|t| (key(t), t)).collect();
    let upsert: Vec<&T> = new_by_key
        .iter()
        .filter(|(k, v)| old_by_key.get(*k) != Some(*v))
        .map(|(_, v)| *v)
        .collect();
    let remove: Vec<Value> = old_by_key
        .keys()
        .filter(|k| !new_by_key.contains_key(*k))
        .map(|(name, arch)| match arch {
            Some(a) => json!({"name": name, "architecture": a}),
            None => json!({"name": name}),
        })
        .collect();
    if upsert.is_empty() && remove.is_empty() {
        None
    } else {
        Some(json!({"upsert": upsert, "remove": remove}))
    }
}

/// Whether a diff is small enough to be worth sending instead of the whole inventory.
pub fn diff_is_worth_it(diff: &Value, full: &Value) -> bool {
    diff.to_string().len() * 2 < full.to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            architecture: Some("amd64".into()),
            kind: Some("deb".into()),
            install_time: None,
        }
    }

    fn update(name: &str, kind: UpdateKind) -> Update {
        Update {
            name: name.into(),
            architecture: Some("amd64".into()),
            installed_version: "1.0".into(),
            available_version: "1.1".into(),
            update_type: kind,
            cves: vec!["CVE-2024-0001".into()],
            advisories: vec![],
        }
    }

    #[test]
    fn full_body_has_the_contract_shape() {
        let inv = Inventory {
            installed: vec![pkg("a", "1.0")],
            available: vec![],
            updates: vec![update("a", UpdateKind::Security)],
        };
        let body = inv.full_body();
        assert_eq!(body["mode"], "full");
        assert_eq!(body["installed"][0]["type"], "deb");
        assert!(body["installed"][0].get("installTime").is_none());
        assert_eq!(body["updates"][0]["updateType"], "SECURITY");
        assert_eq!(body["updates"][0]["installedVersion"], "1.0");
        assert_eq!(body["updates"][0]["cves"][0], "CVE-2024-0001");
        assert_eq!(body["windowsUpdates"], json!([]));
        assert_eq!(inv.counts().security, 1);
    }

    #[test]
    fn diff_names_only_what_changed() {
        let old = Inventory {
            installed: vec![pkg("a", "1.0"), pkg("b", "1.0"), pkg("c", "1.0")],
            available: vec![pkg("z", "3")],
            updates: vec![update("a", UpdateKind::Security)],
        };
        assert_eq!(old.diff_body(&old, 7), None);
        let mut new = old.clone();
        new.installed[0].version = "1.1".into();
        new.installed.remove(1);
        new.installed.push(pkg("d", "2.0"));
        new.updates.clear();
        let d = new.diff_body(&old, 7).unwrap();
        assert_eq!(d["mode"], "diff");
        assert_eq!(d["baseRevision"], 7);
        let upserted: Vec<&str> = d["installed"]["upsert"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(upserted, ["a", "d"]);
        assert_eq!(
            d["installed"]["remove"],
            json!([{"name": "b", "architecture": "amd64"}])
        );
        assert!(d.get("available").is_none());
        assert_eq!(d["updates"]["upsert"], json!([]));
        assert_eq!(
            d["updates"]["remove"],
            json!([{"name": "a", "architecture": "amd64"}])
        );
    }
}
