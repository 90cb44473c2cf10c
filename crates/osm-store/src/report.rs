//! The reads behind the compliance report: [`ReportStore`], which [`crate::Store`] requires,
//! and its implementation for both backends (`impl_report_store!`, expanded in `sqlite.rs` and
//! `postgres.rs` like `impl_inventory_store!`).
//!
//! A report is read in one snapshot by four set-based statements, whatever the number of
//! instances: the instances in scope with their last inventory time, their pending updates
//! counted by classification, and the pending package and Windows updates of the classes the
//! report counts. Shaping (filters, figures, order) is `osm_core::report`'s.

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
    ($store:ty, $db:ty, $begin_read:literal) => {
        mod report_impl {
            use super::*;
            use std::collections::HashMap;

            use async_trait::async_trait;
            use osm_core::report::*;
            use osm_core::{UpdateClassification, UpdateCounts};
            use sqlx::{QueryBuilder, Row};

            use $crate::StoreResult;
            use $crate::report::{ComplianceScope, ReportStore};
            use $crate::rows::*;

            use super::store_impl::timer;

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

            fn non_empty(text: Option<String>) -> Option<String> {
                text.filter(|t| !t.is_empty())
            }

            #[async_trait]
            impl ReportStore for $store {
                async fn compliance_rows(&self, scope: &ComplianceScope, classes: &[UpdateClassification]) -> StoreResult<ComplianceRows> {
                    let _t = timer("compliance_rows");
                    if matches!(scope, ComplianceScope::Compartments(c) if c.is_empty()) {
                        return Ok(ComplianceRows::default());
                    }
                    let mut tx = self.read().begin_with($begin_read).await?;

                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT m.id, m.display_name, m.compartment_id, m.os_family, m.os_name, m.os_version, m.last_checkin, i.time_reported \
                         FROM managed_instances m LEFT JOIN instance_inventories i ON i.instance_id = m.id WHERE m.id",
                    );
                    push_scope(&mut qb, scope);
                    let mut instances = Vec::new();
                    for r in qb.build().fetch_all(&mut *tx).await? {
                        instances.push(InstanceRow {
                            id: r.try_get("id")?,
                            display_name: r.try_get("display_name")?,
                            compartment_id: r.try_get("compartment_id")?,
                            os_family: parse_enum("os_family", &r.try_get::<String, _>("os_family")?)?,
                            os_name: r.try_get("os_name")?,
                            os_version: r.try_get("os_version")?,
                            last_checkin: opt_ts(r.try_get("last_checkin")?),
                            inventory_reported: opt_ts(r.try_get("time_reported")?),
                            pending: UpdateCounts::default(),
                        });
                    }

                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT instance_id, update_type, count(*) AS n FROM instance_updates WHERE instance_id",
                    );
                    push_scope(&mut qb, scope);
                    qb.push(
                        " GROUP BY instance_id, update_type UNION ALL \
                         SELECT instance_id, update_type, count(*) AS n FROM instance_windows_updates WHERE NOT installed AND instance_id",
                    );
                    push_scope(&mut qb, scope);
                    qb.push(" GROUP BY instance_id, update_type");
                    let mut counts: HashMap<String, UpdateCounts> = HashMap::new();
                    for r in qb.build().fetch_all(&mut *tx).await? {
                        let c = counts.entry(r.try_get("instance_id")?).or_default();
                        let n: i64 = r.try_get("n")?;
                        match parse_enum::<UpdateClassification>("update_type", &r.try_get::<String, _>("update_type")?)? {
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
                        let mut qb = QueryBuilder::<$db>::new(
                            "SELECT instance_id, name, architecture, installed_version, available_version, update_type, cves, advisories \
                             FROM instance_updates WHERE instance_id",
                        );
                        push_scope(&mut qb, scope);
                        push_classes(&mut qb, classes);
                        for r in qb.build().fetch_all(&mut *tx).await? {
                            let name: String = r.try_get("name")?;
                            updates.push(PendingUpdate {
                                instance_id: r.try_get("instance_id")?,
                                source: UpdateSource::Package,
                                display_name: name.clone(),
                                name,
                                architecture: non_empty(r.try_get("architecture")?),
                                installed_version: r.try_get("installed_version")?,
                                available_version: r.try_get("available_version")?,
                                update_type: parse_enum("update_type", &r.try_get::<String, _>("update_type")?)?,
                                cves: from_json("cves", &r.try_get::<String, _>("cves")?)?,
                                advisories: from_json("advisories", &r.try_get::<String, _>("advisories")?)?,
                            });
                        }
                        let mut qb = QueryBuilder::<$db>::new(
                            "SELECT instance_id, name, display_name, update_type FROM instance_windows_updates WHERE NOT installed AND instance_id",
                        );
                        push_scope(&mut qb, scope);
                        push_classes(&mut qb, classes);
                        for r in qb.build().fetch_all(&mut *tx).await? {
                            updates.push(PendingUpdate {
                                instance_id: r.try_get("instance_id")?,
                                source: UpdateSource::Windows,
                                display_name: r.try_get("display_name")?,
                                name: r.try_get("name")?,
                                architecture: None,
                                installed_version: None,
                                available_version: None,
                                update_type: parse_enum("update_type", &r.try_get::<String, _>("update_type")?)?,
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
