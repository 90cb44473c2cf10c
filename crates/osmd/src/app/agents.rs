//! The agent side: install keys, enrolment, heartbeats, claiming work under a lease, and
//! reporting its logs and outcome. Agents only ever see and touch their own instance's work.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use osm_core::ids::{ResourceKind, check_ocid, new_ocid};
use osm_core::lifecycle::Event;
use osm_core::validate::check_name;
use osm_core::{
    AgentFacts, InstallKey, ManagedInstance, ManagedInstanceStatus, OsFamily, UpdateCounts,
    WorkRequest, WorkRequestLogEntry, WorkRequestStatus,
};
use osm_store::{ClaimedWork, Completed, Completion, CompletionRefused, StoreError};

use super::{App, Principal};
use crate::http::error::{ApiError, ApiResult};

/// How long a claimed work request belongs to its agent without a heartbeat, unless the
/// settings say otherwise (`lease_secs`).
pub const LEASE: SignedDuration = SignedDuration::from_secs(120);
/// How often agents are asked to send a heartbeat (more often when the lease is short).
pub const HEARTBEAT_SECS: u64 = 30;
/// Most work requests one long poll claims.
pub const MAX_CLAIM: u32 = 100;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Install keys are kept as SHA-256 hashes only.
pub fn hash_secret(secret: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What enrolment gives an agent.
pub struct Enrolment {
    pub instance: ManagedInstance,
    pub secret: String,
}

/// What an agent reports at the end of one work request.
#[derive(Debug, Clone)]
pub struct Report {
    pub id: String,
    pub outcome: Outcome,
    /// `(code, message)` pairs; a `FAILED` outcome has at least one.
    pub errors: Vec<(String, String)>,
    /// Last log lines, recorded before the outcome.
    pub log: Vec<String>,
}

/// How an agent ended a work request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Succeeded,
    Failed,
    Canceled,
}

impl App {
    /// How often an agent is asked to send a heartbeat: four times per lease, at most every
    /// `HEARTBEAT_SECS`, so one lost heartbeat never costs a lease.
    pub fn heartbeat_secs(&self) -> u64 {
        (self.lease.as_secs().max(0) as u64 / 4).clamp(1, HEARTBEAT_SECS)
    }

    /// Creates an install key for a compartment; the secret is returned once, never stored.
    pub async fn install_key_create(
        &self,
        p: &Principal,
        compartment_id: &str,
        display_name: &str,
    ) -> ApiResult<(InstallKey, String)> {
        check_ocid("compartmentId", compartment_id)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        check_name("displayName", display_name).map_err(ApiError::invalid)?;
        self.active_compartment(p, compartment_id).await?;
        let secret = random_secret("osmik_");
        let key = InstallKey {
            id: new_ocid(ResourceKind::InstallKey),
            compartment_id: compartment_id.to_string(),
            display_name: display_name.to_string(),
            time_created: Timestamp::now(),
            time_revoked: None,
        };
        self.store
            .install_key_create(&key, &hash_secret(&secret))
            .await?;
        Ok((key, secret))
    }

    pub async fn install_key_list(
        &self,
        p: &Principal,
        compartment_id: &str,
    ) -> ApiResult<Vec<InstallKey>> {
        self.authorize(p, compartment_id)?;
        Ok(self.store.install_key_list(compartment_id).await?)
    }

    pub async fn install_key_revoke(&self, p: &Principal, id: &str) -> ApiResult<()> {
        match self.store.install_key_get(id).await? {
            Some(k) if p.reaches(&k.compartment_id) => {
                Ok(self.store.install_key_revoke(id, Timestamp::now()).await?)
            }
            _ => Err(ApiError::not_found("install key", id)),
        }
    }

    /// Enrols a host with an install key: a new managed instance in the key's compartment.
    pub async fn agent_enroll(
        &self,
        install_key: &str,
        hostname: &str,
        os_family: OsFamily,
        compartment_id: Option<&str>,
        facts: &AgentFacts,
    ) -> ApiResult<Enrolment> {
        let key = self
            .store
            .install_key_find(&hash_secret(install_key))
            .await?
            .ok_or_else(|| {
                ApiError::not_authenticated("the install key is unknown or was revoked")
            })?;
        check_name("hostname", hostname).map_err(ApiError::invalid)?;
        if os_family == OsFamily::All {
            return Err(ApiError::invalid("osFamily must be LINUX or WINDOWS"));
        }
        let compartment = match compartment_id {
            None => key.compartment_id.clone(),
            Some(c) => {
                check_ocid("compartmentId", c).map_err(|e| ApiError::invalid(e.to_string()))?;
                if !self
                    .tree()
                    .await?
                    .subtree(&key.compartment_id)
                    .iter()
                    .any(|id| id == c)
                {
                    return Err(ApiError::invalid(format!(
                        "compartment {c} is not in the install key's compartment or below it"
                    )));
                }
                c.to_string()
            }
        };
        let now = Timestamp::now();
        let updates = facts.updates.unwrap_or_default();
        let instance = ManagedInstance {
            id: new_ocid(ResourceKind::ManagedInstance),
            compartment_id: compartment,
            display_name: hostname.to_string(),
            description: None,
            os_name: facts.os_name.clone(),
            os_version: facts.os_version.clone(),
            os_kernel_version: facts.os_kernel_version.clone(),
            os_family,
            status: ManagedInstanceStatus::Normal,
            last_checkin: Some(now),
            last_boot: facts.last_boot,
            is_reboot_required: facts.is_reboot_required,
            notification_topic_id: None,
            is_data_collection_authorized: false,
            updates: UpdateCounts {
                security: updates.security,
                bug: updates.bug,
                enhancement: updates.enhancement,
                other: updates.other,
            },
            time_created: now,
            version: 1,
        };
        let secret = B64.encode(random_secret("").as_bytes());
        match self.store.agent_enroll(&instance, &secret).await {
            Ok(()) => {}
            Err(StoreError::MissingReference(_)) => {
                return Err(ApiError::incorrect_state(
                    "the install key's compartment was deleted",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("osm_agent_enrolments_total").increment(1);
        Ok(Enrolment { instance, secret })
    }

    /// A heartbeat: facts recorded, leases renewed; returns the work still in flight.
    pub async fn agent_heartbeat(
        &self,
        instance_id: &str,
        facts: &AgentFacts,
    ) -> ApiResult<Vec<(String, WorkRequestStatus)>> {
        let now = Timestamp::now();
        self.store.agent_report(instance_id, facts, now).await?;
        Ok(self
            .store
            .work_request_renew_leases(instance_id, now, self.lease)
            .await?)
    }

    /// Claims up to `max` queued work requests, waiting up to `wait` for one to arrive.
    pub async fn agent_poll(
        &self,
        instance_id: &str,
        max: u32,
        wait: Duration,
    ) -> ApiResult<Vec<ClaimedWork>> {
        Ok(self.agent_exchange(instance_id, vec![], max, wait).await?.1)
    }

    /// Ends work requests as the agent reports (each item answers on its own, as in
    /// [`App::agent_complete`]) and claims up to `max` queued ones in the same transaction; when
    /// there is none yet, waits up to `wait` for one to arrive (the outcomes are recorded
    /// meanwhile). An agent that runs batches needs one call per batch this way.
    pub async fn agent_exchange(
        &self,
        instance_id: &str,
        reports: Vec<Report>,
        max: u32,
        wait: Duration,
    ) -> ApiResult<(Vec<ApiResult<Completed>>, Vec<ClaimedWork>)> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let max = max.clamp(1, MAX_CLAIM);
        let (items, asked) = completions(reports);
        let notified = self.work_signal.notified();
        let (results, mut claimed) = self.dispatcher().exchange(instance_id, items, max).await?;
        let answers = answer(&asked, results);
        if claimed.is_empty() && tokio::time::Instant::now() < deadline {
            // Woken when work is queued on this replica; otherwise look again every 2 s.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_secs(2)),
                notified,
            )
            .await;
            loop {
                let notified = self.work_signal.notified();
                claimed = self
                    .dispatcher()
                    .exchange(instance_id, vec![], max)
                    .await?
                    .1;
                if !claimed.is_empty() || tokio::time::Instant::now() >= deadline {
                    break;
                }
                let _ = tokio::time::timeout_at(
                    deadline.min(tokio::time::Instant::now() + Duration::from_secs(2)),
                    notified,
                )
                .await;
            }
        }
        Ok((answers, claimed))
    }

    /// A work request of this agent's instance, or 404.
    async fn own_work(&self, instance_id: &str, id: &str) -> ApiResult<WorkRequest> {
        match self.store.work_request_get(id).await? {
            Some(wr)
                if wr
                    .managed_instance
                    .as_ref()
                    .is_some_and(|m| m.id == instance_id) =>
            {
                Ok(wr)
            }
            _ => Err(ApiError::not_found("work request", id)),
        }
    }

    pub async fn agent_log(
        &self,
        instance_id: &str,
        id: &str,
        lines: Vec<String>,
    ) -> ApiResult<()> {
        let wr = self.own_work(instance_id, id).await?;
        if !matches!(
            wr.status,
            WorkRequestStatus::InProgress | WorkRequestStatus::Cancelling
        ) {
            return Err(ApiError::incorrect_state(format!(
                "work request {id} is {}",
                wr.status
            )));
        }
        let now = Timestamp::now();
        let entries: Vec<WorkRequestLogEntry> = lines
            .into_iter()
            .map(|message| WorkRequestLogEntry {
                message,
                timestamp: now,
            })
            .collect();
        Ok(self.store.work_request_log_append(id, &entries).await?)
    }

    /// Ends work requests of this agent's instance as it reports, in one store transaction;
    /// each item answers on its own (the others go ahead when one is refused).
    pub async fn agent_complete(
        &self,
        instance_id: &str,
        reports: Vec<Report>,
    ) -> ApiResult<Vec<ApiResult<Completed>>> {
        let (items, asked) = completions(reports);
        let (results, _) = self.dispatcher().exchange(instance_id, items, 0).await?;
        Ok(answer(&asked, results))
    }
}

/// The store's view of an agent's reports, and what each asked for (to answer it).
fn completions(reports: Vec<Report>) -> (Vec<Completion>, Vec<(String, Event)>) {
    let items: Vec<Completion> = reports
        .into_iter()
        .map(|r| Completion {
            id: r.id,
            event: match r.outcome {
                Outcome::Succeeded => Event::Succeed,
                Outcome::Failed => Event::Fail,
                Outcome::Canceled => Event::Stopped,
            },
            errors: r.errors,
            log: r.log,
        })
        .collect();
    let asked = items.iter().map(|c| (c.id.clone(), c.event)).collect();
    (items, asked)
}

/// One answer per report: the new state, or why it was refused; finished ones are counted.
fn answer(
    asked: &[(String, Event)],
    results: Vec<Result<Completed, CompletionRefused>>,
) -> Vec<ApiResult<Completed>> {
    let now = Timestamp::now();
    asked
        .iter()
        .zip(results)
        .map(|((id, event), result)| match result {
            Ok(done) => {
                if let Some(started) = done.time_started {
                    metrics::histogram!("osm_work_request_claim_to_finish_seconds")
                        .record((now - started).as_secs_f64().max(0.0));
                }
                metrics::counter!("osm_work_requests_finished_total", "status" => done.status.as_str(), "operation" => done.operation_type.as_str()).increment(1);
                Ok(done)
            }
            Err(CompletionRefused::NotFound) => Err(ApiError::not_found("work request", id)),
            Err(CompletionRefused::WrongState(status)) => Err(ApiError::incorrect_state(format!(
                "work request {id} is {status}{}",
                if status == WorkRequestStatus::InProgress && *event == Event::Stopped {
                    "; only work being cancelled can end CANCELED"
                } else {
                    ""
                }
            ))),
        })
        .collect()
}
