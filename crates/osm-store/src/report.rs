//! The reads behind the compliance report: [`ReportStore`], which [`crate::Store`] requires,
//! and its implementation for both backends (`impl_report_store!`, expanded in `sqlite.rs` and
//! `postgres.rs` like `impl_inventory_store!`).
//!
//! A report is read in one snapshot by four set-based statements, whatever the number of
//! instances: the instances in scope with their last inventory time, their pending updates
//! counted by classification, and the pending package and Windows updates of the classes the
//! report counts. Each statement builds its whole answer as one JSON array in the database
//! (`json_group_array` on SQLite, `json_agg` on PostgreSQL): one row to hand over instead of
//! tens of thousands, which the drivers decode one by one at several microseconds each.
//! Shaping (filters, figures, order) is `osm_core::report`'s.

use async_trait::async_trait;
use osm_core::UpdateClassification;
use osm_core::report::ComplianceRows;

use crate::StoreResult;

/// Which instances a report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComplianceScope {
    /// The instances in any of these compartments.
    Compartments(Vec<String>),
    /// The members of this group.
    Group(String),
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Every instance in `scope` with its pending updates counted by classification (package
    /// updates and Windows updates not installed), and the pending updates whose
    /// classification is one of `classes`, all as of one snapshot.
    async fn compliance_rows(
        &self,
        scope: &ComplianceScope,
        classes: &[UpdateClassification],
    ) -> StoreResult<ComplianceRows>;
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
            use sqlx::{QueryBuilder, Row};

            use $crate::report::{ComplianceScope, ReportStore};
            use $crate::rows::*;
            use $crate::{StoreError, StoreResult};

            use super::store_impl::timer;

            /// `SELECT <agg of arrays of columns> FROM` …
            fn select_array(columns: &[&str]) -> String {
                let array = format!("{}({})", $array, columns.join(", "));
                format!("SELECT {} AS doc FROM ", format!($agg, array))
            }

            /// Appends `IN (…)`: the ids of the instances in scope.
            fn push_scope(qb: &mut QueryBuilder<$db>, scope: &ComplianceScope) {
                match scope {
                    ComplianceScope::Compartments(ids) => {
                        qb.push(" IN (SELECT id FROM managed_instances WHERE compartment_id IN (");
                        let mut sep = qb.separated(", ");
                        for c in ids {
                            sep.push_bind(c.clone());
                        }
                        qb.push("))");
                    }
                    ComplianceScope::Group(id) => {
                        qb.push(" IN (SELECT instance_id FROM managed_instance_group_members WHERE group_id = ");
                        qb.push_bind(id.clone());
                        qb.push(")");
                    }
                }
            }

            fn push_classes(qb: &mut QueryBuilder<$db>, classes: &[UpdateClassification]) {
                qb.push(" AND update_type IN (");
                let mut sep = qb.separated(", ");
                for c in classes {
                    sep.push_bind(c.as_str());
                }
                qb.push(")");
            }

            /// Runs a statement built by [`select_array`] and decodes its rows.
            async fn rows<T: serde::de::DeserializeOwned>(
                qb: &mut QueryBuilder<$db>,
                tx: &mut sqlx::Transaction<'static, $db>,
                what: &str,
            ) -> StoreResult<Vec<T>> {
                let text: Option<String> = qb.build().fetch_one(&mut **tx).await?.try_get("doc")?;
                match text {
                    None => Ok(vec![]),
                    Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))),
                }
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

            #[async_trait]
            impl ReportStore for $store {
                async fn compliance_rows(&self, scope: &ComplianceScope, classes: &[UpdateClassification]) -> StoreResult<ComplianceRows> {
                    let _t = timer("compliance_rows");
                    if matches!(scope, ComplianceScope::Compartments(c) if c.is_empty()) {
                        return Ok(ComplianceRows::default());
                    }
                    let mut tx = self.read().begin_with($begin_read).await?;

                    let mut qb = QueryBuilder::<$db>::new(select_array(&[
                        "m.id", "m.display_name", "m.compartment_id", "m.os_family", "m.os_name", "m.os_version", "m.last_checkin", "i.time_reported",
                    ]));
                    qb.push("managed_instances m LEFT JOIN instance_inventories i ON i.instance_id = m.id WHERE m.id");
                    push_scope(&mut qb, scope);
                    let mut instances = Vec::new();
                    for (id, display_name, compartment_id, os_family, os_name, os_version, last_checkin, reported) in rows::<InstanceTuple>(&mut qb, &mut tx, "instances").await? {
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

                    let mut qb = QueryBuilder::<$db>::new(select_array(&["instance_id", "update_type", "n"]));
                    qb.push("(SELECT instance_id, update_type, count(*) AS n FROM instance_updates WHERE instance_id");
                    push_scope(&mut qb, scope);
                    qb.push(
                        " GROUP BY instance_id, update_type UNION ALL \
                         SELECT instance_id, update_type, count(*) AS n FROM instance_windows_updates WHERE NOT installed AND instance_id",
                    );
                    push_scope(&mut qb, scope);
                    qb.push(" GROUP BY instance_id, update_type) pending");
                    let mut counts: HashMap<String, UpdateCounts> = HashMap::new();
                    for (instance_id, update_type, n) in rows::<CountTuple>(&mut qb, &mut tx, "counts").await? {
                        let c = counts.entry(instance_id).or_default();
                        match class(&update_type)? {
                            UpdateClassification::Security => c.security += n,
                            UpdateClassification::Bug => c.bug += n,
                            UpdateClassification::Enhancement => c.enhancement += n,
                            UpdateClassification::Other => c.other += n,
                        }
                    }
                    for i in &mut instances {
                        if let Some(c) = counts.remove(&i.id) {
                            i.pending = c;
                        }
                    }

                    let mut updates = Vec::new();
                    if !classes.is_empty() {
                        let cves = format!($json, "cves");
                        let advisories = format!($json, "advisories");
                        let mut qb = QueryBuilder::<$db>::new(select_array(&[
                            "instance_id", "name", "architecture", "installed_version", "available_version", "update_type", &cves, &advisories,
                        ]));
                        qb.push("instance_updates WHERE instance_id");
                        push_scope(&mut qb, scope);
                        push_classes(&mut qb, classes);
                        for (instance_id, name, architecture, installed, available, update_type, cves, advisories) in rows::<PackageTuple>(&mut qb, &mut tx, "updates").await? {
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
                        let mut qb = QueryBuilder::<$db>::new(select_array(&["instance_id", "name", "display_name", "update_type"]));
                        qb.push("instance_windows_updates WHERE NOT installed AND instance_id");
                        push_scope(&mut qb, scope);
                        push_classes(&mut qb, classes);
                        for (instance_id, name, display_name, update_type) in rows::<WindowsTuple>(&mut qb, &mut tx, "Windows updates").await? {
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
                    }
                    tx.commit().await?;
                    Ok(ComplianceRows { instances, updates })
                }
            }
        }
    };
}

pub(crate) use impl_report_store;
