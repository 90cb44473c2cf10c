//! Persistence for osm. All SQL lives in this crate.
//!
//! [`Store`] is the one interface the server uses; [`sqlite::SqliteStore`] (embedded, the
//! default) and [`postgres::PgStore`] (several osmd replicas) implement it, each with its own
//! migrations applied by [`connect`]. Both pass the same conformance suite
//! (`tests/conformance.rs`).
//!
//! Rules every implementation keeps:
//! - each method is one transaction; a method that returns `Ok` has committed durably;
//! - updates guarded by a version (`expected_version`) compare and bump it atomically, so an
//!   `if-match` check can never race another writer;
//! - times are stored as microseconds since the Unix epoch (`BIGINT`), tags and lists as JSON
//!   text, so both backends hold the same values;
//! - lists use keyset pagination from [`osm_core::page`]: rows are ordered by the sort column
//!   then `id`, and the next page starts strictly after the cursor;
//! - methods that take a [`RetryRecord`] store it in the same transaction as their change; a
//!   token that was already used for this principal yields [`StoreError::RetryTokenUsed`].

use async_trait::async_trait;
use jiff::Timestamp;
use osm_core::page::{Page, PageRequest};
use osm_core::*;

mod common;
pub mod errata;
pub mod inventory;
mod open_work;
pub mod postgres;
pub mod report;
mod rows;
pub mod sqlite;

/// How an agent ended one work request.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: String,
    /// `Succeed`, `Fail` or `Stopped`.
    pub event: osm_core::lifecycle::Event,
    /// `(code, message)` pairs.
    pub errors: Vec<(String, String)>,
    /// Lines to log before the closing note.
    pub log: Vec<String>,
}

/// A work request an agent ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub id: String,
    pub status: WorkRequestStatus,
    pub operation_type: OperationType,
    pub time_started: Option<Timestamp>,
}

/// One agent's long poll in a dispatch batch: up to `limit` of its queued work requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub instance_id: String,
    pub limit: u32,
}

/// One agent's report in a dispatch batch: how it ended some of its work requests.
#[derive(Debug, Clone)]
pub struct AgentOutcomes {
    pub instance_id: String,
    pub items: Vec<Completion>,
}

/// A work request a claim handed to its agent: what the agent needs to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedWork {
    pub id: String,
    pub description: Option<String>,
    pub action: Option<WorkAction>,
    pub time_accepted: Timestamp,
}

/// What a dispatch batch did, in the order of its inputs.
#[derive(Debug, Clone, Default)]
pub struct Dispatched {
    /// One answer per item of each report.
    pub completed: Vec<Vec<Result<Completed, CompletionRefused>>>,
    /// The work requests each claim took, oldest first.
    pub claimed: Vec<Vec<ClaimedWork>>,
}

/// Why one completion was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionRefused {
    /// No such work request on this instance.
    NotFound,
    /// The work request is in a state this outcome cannot leave.
    WrongState(WorkRequestStatus),
}

pub use errata::{ErrataStore, ErratumFilter};
pub use inventory::{InventoryStore, PackageList, WindowsUpdateFilter};
pub use report::{
    ComplianceBatch, ComplianceBatches, ComplianceScope, ComplianceSink, ReportStore,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to act on does not exist.
    #[error("not found")]
    NotFound,
    /// The row exists but its version differs from the expected one (`if-match` failed).
    #[error("the resource was changed by another request (version mismatch)")]
    VersionMismatch,
    /// The change would break a rule the store enforces; the message says which.
    #[error("{0}")]
    Conflict(String),
    /// A referenced row (compartment, instance, group) does not exist.
    #[error("{0}")]
    MissingReference(String),
    /// The retry token was already recorded for this principal (by an earlier or a racing
    /// request); the caller looks the record up and replays or refuses.
    #[error("retry token already used")]
    RetryTokenUsed,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Filters of `ListCompartments`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompartmentFilter {
    /// The parent whose children are listed.
    pub parent_id: String,
    /// List the whole subtree below `parent_id`, not only its direct children.
    pub in_subtree: bool,
    /// Exact name.
    pub name: Option<String>,
    pub lifecycle_state: Option<CompartmentState>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedInstanceFilter {
    pub compartment_id: String,
    /// Exact display name.
    pub display_name: Option<String>,
    /// `None` or `Some(All)`: every family.
    pub os_family: Option<OsFamily>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFilter {
    pub compartment_id: String,
    pub display_name: Option<String>,
    /// `None`: every state except `DELETED`.
    pub lifecycle_state: Option<LifecycleState>,
    pub os_family: Option<OsFamily>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduledJobFilter {
    pub compartment_id: String,
    pub display_name: Option<String>,
    /// Jobs that target this instance directly.
    pub managed_instance_id: Option<String>,
    /// Jobs that target this group.
    pub managed_instance_group_id: Option<String>,
    pub operation_type: Option<OperationType>,
    /// `None`: every state except `DELETED`.
    pub lifecycle_state: Option<LifecycleState>,
    pub os_family: Option<OsFamily>,
    pub is_restricted: Option<bool>,
    /// Only jobs whose `timeNextExecution` is before this instant (`ListUpcomingScheduledJobs`).
    pub next_execution_before: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkRequestFilter {
    pub compartment_id: String,
    pub display_name: Option<String>,
    pub managed_instance_id: Option<String>,
    pub os_family: Option<OsFamily>,
}

/// The persistence interface of osmd. Method names are resource-first. The package inventory
/// part is [`InventoryStore`] (in `inventory.rs`), the errata part [`ErrataStore`] (in
/// `errata.rs`), the compliance report's reads [`ReportStore`] (in `report.rs`).
#[async_trait]
pub trait Store: InventoryStore + ErrataStore + ReportStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A cheap round trip (health checks).
    async fn ping(&self) -> StoreResult<()>;

    // --- identity ---------------------------------------------------------------------

    /// The tenancy (root compartment), if the store was bootstrapped.
    async fn tenancy_get(&self) -> StoreResult<Option<Compartment>>;
    /// Creates the tenancy, the administrator, its key, the administrators' group and its
    /// grant on the tenancy, all in one transaction, unless a tenancy exists already.
    /// Returns `false` (and changes nothing) when one does.
    async fn bootstrap(&self, b: &Bootstrap) -> StoreResult<bool>;

    async fn user_create(&self, user: &User) -> StoreResult<()>;
    async fn user_get(&self, id: &str) -> StoreResult<Option<User>>;
    async fn api_key_add(&self, key: &ApiKey) -> StoreResult<()>;
    /// The key of `user_id` with this fingerprint.
    async fn api_key_get(&self, user_id: &str, fingerprint: &str) -> StoreResult<Option<ApiKey>>;
    async fn user_group_create(&self, group: &Group) -> StoreResult<()>;
    async fn user_group_add_member(&self, group_id: &str, user_id: &str) -> StoreResult<()>;
    /// Grants the group's members `compartment_id` and its whole subtree.
    async fn user_group_grant(&self, group_id: &str, compartment_id: &str) -> StoreResult<()>;
    /// Compartments granted to any group the user belongs to (roots of what it may reach).
    async fn user_granted_compartments(&self, user_id: &str) -> StoreResult<Vec<String>>;

    // --- compartments -----------------------------------------------------------------

    /// Fails with `MissingReference` when the parent does not exist, `Conflict` when an
    /// active sibling has the same name.
    async fn compartment_create(
        &self,
        c: &Compartment,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    async fn compartment_get(&self, id: &str) -> StoreResult<Option<Compartment>>;
    async fn compartment_list(
        &self,
        filter: &CompartmentFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Compartment>>;
    /// Every compartment as `(id, parent_id)`, the tenancy with `None` (authorisation walks
    /// this tree).
    async fn compartment_tree(&self) -> StoreResult<Vec<(String, Option<String>)>>;
    async fn compartment_update(
        &self,
        id: &str,
        patch: &CompartmentPatch,
        expected_version: Option<i64>,
    ) -> StoreResult<Compartment>;
    /// Marks the compartment `DELETED`. Fails with `Conflict` naming what it still holds:
    /// active child compartments, instances, groups, non-deleted scheduled jobs.
    async fn compartment_delete(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()>;

    // --- managed instances ------------------------------------------------------------

    /// `MissingReference` when the compartment does not exist or is deleted; `Conflict` when
    /// the id is taken.
    async fn managed_instance_insert(&self, mi: &ManagedInstance) -> StoreResult<()>;
    /// Many instances in one transaction (enrolment bursts, benchmarks, the simulator); all or
    /// none are inserted.
    async fn managed_instance_insert_many(&self, mis: &[ManagedInstance]) -> StoreResult<()>;
    async fn managed_instance_get(&self, id: &str) -> StoreResult<Option<ManagedInstance>>;
    async fn managed_instance_list(
        &self,
        filter: &ManagedInstanceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ManagedInstance>>;
    async fn managed_instance_update(
        &self,
        id: &str,
        patch: &ManagedInstancePatch,
        expected_version: Option<i64>,
    ) -> StoreResult<ManagedInstance>;
    /// Groups the instance belongs to.
    async fn managed_instance_groups_of(&self, id: &str) -> StoreResult<Vec<IdName>>;
    /// `(scheduledJobCount, workRequestCount)`: non-deleted jobs that target the instance
    /// directly or through a group, and work requests on it.
    async fn managed_instance_counts(&self, id: &str) -> StoreResult<(i64, i64)>;

    // --- managed instance groups ------------------------------------------------------

    /// `MissingReference` when the compartment does not exist or is deleted.
    async fn managed_instance_group_create(
        &self,
        g: &ManagedInstanceGroup,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    /// `DELETED` groups are returned too (their state says so).
    async fn managed_instance_group_get(
        &self,
        id: &str,
    ) -> StoreResult<Option<ManagedInstanceGroup>>;
    async fn managed_instance_group_list(
        &self,
        filter: &GroupFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ManagedInstanceGroup>>;
    async fn managed_instance_group_update(
        &self,
        id: &str,
        patch: &ManagedInstanceGroupPatch,
        expected_version: Option<i64>,
    ) -> StoreResult<ManagedInstanceGroup>;
    /// Marks the group `DELETED` and drops its memberships. `Conflict` when an active
    /// scheduled job still targets it.
    async fn managed_instance_group_delete(
        &self,
        id: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<()>;
    async fn managed_instance_group_change_compartment(
        &self,
        id: &str,
        compartment_id: &str,
        expected_version: Option<i64>,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    /// `Conflict` when the instance is already a member or its OS family differs from the
    /// group's; `MissingReference` when the instance does not exist.
    async fn managed_instance_group_attach(
        &self,
        group_id: &str,
        instance_id: &str,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    /// `Conflict` when the instance is not a member.
    async fn managed_instance_group_detach(
        &self,
        group_id: &str,
        instance_id: &str,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    /// Members as `(id, displayName)`, ordered by display name.
    async fn managed_instance_group_members(&self, group_id: &str) -> StoreResult<Vec<IdName>>;

    // --- scheduled jobs ---------------------------------------------------------------

    /// `MissingReference` when the compartment or a target does not exist (a deleted group
    /// counts as missing); `Conflict` when a target is named twice.
    async fn scheduled_job_create(
        &self,
        job: &ScheduledJob,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    async fn scheduled_job_get(&self, id: &str) -> StoreResult<Option<ScheduledJob>>;
    async fn scheduled_job_list(
        &self,
        filter: &ScheduledJobFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ScheduledJob>>;
    /// Replaces the mutable fields with those of `job` (already validated), bumping the version.
    async fn scheduled_job_replace(
        &self,
        job: &ScheduledJob,
        expected_version: Option<i64>,
    ) -> StoreResult<ScheduledJob>;
    /// Marks the job `DELETED`; its history (work requests) stays.
    async fn scheduled_job_delete(
        &self,
        id: &str,
        expected_version: Option<i64>,
    ) -> StoreResult<()>;
    async fn scheduled_job_change_compartment(
        &self,
        id: &str,
        compartment_id: &str,
        expected_version: Option<i64>,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    /// The earliest `timeNextExecution` of an active job (the scheduler sleeps until then).
    async fn scheduled_job_next_due(&self) -> StoreResult<Option<Timestamp>>;
    /// Handles the occurrences due at `now` of up to `limit` jobs, each in the same transaction:
    /// records the occurrence (the `(job, time)` key makes it happen once across crashes and
    /// replicas); if it is not older than `catch_up`, creates one work request per instance
    /// the job reaches now (group members expanded at fire time), else records it as missed;
    /// and advances `timeNextExecution` (none after a one-time job). Call again until it
    /// returns nothing: each call advances each job by one occurrence.
    async fn scheduled_job_fire_due(
        &self,
        now: Timestamp,
        catch_up: jiff::SignedDuration,
        limit: u32,
    ) -> StoreResult<Vec<Occurrence>>;
    /// Fires an extra occurrence at `now` (work requests for every instance the job reaches);
    /// the recurrence does not move. `Conflict` for a job that is not active.
    async fn scheduled_job_run_now(
        &self,
        id: &str,
        now: Timestamp,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<Occurrence>;
    /// Records the next occurrence of a recurring job as skipped and advances past it.
    /// `Conflict` for a one-time or inactive job.
    async fn scheduled_job_skip_next(
        &self,
        id: &str,
        now: Timestamp,
        expected_version: Option<i64>,
        retry: Option<&RetryRecord>,
    ) -> StoreResult<Occurrence>;
    /// Work requests created by the job's occurrences, newest first.
    async fn scheduled_job_work_requests(&self, id: &str) -> StoreResult<Vec<IdName>>;

    // --- work requests ----------------------------------------------------------------

    /// Inserts work requests with their first log lines, in one transaction.
    async fn work_request_insert_many(
        &self,
        wrs: &[WorkRequest],
        logs: &[(String, WorkRequestLogEntry)],
    ) -> StoreResult<()>;
    /// Inserts work requests with their first log lines and, when given, the retry record of
    /// the request that asked for them, in one transaction.
    async fn work_request_submit(
        &self,
        wrs: &[WorkRequest],
        logs: &[(String, WorkRequestLogEntry)],
        retry: Option<&RetryRecord>,
    ) -> StoreResult<()>;
    /// Moves a work request to `to` if it is in one of the `from` states (one compare-and-set),
    /// stamping `timeStarted`/`timeFinished`, appending `log`, and re-deriving its parent's
    /// status and progress from all the parent's children. `Conflict` names the current state
    /// when it is not one of `from`.
    async fn work_request_transition(
        &self,
        id: &str,
        from: &[WorkRequestStatus],
        to: WorkRequestStatus,
        now: Timestamp,
        log: Option<&str>,
    ) -> StoreResult<WorkRequest>;
    /// The agent protocol's writes, many agents in one transaction (osmd gathers the polls and
    /// reports that arrive together, so throughput does not hinge on one commit per call).
    /// First every report: each item moves by its event if the work request is that report's
    /// instance's and the state machine allows it there, with its errors, log lines and a
    /// closing note; a refused item leaves the others untouched. Then every claim: the
    /// instance's oldest queued work requests, now `IN_PROGRESS` under a lease until
    /// `now + lease` (PostgreSQL skips rows another replica is claiming; two claims of one
    /// instance share its queue in order). Parents are re-derived once per batch.
    async fn work_request_dispatch(
        &self,
        reports: &[AgentOutcomes],
        claims: &[Claim],
        now: Timestamp,
        lease: jiff::SignedDuration,
    ) -> StoreResult<Dispatched>;
    /// One report on its own (see [`Store::work_request_dispatch`]).
    async fn work_request_complete(
        &self,
        instance_id: &str,
        items: &[Completion],
        now: Timestamp,
    ) -> StoreResult<Vec<Result<Completed, CompletionRefused>>> {
        let report = AgentOutcomes {
            instance_id: instance_id.to_string(),
            items: items.to_vec(),
        };
        let mut done = self
            .work_request_dispatch(&[report], &[], now, jiff::SignedDuration::ZERO)
            .await?;
        Ok(done.completed.pop().unwrap_or_default())
    }
    /// One claim on its own (see [`Store::work_request_dispatch`]).
    async fn work_request_claim(
        &self,
        instance_id: &str,
        now: Timestamp,
        lease: jiff::SignedDuration,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedWork>> {
        let claim = Claim {
            instance_id: instance_id.to_string(),
            limit,
        };
        let mut done = self
            .work_request_dispatch(&[], &[claim], now, lease)
            .await?;
        Ok(done.claimed.pop().unwrap_or_default())
    }
    /// Extends the leases of the instance's running work requests to `now + lease`; returns
    /// the ids and states of those still in flight (`CANCELLING` ones are to be stopped).
    async fn work_request_renew_leases(
        &self,
        instance_id: &str,
        now: Timestamp,
        lease: jiff::SignedDuration,
    ) -> StoreResult<Vec<(String, WorkRequestStatus)>>;
    /// Appends log lines to a work request.
    async fn work_request_log_append(
        &self,
        id: &str,
        lines: &[WorkRequestLogEntry],
    ) -> StoreResult<()>;
    /// Records errors of a work request.
    async fn work_request_errors_add(
        &self,
        id: &str,
        errors: &[WorkRequestError],
    ) -> StoreResult<()>;
    /// Fails running work requests whose lease ran out before `now`, with an error naming the
    /// cause; returns their ids.
    async fn work_request_expire_leases(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<String>>;
    /// Deletes up to `limit` terminal work requests finished before `before`, with their logs
    /// and errors; never an `ACCEPTED`, `IN_PROGRESS` or `CANCELLING` one.
    async fn work_request_purge(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;

    /// Work requests by `(status, operationType)`, with their counts (for `/metrics`).
    async fn work_request_stats(&self)
    -> StoreResult<Vec<(WorkRequestStatus, OperationType, i64)>>;
    /// Instances whose agent checked in at or after `since`.
    async fn agents_seen_since(&self, since: Timestamp) -> StoreResult<i64>;

    // --- agents -----------------------------------------------------------------------

    async fn install_key_create(&self, key: &InstallKey, secret_hash: &str) -> StoreResult<()>;
    /// The unrevoked key with this secret hash.
    async fn install_key_find(&self, secret_hash: &str) -> StoreResult<Option<InstallKey>>;
    async fn install_key_list(&self, compartment_id: &str) -> StoreResult<Vec<InstallKey>>;
    async fn install_key_get(&self, id: &str) -> StoreResult<Option<InstallKey>>;
    async fn install_key_revoke(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    /// Creates the enrolled instance and its agent's credential in one transaction.
    async fn agent_enroll(&self, mi: &ManagedInstance, secret: &str) -> StoreResult<()>;
    async fn agent_secret(&self, instance_id: &str) -> StoreResult<Option<String>>;
    /// Records a heartbeat: facts, `lastCheckin`, status back to `NORMAL`.
    async fn agent_report(
        &self,
        instance_id: &str,
        facts: &AgentFacts,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// With `children_ids` filled.
    async fn work_request_get(&self, id: &str) -> StoreResult<Option<WorkRequest>>;
    async fn work_request_list(
        &self,
        filter: &WorkRequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkRequest>>;
    /// Log entries in time order (sorting by TIMECREATED; DISPLAYNAME sorts by message).
    async fn work_request_logs(
        &self,
        id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkRequestLogEntry>>;
    async fn work_request_errors(
        &self,
        id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkRequestError>>;

    // --- retry tokens -----------------------------------------------------------------

    async fn retry_record_get(
        &self,
        principal_id: &str,
        token: &str,
    ) -> StoreResult<Option<RetryRecord>>;
    /// Records a token for an operation that has no store method of its own taking one.
    async fn retry_record_put(&self, record: &RetryRecord) -> StoreResult<()>;
    /// Forgets tokens older than `older_than` (they are valid for 24 hours).
    async fn retry_record_purge(&self, older_than: Timestamp) -> StoreResult<u64>;

    // --- operations -------------------------------------------------------------------

    /// A consistent copy of the whole store in `path` (SQLite `VACUUM INTO`). PostgreSQL
    /// answers `Conflict` pointing at `pg_dump`.
    async fn backup_to(&self, path: &std::path::Path) -> StoreResult<()>;
}

/// Opens the store a URL names (`sqlite://PATH` or `postgres://…`), creating the SQLite file
/// when missing, and applies pending migrations.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        Err(StoreError::Conflict(format!(
            "unsupported database URL {url:?}; use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}

impl StoreError {
    /// The database was too busy to answer in time (pool exhausted, lock wait, serialization
    /// failure): the request may be retried as is.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Database(e) => {
                matches!(e, sqlx::Error::PoolTimedOut)
                    || e.as_database_error()
                        .and_then(|d| d.code())
                        .is_some_and(|c| matches!(&*c, "5" | "6" | "517" | "40001" | "40P01"))
            }
            _ => false,
        }
    }
}
