//! The compliance report (an osm extension): the scope is authorised here (a compartment the
//! caller reaches, optionally with its subtree, or a live group in one), read from the store
//! in one snapshot, and shaped by `osm_core::report`.

use std::collections::HashSet;

use jiff::Timestamp;
use osm_core::LifecycleState;
use osm_core::ids::check_ocid;
use osm_core::report::{self, ComplianceFilter, ComplianceReport, ReportScope};
use osm_store::ComplianceScope;

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
            (None, None) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "MissingParameter",
                    "say what to report on: compartmentId (with compartmentIdInSubtree=true for its whole subtree) or managedInstanceGroupId",
                ));
            }
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
        let mut rows = self.store.compliance_rows(&scope, &classes).await?;
        if matches!(scope, ComplianceScope::Group(_)) {
            // A group may hold instances of compartments the caller does not reach: they are
            // left out, as if they did not exist.
            rows.instances.retain(|i| p.reaches(&i.compartment_id));
            let kept: HashSet<String> = rows.instances.iter().map(|i| i.id.clone()).collect();
            rows.updates.retain(|u| kept.contains(&u.instance_id));
        }
        Ok(report::build(
            rows,
            report_scope,
            &q.filter,
            Timestamp::now(),
        ))
    }
}
