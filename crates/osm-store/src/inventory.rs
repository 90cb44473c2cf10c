//! Package inventory in the store: [`InventoryStore`], which [`crate::Store`] requires, and its
//! implementation for both backends (`impl_inventory_store!`, expanded in `sqlite.rs` and
//! `postgres.rs` like `impl_store!`).
//!
//! An upload is one transaction: the instance's inventory row is locked, a diff's base
//! revision compared, the rows upserted at the new revision (a full upload then drops the rows
//! of older revisions), the Windows update and errata catalogues upserted, and the instance's
//! update counters derived from what is now stored.

use async_trait::async_trait;
use jiff::Timestamp;
use osm_core::Installable;
use osm_core::inventory::*;
use osm_core::page::{Page, PageRequest};

use crate::StoreResult;

/// Filters of the Windows update lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowsUpdateFilter {
    /// Exact display name.
    pub display_name: Option<String>,
    /// `isEligibleForInstallation`; an update reported without one counts as `UNKNOWN`.
    pub installable: Option<Installable>,
}

/// Which of an instance's package lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageList {
    Installed,
    Available,
}

impl PackageList {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PackageList::Installed => "INSTALLED",
            PackageList::Available => "AVAILABLE",
        }
    }
}

/// Sets an instance's update counters from its stored updates and the Windows updates it has
/// not installed, when it has an inventory (agents that upload none keep the counts their
/// heartbeats carry). `$1` is the instance id.
pub(crate) const RECOUNT_UPDATES: &str = "UPDATE managed_instances SET \
     security_updates = (SELECT count(*) FROM instance_updates u WHERE u.instance_id = $1 AND u.update_type = 'SECURITY') \
         + (SELECT count(*) FROM instance_windows_updates w WHERE w.instance_id = $1 AND NOT w.installed AND w.update_type = 'SECURITY'), \
     bug_updates = (SELECT count(*) FROM instance_updates u WHERE u.instance_id = $1 AND u.update_type = 'BUG') \
         + (SELECT count(*) FROM instance_windows_updates w WHERE w.instance_id = $1 AND NOT w.installed AND w.update_type = 'BUG'), \
     enhancement_updates = (SELECT count(*) FROM instance_updates u WHERE u.instance_id = $1 AND u.update_type = 'ENHANCEMENT') \
         + (SELECT count(*) FROM instance_windows_updates w WHERE w.instance_id = $1 AND NOT w.installed AND w.update_type = 'ENHANCEMENT'), \
     other_updates = (SELECT count(*) FROM instance_updates u WHERE u.instance_id = $1 AND u.update_type = 'OTHER') \
         + (SELECT count(*) FROM instance_windows_updates w WHERE w.instance_id = $1 AND NOT w.installed AND w.update_type = 'OTHER') \
     WHERE id = $1 AND EXISTS (SELECT 1 FROM instance_inventories i WHERE i.instance_id = $1)";

/// The inventory part of the store. Method names are resource-first, as in [`crate::Store`].
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Applies an upload (already checked) of `instance_id`'s agent in one transaction: a full
    /// upload replaces everything, a diff applies on top of `baseRevision` or, when that is
    /// not the stored revision, changes nothing and answers `RevisionMismatch`. Upserts the
    /// reported advisories into `tenancy_id`'s errata catalogue and the Windows updates into
    /// their catalogue, and derives the instance's update counters. `NotFound` when the
    /// instance does not exist.
    async fn inventory_apply(
        &self,
        instance_id: &str,
        tenancy_id: &str,
        upload: &InventoryUpload,
        now: Timestamp,
    ) -> StoreResult<InventoryApplied>;
    /// The instance's inventory revision and when it was reported, if it ever was.
    async fn inventory_state(&self, instance_id: &str) -> StoreResult<Option<InventoryState>>;
    /// Installed or installable packages of an instance; `display_name` matches the name.
    /// Sorted by name (then architecture) or by when osm first saw them.
    async fn instance_package_list(
        &self,
        instance_id: &str,
        list: PackageList,
        display_name: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Reported<Package>>>;
    /// Available updates of an instance, with the errata their advisories name.
    async fn instance_update_list(
        &self,
        instance_id: &str,
        display_name: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<ListedUpdate>>;
    /// An instance's Windows updates, installed or not. The rows carry what instances report
    /// per update (`kbArticleIds`, `description` and `sizeInBytes` live in the catalogue).
    async fn instance_windows_update_list(
        &self,
        instance_id: &str,
        installed: bool,
        filter: &WindowsUpdateFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Reported<WindowsUpdate>>>;
    /// Catalogue entries of Windows updates reported by an instance in one of `compartments`.
    async fn windows_update_list(
        &self,
        compartments: &[String],
        filter: &WindowsUpdateFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<WindowsUpdateInfo>>;
    /// A catalogue entry, if an instance in one of `compartments` reported it.
    async fn windows_update_get(
        &self,
        name: &str,
        compartments: &[String],
    ) -> StoreResult<Option<WindowsUpdateInfo>>;
    /// The erratum of this advisory name in the tenancy's catalogue.
    async fn erratum_find(&self, tenancy_id: &str, name: &str) -> StoreResult<Option<Erratum>>;
}

/// Rows per multi-row statement (well below either backend's limit on bound values).
pub(crate) const CHUNK: usize = 500;

macro_rules! impl_inventory_store {
    ($store:ty, $db:ty, $name:literal, $for_update:literal) => {
        mod inventory_impl {
            use super::*;
            use std::collections::{BTreeSet, HashMap};

            use async_trait::async_trait;
            use jiff::Timestamp;
            use osm_core::ids::{ResourceKind, new_ocid};
            use osm_core::inventory::*;
            use osm_core::page::{Page, PageRequest};
            use osm_core::Installable;
            use sqlx::{QueryBuilder, Row};

            use $crate::common::is_foreign_key_violation;
            use $crate::inventory::{CHUNK, InventoryStore, PackageList, RECOUNT_UPDATES, WindowsUpdateFilter};
            use $crate::rows::*;
            use $crate::{StoreError, StoreResult};

            type DbRow = <$db as sqlx::Database>::Row;
            type Tx = sqlx::Transaction<'static, $db>;

            /// Locks the selected rows until the transaction ends (PostgreSQL).
            const FOR_UPDATE: &str = $for_update;

            // Shared with the core store: one page and timer implementation per backend.
            use super::store_impl::{insert_rows_then, key_of, push_page, rows_at, timer};

            fn arch(text: String) -> Option<String> {
                (!text.is_empty()).then_some(text)
            }

            fn package(r: &DbRow) -> StoreResult<Reported<Package>> {
                Ok(Reported {
                    item: Package {
                        name: r.try_get("name")?,
                        version: r.try_get("version")?,
                        architecture: arch(r.try_get("architecture")?),
                        package_type: r.try_get("package_type")?,
                        install_time: opt_ts(r.try_get("install_time")?),
                    },
                    time_created: ts(r.try_get("time_created")?),
                })
            }

            fn update(r: &DbRow) -> StoreResult<(PackageUpdate, Vec<String>, Option<String>, Timestamp)> {
                let advisories: Vec<String> = from_json("advisories", &r.try_get::<String, _>("advisories")?)?;
                let update = PackageUpdate {
                    name: r.try_get("name")?,
                    architecture: arch(r.try_get("architecture")?),
                    installed_version: r.try_get("installed_version")?,
                    available_version: r.try_get("available_version")?,
                    update_type: parse_enum("update_type", &r.try_get::<String, _>("update_type")?)?,
                    cves: from_json("cves", &r.try_get::<String, _>("cves")?)?,
                    advisories: advisories
                        .iter()
                        .map(|name| Advisory { name: name.clone(), advisory_type: None, synopsis: None, issued: None })
                        .collect(),
                    package_type: r.try_get("package_type")?,
                };
                let installed_type: Option<String> = r.try_get("installed_type")?;
                Ok((update, advisories, installed_type, ts(r.try_get("time_created")?)))
            }

            fn instance_windows_update(r: &DbRow) -> StoreResult<Reported<WindowsUpdate>> {
                Ok(Reported {
                    item: WindowsUpdate {
                        name: r.try_get("name")?,
                        display_name: r.try_get("display_name")?,
                        update_type: parse_enum("update_type", &r.try_get::<String, _>("update_type")?)?,
                        installed: r.try_get("installed")?,
                        installable: parse_opt_enum("installable", r.try_get("installable")?)?,
                        reboot_required: r.try_get("reboot_required")?,
                        kb_article_ids: vec![],
                        description: None,
                        size_in_bytes: None,
                    },
                    time_created: ts(r.try_get("time_created")?),
                })
            }

            fn catalogue_entry(r: &DbRow) -> StoreResult<WindowsUpdateInfo> {
                Ok(WindowsUpdateInfo {
                    name: r.try_get("name")?,
                    display_name: r.try_get("display_name")?,
                    description: r.try_get("description")?,
                    update_type: parse_enum("update_type", &r.try_get::<String, _>("update_type")?)?,
                    size_in_bytes: r.try_get("size_in_bytes")?,
                    kb_article_ids: from_json("kb_article_ids", &r.try_get::<String, _>("kb_article_ids")?)?,
                    reboot_required: r.try_get("reboot_required")?,
                    installable: parse_opt_enum("installable", r.try_get("installable")?)?,
                    time_created: ts(r.try_get("time_created")?),
                })
            }

            fn erratum(r: &DbRow) -> StoreResult<Erratum> {
                Ok(Erratum {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    name: r.try_get("name")?,
                    advisory_type: parse_opt_enum("advisory_type", r.try_get("advisory_type")?)?,
                    synopsis: r.try_get("synopsis")?,
                    issued: opt_ts(r.try_get("issued")?),
                    related_cves: from_json("related_cves", &r.try_get::<String, _>("related_cves")?)?,
                    time_created: ts(r.try_get("time_created")?),
                    time_updated: ts(r.try_get("time_updated")?),
                })
            }

            /// Inserts or replaces packages at `revision`; a replaced row keeps `time_created`.
            async fn upsert_packages(tx: &mut Tx, instance_id: &str, list: PackageList, rows: &[Package], revision: i64, now: Timestamp) -> StoreResult<()> {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO instance_packages (instance_id, kind, item_key, name, architecture, version, package_type, install_time, revision, time_created) ",
                    );
                    qb.push_values(chunk, |mut b, p| {
                        b.push_bind(instance_id.to_string())
                            .push_bind(list.as_str())
                            .push_bind(p.key())
                            .push_bind(p.name.clone())
                            .push_bind(p.architecture.clone().unwrap_or_default())
                            .push_bind(p.version.clone())
                            .push_bind(p.package_type.clone())
                            .push_bind(opt_micros(p.install_time))
                            .push_bind(revision)
                            .push_bind(micros(now));
                    });
                    qb.push(" ON CONFLICT (instance_id, kind, item_key) DO UPDATE SET version = excluded.version, package_type = excluded.package_type, install_time = excluded.install_time, revision = excluded.revision");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            async fn upsert_updates(tx: &mut Tx, instance_id: &str, rows: &[PackageUpdate], revision: i64, now: Timestamp) -> StoreResult<()> {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO instance_updates (instance_id, item_key, name, architecture, installed_version, available_version, update_type, package_type, cves, advisories, revision, time_created) ",
                    );
                    qb.push_values(chunk, |mut b, u| {
                        let advisories: Vec<&str> = u.advisories.iter().map(|a| a.name.as_str()).collect();
                        b.push_bind(instance_id.to_string())
                            .push_bind(u.key())
                            .push_bind(u.name.clone())
                            .push_bind(u.architecture.clone().unwrap_or_default())
                            .push_bind(u.installed_version.clone())
                            .push_bind(u.available_version.clone())
                            .push_bind(u.update_type.as_str())
                            .push_bind(u.package_type.clone())
                            .push_bind(to_json(&u.cves))
                            .push_bind(to_json(&advisories))
                            .push_bind(revision)
                            .push_bind(micros(now));
                    });
                    qb.push(" ON CONFLICT (instance_id, item_key) DO UPDATE SET installed_version = excluded.installed_version, available_version = excluded.available_version, update_type = excluded.update_type, package_type = excluded.package_type, cves = excluded.cves, advisories = excluded.advisories, revision = excluded.revision");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            async fn upsert_windows_updates(tx: &mut Tx, instance_id: &str, rows: &[WindowsUpdate], revision: i64, now: Timestamp) -> StoreResult<()> {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO instance_windows_updates (instance_id, name, display_name, update_type, installed, installable, reboot_required, revision, time_created) ",
                    );
                    qb.push_values(chunk, |mut b, w| {
                        b.push_bind(instance_id.to_string())
                            .push_bind(w.name.clone())
                            .push_bind(w.display_name.clone())
                            .push_bind(w.update_type.as_str())
                            .push_bind(w.installed)
                            .push_bind(w.installable.map(|i| i.as_str()))
                            .push_bind(w.reboot_required)
                            .push_bind(revision)
                            .push_bind(micros(now));
                    });
                    qb.push(" ON CONFLICT (instance_id, name) DO UPDATE SET display_name = excluded.display_name, update_type = excluded.update_type, installed = excluded.installed, installable = excluded.installable, reboot_required = excluded.reboot_required, revision = excluded.revision");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Deletes rows of `table` whose key column is one of `keys`.
            async fn delete_keys(tx: &mut Tx, table: &str, kind: Option<PackageList>, key_col: &str, instance_id: &str, keys: &[String]) -> StoreResult<()> {
                for chunk in keys.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(format!("DELETE FROM {table} WHERE instance_id = "));
                    qb.push_bind(instance_id.to_string());
                    if let Some(k) = kind {
                        qb.push(" AND kind = ");
                        qb.push_bind(k.as_str());
                    }
                    qb.push(format!(" AND {key_col} IN ("));
                    let mut sep = qb.separated(", ");
                    for k in chunk {
                        sep.push_bind(k.clone());
                    }
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// The catalogue keeps the latest metadata of every Windows update reported. Rows
            /// are written in name order so concurrent uploads lock them in the same order.
            async fn upsert_catalogue(tx: &mut Tx, rows: &[WindowsUpdate], now: Timestamp) -> StoreResult<()> {
                let mut sorted: Vec<&WindowsUpdate> = rows.iter().collect();
                sorted.sort_by(|a, b| a.name.cmp(&b.name));
                for chunk in sorted.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO windows_updates (name, display_name, description, update_type, size_in_bytes, kb_article_ids, reboot_required, installable, time_created, time_updated) ",
                    );
                    qb.push_values(chunk, |mut b, w| {
                        b.push_bind(w.name.clone())
                            .push_bind(w.display_name.clone())
                            .push_bind(w.description.clone())
                            .push_bind(w.update_type.as_str())
                            .push_bind(w.size_in_bytes)
                            .push_bind(to_json(&w.kb_article_ids))
                            .push_bind(w.reboot_required)
                            .push_bind(w.installable.map(|i| i.as_str()))
                            .push_bind(micros(now))
                            .push_bind(micros(now));
                    });
                    qb.push(" ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
                        description = COALESCE(excluded.description, windows_updates.description), \
                        update_type = excluded.update_type, \
                        size_in_bytes = COALESCE(excluded.size_in_bytes, windows_updates.size_in_bytes), \
                        kb_article_ids = excluded.kb_article_ids, \
                        reboot_required = COALESCE(excluded.reboot_required, windows_updates.reboot_required), \
                        installable = COALESCE(excluded.installable, windows_updates.installable), \
                        time_updated = excluded.time_updated");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Creates missing errata, then merges what this upload says into each: its CVEs
            /// join the erratum's (and `reported_cves`, the CVEs agents reported, which an OSV
            /// import never drops), a type, synopsis or issue date replaces the stored one. A
            /// fixed number of statements whatever the number of advisories.
            async fn upsert_errata(tx: &mut Tx, tenancy_id: &str, reported: &[ReportedErratum], now: Timestamp) -> StoreResult<()> {
                if reported.is_empty() {
                    return Ok(());
                }
                let cells: Vec<Vec<Cell>> = reported
                    .iter()
                    .map(|e| {
                        let cves = to_json(&e.cves);
                        vec![
                            Cell::text(new_ocid(ResourceKind::Erratum)),
                            Cell::text(tenancy_id),
                            Cell::text(e.name.as_str()),
                            Cell::text(e.advisory_type.as_str()),
                            Cell::Text(e.synopsis.clone()),
                            Cell::Int(opt_micros(e.issued)),
                            Cell::text(cves.clone()),
                            Cell::text(cves),
                            Cell::Int(Some(micros(now))),
                            Cell::Int(Some(micros(now))),
                        ]
                    })
                    .collect();
                insert_rows_then(
                    tx,
                    "INSERT INTO errata (id, compartment_id, name, advisory_type, synopsis, issued, related_cves, reported_cves, time_created, time_updated)",
                    &cells,
                    " ON CONFLICT (compartment_id, name) DO NOTHING",
                )
                .await
                .map_err(|e| match e {
                    StoreError::Database(d) if is_foreign_key_violation(&d) => {
                        StoreError::MissingReference(format!("tenancy {tenancy_id} does not exist"))
                    }
                    other => other,
                })?;
                // Existing rows, locked (in name order, as written) until the upload commits.
                let names: Vec<&str> = reported.iter().map(|e| e.name.as_str()).collect();
                let stored = super::errata_impl::errata_locked(tx, tenancy_id, &names).await?;
                let mut changed: Vec<serde_json::Value> = vec![];
                for e in reported {
                    let Some((old, old_reported)) = stored.get(&e.name) else { continue };
                    let cves: BTreeSet<String> = old.related_cves.iter().cloned().chain(e.cves.iter().cloned()).collect();
                    let cves: Vec<String> = cves.into_iter().collect();
                    let agent_cves: BTreeSet<String> = old_reported.iter().cloned().chain(e.cves.iter().cloned()).collect();
                    let agent_cves: Vec<String> = agent_cves.into_iter().collect();
                    let synopsis = e.synopsis.clone().or_else(|| old.synopsis.clone());
                    let issued = e.issued.or(old.issued);
                    if cves == old.related_cves && agent_cves == *old_reported && old.advisory_type == Some(e.advisory_type) && synopsis == old.synopsis && issued == old.issued {
                        continue;
                    }
                    changed.push(serde_json::json!([old.id, e.advisory_type.as_str(), synopsis, opt_micros(issued), to_json(&cves), to_json(&agent_cves)]));
                }
                if changed.is_empty() {
                    return Ok(());
                }
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE errata SET advisory_type = v.advisory_type, synopsis = v.synopsis, issued = v.issued, related_cves = v.related_cves, \
                     reported_cves = v.reported_cves, time_updated = $1 \
                     FROM (SELECT value ->> 0 AS id, value ->> 1 AS advisory_type, value ->> 2 AS synopsis, CAST(value ->> 3 AS BIGINT) AS issued, \
                     value ->> 4 AS related_cves, value ->> 5 AS reported_cves FROM {}) v WHERE errata.id = v.id",
                    rows_at(2)
                )))
                .bind(micros(now))
                .bind(to_json(&changed))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            fn package_keys(keys: &[PackageKey]) -> Vec<String> {
                keys.iter().map(PackageKey::key).collect()
            }

            /// `displayName` and `installable` conditions of the Windows update lists.
            fn push_windows_filter(qb: &mut QueryBuilder<$db>, alias: &str, filter: &WindowsUpdateFilter) {
                if let Some(n) = &filter.display_name {
                    qb.push(format!(" AND {alias}.display_name = "));
                    qb.push_bind(n.clone());
                }
                if let Some(i) = filter.installable {
                    qb.push(format!(" AND COALESCE({alias}.installable, '{}') = ", Installable::Unknown.as_str()));
                    qb.push_bind(i.as_str());
                }
            }

            /// `EXISTS` an instance in one of `compartments` that reported the catalogue row `c`.
            fn push_reported_in(qb: &mut QueryBuilder<$db>, compartments: &[String]) {
                qb.push(" AND EXISTS (SELECT 1 FROM instance_windows_updates w JOIN managed_instances m ON m.id = w.instance_id WHERE w.name = c.name AND m.compartment_id IN (");
                let mut sep = qb.separated(", ");
                for c in compartments {
                    sep.push_bind(c.clone());
                }
                qb.push("))");
            }

            impl $store {
                async fn package_list_impl(&self, instance_id: &str, list: PackageList, display_name: Option<&str>, page: &PageRequest) -> StoreResult<Page<Reported<Package>>> {
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM instance_packages WHERE instance_id = ");
                    qb.push_bind(instance_id.to_string());
                    qb.push(" AND kind = ");
                    qb.push_bind(list.as_str());
                    if let Some(n) = display_name {
                        qb.push(" AND name = ");
                        qb.push_bind(n.to_string());
                    }
                    push_page(&mut qb, page, "time_created", "name", "item_key");
                    let items = qb.build().fetch_all(self.read()).await?.iter().map(package).collect::<StoreResult<Vec<_>>>()?;
                    Ok(Page::from_rows(items, page, |p| (key_of(page, p.time_created, &p.item.name), p.item.key())))
                }
            }

            #[async_trait]
            impl InventoryStore for $store {
                async fn inventory_apply(&self, instance_id: &str, tenancy_id: &str, upload: &InventoryUpload, now: Timestamp) -> StoreResult<InventoryApplied> {
                    let _t = timer("inventory_apply");
                    let mut tx = self.write_tx().await?;
                    super::errata_impl::lock_for_upload(&mut tx).await?;
                    let created = sqlx::query("INSERT INTO instance_inventories (instance_id, revision, time_reported) VALUES ($1, 0, $2) ON CONFLICT (instance_id) DO NOTHING")
                        .bind(instance_id)
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await;
                    match created {
                        Err(e) if is_foreign_key_violation(&e) => return Err(StoreError::NotFound),
                        other => { other?; }
                    }
                    let current: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT revision FROM instance_inventories WHERE instance_id = $1{FOR_UPDATE}")))
                        .bind(instance_id)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("revision")?;
                    if let InventoryUpload::Diff(d) = upload && d.base_revision != current {
                        return Ok(InventoryApplied::RevisionMismatch { current });
                    }
                    let revision = current + 1;
                    {
                    let tx = &mut tx;
                    match upload {
                        InventoryUpload::Full(f) => {
                            upsert_packages(tx, instance_id, PackageList::Installed, &f.installed, revision, now).await?;
                            upsert_packages(tx, instance_id, PackageList::Available, &f.available, revision, now).await?;
                            upsert_updates(tx, instance_id, &f.updates, revision, now).await?;
                            upsert_windows_updates(tx, instance_id, &f.windows_updates, revision, now).await?;
                            for table in ["instance_packages", "instance_updates", "instance_windows_updates"] {
                                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE instance_id = $1 AND revision < $2")))
                                    .bind(instance_id)
                                    .bind(revision)
                                    .execute(&mut **tx)
                                    .await?;
                            }
                        }
                        InventoryUpload::Diff(d) => {
                            for (list, changes) in [(PackageList::Installed, &d.installed), (PackageList::Available, &d.available)] {
                                if let Some(c) = changes {
                                    delete_keys(tx, "instance_packages", Some(list), "item_key", instance_id, &package_keys(&c.remove)).await?;
                                    upsert_packages(tx, instance_id, list, &c.upsert, revision, now).await?;
                                }
                            }
                            if let Some(c) = &d.updates {
                                delete_keys(tx, "instance_updates", None, "item_key", instance_id, &package_keys(&c.remove)).await?;
                                upsert_updates(tx, instance_id, &c.upsert, revision, now).await?;
                            }
                            if let Some(c) = &d.windows_updates {
                                let names: Vec<String> = c.remove.iter().map(|k| k.name.clone()).collect();
                                delete_keys(tx, "instance_windows_updates", None, "name", instance_id, &names).await?;
                                upsert_windows_updates(tx, instance_id, &c.upsert, revision, now).await?;
                            }
                        }
                    }
                    upsert_catalogue(tx, upload.upserted_windows_updates(), now).await?;
                    upsert_errata(tx, tenancy_id, &reported_errata(upload.upserted_updates()), now).await?;
                    super::errata_impl::after_upload(tx, instance_id, revision).await?;
                    sqlx::query("UPDATE instance_inventories SET revision = $1, time_reported = $2 WHERE instance_id = $3")
                        .bind(revision)
                        .bind(micros(now))
                        .bind(instance_id)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query(RECOUNT_UPDATES).bind(instance_id).execute(&mut **tx).await?;
                    }
                    tx.commit().await?;
                    Ok(InventoryApplied::Stored { revision })
                }

                async fn inventory_state(&self, instance_id: &str) -> StoreResult<Option<InventoryState>> {
                    let _t = timer("inventory_state");
                    let row = sqlx::query("SELECT revision, time_reported FROM instance_inventories WHERE instance_id = $1")
                        .bind(instance_id)
                        .fetch_optional(self.read())
                        .await?;
                    row.map(|r| Ok(InventoryState { revision: r.try_get("revision")?, time_reported: ts(r.try_get("time_reported")?) }))
                        .transpose()
                }

                async fn instance_package_list(&self, instance_id: &str, list: PackageList, display_name: Option<&str>, page: &PageRequest) -> StoreResult<Page<Reported<Package>>> {
                    let _t = timer("instance_package_list");
                    self.package_list_impl(instance_id, list, display_name, page).await
                }

                async fn instance_update_list(&self, instance_id: &str, display_name: Option<&str>, page: &PageRequest) -> StoreResult<Page<ListedUpdate>> {
                    let _t = timer("instance_update_list");
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT u.*, p.package_type AS installed_type FROM instance_updates u \
                         LEFT JOIN instance_packages p ON p.instance_id = u.instance_id AND p.kind = 'INSTALLED' AND p.item_key = u.item_key \
                         WHERE u.instance_id = ",
                    );
                    qb.push_bind(instance_id.to_string());
                    if let Some(n) = display_name {
                        qb.push(" AND u.name = ");
                        qb.push_bind(n.to_string());
                    }
                    push_page(&mut qb, page, "u.time_created", "u.name", "u.item_key");
                    let rows = qb.build().fetch_all(self.read()).await?;
                    let decoded = rows.iter().map(update).collect::<StoreResult<Vec<_>>>()?;
                    let names: BTreeSet<&String> = decoded.iter().flat_map(|(_, a, _, _)| a.iter()).collect();
                    let mut ids: HashMap<String, String> = HashMap::new();
                    let names: Vec<&String> = names.into_iter().collect();
                    for chunk in names.chunks(CHUNK) {
                        let mut qb = QueryBuilder::<$db>::new("SELECT id, name FROM errata WHERE name IN (");
                        let mut sep = qb.separated(", ");
                        for n in chunk {
                            sep.push_bind((*n).clone());
                        }
                        qb.push(")");
                        for r in qb.build().fetch_all(self.read()).await? {
                            ids.insert(r.try_get("name")?, r.try_get("id")?);
                        }
                    }
                    let items: Vec<ListedUpdate> = decoded
                        .into_iter()
                        .map(|(update, advisories, installed_type, time_created)| ListedUpdate {
                            package_type: update.package_type.clone().or(installed_type),
                            errata: advisories.into_iter().filter_map(|n| ids.get(&n).map(|id| (id.clone(), n))).collect(),
                            update,
                            time_created,
                        })
                        .collect();
                    Ok(Page::from_rows(items, page, |u| (key_of(page, u.time_created, &u.update.name), u.update.key())))
                }

                async fn instance_windows_update_list(&self, instance_id: &str, installed: bool, filter: &WindowsUpdateFilter, page: &PageRequest) -> StoreResult<Page<Reported<WindowsUpdate>>> {
                    let _t = timer("instance_windows_update_list");
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM instance_windows_updates iw WHERE iw.instance_id = ");
                    qb.push_bind(instance_id.to_string());
                    qb.push(" AND iw.installed = ");
                    qb.push_bind(installed);
                    push_windows_filter(&mut qb, "iw", filter);
                    push_page(&mut qb, page, "iw.time_created", "iw.display_name", "iw.name");
                    let items = qb.build().fetch_all(self.read()).await?.iter().map(instance_windows_update).collect::<StoreResult<Vec<_>>>()?;
                    Ok(Page::from_rows(items, page, |w| (key_of(page, w.time_created, &w.item.display_name), w.item.name.clone())))
                }

                async fn windows_update_list(&self, compartments: &[String], filter: &WindowsUpdateFilter, page: &PageRequest) -> StoreResult<Page<WindowsUpdateInfo>> {
                    let _t = timer("windows_update_list");
                    if compartments.is_empty() {
                        return Ok(Page { items: vec![], next: None });
                    }
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM windows_updates c WHERE 1 = 1");
                    push_reported_in(&mut qb, compartments);
                    push_windows_filter(&mut qb, "c", filter);
                    push_page(&mut qb, page, "c.time_created", "c.display_name", "c.name");
                    let items = qb.build().fetch_all(self.read()).await?.iter().map(catalogue_entry).collect::<StoreResult<Vec<_>>>()?;
                    Ok(Page::from_rows(items, page, |w| (key_of(page, w.time_created, &w.display_name), w.name.clone())))
                }

                async fn windows_update_get(&self, name: &str, compartments: &[String]) -> StoreResult<Option<WindowsUpdateInfo>> {
                    let _t = timer("windows_update_get");
                    if compartments.is_empty() {
                        return Ok(None);
                    }
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM windows_updates c WHERE c.name = ");
                    qb.push_bind(name.to_string());
                    push_reported_in(&mut qb, compartments);
                    qb.build().fetch_optional(self.read()).await?.as_ref().map(catalogue_entry).transpose()
                }

                async fn erratum_find(&self, tenancy_id: &str, name: &str) -> StoreResult<Option<Erratum>> {
                    let _t = timer("erratum_find");
                    sqlx::query("SELECT * FROM errata WHERE compartment_id = $1 AND name = $2")
                        .bind(tenancy_id)
                        .bind(name)
                        .fetch_optional(self.read())
                        .await?
                        .as_ref()
                        .map(erratum)
                        .transpose()
                }
            }
        }
    };
}

pub(crate) use impl_inventory_store;
