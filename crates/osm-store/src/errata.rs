//! Errata in the store: [`ErrataStore`], which [`crate::Store`] requires, and its
//! implementation for both backends (`impl_errata_store!`, expanded in `sqlite.rs` and
//! `postgres.rs` like `impl_inventory_store!`). See `docs/errata.md`.
//!
//! Imported OSV records live in `osv_records` (their JSON text), indexed by package name in
//! `osv_packages`; each also makes an entry of the `errata` catalogue. What the agent reported
//! of an available update is kept in `instance_updates.reported_*`; the effective
//! `update_type`, `cves` and `advisories` are that merged with the records the update fixes
//! ([`osm_core::errata::merge`]), and `instance_errata` lists the effective advisory names of
//! every update (which errata apply to which instance). Both an import and an inventory upload
//! recompute the effective values of the updates they touch, and the instances' counters, in
//! their own transaction.
//!
//! Concurrency: on PostgreSQL an import takes an exclusive transaction-level advisory lock and
//! every inventory upload a shared one before anything else, so an upload never misses the
//! records of an import that commits while it runs (and the two never deadlock). SQLite has one
//! writer, so the lock statements are empty there.

use async_trait::async_trait;
use jiff::Timestamp;
use osm_core::errata::{ErratumDetails, ErratumInfo, ImportRecord, ImportSummary};
use osm_core::page::{Page, PageRequest};

use crate::StoreResult;

/// Which catalogue entries a caller sees, and the list filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErratumFilter {
    /// Entries of these compartments are visible whole (the catalogue lives in the tenancy).
    pub catalogue_in: Vec<String>,
    /// Entries that apply to an instance in one of these compartments are visible too, and
    /// only such instances are `affectedInstances`.
    pub applying_in: Vec<String>,
    pub erratum_id: Option<String>,
    /// Exact advisory name.
    pub advisory_name: Option<String>,
    /// Issued at or after.
    pub issued_from: Option<Timestamp>,
    /// Issued at or before.
    pub issued_to: Option<Timestamp>,
}

/// The errata part of the store. Method names are resource-first, as in [`crate::Store`].
#[async_trait]
pub trait ErrataStore: Send + Sync {
    /// Applies a batch of checked OSV records in one transaction: each record is stored (or
    /// replaced by a version with the same or a newer `modified`; an older version is counted
    /// `stale` and changes nothing), makes or updates its erratum in `tenancy_id`'s catalogue,
    /// and every available update of a package a changed record names is matched again, with
    /// the instances' update counters. All or nothing: an error leaves the store as it was.
    /// `MissingReference` when the tenancy does not exist.
    async fn errata_import(
        &self,
        tenancy_id: &str,
        records: &[ImportRecord],
        now: Timestamp,
    ) -> StoreResult<ImportSummary>;
    /// Catalogue entries the filter lets through. `SortKey::TimeCreated` orders by the issue
    /// date (entries without one first in ascending order), `SortKey::Name` by advisory name.
    async fn erratum_list(
        &self,
        filter: &ErratumFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ErratumInfo>>;
    /// The entry, if `scope` lets it through (its `erratum_id` and other filters are ignored),
    /// with the instances in `scope.applying_in` it applies to and the packages that fix it.
    async fn erratum_get(
        &self,
        id: &str,
        scope: &ErratumFilter,
    ) -> StoreResult<Option<ErratumDetails>>;
    /// The errata that apply to an instance (named by its available updates), by when osm
    /// first knew them or by name; `name` is an exact advisory name.
    async fn instance_errata_list(
        &self,
        instance_id: &str,
        name: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<ErratumInfo>>;
}

macro_rules! impl_errata_store {
    ($store:ty, $db:ty, $for_update:literal, $lock_shared:literal, $lock_exclusive:literal) => {
        pub(crate) mod errata_impl {
            use super::*;
            use std::collections::{BTreeSet, HashMap};

            use async_trait::async_trait;
            use jiff::Timestamp;
            use osm_core::errata::*;
            use osm_core::osv::Advisory;
            use osm_core::page::{KeyValue, Page, PageRequest, SortKey};
            use osm_core::IdName;
            use sqlx::{QueryBuilder, Row};

            use $crate::common::is_foreign_key_violation;
            use $crate::errata::{ErrataStore, ErratumFilter};
            use $crate::inventory::RECOUNT_UPDATES;
            use $crate::rows::*;
            use $crate::{StoreError, StoreResult};

            use super::store_impl::{insert_rows_then, key_of, push_page, rows_at, texts_at, timer};

            type DbRow = <$db as sqlx::Database>::Row;
            type Tx = sqlx::Transaction<'static, $db>;

            const FOR_UPDATE: &str = $for_update;
            /// Taken first by every inventory upload (PostgreSQL).
            const LOCK_SHARED: &str = $lock_shared;
            /// Taken first by every import (PostgreSQL).
            const LOCK_EXCLUSIVE: &str = $lock_exclusive;

            fn info(r: &DbRow) -> StoreResult<ErratumInfo> {
                Ok(ErratumInfo {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    name: r.try_get("name")?,
                    advisory_type: parse_opt_enum("advisory_type", r.try_get("advisory_type")?)?,
                    synopsis: r.try_get("synopsis")?,
                    description: r.try_get("description")?,
                    issued: opt_ts(r.try_get("issued")?),
                    modified: opt_ts(r.try_get("osv_modified")?),
                    issuer: r.try_get("issuer")?,
                    solution: r.try_get("solution")?,
                    references: r.try_get("refs")?,
                    related_cves: from_json("related_cves", &r.try_get::<String, _>("related_cves")?)?,
                    packages: from_json("packages", &r.try_get::<String, _>("packages")?)?,
                    withdrawn: opt_ts(r.try_get("withdrawn")?),
                    time_created: ts(r.try_get("time_created")?),
                    time_updated: ts(r.try_get("time_updated")?),
                })
            }

            /// `IN (…)` of bound values.
            fn push_in(qb: &mut QueryBuilder<$db>, values: &[String]) {
                qb.push(" IN (");
                let mut sep = qb.separated(", ");
                for v in values {
                    sep.push_bind(v.clone());
                }
                qb.push(")");
            }

            /// The records (not withdrawn) that name one of `names`, in one statement.
            async fn advisories_for(tx: &mut Tx, names: &[String]) -> StoreResult<Vec<Advisory>> {
                if names.is_empty() {
                    return Ok(vec![]);
                }
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT DISTINCT r.id, r.document FROM osv_records r JOIN osv_packages p ON p.osv_id = r.id WHERE r.withdrawn IS NULL AND p.name IN {} ORDER BY r.id",
                    texts_at(1)
                )))
                .bind(to_json(&names))
                .fetch_all(&mut **tx)
                .await?;
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get("id")?;
                        let doc: String = r.try_get("document")?;
                        osm_core::osv::parse(&doc)
                            .map_err(|e| StoreError::Corrupt(format!("osv_records {id}: {e}")))
                    })
                    .collect()
            }

            /// Advisories by the package names they affect.
            fn by_name(advisories: &[Advisory]) -> HashMap<String, Vec<&Advisory>> {
                let mut out: HashMap<String, Vec<&Advisory>> = HashMap::new();
                for a in advisories {
                    for n in a.package_names() {
                        out.entry(n).or_default().push(a);
                    }
                }
                out
            }

            /// One available update to match: what it is, what the agent said, what it says now.
            struct MatchRow {
                instance_id: String,
                item_key: String,
                name: String,
                installed: String,
                available: String,
                reported: UpdateFacts,
                current: UpdateFacts,
                ecosystem: Option<String>,
            }

            fn facts(r: &DbRow, prefix: &str) -> StoreResult<UpdateFacts> {
                let col = |c: &str| format!("{prefix}{c}");
                Ok(UpdateFacts {
                    update_type: parse_enum("update_type", &r.try_get::<String, _>(col("type").as_str())?)?,
                    cves: from_json("cves", &r.try_get::<String, _>(col("cves").as_str())?)?,
                    advisories: from_json("advisories", &r.try_get::<String, _>(col("advisories").as_str())?)?,
                })
            }

            const MATCH_COLUMNS: &str = "u.instance_id, u.item_key, u.name, u.installed_version, u.available_version, \
                u.update_type AS cur_type, u.cves AS cur_cves, u.advisories AS cur_advisories, \
                COALESCE(u.reported_type, u.update_type) AS rep_type, COALESCE(u.reported_cves, u.cves) AS rep_cves, \
                COALESCE(u.reported_advisories, u.advisories) AS rep_advisories, m.os_name, m.os_version";

            fn match_row(r: &DbRow) -> StoreResult<MatchRow> {
                let os_name: Option<String> = r.try_get("os_name")?;
                let os_version: Option<String> = r.try_get("os_version")?;
                Ok(MatchRow {
                    instance_id: r.try_get("instance_id")?,
                    item_key: r.try_get("item_key")?,
                    name: r.try_get("name")?,
                    installed: r.try_get("installed_version")?,
                    available: r.try_get("available_version")?,
                    reported: facts(r, "rep_")?,
                    current: facts(r, "cur_")?,
                    ecosystem: osm_core::ecosystem::of_os(
                        os_name.as_deref().unwrap_or_default(),
                        os_version.as_deref().unwrap_or_default(),
                    ),
                })
            }

            /// Adds `instance_errata` rows: each update's advisory names.
            async fn write_instance_errata(tx: &mut Tx, rows: &[(&str, &str, &[String])]) -> StoreResult<()> {
                let cells: Vec<Vec<Cell>> = rows
                    .iter()
                    .flat_map(|(i, k, names)| names.iter().map(move |n| vec![Cell::text(*i), Cell::text(*k), Cell::text(n.as_str())]))
                    .collect();
                insert_rows_then(tx, "INSERT INTO instance_errata (instance_id, item_key, name)", &cells, " ON CONFLICT DO NOTHING").await
            }

            /// Merges the records each row's update fixes into what its agent reported, writes
            /// the rows whose effective values change (and their `instance_errata`), and returns
            /// how many changed and on which instances. `refresh_all` rewrites `instance_errata`
            /// of every row (after an upload, whose rows are new). A fixed number of statements
            /// whatever the number of rows: one UPDATE of the changed updates, one DELETE of their
            /// stale `instance_errata`, the inserts of the new ones.
            async fn apply(tx: &mut Tx, rows: &[MatchRow], advisories: &[Advisory], refresh_all: bool) -> StoreResult<(usize, BTreeSet<String>)> {
                let index = by_name(advisories);
                let none: Vec<&Advisory> = vec![];
                let mut instances = BTreeSet::new();
                let mut updated: Vec<(&str, &str, &'static str, String, String)> = vec![];
                let mut replaced: Vec<(&str, &str)> = vec![];
                let mut errata_rows: Vec<(&str, &str, Vec<String>)> = vec![];
                for row in rows {
                    let candidates = index.get(&row.name).unwrap_or(&none);
                    let fixed = fixing(row.ecosystem.as_deref(), &row.name, &row.installed, &row.available, candidates.iter().copied());
                    let merged = merge(&row.reported, &fixed);
                    if merged != row.current {
                        updated.push((&row.instance_id, &row.item_key, merged.update_type.as_str(), to_json(&merged.cves), to_json(&merged.advisories)));
                        instances.insert(row.instance_id.clone());
                    }
                    if refresh_all {
                        errata_rows.push((&row.instance_id, &row.item_key, merged.advisories));
                    } else if merged.advisories != row.current.advisories {
                        replaced.push((&row.instance_id, &row.item_key));
                        errata_rows.push((&row.instance_id, &row.item_key, merged.advisories));
                    }
                }
                if !updated.is_empty() {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE instance_updates SET update_type = v.update_type, cves = v.cves, advisories = v.advisories \
                         FROM (SELECT value ->> 0 AS instance_id, value ->> 1 AS item_key, value ->> 2 AS update_type, value ->> 3 AS cves, value ->> 4 AS advisories FROM {}) v \
                         WHERE instance_updates.instance_id = v.instance_id AND instance_updates.item_key = v.item_key",
                        rows_at(1)
                    )))
                    .bind(to_json(&updated))
                    .execute(&mut **tx)
                    .await?;
                }
                if !replaced.is_empty() {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM instance_errata WHERE (instance_id, item_key) IN (SELECT value ->> 0, value ->> 1 FROM {})",
                        rows_at(1)
                    )))
                    .bind(to_json(&replaced))
                    .execute(&mut **tx)
                    .await?;
                }
                let refs: Vec<(&str, &str, &[String])> = errata_rows.iter().map(|(i, k, a)| (*i, *k, a.as_slice())).collect();
                write_instance_errata(tx, &refs).await?;
                Ok((updated.len(), instances))
            }

            /// Sets the update counters of `ids` (see `RECOUNT_UPDATES`), in one statement.
            async fn recount(tx: &mut Tx, ids: &BTreeSet<String>) -> StoreResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let sql = RECOUNT_UPDATES
                    .replace("WHERE id = $1 AND", &format!("WHERE id IN {} AND", texts_at(1)))
                    .replace("= $1", "= managed_instances.id");
                let ids: Vec<&String> = ids.iter().collect();
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to_json(&ids)).execute(&mut **tx).await?;
                Ok(())
            }

            /// Called by an inventory upload first: waits for an import in progress (PostgreSQL).
            pub(crate) async fn lock_for_upload(tx: &mut Tx) -> StoreResult<()> {
                if !LOCK_SHARED.is_empty() {
                    sqlx::query(LOCK_SHARED).execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Called by an inventory upload once its rows are written (before the counters are
            /// derived): the updates it upserted (those at `revision`) keep what the agent said
            /// as `reported_*` and are matched against the stored records.
            pub(crate) async fn after_upload(tx: &mut Tx, instance_id: &str, revision: i64) -> StoreResult<()> {
                sqlx::query("UPDATE instance_updates SET reported_type = update_type, reported_cves = cves, reported_advisories = advisories WHERE instance_id = $1 AND revision = $2")
                    .bind(instance_id)
                    .bind(revision)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM instance_errata WHERE instance_id = $1 AND item_key IN (SELECT item_key FROM instance_updates WHERE instance_id = $1 AND revision = $2)")
                    .bind(instance_id)
                    .bind(revision)
                    .execute(&mut **tx)
                    .await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {MATCH_COLUMNS} FROM instance_updates u JOIN managed_instances m ON m.id = u.instance_id \
                     WHERE u.instance_id = $1 AND u.revision = $2 ORDER BY u.item_key"
                )))
                .bind(instance_id)
                .bind(revision)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(match_row)
                .collect::<StoreResult<Vec<_>>>()?;
                if rows.is_empty() {
                    return Ok(());
                }
                let advisories = if rows[0].ecosystem.is_some() {
                    let names: BTreeSet<String> = rows.iter().map(|r| r.name.clone()).collect();
                    advisories_for(tx, &names.into_iter().collect::<Vec<_>>()).await?
                } else {
                    vec![]
                };
                apply(tx, &rows, &advisories, true).await?;
                Ok(())
            }

            /// The catalogue entries of `names` in `tenancy_id`, locked (in name order, as every
            /// writer locks them) until the transaction ends, with the CVEs agents reported.
            pub(crate) async fn errata_locked(tx: &mut Tx, tenancy_id: &str, names: &[&str]) -> StoreResult<HashMap<String, (ErratumInfo, Vec<String>)>> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM errata WHERE compartment_id = $1 AND name IN {} ORDER BY name{FOR_UPDATE}",
                    texts_at(2)
                )))
                .bind(tenancy_id)
                .bind(to_json(&names))
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| -> StoreResult<(String, (ErratumInfo, Vec<String>))> {
                    let e = info(r)?;
                    let reported: Vec<String> = from_json("reported_cves", &r.try_get::<String, _>("reported_cves")?)?;
                    Ok((e.name.clone(), (e, reported)))
                })
                .collect()
            }

            /// A foreign-key violation on `errata` means the tenancy is missing.
            fn missing_tenancy(tenancy_id: &str) -> impl FnOnce(StoreError) -> StoreError + '_ {
                move |e| match e {
                    StoreError::Database(d) if is_foreign_key_violation(&d) => {
                        StoreError::MissingReference(format!("tenancy {tenancy_id} does not exist"))
                    }
                    other => other,
                }
            }

            /// Creates or updates the catalogue entries of imported records (in name order, as
            /// agents' uploads lock them), in a fixed number of statements. An entry's CVEs are
            /// those agents reported for it (`reported_cves`, never dropped) and the record's
            /// current ones: a newer record that names fewer CVEs drops only its own.
            async fn upsert_osv_errata(tx: &mut Tx, tenancy_id: &str, records: &[&ImportRecord], now: Timestamp) -> StoreResult<()> {
                let entries: Vec<(&str, OsvErratum)> = records.iter().map(|r| (r.advisory.id.as_str(), r.advisory.erratum())).collect();
                let cells: Vec<Vec<Cell>> = entries
                    .iter()
                    .map(|(name, e)| {
                        vec![
                            Cell::text(osm_core::ids::new_ocid(osm_core::ids::ResourceKind::Erratum)),
                            Cell::text(tenancy_id),
                            Cell::text(*name),
                            Cell::text(e.advisory_type.as_str()),
                            Cell::text(e.synopsis.clone()),
                            Cell::Int(opt_micros(e.issued)),
                            Cell::text(to_json(&e.related_cves)),
                            Cell::Int(Some(micros(now))),
                            Cell::Int(Some(micros(now))),
                            Cell::Text(e.description.clone()),
                            Cell::Text(e.issuer.clone()),
                            Cell::text(e.solution.clone()),
                            Cell::Text(e.references.clone()),
                            Cell::text(to_json(&e.packages)),
                            Cell::Int(Some(micros(e.modified))),
                            Cell::Int(opt_micros(e.withdrawn)),
                        ]
                    })
                    .collect();
                // The new entries take the record's values; the others are merged below.
                insert_rows_then(
                    tx,
                    "INSERT INTO errata (id, compartment_id, name, advisory_type, synopsis, issued, related_cves, time_created, time_updated, description, issuer, solution, refs, packages, osv_modified, withdrawn)",
                    &cells,
                    " ON CONFLICT (compartment_id, name) DO NOTHING",
                )
                .await
                .map_err(missing_tenancy(tenancy_id))?;
                let names: Vec<&str> = entries.iter().map(|(n, _)| *n).collect();
                let stored = errata_locked(tx, tenancy_id, &names).await?;
                let mut changed: Vec<ErratumInfo> = vec![];
                for (name, e) in &entries {
                    let Some((old, reported)) = stored.get(*name) else { continue };
                    let cves: BTreeSet<String> = reported.iter().chain(&e.related_cves).cloned().collect();
                    let next = ErratumInfo {
                        advisory_type: Some(e.advisory_type),
                        synopsis: Some(e.synopsis.clone()),
                        description: e.description.clone().or_else(|| old.description.clone()),
                        issued: e.issued.or(old.issued),
                        modified: Some(e.modified),
                        issuer: e.issuer.clone().or_else(|| old.issuer.clone()),
                        solution: Some(e.solution.clone()),
                        references: e.references.clone().or_else(|| old.references.clone()),
                        related_cves: cves.into_iter().collect(),
                        packages: e.packages.clone(),
                        withdrawn: e.withdrawn,
                        ..old.clone()
                    };
                    if next != *old {
                        changed.push(next);
                    }
                }
                if changed.is_empty() {
                    return Ok(());
                }
                let rows: Vec<serde_json::Value> = changed
                    .iter()
                    .map(|e| {
                        serde_json::json!([
                            e.id,
                            e.advisory_type.map(|t| t.as_str()),
                            e.synopsis,
                            e.description,
                            opt_micros(e.issued),
                            opt_micros(e.modified),
                            e.issuer,
                            e.solution,
                            e.references,
                            to_json(&e.related_cves),
                            to_json(&e.packages),
                            opt_micros(e.withdrawn),
                        ])
                    })
                    .collect();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE errata SET advisory_type = v.advisory_type, synopsis = v.synopsis, description = v.description, issued = v.issued, \
                     osv_modified = v.osv_modified, issuer = v.issuer, solution = v.solution, refs = v.refs, related_cves = v.related_cves, \
                     packages = v.packages, withdrawn = v.withdrawn, time_updated = $1 \
                     FROM (SELECT value ->> 0 AS id, value ->> 1 AS advisory_type, value ->> 2 AS synopsis, value ->> 3 AS description, \
                     CAST(value ->> 4 AS BIGINT) AS issued, CAST(value ->> 5 AS BIGINT) AS osv_modified, value ->> 6 AS issuer, value ->> 7 AS solution, \
                     value ->> 8 AS refs, value ->> 9 AS related_cves, value ->> 10 AS packages, CAST(value ->> 11 AS BIGINT) AS withdrawn FROM {}) v \
                     WHERE errata.id = v.id",
                    rows_at(2)
                )))
                .bind(micros(now))
                .bind(to_json(&rows))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// The visibility condition of a catalogue row `e`.
            fn push_scope(qb: &mut QueryBuilder<$db>, scope: &ErratumFilter) {
                qb.push(" AND (1 = 0");
                if !scope.catalogue_in.is_empty() {
                    qb.push(" OR e.compartment_id");
                    push_in(qb, &scope.catalogue_in);
                }
                if !scope.applying_in.is_empty() {
                    qb.push(" OR EXISTS (SELECT 1 FROM instance_errata ie JOIN managed_instances m ON m.id = ie.instance_id WHERE ie.name = e.name AND m.compartment_id");
                    push_in(qb, &scope.applying_in);
                    qb.push(")");
                }
                qb.push(")");
            }

            /// The sort column of the issue-date order (entries without a date sort as 0).
            const ISSUED_KEY: &str = "COALESCE(e.issued, 0)";

        /// The body of [`ErrataStore::errata_import`], in the caller's transaction: a fixed
        /// number of statements whatever the batch's size (rows go as JSON arrays or multi-row
        /// inserts, see `insert_rows`).
        async fn import_in(tx: &mut Tx, tenancy_id: &str, records: &[ImportRecord], now: Timestamp) -> StoreResult<ImportSummary> {
                let mut summary = ImportSummary { records: records.len(), ..Default::default() };
                if !LOCK_EXCLUSIVE.is_empty() {
                    sqlx::query(LOCK_EXCLUSIVE).execute(&mut **tx).await?;
                }
                let mut sorted: Vec<&ImportRecord> = records.iter().collect();
                sorted.sort_by(|a, b| a.advisory.id.cmp(&b.advisory.id));
                // What osm holds of these records.
                let ids: Vec<&str> = sorted.iter().map(|r| r.advisory.id.as_str()).collect();
                let mut stored: HashMap<String, (i64, String)> = HashMap::new();
                for r in sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT id, modified, document FROM osv_records WHERE id IN {} ORDER BY id{FOR_UPDATE}",
                    texts_at(1)
                )))
                .bind(to_json(&ids))
                .fetch_all(&mut **tx)
                .await?
                {
                    stored.insert(r.try_get("id")?, (r.try_get("modified")?, r.try_get("document")?));
                }
                let mut changed: Vec<&ImportRecord> = vec![];
                for r in &sorted {
                    match stored.get(&r.advisory.id) {
                        None => summary.created += 1,
                        Some((modified, _)) if *modified > micros(r.advisory.modified) => {
                            summary.stale += 1;
                            continue;
                        }
                        Some((_, doc)) if *doc == r.document => {
                            summary.unchanged += 1;
                            continue;
                        }
                        Some(_) => summary.updated += 1,
                    }
                    if r.advisory.withdrawn.is_some() {
                        summary.withdrawn += 1;
                    }
                    changed.push(r);
                }
                if changed.is_empty() {
                    return Ok(summary);
                }
                // Every package a changed record named before or names now is matched again.
                let changed_ids: Vec<&str> = changed.iter().map(|r| r.advisory.id.as_str()).collect();
                let mut names: BTreeSet<String> = BTreeSet::new();
                for r in sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM osv_packages WHERE osv_id IN {} RETURNING name",
                    texts_at(1)
                )))
                .bind(to_json(&changed_ids))
                .fetch_all(&mut **tx)
                .await?
                {
                    names.insert(r.try_get("name")?);
                }
                let record_rows: Vec<Vec<Cell>> = changed
                    .iter()
                    .map(|r| {
                        vec![
                            Cell::text(r.advisory.id.as_str()),
                            Cell::Int(Some(micros(r.advisory.modified))),
                            Cell::Int(opt_micros(r.advisory.withdrawn)),
                            Cell::text(r.document.as_str()),
                            Cell::Int(Some(micros(now))),
                        ]
                    })
                    .collect();
                insert_rows_then(
                    tx,
                    "INSERT INTO osv_records (id, modified, withdrawn, document, time_imported)",
                    &record_rows,
                    " ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, withdrawn = excluded.withdrawn, document = excluded.document, time_imported = excluded.time_imported",
                )
                .await?;
                let package_rows: Vec<Vec<Cell>> = changed
                    .iter()
                    .flat_map(|r| {
                        r.advisory
                            .package_names()
                            .into_iter()
                            .map(|n| vec![Cell::text(n), Cell::text(r.advisory.id.as_str())])
                    })
                    .collect();
                for row in &package_rows {
                    if let Cell::Text(Some(n)) = &row[0] {
                        names.insert(n.clone());
                    }
                }
                insert_rows_then(tx, "INSERT INTO osv_packages (name, osv_id)", &package_rows, "").await?;
                // The updates of those packages, in instance order, matched against every
                // record that names them.
                let names: Vec<String> = names.into_iter().collect();
                let mut rows: Vec<MatchRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {MATCH_COLUMNS} FROM instance_updates u JOIN managed_instances m ON m.id = u.instance_id WHERE u.name IN {}",
                    texts_at(1)
                )))
                .bind(to_json(&names))
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(match_row)
                .collect::<StoreResult<_>>()?;
                rows.sort_by(|a, b| (&a.instance_id, &a.item_key).cmp(&(&b.instance_id, &b.item_key)));
                let advisories = advisories_for(tx, &names).await?;
                let (updates_changed, instances) = apply(tx, &rows, &advisories, false).await?;
                summary.updates_changed = updates_changed;
                summary.instances_changed = instances.len();
                recount(tx, &instances).await?;
                upsert_osv_errata(tx, tenancy_id, &changed, now).await?;
                Ok(summary)
        }
            #[async_trait]
            impl ErrataStore for $store {
                async fn errata_import(&self, tenancy_id: &str, records: &[ImportRecord], now: Timestamp) -> StoreResult<ImportSummary> {
                    let _t = timer("errata_import");
                    let mut tx = self.write_tx().await?;
                    let summary = import_in(&mut tx, tenancy_id, records, now).await?;
                    tx.commit().await?;
                    Ok(summary)
                }

                async fn erratum_list(&self, filter: &ErratumFilter, page: &PageRequest) -> StoreResult<Page<ErratumInfo>> {
                    let _t = timer("erratum_list");
                    let mut qb = QueryBuilder::<$db>::new("SELECT e.* FROM errata e WHERE 1 = 1");
                    push_scope(&mut qb, filter);
                    if let Some(id) = &filter.erratum_id {
                        qb.push(" AND e.id = ");
                        qb.push_bind(id.clone());
                    }
                    if let Some(n) = &filter.advisory_name {
                        qb.push(" AND e.name = ");
                        qb.push_bind(n.clone());
                    }
                    if let Some(t) = filter.issued_from {
                        qb.push(" AND e.issued >= ");
                        qb.push_bind(micros(t));
                    }
                    if let Some(t) = filter.issued_to {
                        qb.push(" AND e.issued <= ");
                        qb.push_bind(micros(t));
                    }
                    push_page(&mut qb, page, ISSUED_KEY, "e.name", "e.id");
                    let items = qb.build().fetch_all(self.read()).await?.iter().map(info).collect::<StoreResult<Vec<_>>>()?;
                    Ok(Page::from_rows(items, page, |e| {
                        let key = match page.sort {
                            SortKey::TimeCreated => KeyValue::Micros(e.issued.map_or(0, micros)),
                            SortKey::Name => KeyValue::Text(e.name.clone()),
                        };
                        (key, e.id.clone())
                    }))
                }

                async fn erratum_get(&self, id: &str, scope: &ErratumFilter) -> StoreResult<Option<ErratumDetails>> {
                    let _t = timer("erratum_get");
                    let mut qb = QueryBuilder::<$db>::new("SELECT e.* FROM errata e WHERE e.id = ");
                    qb.push_bind(id.to_string());
                    push_scope(&mut qb, scope);
                    let Some(row) = qb.build().fetch_optional(self.read()).await? else {
                        return Ok(None);
                    };
                    let info = info(&row)?;
                    let mut affected = vec![];
                    let mut packages: BTreeSet<ErratumPackage> = info.packages.iter().cloned().collect();
                    if !scope.applying_in.is_empty() {
                        let mut qb = QueryBuilder::<$db>::new(
                            "SELECT m.id AS instance_id, m.display_name, u.name, u.available_version, u.architecture, \
                             COALESCE(u.package_type, p.package_type) AS package_type \
                             FROM instance_errata ie JOIN managed_instances m ON m.id = ie.instance_id \
                             JOIN instance_updates u ON u.instance_id = ie.instance_id AND u.item_key = ie.item_key \
                             LEFT JOIN instance_packages p ON p.instance_id = u.instance_id AND p.kind = 'INSTALLED' AND p.item_key = u.item_key \
                             WHERE ie.name = ",
                        );
                        qb.push_bind(info.name.clone());
                        qb.push(" AND m.compartment_id");
                        push_in(&mut qb, &scope.applying_in);
                        qb.push(" ORDER BY m.display_name, m.id");
                        let mut seen = BTreeSet::new();
                        for r in qb.build().fetch_all(self.read()).await? {
                            let instance: String = r.try_get("instance_id")?;
                            if seen.insert(instance.clone()) {
                                affected.push(IdName { id: instance, display_name: r.try_get("display_name")? });
                            }
                            let arch: String = r.try_get("architecture")?;
                            packages.insert(ErratumPackage {
                                name: r.try_get("name")?,
                                version: r.try_get("available_version")?,
                                architecture: (!arch.is_empty()).then_some(arch),
                                package_type: r.try_get("package_type")?,
                            });
                        }
                    }
                    Ok(Some(ErratumDetails { info, affected_instances: affected, packages: packages.into_iter().collect() }))
                }

                async fn instance_errata_list(&self, instance_id: &str, name: Option<&str>, page: &PageRequest) -> StoreResult<Page<ErratumInfo>> {
                    let _t = timer("instance_errata_list");
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT e.* FROM errata e WHERE e.name IN (SELECT ie.name FROM instance_errata ie WHERE ie.instance_id = ",
                    );
                    qb.push_bind(instance_id.to_string());
                    qb.push(")");
                    if let Some(n) = name {
                        qb.push(" AND e.name = ");
                        qb.push_bind(n.to_string());
                    }
                    push_page(&mut qb, page, "e.time_created", "e.name", "e.id");
                    let items = qb.build().fetch_all(self.read()).await?.iter().map(info).collect::<StoreResult<Vec<_>>>()?;
                    Ok(Page::from_rows(items, page, |e| (key_of(page, e.time_created, &e.name), e.id.clone())))
                }
            }
        }
    };
}

pub(crate) use impl_errata_store;
