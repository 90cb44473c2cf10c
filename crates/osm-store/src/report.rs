//! The reads behind the compliance report: [`ReportStore`], which [`crate::Store`] requires,
//! and its implementation for both backends (`impl_report_store!`, expanded in `sqlite.rs` and
//! `postgres.rs` like `impl_inventory_store!`).
//!
//! A report is read in one snapshot, in batches whose size does not depend on the fleet: the
//! instances in scope a page at a time (keyset on the id) with their last inventory time and
//! their pending updates counted by classification, then the pending package and Windows
//! updates of the counted classes for a few of those instances at a time, as many as make at
//! most [`ComplianceBatches::updates`] rows (the counts say how many each has). Each statement
//! builds its whole answer as one JSON array in the database (`json_group_array` on SQLite,
//! `json_agg` on PostgreSQL): one row to hand over instead of thousands, which the drivers
//! decode one by one at several microseconds each. Ids and classes are bound as one JSON
//! array each (`json_each` / `jsonb_array_elements_text`), so a scope of any size is one
//! statement text and never runs into the backends' limits on bound parameters. Each batch
//! goes to the caller as it is read, so memory holds a batch, not the fleet. Shaping
//! (filters, figures, order) is `osm_core::report`'s.

use std::ops::ControlFlow;

use async_trait::async_trait;
use osm_core::UpdateClassification;
use osm_core::report::{InstanceRow, PendingUpdate};

use crate::StoreResult;

/// Which instances a report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComplianceScope {
    /// The instances in any of these compartments.
    Compartments(Vec<String>),
    /// The members of this group.
    Group(String),
}

/// The most one batch of a report's reads holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComplianceBatches {
    /// Instances per batch.
    pub instances: usize,
    /// Pending updates per batch (an instance with more is a batch of its own).
    pub updates: usize,
}

impl Default for ComplianceBatches {
    fn default() -> Self {
        ComplianceBatches {
            instances: 1000,
            updates: 10_000,
        }
    }
}

/// One batch of a report's reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComplianceBatch {
    /// Instances in scope, each in one batch only, with their pending updates counted.
    Instances(Vec<InstanceRow>),
    /// Pending updates of the counted classes, of instances of earlier batches.
    Updates(Vec<PendingUpdate>),
}

/// Takes the batches of a report as they are read; `Break` stops the reads.
pub type ComplianceSink<'a> = dyn FnMut(ComplianceBatch) -> ControlFlow<()> + Send + 'a;

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Every instance in `scope` with its pending updates counted by classification (package
    /// updates and Windows updates not installed), and the pending updates whose
    /// classification is one of `classes`, all as of one snapshot, handed to `sink` batch by
    /// batch (an instance's batch comes before its updates').
    async fn compliance_scan(
        &self,
        scope: &ComplianceScope,
        classes: &[UpdateClassification],
        batches: ComplianceBatches,
        sink: &mut ComplianceSink<'_>,
    ) -> StoreResult<()>;
}

macro_rules! impl_report_store {
    // `$array`: the function building a JSON array of its arguments; `$agg`: the aggregate of
    // such arrays into one JSON text (`[]` over no rows); `$json`: a JSON text column as JSON.
    ($store:ty, $db:ty, $begin_read:literal, $array:literal, $agg:literal, $json:literal) => {
        mod report_impl {
            use super::*;
            use std::collections::HashMap;

            use async_trait::async_trait;
            use osm_core::report::*;
            use osm_core::{OsFamily, UpdateClassification, UpdateCounts};
            use sqlx::Row;

            use $crate::report::{ComplianceBatch, ComplianceBatches, ComplianceScope, ComplianceSink, ReportStore};
            use $crate::rows::*;
            use $crate::{StoreError, StoreResult};

            use super::store_impl::{texts_at, timer};

            type Tx = sqlx::Transaction<'static, $db>;

            /// The aggregate of JSON arrays of these columns, as `doc`.
            fn doc(columns: &[&str]) -> String {
                let array = format!("{}({})", $array, columns.join(", "));
                format!("{} AS doc", format!($agg, array))
            }

            /// Decodes the `doc` column of a statement's one row.
            fn decode<T: serde::de::DeserializeOwned>(row: &<$db as sqlx::Database>::Row, what: &str) -> StoreResult<Vec<T>> {
                let text: Option<String> = row.try_get("doc")?;
                match text {
                    None => Ok(vec![]),
                    Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))),
                }
            }

            /// Runs a statement binding a JSON array of ids at `$1` (and one of classes at
            /// `$2`) and decodes its answer.
            async fn read<T: serde::de::DeserializeOwned>(tx: &mut Tx, sql: &str, ids: &str, classes: Option<&str>, what: &str) -> StoreResult<Vec<T>> {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).bind(ids.to_string());
                if let Some(c) = classes {
                    q = q.bind(c.to_string());
                }
                let row = q.fetch_one(&mut **tx).await?;
                decode(&row, what)
            }

            fn class(text: &str) -> StoreResult<UpdateClassification> {
                parse_enum("update_type", text)
            }

            /// Instance id, name, compartment, OS family, name and version, last check-in, last
            /// inventory upload.
            type InstanceTuple = (String, String, String, String, Option<String>, Option<String>, Option<i64>, Option<i64>);
            /// Instance id, classification, count.
            type CountTuple = (String, String, i64);
            /// Instance id, name, architecture (`""`: none), versions, classification, CVEs,
            /// advisories.
            type PackageTuple = (String, String, String, String, String, String, Vec<String>, Vec<String>);
            /// Instance id, update id, title, classification.
            type WindowsTuple = (String, String, String, String);

            /// The pending package and Windows updates of the counted classes of `ids`.
            async fn updates_of(tx: &mut Tx, ids: &[&str], classes: &str) -> StoreResult<Vec<PendingUpdate>> {
                let ids = to_json(&ids);
                let cves = format!($json, "cves");
                let advisories = format!($json, "advisories");
                let packages = format!(
                    "SELECT {} FROM instance_updates WHERE instance_id IN {} AND update_type IN {}",
                    doc(&["instance_id", "name", "architecture", "installed_version", "available_version", "update_type", &cves, &advisories]),
                    texts_at(1),
                    texts_at(2)
                );
                let mut updates = Vec::new();
                for (instance_id, name, architecture, installed, available, update_type, cves, advisories) in read::<PackageTuple>(tx, &packages, &ids, Some(classes), "updates").await? {
                    updates.push(PendingUpdate {
                        instance_id,
                        source: UpdateSource::Package,
                        display_name: name.clone(),
                        name,
                        architecture: (!architecture.is_empty()).then_some(architecture),
                        installed_version: Some(installed),
                        available_version: Some(available),
                        update_type: class(&update_type)?,
                        cves,
                        advisories,
                    });
                }
                let windows = format!(
                    "SELECT {} FROM instance_windows_updates WHERE NOT installed AND instance_id IN {} AND update_type IN {}",
                    doc(&["instance_id", "name", "display_name", "update_type"]),
                    texts_at(1),
                    texts_at(2)
                );
                for (instance_id, name, display_name, update_type) in read::<WindowsTuple>(tx, &windows, &ids, Some(classes), "Windows updates").await? {
                    updates.push(PendingUpdate {
                        instance_id,
                        source: UpdateSource::Windows,
                        display_name,
                        name,
                        architecture: None,
                        installed_version: None,
                        available_version: None,
                        update_type: class(&update_type)?,
                        cves: vec![],
                        advisories: vec![],
                    });
                }
                Ok(updates)
            }

            #[async_trait]
            impl ReportStore for $store {
                async fn compliance_scan(
                    &self,
                    scope: &ComplianceScope,
                    classes: &[UpdateClassification],
                    batches: ComplianceBatches,
                    sink: &mut ComplianceSink<'_>,
                ) -> StoreResult<()> {
                    let _t = timer("compliance_scan");
                    if matches!(scope, ComplianceScope::Compartments(c) if c.is_empty()) {
                        return Ok(());
                    }
                    let per_page = i64::try_from(batches.instances.max(1)).unwrap_or(i64::MAX);
                    let per_batch = i64::try_from(batches.updates.max(1)).unwrap_or(i64::MAX);
                    let (in_scope, scope_bind) = match scope {
                        ComplianceScope::Compartments(ids) => (format!("m.compartment_id IN {}", texts_at(1)), to_json(ids)),
                        ComplianceScope::Group(id) => (
                            "m.id IN (SELECT instance_id FROM managed_instance_group_members WHERE group_id = $1)".to_string(),
                            id.clone(),
                        ),
                    };
                    // A page of instances after the last id of the one before (the backend's
                    // own order, so `last` is its largest id whatever the collation).
                    let page_sql = format!(
                        "SELECT {}, max(id) AS last FROM (SELECT m.id, m.display_name, m.compartment_id, m.os_family, m.os_name, m.os_version, m.last_checkin, i.time_reported \
                         FROM managed_instances m LEFT JOIN instance_inventories i ON i.instance_id = m.id \
                         WHERE {in_scope} AND m.id > $2 ORDER BY m.id LIMIT $3) page",
                        doc(&["id", "display_name", "compartment_id", "os_family", "os_name", "os_version", "last_checkin", "time_reported"]),
                    );
                    let counts_sql = format!(
                        "SELECT {} FROM (SELECT instance_id, update_type, count(*) AS n FROM instance_updates WHERE instance_id IN {ids} GROUP BY instance_id, update_type \
                         UNION ALL SELECT instance_id, update_type, count(*) AS n FROM instance_windows_updates WHERE NOT installed AND instance_id IN {ids} GROUP BY instance_id, update_type) pending",
                        doc(&["instance_id", "update_type", "n"]),
                        ids = texts_at(1)
                    );
                    let class_names: Vec<&str> = classes.iter().map(|c| c.as_str()).collect();
                    let classes_json = to_json(&class_names);

                    let mut tx: Tx = self.read().begin_with($begin_read).await?;
                    let mut after = String::new();
                    loop {
                        let row = sqlx::query(sqlx::AssertSqlSafe(page_sql.clone()))
                            .bind(scope_bind.clone())
                            .bind(after.clone())
                            .bind(per_page)
                            .fetch_one(&mut *tx)
                            .await?;
                        let page: Vec<InstanceTuple> = decode(&row, "instances")?;
                        let last: Option<String> = row.try_get("last")?;
                        let (Some(last), false) = (last, page.is_empty()) else {
                            break;
                        };
                        let full = page.len() as i64 >= per_page;
                        let mut instances = Vec::with_capacity(page.len());
                        for (id, display_name, compartment_id, os_family, os_name, os_version, last_checkin, reported) in page {
                            instances.push(InstanceRow {
                                id,
                                display_name,
                                compartment_id,
                                os_family: parse_enum::<OsFamily>("os_family", &os_family)?,
                                os_name,
                                os_version,
                                last_checkin: opt_ts(last_checkin),
                                inventory_reported: opt_ts(reported),
                                pending: UpdateCounts::default(),
                            });
                        }
                        let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
                        let mut counts: HashMap<String, UpdateCounts> = HashMap::new();
                        for (instance_id, update_type, n) in read::<CountTuple>(&mut tx, &counts_sql, &to_json(&ids), None, "counts").await? {
                            let c = counts.entry(instance_id).or_default();
                            match class(&update_type)? {
                                UpdateClassification::Security => c.security += n,
                                UpdateClassification::Bug => c.bug += n,
                                UpdateClassification::Enhancement => c.enhancement += n,
                                UpdateClassification::Other => c.other += n,
                            }
                        }
                        // Instance ids grouped so that each group has at most `per_batch`
                        // counted updates (the counts are of the same snapshot).
                        let mut groups: Vec<Vec<String>> = vec![];
                        let mut size = 0;
                        for i in &mut instances {
                            if let Some(c) = counts.remove(&i.id) {
                                i.pending = c;
                            }
                            let n: i64 = classes
                                .iter()
                                .map(|c| match c {
                                    UpdateClassification::Security => i.pending.security,
                                    UpdateClassification::Bug => i.pending.bug,
                                    UpdateClassification::Enhancement => i.pending.enhancement,
                                    UpdateClassification::Other => i.pending.other,
                                })
                                .sum();
                            if n == 0 {
                                continue;
                            }
                            if groups.is_empty() || size + n > per_batch {
                                groups.push(vec![]);
                                size = 0;
                            }
                            groups.last_mut().expect("a group").push(i.id.clone());
                            size += n;
                        }
                        if sink(ComplianceBatch::Instances(instances)).is_break() {
                            return Ok(());
                        }
                        for group in groups {
                            let ids: Vec<&str> = group.iter().map(String::as_str).collect();
                            let updates = updates_of(&mut tx, &ids, &classes_json).await?;
                            if sink(ComplianceBatch::Updates(updates)).is_break() {
                                return Ok(());
                            }
                        }
                        if !full {
                            break;
                        }
                        after = last;
                    }
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use impl_report_store;
