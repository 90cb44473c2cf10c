//! The compliance report (an osm extension): the scope is authorised here (a compartment the
//! caller reaches, optionally with its subtree; a live group in one; or, when none is given,
//! every compartment the caller may read), read from the store in one snapshot batch by batch,
//! and shaped by `osm_core::report` as the batches come, so that memory holds what the report
//! shows and no more: with details, at most [`App::report_max_detail_updates`] updates.

use std::ops::ControlFlow;

use jiff::Timestamp;
use osm_core::LifecycleState;
use osm_core::ids::check_ocid;
use osm_core::report::{
    self, ComplianceFilter, ComplianceReport, ReportBuilder, ReportScope, TooManyDetails,
};
use osm_store::{ComplianceBatch, ComplianceBatches, ComplianceScope};

use super::{App, Principal};
use crate::http::error::{ApiError, ApiResult};

/// What a report was asked for.
#[derive(Debug, Clone)]
pub struct ComplianceQuery {
    pub compartment_id: Option<String>,
    /// With `compartment_id`: every compartment below it too.
    pub in_subtree: bool,
    pub group_id: Option<String>,
    pub filter: ComplianceFilter,
}

impl App {
    pub async fn compliance_report(
        &self,
        p: &Principal,
        q: &ComplianceQuery,
    ) -> ApiResult<ComplianceReport> {
        let (scope, report_scope) = match (&q.compartment_id, &q.group_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "give either compartmentId or managedInstanceGroupId, not both",
                ));
            }
            (None, None) => self.granted_scope(p).await?,
            (Some(c), None) => {
                self.authorize(p, c)?;
                let compartments: Vec<String> = if q.in_subtree {
                    // A grant covers a whole subtree, so everything below a reachable
                    // compartment is reachable; the filter only keeps that promise explicit.
                    self.tree()
                        .await?
                        .subtree(c)
                        .into_iter()
                        .filter(|id| p.reaches(id))
                        .collect()
                } else {
                    vec![c.clone()]
                };
                let report_scope = ReportScope::Compartment {
                    id: c.clone(),
                    in_subtree: q.in_subtree,
                    compartments: compartments.len(),
                };
                (ComplianceScope::Compartments(compartments), report_scope)
            }
            (None, Some(g)) => {
                if q.in_subtree {
                    return Err(ApiError::invalid(
                        "compartmentIdInSubtree goes with compartmentId; a group report covers the group's members",
                    ));
                }
                let not_found = || ApiError::not_found("managed instance group", g);
                check_ocid("managedInstanceGroupId", g).map_err(|_| not_found())?;
                let group = match self.store.managed_instance_group_get(g).await? {
                    Some(group)
                        if p.reaches(&group.compartment_id)
                            && group.lifecycle_state != LifecycleState::Deleted =>
                    {
                        group
                    }
                    _ => return Err(not_found()),
                };
                (
                    ComplianceScope::Group(g.clone()),
                    ReportScope::Group {
                        id: group.id,
                        display_name: group.display_name,
                    },
                )
            }
        };
        let classes = report::classes_at_or_above(q.filter.severity);
        let mut builder = ReportBuilder::new(&q.filter, self.report_max_detail_updates);
        let mut too_many: Option<TooManyDetails> = None;
        let group = matches!(scope, ComplianceScope::Group(_));
        self.store
            .compliance_scan(
                &scope,
                &classes,
                ComplianceBatches::default(),
                &mut |batch| {
                    match batch {
                        ComplianceBatch::Instances(mut rows) => {
                            if group {
                                // A group may hold instances of compartments the caller does
                                // not reach: they are left out, as if they did not exist (and
                                // so are their updates, which the builder ignores).
                                rows.retain(|i| p.reaches(&i.compartment_id));
                            }
                            builder.add_instances(rows);
                        }
                        ComplianceBatch::Updates(updates) => {
                            if let Err(e) = builder.add_updates(updates) {
                                too_many = Some(e);
                                return ControlFlow::Break(());
                            }
                        }
                    }
                    ControlFlow::Continue(())
                },
            )
            .await?;
        if let Some(e) = too_many {
            return Err(ApiError::report_too_large(e.limit));
        }
        Ok(builder.finish(report_scope, Timestamp::now()))
    }

    /// No scope given: every compartment the caller may read. That is the tenancy's whole tree
    /// for a caller who reaches the tenancy (reported as that compartment and its subtree), else
    /// the subtrees of its grants; a caller granted nothing is told so.
    async fn granted_scope(&self, p: &Principal) -> ApiResult<(ComplianceScope, ReportScope)> {
        if p.reaches(&self.tenancy_id) {
            let compartments: Vec<String> = self
                .tree()
                .await?
                .subtree(&self.tenancy_id)
                .into_iter()
                .filter(|id| p.reaches(id))
                .collect();
            let report_scope = ReportScope::Compartment {
                id: self.tenancy_id.clone(),
                in_subtree: true,
                compartments: compartments.len(),
            };
            return Ok((ComplianceScope::Compartments(compartments), report_scope));
        }
        let tree = self.tree().await?;
        let mut compartments: Vec<String> = p.reach.iter().cloned().collect();
        compartments.sort();
        if compartments.is_empty() {
            return Err(ApiError::nothing_granted(
                "you are granted no compartment, so there is nothing to report on; ask an administrator for a grant",
            ));
        }
        // The top of each granted subtree: a reachable compartment whose parent is not.
        let roots: Vec<String> = compartments
            .iter()
            .filter(|c| {
                tree.ancestors(c)
                    .first()
                    .is_none_or(|parent| !p.reaches(parent))
            })
            .cloned()
            .collect();
        let report_scope = ReportScope::Granted {
            roots,
            compartments: compartments.len(),
        };
        Ok((ComplianceScope::Compartments(compartments), report_scope))
    }
}
