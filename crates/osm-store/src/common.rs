//! The `Store` implementation shared by both backends. The SQL is the same text for SQLite
//! and PostgreSQL (placeholders `$1…` appear in order; `QueryBuilder` writes dynamic ones), so
//! one macro expands it for each backend's pool and transaction types. What differs — how a
//! write transaction starts, row locks, backups — lives in `sqlite.rs` and `postgres.rs`.
//!
//! Concurrency: SQLite has one writer whose transactions start with `BEGIN IMMEDIATE`, so a
//! check and the write that depends on it can never interleave with another writer. PostgreSQL
//! runs at READ COMMITTED with several replicas writing, so every check a write depends on
//! locks the rows it reads (`FOR UPDATE` on the row being changed, `FOR SHARE` on the rows it
//! references); the macro receives those clauses as `$for_update` / `$for_share` (empty for
//! SQLite).

/// Records the latency of one store method in `osm_store_query_seconds`.
pub struct QueryTimer {
    op: &'static str,
    backend: &'static str,
    started: std::time::Instant,
}

impl QueryTimer {
    pub fn new(op: &'static str, backend: &'static str) -> Self {
        QueryTimer {
            op,
            backend,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        metrics::histogram!("osm_store_query_seconds", "op" => self.op, "backend" => self.backend)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// Whether a database error is a unique-key violation.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

/// A unique index, as each backend names it in a violation: PostgreSQL reports the index
/// name, SQLite lists the indexed columns in its message.
pub struct UniqueKey {
    pub index: &'static str,
    pub columns: &'static str,
}

/// Active sibling compartments have distinct names (migration 0002).
pub const ACTIVE_NAME_INDEX: UniqueKey = UniqueKey {
    index: "compartments_active_name",
    columns: "compartments.parent_id, compartments.name",
};

/// Whether a database error is a violation of this unique key (and not of another one).
pub fn violates(e: &sqlx::Error, key: &UniqueKey) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.is_unique_violation()
            && (d.constraint() == Some(key.index) || d.message().contains(key.columns))
    })
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr, $name:literal, $for_update:literal, $for_share:literal, $for_update_skip_locked:literal, $json_texts:literal, $json_rows:literal) => {
        mod store_impl {
            use super::*;
            use async_trait::async_trait;
            use jiff::Timestamp;
            use osm_core::page::{KeyValue, Page, PageRequest, SortKey};
            use osm_core::*;
            use sqlx::{QueryBuilder, Row};

            use $crate::common::{ACTIVE_NAME_INDEX, QueryTimer, is_foreign_key_violation, is_unique_violation, violates};
            use $crate::rows::*;
            use $crate::*;

            type DbRow = <$db as sqlx::Database>::Row;
            type Tx = sqlx::Transaction<'static, $db>;

            /// Locks the selected rows until the transaction ends (PostgreSQL).
            const FOR_UPDATE: &str = $for_update;
            /// Keeps the selected rows from changing until the transaction ends (PostgreSQL).
            const FOR_SHARE: &str = $for_share;
            /// Locks due rows and lets another replica take the others (PostgreSQL).
            const FOR_UPDATE_SKIP_LOCKED: &str = $for_update_skip_locked;

            /// The elements of a JSON array of strings bound at `$n`, as a subquery. Batches
            /// of any size then share one statement text, prepared and planned once per
            /// connection (PostgreSQL would otherwise plan every differently sized IN list).
            pub(super) fn texts_at(n: usize) -> String {
                $json_texts.replace("$P", &format!("${n}"))
            }

            /// `IN` (or `= ANY`) the list of ids bound at `$n` with `<$store>::id_list` — the
            /// backend's cheapest form for the thousands of ids of a dispatch batch.
            fn in_ids(n: usize) -> String {
                <$store>::IN_ID_LIST.replace("$P", &format!("${n}"))
            }

            /// Inserts `rows` (each a value per column of `into`, e.g.
            /// `"INSERT INTO t (a, b)"`) in as few statements as the backend likes (see
            /// `insert_rows_then` in `sqlite.rs` and `postgres.rs`).
            async fn insert_rows(tx: &mut Tx, into: &str, rows: &[Vec<Cell>]) -> StoreResult<()> {
                insert_rows_then(tx, into, rows, "").await
            }

            /// [`insert_rows`] with `then` after each statement's rows (an `ON CONFLICT …`
            /// clause).
            pub(super) async fn insert_rows_then(tx: &mut Tx, into: &str, rows: &[Vec<Cell>], then: &str) -> StoreResult<()> {
                <$store>::insert_rows_then(tx, into, rows, then).await
            }

            /// A JSON array of arrays bound at `$n`, as a row source whose columns are
            /// `value ->> 0`, `value ->> 1`, … (see [`texts_at`]).
            pub(super) fn rows_at(n: usize) -> String {
                $json_rows.replace("$P", &format!("${n}"))
            }

            pub(super) fn timer(op: &'static str) -> QueryTimer {
                QueryTimer::new(op, $name)
            }

            /// Appends the keyset condition, the order and the limit of a page.
            pub(super) fn push_page(qb: &mut QueryBuilder<$db>, page: &PageRequest, time_col: &str, name_col: &str, id_col: &str) {
                let col = match page.sort {
                    SortKey::TimeCreated => time_col,
                    SortKey::Name => name_col,
                };
                let (cmp, dir) = match page.order {
                    SortOrder::Asc => (">", "ASC"),
                    SortOrder::Desc => ("<", "DESC"),
                };
                if let Some(c) = &page.after {
                    qb.push(format!(" AND ({col}, {id_col}) {cmp} ("));
                    match &c.key {
                        KeyValue::Micros(v) => qb.push_bind(*v),
                        KeyValue::Text(v) => qb.push_bind(v.clone()),
                    };
                    qb.push(", ");
                    qb.push_bind(c.id.clone());
                    qb.push(")");
                }
                qb.push(format!(" ORDER BY {col} {dir}, {id_col} {dir}"));
                if let Some(limit) = page.limit {
                    qb.push(" LIMIT ");
                    qb.push_bind(limit as i64 + 1);
                }
            }

            pub(super) fn key_of(page: &PageRequest, time: Timestamp, name: &str) -> KeyValue {
                match page.sort {
                    SortKey::TimeCreated => KeyValue::Micros(micros(time)),
                    SortKey::Name => KeyValue::Text(name.to_string()),
                }
            }

            async fn put_retry(tx: &mut Tx, rec: Option<&RetryRecord>) -> StoreResult<()> {
                let Some(rec) = rec else { return Ok(()) };
                let r = sqlx::query(
                    "INSERT INTO retry_records (principal_id, token, operation, request_hash, resource_id, time_created) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&rec.principal_id)
                .bind(&rec.token)
                .bind(&rec.operation)
                .bind(&rec.request_hash)
                .bind(&rec.resource_id)
                .bind(micros(rec.time_created))
                .execute(&mut **tx)
                .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::RetryTokenUsed),
                    Err(e) => Err(e.into()),
                }
            }

            // --- row decoding ---

            fn compartment(r: &DbRow) -> StoreResult<Compartment> {
                Ok(Compartment {
                    id: r.try_get("id")?,
                    parent_id: r.try_get("parent_id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    lifecycle_state: parse_enum("lifecycle_state", &r.try_get::<String, _>("lifecycle_state")?)?,
                    time_created: ts(r.try_get("time_created")?),
                    freeform_tags: from_json("freeform_tags", &r.try_get::<String, _>("freeform_tags")?)?,
                    defined_tags: from_json("defined_tags", &r.try_get::<String, _>("defined_tags")?)?,
                    version: r.try_get("version")?,
                })
            }

            fn instance(r: &DbRow) -> StoreResult<ManagedInstance> {
                Ok(ManagedInstance {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    display_name: r.try_get("display_name")?,
                    description: r.try_get("description")?,
                    os_name: r.try_get("os_name")?,
                    os_version: r.try_get("os_version")?,
                    os_kernel_version: r.try_get("os_kernel_version")?,
                    os_family: parse_enum("os_family", &r.try_get::<String, _>("os_family")?)?,
                    status: parse_enum("status", &r.try_get::<String, _>("status")?)?,
                    last_checkin: opt_ts(r.try_get("last_checkin")?),
                    last_boot: opt_ts(r.try_get("last_boot")?),
                    is_reboot_required: r.try_get("is_reboot_required")?,
                    notification_topic_id: r.try_get("notification_topic_id")?,
                    is_data_collection_authorized: r.try_get("is_data_collection_authorized")?,
                    updates: UpdateCounts {
                        security: r.try_get("security_updates")?,
                        bug: r.try_get("bug_updates")?,
                        enhancement: r.try_get("enhancement_updates")?,
                        other: r.try_get("other_updates")?,
                    },
                    time_created: ts(r.try_get("time_created")?),
                    version: r.try_get("version")?,
                })
            }

            const GROUP_COLUMNS: &str = "g.id, g.compartment_id, g.display_name, g.description, g.os_family, g.lifecycle_state, g.freeform_tags, g.defined_tags, g.time_created, g.version, (SELECT count(*) FROM managed_instance_group_members m WHERE m.group_id = g.id) AS member_count";

            fn group(r: &DbRow) -> StoreResult<ManagedInstanceGroup> {
                Ok(ManagedInstanceGroup {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    display_name: r.try_get("display_name")?,
                    description: r.try_get("description")?,
                    os_family: parse_enum("os_family", &r.try_get::<String, _>("os_family")?)?,
                    lifecycle_state: parse_enum("lifecycle_state", &r.try_get::<String, _>("lifecycle_state")?)?,
                    freeform_tags: from_json("freeform_tags", &r.try_get::<String, _>("freeform_tags")?)?,
                    defined_tags: from_json("defined_tags", &r.try_get::<String, _>("defined_tags")?)?,
                    time_created: ts(r.try_get("time_created")?),
                    version: r.try_get("version")?,
                    member_count: r.try_get("member_count")?,
                })
            }

            fn job(r: &DbRow) -> StoreResult<ScheduledJob> {
                Ok(ScheduledJob {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    display_name: r.try_get("display_name")?,
                    description: r.try_get("description")?,
                    schedule_type: parse_enum("schedule_type", &r.try_get::<String, _>("schedule_type")?)?,
                    time_next_execution: opt_ts(r.try_get("time_next_execution")?),
                    time_last_execution: opt_ts(r.try_get("time_last_execution")?),
                    interval_type: parse_opt_enum("interval_type", r.try_get("interval_type")?)?,
                    interval_value: r.try_get::<Option<i64>, _>("interval_value")?.map(|v| v as u32),
                    managed_instances: vec![],
                    managed_instance_groups: vec![],
                    operation_type: parse_enum("operation_type", &r.try_get::<String, _>("operation_type")?)?,
                    update_type: parse_opt_enum("update_type", r.try_get("update_type")?)?,
                    package_names: from_json("package_names", &r.try_get::<String, _>("package_names")?)?,
                    update_names: from_json("update_names", &r.try_get::<String, _>("update_names")?)?,
                    lifecycle_state: parse_enum("lifecycle_state", &r.try_get::<String, _>("lifecycle_state")?)?,
                    freeform_tags: from_json("freeform_tags", &r.try_get::<String, _>("freeform_tags")?)?,
                    defined_tags: from_json("defined_tags", &r.try_get::<String, _>("defined_tags")?)?,
                    os_family: parse_enum("os_family", &r.try_get::<String, _>("os_family")?)?,
                    is_restricted: r.try_get("is_restricted")?,
                    time_zone: r.try_get("time_zone")?,
                    time_created: ts(r.try_get("time_created")?),
                    version: r.try_get("version")?,
                })
            }

            fn work_request(r: &DbRow) -> StoreResult<WorkRequest> {
                let mi_id: Option<String> = r.try_get("managed_instance_id")?;
                let mi_name: Option<String> = r.try_get("managed_instance_name")?;
                let resources = match (r.try_get::<String, _>("resources")?.as_str(), &mi_id) {
                    // Implied by the instance (see `resources_column`).
                    ("", Some(id)) => osm_core::work::instance_resources(id, mi_name.as_deref().unwrap_or_default()),
                    (text, _) => from_json("resources", text)?,
                };
                Ok(WorkRequest {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    operation_type: parse_enum("operation_type", &r.try_get::<String, _>("operation_type")?)?,
                    status: parse_enum("status", &r.try_get::<String, _>("status")?)?,
                    description: r.try_get("description")?,
                    message: r.try_get("message")?,
                    managed_instance: mi_id.map(|id| IdName { id, display_name: mi_name.unwrap_or_default() }),
                    os_family: parse_enum("os_family", &r.try_get::<String, _>("os_family")?)?,
                    percent_complete: r.try_get::<f64, _>("percent_complete")? as f32,
                    time_accepted: ts(r.try_get("time_accepted")?),
                    time_started: opt_ts(r.try_get("time_started")?),
                    time_finished: opt_ts(r.try_get("time_finished")?),
                    parent_id: r.try_get("parent_id")?,
                    scheduled_job_id: r.try_get("scheduled_job_id")?,
                    resources,
                    children_ids: vec![],
                    action: r.try_get::<Option<String>, _>("action")?.map(|a| from_json("action", &a)).transpose()?,
                })
            }

            fn rows<T>(rows: Vec<DbRow>, f: fn(&DbRow) -> StoreResult<T>) -> StoreResult<Vec<T>> {
                rows.iter().map(f).collect()
            }

            impl $store {
                /// The compartment, its row locked with `lock` (`FOR_UPDATE`, `FOR_SHARE` or "").
                async fn compartment_in(tx: &mut Tx, id: &str, lock: &str) -> StoreResult<Option<Compartment>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM compartments WHERE id = $1{lock}")))
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?;
                    row.as_ref().map(compartment).transpose()
                }

                /// Checks that a compartment exists and is not deleted, and keeps it so until
                /// the transaction ends (a concurrent delete waits, then sees the new row).
                async fn live_compartment(tx: &mut Tx, id: &str) -> StoreResult<()> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT lifecycle_state FROM compartments WHERE id = $1{FOR_SHARE}")))
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?;
                    match row {
                        Some(r) if r.try_get::<String, _>("lifecycle_state")? != CompartmentState::Deleted.as_str() => Ok(()),
                        _ => Err(StoreError::MissingReference(format!("compartment {id} does not exist"))),
                    }
                }

                async fn sibling_named(tx: &mut Tx, parent: &str, name: &str, except: &str) -> StoreResult<bool> {
                    let row = sqlx::query(
                        "SELECT 1 AS one FROM compartments WHERE parent_id = $1 AND name = $2 AND lifecycle_state <> 'DELETED' AND id <> $3",
                    )
                    .bind(parent)
                    .bind(name)
                    .bind(except)
                    .fetch_optional(&mut **tx)
                    .await?;
                    Ok(row.is_some())
                }

                async fn count(tx: &mut Tx, sql: &'static str, id: &str) -> StoreResult<i64> {
                    Ok(sqlx::query(sql).bind(id).fetch_one(&mut **tx).await?.try_get::<i64, _>(0)?)
                }

                /// The instances each of `jobs` (targets attached) reaches now: its instance
                /// targets and the current members of its group targets, each once, by display
                /// name. Two primary-key lookups by list, however many jobs: plans that stay
                /// right without table statistics (PostgreSQL, joining the targets table with a
                /// list of job ids, scanned all of it while its statistics were missing).
                async fn expand_targets_of(tx: &mut Tx, jobs: &[&ScheduledJob]) -> StoreResult<std::collections::HashMap<String, Vec<ManagedInstance>>> {
                    let direct: std::collections::BTreeSet<&str> = jobs.iter().flat_map(|j| j.managed_instances.iter().map(|t| t.id.as_str())).collect();
                    let groups: std::collections::BTreeSet<&str> = jobs.iter().flat_map(|j| j.managed_instance_groups.iter().map(|t| t.id.as_str())).collect();
                    let mut by_id: std::collections::HashMap<String, ManagedInstance> = Default::default();
                    let mut members: std::collections::HashMap<String, Vec<String>> = Default::default();
                    if !direct.is_empty() || !groups.is_empty() {
                        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SELECT '' AS via_group, i.* FROM managed_instances i WHERE i.id {} \
                             UNION ALL SELECT m.group_id AS via_group, i.* FROM managed_instance_group_members m JOIN managed_instances i ON i.id = m.instance_id WHERE m.group_id {}",
                            in_ids(1),
                            in_ids(2)
                        )))
                        .bind(<$store>::id_list(&direct.into_iter().collect::<Vec<_>>()))
                        .bind(<$store>::id_list(&groups.into_iter().collect::<Vec<_>>()))
                        .fetch_all(&mut **tx)
                        .await?;
                        for r in rows {
                            let group: String = r.try_get("via_group")?;
                            let mi = instance(&r)?;
                            if !group.is_empty() {
                                members.entry(group).or_default().push(mi.id.clone());
                            }
                            by_id.entry(mi.id.clone()).or_insert(mi);
                        }
                    }
                    let mut out = std::collections::HashMap::new();
                    for j in jobs {
                        let reached: std::collections::BTreeSet<&str> = j
                            .managed_instances
                            .iter()
                            .map(|t| t.id.as_str())
                            .chain(j.managed_instance_groups.iter().flat_map(|g| members.get(&g.id).into_iter().flatten().map(String::as_str)))
                            .collect();
                        // An instance deleted since it was targeted reaches no one.
                        let mut instances: Vec<ManagedInstance> = reached.into_iter().filter_map(|id| by_id.get(id).cloned()).collect();
                        instances.sort_by(|a, b| (&a.display_name, &a.id).cmp(&(&b.display_name, &b.id)));
                        out.insert(j.id.clone(), instances);
                    }
                    Ok(out)
                }

                /// The version of a row inside a transaction, checked against the expected one.
                /// The row stays locked until the transaction ends, so the checks that follow
                /// and the guarded update see the same row.
                async fn checked_version(tx: &mut Tx, table: &'static str, id: &str, expected: Option<i64>) -> StoreResult<i64> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT version FROM {table} WHERE id = $1{FOR_UPDATE}")))
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    let version: i64 = row.try_get("version")?;
                    if expected.is_some_and(|e| e != version) {
                        return Err(StoreError::VersionMismatch);
                    }
                    Ok(version)
                }
            }

            /// Fills the targets of `jobs` from `scheduled_job_targets`.
            async fn attach_targets<'c, E>(ex: E, jobs: &mut [ScheduledJob]) -> StoreResult<()>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                if jobs.is_empty() {
                    return Ok(());
                }
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT job_id, target_id, target_kind, display_name FROM scheduled_job_targets WHERE job_id IN (",
                );
                let mut sep = qb.separated(", ");
                for j in jobs.iter() {
                    sep.push_bind(j.id.clone());
                }
                qb.push(") ORDER BY job_id, position");
                let rows = qb.build().fetch_all(ex).await?;
                let index: std::collections::HashMap<String, usize> =
                    jobs.iter().enumerate().map(|(i, j)| (j.id.clone(), i)).collect();
                for r in rows {
                    let job_id: String = r.try_get("job_id")?;
                    let Some(&i) = index.get(&job_id) else { continue };
                    let target = IdName { id: r.try_get("target_id")?, display_name: r.try_get("display_name")? };
                    if r.try_get::<String, _>("target_kind")? == "group" {
                        jobs[i].managed_instance_groups.push(target);
                    } else {
                        jobs[i].managed_instances.push(target);
                    }
                }
                Ok(())
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> Backend {
                    $backend
                }

                async fn ping(&self) -> StoreResult<()> {
                    let _t = timer("ping");
                    sqlx::query("SELECT 1").execute(self.read()).await?;
                    Ok(())
                }

                async fn tenancy_get(&self) -> StoreResult<Option<Compartment>> {
                    let _t = timer("tenancy_get");
                    let row = sqlx::query(
                        "SELECT c.* FROM tenancy_singleton s JOIN compartments c ON c.id = s.tenancy_id",
                    )
                    .fetch_optional(self.read())
                    .await?;
                    row.as_ref().map(compartment).transpose()
                }

                async fn bootstrap(&self, b: &Bootstrap) -> StoreResult<bool> {
                    let _t = timer("bootstrap");
                    let mut tx = self.write_tx().await?;
                    if sqlx::query("SELECT tenancy_id FROM tenancy_singleton").fetch_optional(&mut *tx).await?.is_some() {
                        return Ok(false);
                    }
                    insert_compartment(&mut tx, &b.tenancy).await?;
                    let claimed = sqlx::query("INSERT INTO tenancy_singleton (singleton, tenancy_id) VALUES (1, $1)")
                        .bind(&b.tenancy.id)
                        .execute(&mut *tx)
                        .await;
                    match claimed {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => return Ok(false),
                        Err(e) => return Err(e.into()),
                    }
                    insert_user(&mut tx, &b.admin).await?;
                    insert_key(&mut tx, &b.admin_key).await?;
                    insert_group(&mut tx, &b.admin_group).await?;
                    sqlx::query("INSERT INTO user_group_members (group_id, user_id) VALUES ($1, $2)")
                        .bind(&b.admin_group.id)
                        .bind(&b.admin.id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO user_group_grants (group_id, compartment_id) VALUES ($1, $2)")
                        .bind(&b.admin_group.id)
                        .bind(&b.tenancy.id)
                        .execute(&mut *tx)
                        .await?;
                    match tx.commit().await {
                        Ok(()) => Ok(true),
                        Err(e) if is_unique_violation(&e) => Ok(false),
                        Err(e) => Err(e.into()),
                    }
                }

                async fn user_create(&self, user: &User) -> StoreResult<()> {
                    let _t = timer("user_create");
                    let mut tx = self.write_tx().await?;
                    insert_user(&mut tx, user).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn user_get(&self, id: &str) -> StoreResult<Option<User>> {
                    let _t = timer("user_get");
                    let row = sqlx::query("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(self.read()).await?;
                    row.map(|r| -> StoreResult<User> {
                        Ok(User {
                            id: r.try_get("id")?,
                            tenancy_id: r.try_get("tenancy_id")?,
                            name: r.try_get("name")?,
                            description: r.try_get("description")?,
                            time_created: ts(r.try_get("time_created")?),
                        })
                    })
                    .transpose()
                }

                async fn api_key_add(&self, key: &ApiKey) -> StoreResult<()> {
                    let _t = timer("api_key_add");
                    let mut tx = self.write_tx().await?;
                    insert_key(&mut tx, key).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn api_key_get(&self, user_id: &str, fingerprint: &str) -> StoreResult<Option<ApiKey>> {
                    let _t = timer("api_key_get");
                    let row = sqlx::query("SELECT * FROM api_keys WHERE user_id = $1 AND fingerprint = $2")
                        .bind(user_id)
                        .bind(fingerprint)
                        .fetch_optional(self.read())
                        .await?;
                    row.map(|r| -> StoreResult<ApiKey> {
                        Ok(ApiKey {
                            user_id: r.try_get("user_id")?,
                            fingerprint: r.try_get("fingerprint")?,
                            public_key_pem: r.try_get("public_key_pem")?,
                            time_created: ts(r.try_get("time_created")?),
                        })
                    })
                    .transpose()
                }

                async fn user_group_create(&self, group: &Group) -> StoreResult<()> {
                    let _t = timer("user_group_create");
                    let mut tx = self.write_tx().await?;
                    insert_group(&mut tx, group).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn user_group_add_member(&self, group_id: &str, user_id: &str) -> StoreResult<()> {
                    let _t = timer("user_group_add_member");
                    let mut tx = self.write_tx().await?;
                    sqlx::query("INSERT INTO user_group_members (group_id, user_id) VALUES ($1, $2)")
                        .bind(group_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_insert_error)?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn user_group_grant(&self, group_id: &str, compartment_id: &str) -> StoreResult<()> {
                    let _t = timer("user_group_grant");
                    let mut tx = self.write_tx().await?;
                    sqlx::query("INSERT INTO user_group_grants (group_id, compartment_id) VALUES ($1, $2)")
                        .bind(group_id)
                        .bind(compartment_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_insert_error)?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn user_granted_compartments(&self, user_id: &str) -> StoreResult<Vec<String>> {
                    let _t = timer("user_granted_compartments");
                    let rows = sqlx::query(
                        "SELECT DISTINCT g.compartment_id FROM user_group_grants g JOIN user_group_members m ON m.group_id = g.group_id WHERE m.user_id = $1",
                    )
                    .bind(user_id)
                    .fetch_all(self.read())
                    .await?;
                    rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
                }

                async fn compartment_create(&self, c: &Compartment, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("compartment_create");
                    let mut tx = self.write_tx().await?;
                    let parent = c.parent_id.as_deref().ok_or_else(|| StoreError::Conflict("a compartment needs a parent".into()))?;
                    match Self::compartment_in(&mut tx, parent, FOR_SHARE).await? {
                        Some(p) if p.lifecycle_state != CompartmentState::Deleted => {}
                        _ => return Err(StoreError::MissingReference(format!("parent compartment {parent} does not exist"))),
                    }
                    let taken = || StoreError::Conflict(format!("a compartment named {:?} already exists in {parent}", c.name));
                    if Self::sibling_named(&mut tx, parent, &c.name, &c.id).await? {
                        return Err(taken());
                    }
                    // The unique index catches a sibling created by a racing replica.
                    match insert_compartment(&mut tx, c).await {
                        Err(StoreError::Database(e)) if violates(&e, &ACTIVE_NAME_INDEX) => return Err(taken()),
                        r => r?,
                    }
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn compartment_get(&self, id: &str) -> StoreResult<Option<Compartment>> {
                    let _t = timer("compartment_get");
                    let row = sqlx::query("SELECT * FROM compartments WHERE id = $1").bind(id).fetch_optional(self.read()).await?;
                    row.as_ref().map(compartment).transpose()
                }

                async fn compartment_list(&self, filter: &CompartmentFilter, page: &PageRequest) -> StoreResult<Page<Compartment>> {
                    let _t = timer("compartment_list");
                    let mut qb = QueryBuilder::<$db>::new("");
                    if filter.in_subtree {
                        qb.push("WITH RECURSIVE tree(id) AS (SELECT id FROM compartments WHERE parent_id = ");
                        qb.push_bind(filter.parent_id.clone());
                        qb.push(" UNION ALL SELECT c.id FROM compartments c JOIN tree t ON c.parent_id = t.id) SELECT * FROM compartments WHERE id IN (SELECT id FROM tree)");
                    } else {
                        qb.push("SELECT * FROM compartments WHERE parent_id = ");
                        qb.push_bind(filter.parent_id.clone());
                    }
                    if let Some(name) = &filter.name {
                        qb.push(" AND name = ");
                        qb.push_bind(name.clone());
                    }
                    if let Some(state) = filter.lifecycle_state {
                        qb.push(" AND lifecycle_state = ");
                        qb.push_bind(state.as_str());
                    }
                    push_page(&mut qb, page, "time_created", "name", "id");
                    let items = rows(qb.build().fetch_all(self.read()).await?, compartment)?;
                    Ok(Page::from_rows(items, page, |c| (key_of(page, c.time_created, &c.name), c.id.clone())))
                }

                async fn compartment_tree(&self) -> StoreResult<Vec<(String, Option<String>)>> {
                    let _t = timer("compartment_tree");
                    let rows = sqlx::query("SELECT id, parent_id FROM compartments").fetch_all(self.read()).await?;
                    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("parent_id")?))).collect()
                }

                async fn compartment_update(&self, id: &str, patch: &CompartmentPatch, expected_version: Option<i64>) -> StoreResult<Compartment> {
                    let _t = timer("compartment_update");
                    let mut tx = self.write_tx().await?;
                    let mut c = Self::compartment_in(&mut tx, id, FOR_UPDATE).await?.ok_or(StoreError::NotFound)?;
                    if expected_version.is_some_and(|v| v != c.version) {
                        return Err(StoreError::VersionMismatch);
                    }
                    if let Some(name) = &patch.name {
                        if let Some(parent) = &c.parent_id
                            && Self::sibling_named(&mut tx, parent, name, id).await?
                        {
                            return Err(StoreError::Conflict(format!("a compartment named {name:?} already exists in {parent}")));
                        }
                        c.name = name.clone();
                    }
                    if let Some(d) = &patch.description {
                        c.description = d.clone();
                    }
                    if let Some(t) = &patch.freeform_tags {
                        c.freeform_tags = t.clone();
                    }
                    if let Some(t) = &patch.defined_tags {
                        c.defined_tags = t.clone();
                    }
                    let done = sqlx::query(
                        "UPDATE compartments SET name = $1, description = $2, freeform_tags = $3, defined_tags = $4, version = version + 1 WHERE id = $5 AND version = $6",
                    )
                    .bind(&c.name)
                    .bind(&c.description)
                    .bind(to_json(&c.freeform_tags))
                    .bind(to_json(&c.defined_tags))
                    .bind(id)
                    .bind(c.version)
                    .execute(&mut *tx)
                    .await;
                    let done = match done {
                        Err(e) if violates(&e, &ACTIVE_NAME_INDEX) => {
                            return Err(StoreError::Conflict(format!("a compartment named {:?} already exists beside it", c.name)));
                        }
                        r => r?,
                    };
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    tx.commit().await?;
                    c.version += 1;
                    Ok(c)
                }

                async fn compartment_delete(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
                    let _t = timer("compartment_delete");
                    let mut tx = self.write_tx().await?;
                    let version = Self::checked_version(&mut tx, "compartments", id, expected_version).await?;
                    let mut held = vec![];
                    for (sql, what) in [
                        ("SELECT count(*) FROM compartments WHERE parent_id = $1 AND lifecycle_state <> 'DELETED'", "compartment"),
                        ("SELECT count(*) FROM managed_instances WHERE compartment_id = $1", "managed instance"),
                        ("SELECT count(*) FROM managed_instance_groups WHERE compartment_id = $1 AND lifecycle_state <> 'DELETED'", "managed instance group"),
                        ("SELECT count(*) FROM scheduled_jobs WHERE compartment_id = $1 AND lifecycle_state <> 'DELETED'", "scheduled job"),
                    ] {
                        let n = Self::count(&mut tx, sql, id).await?;
                        if n > 0 {
                            held.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
                        }
                    }
                    if !held.is_empty() {
                        return Err(StoreError::Conflict(format!("it still holds {}", held.join(", "))));
                    }
                    let done = sqlx::query("UPDATE compartments SET lifecycle_state = 'DELETED', version = version + 1 WHERE id = $1 AND version = $2")
                        .bind(id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn managed_instance_insert(&self, mi: &ManagedInstance) -> StoreResult<()> {
                    let _t = timer("managed_instance_insert");
                    self.insert_instances(std::slice::from_ref(mi)).await
                }

                async fn managed_instance_insert_many(&self, mis: &[ManagedInstance]) -> StoreResult<()> {
                    let _t = timer("managed_instance_insert_many");
                    self.insert_instances(mis).await
                }

                async fn managed_instance_get(&self, id: &str) -> StoreResult<Option<ManagedInstance>> {
                    let _t = timer("managed_instance_get");
                    let row = sqlx::query("SELECT * FROM managed_instances WHERE id = $1").bind(id).fetch_optional(self.read()).await?;
                    row.as_ref().map(instance).transpose()
                }

                async fn managed_instance_list(&self, filter: &ManagedInstanceFilter, page: &PageRequest) -> StoreResult<Page<ManagedInstance>> {
                    let _t = timer("managed_instance_list");
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM managed_instances WHERE compartment_id = ");
                    qb.push_bind(filter.compartment_id.clone());
                    if let Some(n) = &filter.display_name {
                        qb.push(" AND display_name = ");
                        qb.push_bind(n.clone());
                    }
                    if let Some(f) = filter.os_family.filter(|f| *f != OsFamily::All) {
                        qb.push(" AND os_family = ");
                        qb.push_bind(f.as_str());
                    }
                    push_page(&mut qb, page, "time_created", "display_name", "id");
                    let items = rows(qb.build().fetch_all(self.read()).await?, instance)?;
                    Ok(Page::from_rows(items, page, |m| (key_of(page, m.time_created, &m.display_name), m.id.clone())))
                }

                async fn managed_instance_update(&self, id: &str, patch: &ManagedInstancePatch, expected_version: Option<i64>) -> StoreResult<ManagedInstance> {
                    let _t = timer("managed_instance_update");
                    let mut tx = self.write_tx().await?;
                    let row = sqlx::query("SELECT * FROM managed_instances WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
                    let mut mi = row.as_ref().map(instance).transpose()?.ok_or(StoreError::NotFound)?;
                    if expected_version.is_some_and(|v| v != mi.version) {
                        return Err(StoreError::VersionMismatch);
                    }
                    if let Some(t) = &patch.notification_topic_id {
                        mi.notification_topic_id = Some(t.clone());
                    }
                    if let Some(a) = patch.is_data_collection_authorized {
                        mi.is_data_collection_authorized = a;
                    }
                    let done = sqlx::query(
                        "UPDATE managed_instances SET notification_topic_id = $1, is_data_collection_authorized = $2, version = version + 1 WHERE id = $3 AND version = $4",
                    )
                    .bind(&mi.notification_topic_id)
                    .bind(mi.is_data_collection_authorized)
                    .bind(id)
                    .bind(mi.version)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    tx.commit().await?;
                    mi.version += 1;
                    Ok(mi)
                }

                async fn managed_instance_groups_of(&self, id: &str) -> StoreResult<Vec<IdName>> {
                    let _t = timer("managed_instance_groups_of");
                    let rows = sqlx::query(
                        "SELECT g.id, g.display_name FROM managed_instance_group_members m JOIN managed_instance_groups g ON g.id = m.group_id WHERE m.instance_id = $1 ORDER BY g.display_name, g.id",
                    )
                    .bind(id)
                    .fetch_all(self.read())
                    .await?;
                    rows.iter().map(|r| Ok(IdName { id: r.try_get("id")?, display_name: r.try_get("display_name")? })).collect()
                }

                async fn managed_instance_counts(&self, id: &str) -> StoreResult<(i64, i64)> {
                    let _t = timer("managed_instance_counts");
                    let row = sqlx::query(
                        "SELECT (SELECT count(DISTINCT j.id) FROM scheduled_jobs j JOIN scheduled_job_targets t ON t.job_id = j.id WHERE j.lifecycle_state <> 'DELETED' AND (t.target_id = $1 OR t.target_id IN (SELECT group_id FROM managed_instance_group_members WHERE instance_id = $1))) AS jobs, (SELECT count(*) FROM work_requests WHERE managed_instance_id = $1) AS wrs",
                    )
                    .bind(id)
                    .fetch_one(self.read())
                    .await?;
                    Ok((row.try_get("jobs")?, row.try_get("wrs")?))
                }

                async fn managed_instance_group_create(&self, g: &ManagedInstanceGroup, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("managed_instance_group_create");
                    let mut tx = self.write_tx().await?;
                    Self::live_compartment(&mut tx, &g.compartment_id).await?;
                    sqlx::query(
                        "INSERT INTO managed_instance_groups (id, compartment_id, display_name, description, os_family, lifecycle_state, freeform_tags, defined_tags, time_created, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&g.id)
                    .bind(&g.compartment_id)
                    .bind(&g.display_name)
                    .bind(&g.description)
                    .bind(g.os_family.as_str())
                    .bind(g.lifecycle_state.as_str())
                    .bind(to_json(&g.freeform_tags))
                    .bind(to_json(&g.defined_tags))
                    .bind(micros(g.time_created))
                    .bind(g.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_insert_error)?;
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn managed_instance_group_get(&self, id: &str) -> StoreResult<Option<ManagedInstanceGroup>> {
                    let _t = timer("managed_instance_group_get");
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {GROUP_COLUMNS} FROM managed_instance_groups g WHERE g.id = $1")))
                        .bind(id)
                        .fetch_optional(self.read())
                        .await?;
                    row.as_ref().map(group).transpose()
                }

                async fn managed_instance_group_list(&self, filter: &GroupFilter, page: &PageRequest) -> StoreResult<Page<ManagedInstanceGroup>> {
                    let _t = timer("managed_instance_group_list");
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {GROUP_COLUMNS} FROM managed_instance_groups g WHERE g.compartment_id = "));
                    qb.push_bind(filter.compartment_id.clone());
                    if let Some(n) = &filter.display_name {
                        qb.push(" AND g.display_name = ");
                        qb.push_bind(n.clone());
                    }
                    match filter.lifecycle_state {
                        Some(s) => {
                            qb.push(" AND g.lifecycle_state = ");
                            qb.push_bind(s.as_str());
                        }
                        None => {
                            qb.push(" AND g.lifecycle_state <> 'DELETED'");
                        }
                    }
                    if let Some(f) = filter.os_family.filter(|f| *f != OsFamily::All) {
                        qb.push(" AND g.os_family = ");
                        qb.push_bind(f.as_str());
                    }
                    push_page(&mut qb, page, "g.time_created", "g.display_name", "g.id");
                    let items = rows(qb.build().fetch_all(self.read()).await?, group)?;
                    Ok(Page::from_rows(items, page, |g| (key_of(page, g.time_created, &g.display_name), g.id.clone())))
                }

                async fn managed_instance_group_update(&self, id: &str, patch: &ManagedInstanceGroupPatch, expected_version: Option<i64>) -> StoreResult<ManagedInstanceGroup> {
                    let _t = timer("managed_instance_group_update");
                    let mut tx = self.write_tx().await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {GROUP_COLUMNS} FROM managed_instance_groups g WHERE g.id = $1")))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let mut g = row.as_ref().map(group).transpose()?.ok_or(StoreError::NotFound)?;
                    if expected_version.is_some_and(|v| v != g.version) {
                        return Err(StoreError::VersionMismatch);
                    }
                    if let Some(v) = &patch.display_name {
                        g.display_name = v.clone();
                    }
                    if let Some(v) = &patch.description {
                        g.description = Some(v.clone());
                    }
                    if let Some(v) = &patch.freeform_tags {
                        g.freeform_tags = v.clone();
                    }
                    if let Some(v) = &patch.defined_tags {
                        g.defined_tags = v.clone();
                    }
                    let done = sqlx::query(
                        "UPDATE managed_instance_groups SET display_name = $1, description = $2, freeform_tags = $3, defined_tags = $4, version = version + 1 WHERE id = $5 AND version = $6",
                    )
                    .bind(&g.display_name)
                    .bind(&g.description)
                    .bind(to_json(&g.freeform_tags))
                    .bind(to_json(&g.defined_tags))
                    .bind(id)
                    .bind(g.version)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    tx.commit().await?;
                    g.version += 1;
                    Ok(g)
                }

                async fn managed_instance_group_delete(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
                    let _t = timer("managed_instance_group_delete");
                    let mut tx = self.write_tx().await?;
                    let version = Self::checked_version(&mut tx, "managed_instance_groups", id, expected_version).await?;
                    let jobs = Self::count(
                        &mut tx,
                        "SELECT count(*) FROM scheduled_job_targets t JOIN scheduled_jobs j ON j.id = t.job_id WHERE t.target_id = $1 AND j.lifecycle_state <> 'DELETED'",
                        id,
                    )
                    .await?;
                    if jobs > 0 {
                        return Err(StoreError::Conflict(format!(
                            "{jobs} scheduled job{} still target{} this group; delete or change them first",
                            if jobs == 1 { "" } else { "s" },
                            if jobs == 1 { "s" } else { "" }
                        )));
                    }
                    sqlx::query("DELETE FROM managed_instance_group_members WHERE group_id = $1").bind(id).execute(&mut *tx).await?;
                    let done = sqlx::query("UPDATE managed_instance_groups SET lifecycle_state = 'DELETED', version = version + 1 WHERE id = $1 AND version = $2")
                        .bind(id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn managed_instance_group_change_compartment(&self, id: &str, compartment_id: &str, expected_version: Option<i64>, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("managed_instance_group_change_compartment");
                    self.change_compartment("managed_instance_groups", id, compartment_id, expected_version, retry).await
                }

                async fn managed_instance_group_attach(&self, group_id: &str, instance_id: &str, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("managed_instance_group_attach");
                    let mut tx = self.write_tx().await?;
                    // FOR SHARE: a concurrent delete of the group waits for this attach (or
                    // this attach sees the group deleted).
                    let g = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT os_family, lifecycle_state FROM managed_instance_groups WHERE id = $1{FOR_SHARE}")))
                        .bind(group_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    if g.try_get::<String, _>("lifecycle_state")? == "DELETED" {
                        return Err(StoreError::NotFound);
                    }
                    let family: String = g.try_get("os_family")?;
                    let mi = sqlx::query("SELECT os_family FROM managed_instances WHERE id = $1")
                        .bind(instance_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| StoreError::MissingReference(format!("managed instance {instance_id} does not exist")))?;
                    let mi_family: String = mi.try_get("os_family")?;
                    if family != "ALL" && family != mi_family {
                        return Err(StoreError::Conflict(format!(
                            "managed instance {instance_id} runs {mi_family} but the group is for {family} instances"
                        )));
                    }
                    let r = sqlx::query("INSERT INTO managed_instance_group_members (group_id, instance_id) VALUES ($1, $2)")
                        .bind(group_id)
                        .bind(instance_id)
                        .execute(&mut *tx)
                        .await;
                    match r {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => {
                            return Err(StoreError::Conflict(format!("managed instance {instance_id} is already in the group")));
                        }
                        Err(e) => return Err(e.into()),
                    }
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn managed_instance_group_detach(&self, group_id: &str, instance_id: &str, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("managed_instance_group_detach");
                    let mut tx = self.write_tx().await?;
                    let done = sqlx::query("DELETE FROM managed_instance_group_members WHERE group_id = $1 AND instance_id = $2")
                        .bind(group_id)
                        .bind(instance_id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict(format!("managed instance {instance_id} is not in the group")));
                    }
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn managed_instance_group_members(&self, group_id: &str) -> StoreResult<Vec<IdName>> {
                    let _t = timer("managed_instance_group_members");
                    let rows = sqlx::query(
                        "SELECT i.id, i.display_name FROM managed_instance_group_members m JOIN managed_instances i ON i.id = m.instance_id WHERE m.group_id = $1 ORDER BY i.display_name, i.id",
                    )
                    .bind(group_id)
                    .fetch_all(self.read())
                    .await?;
                    rows.iter().map(|r| Ok(IdName { id: r.try_get("id")?, display_name: r.try_get("display_name")? })).collect()
                }

                async fn scheduled_job_create(&self, j: &ScheduledJob, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("scheduled_job_create");
                    let mut tx = self.write_tx().await?;
                    Self::live_compartment(&mut tx, &j.compartment_id).await?;
                    Self::check_targets(&mut tx, j).await?;
                    sqlx::query(
                        "INSERT INTO scheduled_jobs (id, compartment_id, display_name, description, schedule_type, time_next_execution, time_last_execution, interval_type, interval_value, operation_type, update_type, package_names, update_names, lifecycle_state, freeform_tags, defined_tags, os_family, is_restricted, time_zone, time_created, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                    )
                    .bind(&j.id)
                    .bind(&j.compartment_id)
                    .bind(&j.display_name)
                    .bind(&j.description)
                    .bind(j.schedule_type.as_str())
                    .bind(opt_micros(j.time_next_execution))
                    .bind(opt_micros(j.time_last_execution))
                    .bind(j.interval_type.map(|t| t.as_str()))
                    .bind(j.interval_value.map(|v| v as i64))
                    .bind(j.operation_type.as_str())
                    .bind(j.update_type.map(|t| t.as_str()))
                    .bind(to_json(&j.package_names))
                    .bind(to_json(&j.update_names))
                    .bind(j.lifecycle_state.as_str())
                    .bind(to_json(&j.freeform_tags))
                    .bind(to_json(&j.defined_tags))
                    .bind(j.os_family.as_str())
                    .bind(j.is_restricted)
                    .bind(&j.time_zone)
                    .bind(micros(j.time_created))
                    .bind(j.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_insert_error)?;
                    sqlx::query("UPDATE scheduled_jobs SET recurrence_anchor = time_next_execution WHERE id = $1")
                        .bind(&j.id)
                        .execute(&mut *tx)
                        .await?;
                    let targets: Vec<(&IdName, &str)> = j
                        .managed_instances
                        .iter()
                        .map(|t| (t, "instance"))
                        .chain(j.managed_instance_groups.iter().map(|t| (t, "group")))
                        .collect();
                    for (i, chunk) in targets.chunks(500).enumerate() {
                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO scheduled_job_targets (job_id, target_id, target_kind, display_name, position) ",
                        );
                        qb.push_values(chunk.iter().enumerate(), |mut b, (k, (t, kind))| {
                            b.push_bind(j.id.clone())
                                .push_bind(t.id.clone())
                                .push_bind(*kind)
                                .push_bind(t.display_name.clone())
                                .push_bind((i * 500 + k) as i64);
                        });
                        qb.build().execute(&mut *tx).await.map_err(|e| {
                            if is_unique_violation(&e) {
                                StoreError::Conflict("the job names the same target more than once".into())
                            } else {
                                e.into()
                            }
                        })?;
                    }
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn scheduled_job_get(&self, id: &str) -> StoreResult<Option<ScheduledJob>> {
                    let _t = timer("scheduled_job_get");
                    let row = sqlx::query("SELECT * FROM scheduled_jobs WHERE id = $1").bind(id).fetch_optional(self.read()).await?;
                    let Some(mut j) = row.as_ref().map(job).transpose()? else { return Ok(None) };
                    attach_targets(self.read(), std::slice::from_mut(&mut j)).await?;
                    Ok(Some(j))
                }

                async fn scheduled_job_list(&self, filter: &ScheduledJobFilter, page: &PageRequest) -> StoreResult<Page<ScheduledJob>> {
                    let _t = timer("scheduled_job_list");
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM scheduled_jobs WHERE compartment_id = ");
                    qb.push_bind(filter.compartment_id.clone());
                    if let Some(n) = &filter.display_name {
                        qb.push(" AND display_name = ");
                        qb.push_bind(n.clone());
                    }
                    for target in [&filter.managed_instance_id, &filter.managed_instance_group_id].into_iter().flatten() {
                        qb.push(" AND id IN (SELECT job_id FROM scheduled_job_targets WHERE target_id = ");
                        qb.push_bind(target.clone());
                        qb.push(")");
                    }
                    if let Some(op) = filter.operation_type {
                        qb.push(" AND operation_type = ");
                        qb.push_bind(op.as_str());
                    }
                    match filter.lifecycle_state {
                        Some(s) => {
                            qb.push(" AND lifecycle_state = ");
                            qb.push_bind(s.as_str());
                        }
                        None => {
                            qb.push(" AND lifecycle_state <> 'DELETED'");
                        }
                    }
                    if let Some(f) = filter.os_family.filter(|f| *f != OsFamily::All) {
                        qb.push(" AND os_family = ");
                        qb.push_bind(f.as_str());
                    }
                    if let Some(r) = filter.is_restricted {
                        qb.push(" AND is_restricted = ");
                        qb.push_bind(r);
                    }
                    if let Some(before) = filter.next_execution_before {
                        qb.push(" AND lifecycle_state = 'ACTIVE' AND time_next_execution < ");
                        qb.push_bind(micros(before));
                    }
                    push_page(&mut qb, page, "time_created", "display_name", "id");
                    let items = rows(qb.build().fetch_all(self.read()).await?, job)?;
                    let mut page_out = Page::from_rows(items, page, |j| (key_of(page, j.time_created, &j.display_name), j.id.clone()));
                    attach_targets(self.read(), &mut page_out.items).await?;
                    Ok(page_out)
                }

                async fn scheduled_job_replace(&self, j: &ScheduledJob, expected_version: Option<i64>) -> StoreResult<ScheduledJob> {
                    let _t = timer("scheduled_job_replace");
                    let mut tx = self.write_tx().await?;
                    let version = Self::checked_version(&mut tx, "scheduled_jobs", &j.id, expected_version).await?;
                    let before = sqlx::query("SELECT * FROM scheduled_jobs WHERE id = $1").bind(&j.id).fetch_one(&mut *tx).await?;
                    let before = job(&before)?;
                    let schedule_changed = before.time_next_execution != j.time_next_execution
                        || before.schedule_type != j.schedule_type
                        || before.interval_type != j.interval_type
                        || before.interval_value != j.interval_value
                        || before.time_zone != j.time_zone;
                    let done = sqlx::query(
                        "UPDATE scheduled_jobs SET display_name = $1, description = $2, schedule_type = $3, time_next_execution = $4, interval_type = $5, interval_value = $6, operation_type = $7, update_type = $8, package_names = $9, update_names = $10, freeform_tags = $11, defined_tags = $12, time_zone = $13, version = version + 1 WHERE id = $14 AND version = $15",
                    )
                    .bind(&j.display_name)
                    .bind(&j.description)
                    .bind(j.schedule_type.as_str())
                    .bind(opt_micros(j.time_next_execution))
                    .bind(j.interval_type.map(|t| t.as_str()))
                    .bind(j.interval_value.map(|v| v as i64))
                    .bind(j.operation_type.as_str())
                    .bind(j.update_type.map(|t| t.as_str()))
                    .bind(to_json(&j.package_names))
                    .bind(to_json(&j.update_names))
                    .bind(to_json(&j.freeform_tags))
                    .bind(to_json(&j.defined_tags))
                    .bind(&j.time_zone)
                    .bind(&j.id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    if schedule_changed {
                        // A new schedule recurs from its new first occurrence.
                        sqlx::query("UPDATE scheduled_jobs SET recurrence_anchor = time_next_execution WHERE id = $1")
                            .bind(&j.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    // Read back inside the transaction: the caller gets exactly what was written.
                    let row = sqlx::query("SELECT * FROM scheduled_jobs WHERE id = $1").bind(&j.id).fetch_one(&mut *tx).await?;
                    let mut written = job(&row)?;
                    attach_targets(&mut *tx, std::slice::from_mut(&mut written)).await?;
                    tx.commit().await?;
                    Ok(written)
                }

                async fn scheduled_job_delete(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
                    let _t = timer("scheduled_job_delete");
                    let mut tx = self.write_tx().await?;
                    let version = Self::checked_version(&mut tx, "scheduled_jobs", id, expected_version).await?;
                    let done = sqlx::query("UPDATE scheduled_jobs SET lifecycle_state = 'DELETED', version = version + 1 WHERE id = $1 AND version = $2")
                        .bind(id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn scheduled_job_change_compartment(&self, id: &str, compartment_id: &str, expected_version: Option<i64>, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let _t = timer("scheduled_job_change_compartment");
                    self.change_compartment("scheduled_jobs", id, compartment_id, expected_version, retry).await
                }

                async fn scheduled_job_work_requests(&self, id: &str) -> StoreResult<Vec<IdName>> {
                    let _t = timer("scheduled_job_work_requests");
                    let rows = sqlx::query(
                        "SELECT id, description FROM work_requests WHERE scheduled_job_id = $1 ORDER BY time_accepted DESC, id DESC",
                    )
                    .bind(id)
                    .fetch_all(self.read())
                    .await?;
                    rows.iter()
                        .map(|r| Ok(IdName { id: r.try_get("id")?, display_name: r.try_get::<Option<String>, _>("description")?.unwrap_or_default() }))
                        .collect()
                }

                async fn scheduled_job_next_due(&self) -> StoreResult<Option<Timestamp>> {
                    let _t = timer("scheduled_job_next_due");
                    let row = sqlx::query(
                        "SELECT min(time_next_execution) AS next FROM scheduled_jobs WHERE lifecycle_state = 'ACTIVE' AND time_next_execution IS NOT NULL",
                    )
                    .fetch_one(self.read())
                    .await?;
                    Ok(opt_ts(row.try_get("next")?))
                }

                async fn scheduled_job_fire_due(&self, now: Timestamp, catch_up: jiff::SignedDuration, limit: u32) -> StoreResult<Vec<Occurrence>> {
                    let _t = timer("scheduled_job_fire_due");
                    let _turn = self.work_turn().await?;
                    let mut tx = self.write_tx().await?;
                    // Replicas take different due jobs (SKIP LOCKED); SQLite has one writer anyway.
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT * FROM scheduled_jobs WHERE lifecycle_state = 'ACTIVE' AND time_next_execution <= $1 ORDER BY time_next_execution, id LIMIT $2{FOR_UPDATE_SKIP_LOCKED}"
                    )))
                    .bind(micros(now))
                    .bind(limit as i64)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut jobs = rows.iter().map(job).collect::<StoreResult<Vec<_>>>()?;
                    let anchors = rows.iter().map(|r| r.try_get::<Option<i64>, _>("recurrence_anchor")).collect::<Result<Vec<_>, _>>()?;
                    jobs.retain(|j| j.time_next_execution.is_some());
                    if jobs.is_empty() {
                        return Ok(vec![]);
                    }
                    attach_targets(&mut *tx, &mut jobs).await?;
                    // The whole batch in a fixed number of statements: occurrences, targets,
                    // work requests, next times.
                    let outcome_of = |j: &ScheduledJob| {
                        let due = j.time_next_execution.unwrap_or(now);
                        if due < now - catch_up { OccurrenceOutcome::Missed } else { OccurrenceOutcome::Fired }
                    };
                    // An occurrence already recorded (a run-now at the same instant) is not
                    // returned: its job advances without firing again.
                    let mut recorded = std::collections::HashSet::new();
                    let occurrences: Vec<(&str, Option<i64>, &str)> = jobs
                        .iter()
                        .map(|j| (j.id.as_str(), opt_micros(j.time_next_execution), outcome_of(j).as_str()))
                        .collect();
                    // `WHERE true` tells SQLite's parser that ON CONFLICT is the upsert, not a join's ON.
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO scheduled_job_occurrences (job_id, occurrence_time, outcome, time_recorded) SELECT value ->> 0, CAST(value ->> 1 AS BIGINT), value ->> 2, $1 FROM {} WHERE true ON CONFLICT DO NOTHING RETURNING job_id",
                        rows_at(2)
                    )))
                    .bind(micros(now))
                    .bind(to_json(&occurrences))
                    .fetch_all(&mut *tx)
                    .await?;
                    for r in rows {
                        recorded.insert(r.try_get::<String, _>("job_id")?);
                    }
                    let firing: Vec<&ScheduledJob> = jobs
                        .iter()
                        .filter(|j| recorded.contains(&j.id) && outcome_of(j) == OccurrenceOutcome::Fired)
                        .collect();
                    let mut reach = Self::expand_targets_of(&mut tx, &firing).await?;
                    let mut work_requests = vec![];
                    let mut work_logs = vec![];
                    let mut fired = vec![];
                    for j in &jobs {
                        if !recorded.contains(&j.id) {
                            continue;
                        }
                        let occurrence = j.time_next_execution.unwrap_or(now);
                        let outcome = outcome_of(j);
                        let mut wr_ids = vec![];
                        if outcome == OccurrenceOutcome::Fired {
                            let instances = reach.remove(&j.id).unwrap_or_default();
                            let (wrs, logs) = osm_core::work::occurrence_work(j, &instances, occurrence, now);
                            wr_ids = wrs.iter().map(|w| w.id.clone()).collect();
                            work_requests.extend(wrs);
                            work_logs.extend(logs);
                        }
                        fired.push(Occurrence { job_id: j.id.clone(), time: occurrence, outcome, work_request_ids: wr_ids });
                    }
                    insert_work_requests(self, &mut tx, &work_requests, &work_logs).await?;
                    let advanced: Vec<(String, Option<i64>, Option<i64>)> = jobs
                        .iter()
                        .zip(anchors.iter().copied())
                        .map(|(j, anchor)| {
                            let occurrence = j.time_next_execution.unwrap_or(now);
                            let fires = recorded.contains(&j.id) && outcome_of(j) == OccurrenceOutcome::Fired;
                            let last = if fires { Some(micros(occurrence)) } else { opt_micros(j.time_last_execution) };
                            (j.id.clone(), opt_micros(next_occurrence(j, anchor, occurrence)), last)
                        })
                        .collect();
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE scheduled_jobs SET time_next_execution = v.next_time, time_last_execution = v.last_time, version = version + 1 \
                         FROM (SELECT value ->> 0 AS id, CAST(value ->> 1 AS BIGINT) AS next_time, CAST(value ->> 2 AS BIGINT) AS last_time FROM {}) v \
                         WHERE scheduled_jobs.id = v.id",
                        rows_at(1)
                    )))
                    .bind(to_json(&advanced))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    self.open_work_committed();
                    Ok(fired)
                }

                async fn scheduled_job_run_now(&self, id: &str, now: Timestamp, retry: Option<&RetryRecord>) -> StoreResult<Occurrence> {
                    let _t = timer("scheduled_job_run_now");
                    let _turn = self.work_turn().await?;
                    let mut tx = self.write_tx().await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM scheduled_jobs WHERE id = $1{FOR_UPDATE}")))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    let mut j = job(&row)?;
                    if j.lifecycle_state != LifecycleState::Active {
                        return Err(StoreError::Conflict(format!("scheduled job {id} is {}", j.lifecycle_state)));
                    }
                    attach_targets(&mut *tx, std::slice::from_mut(&mut j)).await?;
                    let recorded = sqlx::query(
                        "INSERT INTO scheduled_job_occurrences (job_id, occurrence_time, outcome, time_recorded) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(micros(now))
                    .bind(OccurrenceOutcome::RunNow.as_str())
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await;
                    match recorded {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => {
                            return Err(StoreError::Conflict(format!("scheduled job {id} already ran at this instant")));
                        }
                        Err(e) => return Err(e.into()),
                    }
                    let instances = Self::expand_targets_of(&mut tx, &[&j]).await?.remove(&j.id).unwrap_or_default();
                    let (wrs, logs) = osm_core::work::occurrence_work(&j, &instances, now, now);
                    // The retry token before the work is queued: a token already used fails the
                    // call before it changed the queue (on SQLite that would cost a reload).
                    put_retry(&mut tx, retry).await?;
                    insert_work_requests(self, &mut tx, &wrs, &logs).await?;
                    // The recurrence stays as it was; only the last execution moves.
                    sqlx::query("UPDATE scheduled_jobs SET time_last_execution = $1, version = version + 1 WHERE id = $2")
                        .bind(micros(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    self.open_work_committed();
                    Ok(Occurrence { job_id: id.to_string(), time: now, outcome: OccurrenceOutcome::RunNow, work_request_ids: wrs.into_iter().map(|w| w.id).collect() })
                }

                async fn scheduled_job_skip_next(&self, id: &str, now: Timestamp, expected_version: Option<i64>, retry: Option<&RetryRecord>) -> StoreResult<Occurrence> {
                    let _t = timer("scheduled_job_skip_next");
                    let mut tx = self.write_tx().await?;
                    Self::checked_version(&mut tx, "scheduled_jobs", id, expected_version).await?;
                    let row = sqlx::query("SELECT * FROM scheduled_jobs WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
                    let j = job(&row)?;
                    let anchor: Option<i64> = row.try_get("recurrence_anchor")?;
                    if j.lifecycle_state != LifecycleState::Active {
                        return Err(StoreError::Conflict(format!("scheduled job {id} is {}", j.lifecycle_state)));
                    }
                    if j.schedule_type != ScheduleType::Recurring {
                        return Err(StoreError::Conflict(format!("scheduled job {id} runs once; only a recurring job can skip its next run (delete it instead)")));
                    }
                    let Some(skipped) = j.time_next_execution else {
                        return Err(StoreError::Conflict(format!("scheduled job {id} has no next run")));
                    };
                    sqlx::query("INSERT INTO scheduled_job_occurrences (job_id, occurrence_time, outcome, time_recorded) VALUES ($1, $2, $3, $4)")
                        .bind(id)
                        .bind(micros(skipped))
                        .bind(OccurrenceOutcome::Skipped.as_str())
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE scheduled_jobs SET time_next_execution = $1, version = version + 1 WHERE id = $2")
                        .bind(opt_micros(next_occurrence(&j, anchor, skipped)))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(Occurrence { job_id: id.to_string(), time: skipped, outcome: OccurrenceOutcome::Skipped, work_request_ids: vec![] })
                }

                async fn work_request_dispatch(
                    &self,
                    reports: &[AgentOutcomes],
                    claims: &[Claim],
                    now: Timestamp,
                    lease: jiff::SignedDuration,
                ) -> StoreResult<Dispatched> {
                    let _t = timer("work_request_dispatch");
                    if reports.iter().all(|r| r.items.is_empty()) && claims.iter().all(|c| c.limit == 0) {
                        return Ok(Dispatched { completed: reports.iter().map(|_| vec![]).collect(), claimed: claims.iter().map(|_| vec![]).collect() });
                    }
                    let _turn = self.work_turn().await?;
                    let mut tx = self.engine_tx().await?;
                    let mut parents = std::collections::BTreeSet::new();
                    let completed = complete_in(self, &mut tx, reports, now, &mut parents).await?;
                    let claimed = claim_in(self, &mut tx, claims, now, lease, &mut parents).await?;
                    for parent in parents {
                        rederive_parent(&mut tx, &parent, now).await?;
                    }
                    tx.commit().await?;
                    self.open_work_committed();
                    Ok(Dispatched { completed, claimed })
                }

                async fn work_request_renew_leases(&self, instance_id: &str, now: Timestamp, lease: jiff::SignedDuration) -> StoreResult<Vec<(String, WorkRequestStatus)>> {
                    let _t = timer("work_request_renew_leases");
                    let _turn = self.work_turn().await?;
                    let mut tx = self.engine_tx().await?;
                    let held = self.renew_leases(&mut tx, instance_id, micros(now + lease)).await?;
                    tx.commit().await?;
                    self.open_work_committed();
                    Ok(held)
                }

                async fn work_request_log_append(&self, id: &str, lines: &[WorkRequestLogEntry]) -> StoreResult<()> {
                    let _t = timer("work_request_log_append");
                    if lines.is_empty() {
                        return Ok(());
                    }
                    // One row per run of lines stamped with the same time.
                    let rows: Vec<Vec<Cell>> = lines
                        .chunk_by(|a, b| a.timestamp == b.timestamp)
                        .map(|run| log_row(id, &run.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), run[0].timestamp))
                        .collect();
                    let mut tx = self.write_tx().await?;
                    insert_rows(&mut tx, LOG_COLUMNS, &rows).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn work_request_errors_add(&self, id: &str, errors: &[WorkRequestError]) -> StoreResult<()> {
                    let _t = timer("work_request_errors_add");
                    if errors.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.write_tx().await?;
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO work_request_errors (work_request_id, entry_id, code, message, time_created) ");
                    qb.push_values(errors, |mut b, e| {
                        b.push_bind(id.to_string()).push_bind(entry_id()).push_bind(e.code.clone()).push_bind(e.message.clone()).push_bind(micros(e.timestamp));
                    });
                    qb.build().execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn work_request_expire_leases(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<String>> {
                    let _t = timer("work_request_expire_leases");
                    let _turn = self.work_turn().await?;
                    let mut tx = self.engine_tx().await?;
                    let rows = self.expired_leases(&mut tx, micros(now), limit).await?;
                    if rows.is_empty() {
                        return Ok(vec![]);
                    }
                    let mut expired = vec![];
                    let mut parents = std::collections::BTreeSet::new();
                    for (id, host, lease, parent) in rows {
                        let message = format!(
                            "the agent on {} stopped reporting; its lease on this work request expired at {}. Check that the agent runs and reaches osmd, then retry the action",
                            host.as_deref().unwrap_or("the instance"),
                            osm_core::time::format_rfc3339(ts(lease))
                        );
                        sqlx::query("UPDATE work_requests SET status = 'FAILED', time_finished = $1, percent_complete = 100, message = $2 WHERE id = $3 AND status IN ('IN_PROGRESS', 'CANCELLING')")
                            .bind(micros(now))
                            .bind(&message)
                            .bind(&id)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("INSERT INTO work_request_errors (work_request_id, entry_id, code, message, time_created) VALUES ($1, $2, $3, $4, $5)")
                            .bind(&id)
                            .bind(entry_id())
                            .bind("LeaseExpired")
                            .bind(&message)
                            .bind(micros(now))
                            .execute(&mut *tx)
                            .await?;
                        if let Some(p) = parent {
                            parents.insert(p);
                        }
                        expired.push(id);
                    }
                    self.end_leases(&mut tx, &expired).await?;
                    for parent in parents {
                        rederive_parent(&mut tx, &parent, now).await?;
                    }
                    tx.commit().await?;
                    self.open_work_committed();
                    Ok(expired)
                }

                async fn work_request_purge(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
                    let _t = timer("work_request_purge");
                    let mut tx = self.write_tx().await?;
                    // Parents go with their children only once every child is terminal and old.
                    let rows = sqlx::query(
                        "SELECT id FROM work_requests w WHERE time_accepted < $1 AND status IN ('SUCCEEDED', 'FAILED', 'CANCELED') AND time_finished < $1 AND NOT EXISTS (SELECT 1 FROM work_requests c WHERE c.parent_id = w.id AND NOT (c.status IN ('SUCCEEDED', 'FAILED', 'CANCELED') AND c.time_finished < $1)) ORDER BY time_accepted LIMIT $2",
                    )
                    .bind(micros(before))
                    .bind(limit as i64)
                    .fetch_all(&mut *tx)
                    .await?;
                    let ids: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    for table in ["work_request_logs", "work_request_errors"] {
                        let mut qb = QueryBuilder::<$db>::new(format!("DELETE FROM {table} WHERE work_request_id IN ("));
                        let mut sep = qb.separated(", ");
                        for id in &ids {
                            sep.push_bind(id.clone());
                        }
                        qb.push(")");
                        qb.build().execute(&mut *tx).await?;
                    }
                    let mut qb = QueryBuilder::<$db>::new("DELETE FROM work_requests WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELED') AND id IN (");
                    let mut sep = qb.separated(", ");
                    for id in &ids {
                        sep.push_bind(id.clone());
                    }
                    qb.push(")");
                    let done = qb.build().execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(done.rows_affected())
                }

                async fn work_request_stats(&self) -> StoreResult<Vec<(WorkRequestStatus, OperationType, i64)>> {
                    let _t = timer("work_request_stats");
                    let rows = sqlx::query("SELECT status, operation_type, count(*) AS n FROM work_requests GROUP BY status, operation_type")
                        .fetch_all(self.read())
                        .await?;
                    rows.iter()
                        .map(|r| {
                            Ok((
                                parse_enum("status", &r.try_get::<String, _>("status")?)?,
                                parse_enum("operation_type", &r.try_get::<String, _>("operation_type")?)?,
                                r.try_get("n")?,
                            ))
                        })
                        .collect()
                }

                async fn agents_seen_since(&self, since: Timestamp) -> StoreResult<i64> {
                    let _t = timer("agents_seen_since");
                    let row = sqlx::query("SELECT count(*) AS n FROM managed_instances WHERE last_checkin >= $1")
                        .bind(micros(since))
                        .fetch_one(self.read())
                        .await?;
                    Ok(row.try_get("n")?)
                }

                async fn install_key_create(&self, key: &InstallKey, secret_hash: &str) -> StoreResult<()> {
                    let _t = timer("install_key_create");
                    let mut tx = self.write_tx().await?;
                    sqlx::query("INSERT INTO install_keys (id, compartment_id, display_name, secret_hash, time_created, time_revoked) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(&key.id)
                        .bind(&key.compartment_id)
                        .bind(&key.display_name)
                        .bind(secret_hash)
                        .bind(micros(key.time_created))
                        .bind(opt_micros(key.time_revoked))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_insert_error)?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn install_key_find(&self, secret_hash: &str) -> StoreResult<Option<InstallKey>> {
                    let _t = timer("install_key_find");
                    let row = sqlx::query("SELECT * FROM install_keys WHERE secret_hash = $1 AND time_revoked IS NULL")
                        .bind(secret_hash)
                        .fetch_optional(self.read())
                        .await?;
                    row.as_ref().map(install_key).transpose()
                }

                async fn install_key_list(&self, compartment_id: &str) -> StoreResult<Vec<InstallKey>> {
                    let _t = timer("install_key_list");
                    let rows = sqlx::query("SELECT * FROM install_keys WHERE compartment_id = $1 ORDER BY time_created, id")
                        .bind(compartment_id)
                        .fetch_all(self.read())
                        .await?;
                    rows.iter().map(install_key).collect()
                }

                async fn install_key_get(&self, id: &str) -> StoreResult<Option<InstallKey>> {
                    let _t = timer("install_key_get");
                    let row = sqlx::query("SELECT * FROM install_keys WHERE id = $1").bind(id).fetch_optional(self.read()).await?;
                    row.as_ref().map(install_key).transpose()
                }

                async fn install_key_revoke(&self, id: &str, now: Timestamp) -> StoreResult<()> {
                    let _t = timer("install_key_revoke");
                    let mut tx = self.write_tx().await?;
                    let done = sqlx::query("UPDATE install_keys SET time_revoked = COALESCE(time_revoked, $1) WHERE id = $2")
                        .bind(micros(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn agent_enroll(&self, mi: &ManagedInstance, secret: &str) -> StoreResult<()> {
                    let _t = timer("agent_enroll");
                    let mut tx = self.write_tx().await?;
                    Self::insert_instances_in(&mut tx, std::slice::from_ref(mi)).await?;
                    sqlx::query("INSERT INTO agent_credentials (instance_id, secret, time_created) VALUES ($1, $2, $3)")
                        .bind(&mi.id)
                        .bind(secret)
                        .bind(micros(mi.time_created))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_insert_error)?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn agent_secret(&self, instance_id: &str) -> StoreResult<Option<String>> {
                    let _t = timer("agent_secret");
                    let row = sqlx::query("SELECT secret FROM agent_credentials WHERE instance_id = $1")
                        .bind(instance_id)
                        .fetch_optional(self.read())
                        .await?;
                    Ok(row.map(|r| r.try_get("secret")).transpose()?)
                }

                async fn agent_report(&self, instance_id: &str, facts: &AgentFacts, now: Timestamp) -> StoreResult<()> {
                    let _t = timer("agent_report");
                    let mut tx = self.write_tx().await?;
                    let mut qb = QueryBuilder::<$db>::new("UPDATE managed_instances SET status = 'NORMAL', last_checkin = ");
                    qb.push_bind(micros(now));
                    qb.push(", is_reboot_required = ");
                    qb.push_bind(facts.is_reboot_required);
                    for (col, value) in [("os_name", &facts.os_name), ("os_version", &facts.os_version), ("os_kernel_version", &facts.os_kernel_version)] {
                        if let Some(v) = value {
                            qb.push(format!(", {col} = "));
                            qb.push_bind(v.clone());
                        }
                    }
                    if let Some(b) = facts.last_boot {
                        qb.push(", last_boot = ");
                        qb.push_bind(micros(b));
                    }
                    if let Some(u) = facts.updates {
                        qb.push(", security_updates = ");
                        qb.push_bind(u.security);
                        qb.push(", bug_updates = ");
                        qb.push_bind(u.bug);
                        qb.push(", enhancement_updates = ");
                        qb.push_bind(u.enhancement);
                        qb.push(", other_updates = ");
                        qb.push_bind(u.other);
                    }
                    qb.push(" WHERE id = ");
                    qb.push_bind(instance_id.to_string());
                    if qb.build().execute(&mut *tx).await?.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    if facts.updates.is_some() {
                        // An instance with an inventory keeps the counts derived from it.
                        sqlx::query($crate::inventory::RECOUNT_UPDATES).bind(instance_id).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn work_request_insert_many(&self, wrs: &[WorkRequest], logs: &[(String, WorkRequestLogEntry)]) -> StoreResult<()> {
                    self.work_request_submit(wrs, logs, None).await
                }

                async fn work_request_submit(
                    &self,
                    wrs: &[WorkRequest],
                    logs: &[(String, WorkRequestLogEntry)],
                    retry: Option<&RetryRecord>,
                ) -> StoreResult<()> {
                    let _t = timer("work_request_submit");
                    let _turn = self.work_turn().await?;
                    let mut tx = self.write_tx().await?;
                    // The retry token first (see `scheduled_job_run_now`).
                    put_retry(&mut tx, retry).await?;
                    insert_work_requests(self, &mut tx, wrs, logs).await?;
                    tx.commit().await?;
                    self.open_work_committed();
                    Ok(())
                }

                async fn work_request_transition(
                    &self,
                    id: &str,
                    from: &[WorkRequestStatus],
                    to: WorkRequestStatus,
                    now: Timestamp,
                    log: Option<&str>,
                ) -> StoreResult<WorkRequest> {
                    let _t = timer("work_request_transition");
                    {
                        let _turn = self.work_turn().await?;
                        let mut tx = self.write_tx().await?;
                        if to != WorkRequestStatus::Accepted {
                            self.lock_queued(&mut tx, id).await?;
                        }
                        // Compare-and-set on the state: the update only happens from an allowed state.
                        let mut qb = QueryBuilder::<$db>::new("UPDATE work_requests SET status = ");
                        qb.push_bind(to.as_str());
                        if to != WorkRequestStatus::Accepted {
                            qb.push(", time_started = COALESCE(time_started, ");
                            qb.push_bind(micros(now));
                            qb.push(")");
                        }
                        if to.is_terminal() {
                            qb.push(", time_finished = ");
                            qb.push_bind(micros(now));
                            qb.push(", percent_complete = 100");
                        }

                        qb.push(" WHERE id = ");
                        qb.push_bind(id.to_string());
                        qb.push(" AND status IN (");
                        let mut sep = qb.separated(", ");
                        for s in from {
                            sep.push_bind(s.as_str());
                        }
                        qb.push(")");
                        if qb.build().execute(&mut *tx).await?.rows_affected() == 0 {
                            let row = sqlx::query("SELECT status FROM work_requests WHERE id = $1")
                                .bind(id)
                                .fetch_optional(&mut *tx)
                                .await?
                                .ok_or(StoreError::NotFound)?;
                            let current: String = row.try_get("status")?;
                            return Err(StoreError::Conflict(format!("work request {id} is {current}")));
                        }
                        self.transitioned(&mut tx, id, to).await?;
                        if let Some(message) = log {
                            sqlx::query("INSERT INTO work_request_logs (work_request_id, entry_id, message, time_created) VALUES ($1, $2, $3, $4)")
                                .bind(id)
                                .bind(entry_id())
                                .bind(message)
                                .bind(micros(now))
                                .execute(&mut *tx)
                                .await?;
                        }
                        let parent: Option<String> = sqlx::query("SELECT parent_id FROM work_requests WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("parent_id")?;
                        if let Some(parent) = parent {
                            rederive_parent(&mut tx, &parent, now).await?;
                        }
                        tx.commit().await?;
                        self.open_work_committed();
                    }
                    // The read-back needs no turn: the next write need not wait for it.
                    self.work_request_get(id).await?.ok_or(StoreError::NotFound)
                }

                async fn work_request_get(&self, id: &str) -> StoreResult<Option<WorkRequest>> {
                    let _t = timer("work_request_get");
                    let row = sqlx::query("SELECT * FROM work_requests WHERE id = $1").bind(id).fetch_optional(self.read()).await?;
                    let Some(mut wr) = row.as_ref().map(work_request).transpose()? else { return Ok(None) };
                    let children = sqlx::query("SELECT id FROM work_requests WHERE parent_id = $1 ORDER BY time_accepted, id")
                        .bind(id)
                        .fetch_all(self.read())
                        .await?;
                    wr.children_ids = children.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?;
                    Ok(Some(wr))
                }

                async fn work_request_list(&self, filter: &WorkRequestFilter, page: &PageRequest) -> StoreResult<Page<WorkRequest>> {
                    let _t = timer("work_request_list");
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM work_requests WHERE compartment_id = ");
                    qb.push_bind(filter.compartment_id.clone());
                    if let Some(n) = &filter.display_name {
                        qb.push(" AND description = ");
                        qb.push_bind(n.clone());
                    }
                    if let Some(mi) = &filter.managed_instance_id {
                        qb.push(" AND managed_instance_id = ");
                        qb.push_bind(mi.clone());
                    }
                    if let Some(f) = filter.os_family.filter(|f| *f != OsFamily::All) {
                        qb.push(" AND os_family = ");
                        qb.push_bind(f.as_str());
                    }
                    // COALESCE: cursors carry '' for a missing description, and NULLs would sort
                    // differently on the two backends (migration 0002 indexes this expression).
                    push_page(&mut qb, page, "time_accepted", "COALESCE(description, '')", "id");
                    let items = rows(qb.build().fetch_all(self.read()).await?, work_request)?;
                    Ok(Page::from_rows(items, page, |w| {
                        (key_of(page, w.time_accepted, w.description.as_deref().unwrap_or("")), w.id.clone())
                    }))
                }

                async fn work_request_logs(&self, id: &str, page: &PageRequest) -> StoreResult<Page<WorkRequestLogEntry>> {
                    let _t = timer("work_request_logs");
                    // One entry per line: rows holding several lines are expanded, each line
                    // keyed by its row's entry id and its position in the row; the claim and a
                    // short final report are kept in the work request's row (migration 0012).
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT entry_key, message, time_created FROM ({} WHERE l.work_request_id = ", <$store>::LOG_ENTRIES));
                    qb.push_bind(id.to_string());
                    // Entries of a row share its time, so on the time order the rows before
                    // the cursor's time can be left out by the key.
                    if let (SortKey::TimeCreated, Some(KeyValue::Micros(t))) = (page.sort, page.after.as_ref().map(|c| &c.key)) {
                        qb.push(match page.order { SortOrder::Asc => " AND l.time_created >= ", SortOrder::Desc => " AND l.time_created <= " });
                        qb.push_bind(*t);
                    }
                    // The claim's entry sorts before any other of its microsecond.
                    qb.push(" UNION ALL SELECT time_claimed, '0', ");
                    qb.push_bind(osm_core::lifecycle::finish_note(WorkRequestStatus::Accepted, osm_core::lifecycle::Event::Claim));
                    qb.push(" FROM work_requests WHERE time_claimed IS NOT NULL AND id = ");
                    qb.push_bind(id.to_string());
                    qb.push(format!(" UNION ALL {} WHERE w.id = ", <$store>::OUTCOME_ENTRIES));
                    qb.push_bind(id.to_string());
                    qb.push(") e WHERE 1 = 1");
                    push_page(&mut qb, page, "time_created", "message", "entry_key");
                    let fetched = qb.build().fetch_all(self.read()).await?;
                    let mut items = Vec::with_capacity(fetched.len());
                    for r in &fetched {
                        let entry: String = r.try_get("entry_key")?;
                        items.push((entry, WorkRequestLogEntry { message: r.try_get("message")?, timestamp: ts(r.try_get("time_created")?) }));
                    }
                    Ok(Page::from_rows(items, page, |(e, l)| (key_of(page, l.timestamp, &l.message), e.clone())).map(|(_, l)| l))
                }

                async fn work_request_errors(&self, id: &str, page: &PageRequest) -> StoreResult<Page<WorkRequestError>> {
                    let _t = timer("work_request_errors");
                    let mut qb = QueryBuilder::<$db>::new("SELECT entry_id, code, message, time_created FROM work_request_errors WHERE work_request_id = ");
                    qb.push_bind(id.to_string());
                    push_page(&mut qb, page, "time_created", "code", "entry_id");
                    let fetched = qb.build().fetch_all(self.read()).await?;
                    let mut items = Vec::with_capacity(fetched.len());
                    for r in &fetched {
                        let entry: String = r.try_get("entry_id")?;
                        items.push((
                            entry,
                            WorkRequestError { code: r.try_get("code")?, message: r.try_get("message")?, timestamp: ts(r.try_get("time_created")?) },
                        ));
                    }
                    Ok(Page::from_rows(items, page, |(e, x)| (key_of(page, x.timestamp, &x.code), e.clone())).map(|(_, x)| x))
                }

                async fn retry_record_get(&self, principal_id: &str, token: &str) -> StoreResult<Option<RetryRecord>> {
                    let _t = timer("retry_record_get");
                    let row = sqlx::query("SELECT * FROM retry_records WHERE principal_id = $1 AND token = $2")
                        .bind(principal_id)
                        .bind(token)
                        .fetch_optional(self.read())
                        .await?;
                    row.map(|r| -> StoreResult<RetryRecord> {
                        Ok(RetryRecord {
                            principal_id: r.try_get("principal_id")?,
                            token: r.try_get("token")?,
                            operation: r.try_get("operation")?,
                            request_hash: r.try_get("request_hash")?,
                            resource_id: r.try_get("resource_id")?,
                            time_created: ts(r.try_get("time_created")?),
                        })
                    })
                    .transpose()
                }

                async fn retry_record_put(&self, record: &RetryRecord) -> StoreResult<()> {
                    let _t = timer("retry_record_put");
                    let mut tx = self.write_tx().await?;
                    put_retry(&mut tx, Some(record)).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn retry_record_purge(&self, older_than: Timestamp) -> StoreResult<u64> {
                    let _t = timer("retry_record_purge");
                    let mut tx = self.write_tx().await?;
                    let done = sqlx::query("DELETE FROM retry_records WHERE time_created < $1")
                        .bind(micros(older_than))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(done.rows_affected())
                }

                async fn backup_to(&self, path: &std::path::Path) -> StoreResult<()> {
                    let _t = timer("backup_to");
                    self.backup_impl(path).await
                }
            }

            impl $store {
                async fn insert_instances(&self, mis: &[ManagedInstance]) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    Self::insert_instances_in(&mut tx, mis).await?;
                    tx.commit().await?;
                    Ok(())
                }

                /// Inserts instances (many per statement) whose compartments must be live.
                async fn insert_instances_in(tx: &mut Tx, mis: &[ManagedInstance]) -> StoreResult<()> {
                    let compartments: std::collections::BTreeSet<&str> = mis.iter().map(|m| m.compartment_id.as_str()).collect();
                    for c in compartments {
                        Self::live_compartment(tx, c).await?;
                    }
                    for chunk in mis.chunks(500) {
                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO managed_instances (id, compartment_id, display_name, description, os_name, os_version, os_kernel_version, os_family, status, last_checkin, last_boot, is_reboot_required, notification_topic_id, is_data_collection_authorized, security_updates, bug_updates, enhancement_updates, other_updates, time_created, version) ",
                        );
                        qb.push_values(chunk, |mut b, mi| {
                            b.push_bind(mi.id.clone())
                                .push_bind(mi.compartment_id.clone())
                                .push_bind(mi.display_name.clone())
                                .push_bind(mi.description.clone())
                                .push_bind(mi.os_name.clone())
                                .push_bind(mi.os_version.clone())
                                .push_bind(mi.os_kernel_version.clone())
                                .push_bind(mi.os_family.as_str())
                                .push_bind(mi.status.as_str())
                                .push_bind(opt_micros(mi.last_checkin))
                                .push_bind(opt_micros(mi.last_boot))
                                .push_bind(mi.is_reboot_required)
                                .push_bind(mi.notification_topic_id.clone())
                                .push_bind(mi.is_data_collection_authorized)
                                .push_bind(mi.updates.security)
                                .push_bind(mi.updates.bug)
                                .push_bind(mi.updates.enhancement)
                                .push_bind(mi.updates.other)
                                .push_bind(micros(mi.time_created))
                                .push_bind(mi.version);
                        });
                        qb.build().execute(&mut **tx).await.map_err(map_insert_error)?;
                    }
                    Ok(())
                }
            }

            impl $store {
                /// Every target of a new job exists: instances, and groups not deleted (their
                /// rows kept so until the job is in, so a group delete sees the job).
                async fn check_targets(tx: &mut Tx, j: &ScheduledJob) -> StoreResult<()> {
                    for (table, kind, targets, lock) in [
                        ("managed_instances", "managed instance", &j.managed_instances, ""),
                        ("managed_instance_groups", "managed instance group", &j.managed_instance_groups, FOR_SHARE),
                    ] {
                        if targets.is_empty() {
                            continue;
                        }
                        let state = if table == "managed_instances" { "'ACTIVE'" } else { "lifecycle_state" };
                        let mut qb = QueryBuilder::<$db>::new(format!("SELECT id, {state} AS state FROM {table} WHERE id IN ("));
                        let mut sep = qb.separated(", ");
                        for t in targets {
                            sep.push_bind(t.id.clone());
                        }
                        qb.push(")");
                        qb.push(lock);
                        let found: std::collections::HashMap<String, String> = qb
                            .build()
                            .fetch_all(&mut **tx)
                            .await?
                            .iter()
                            .map(|r| Ok((r.try_get("id")?, r.try_get("state")?)))
                            .collect::<StoreResult<_>>()?;
                        for t in targets {
                            if found.get(&t.id).is_none_or(|s| s == LifecycleState::Deleted.as_str()) {
                                return Err(StoreError::MissingReference(format!("{kind} {} does not exist", t.id)));
                            }
                        }
                    }
                    Ok(())
                }
            }

            impl $store {
                async fn change_compartment(&self, table: &'static str, id: &str, compartment_id: &str, expected_version: Option<i64>, retry: Option<&RetryRecord>) -> StoreResult<()> {
                    let mut tx = self.write_tx().await?;
                    let version = Self::checked_version(&mut tx, table, id, expected_version).await?;
                    match Self::compartment_in(&mut tx, compartment_id, FOR_SHARE).await? {
                        Some(c) if c.lifecycle_state == CompartmentState::Active => {}
                        _ => return Err(StoreError::MissingReference(format!("compartment {compartment_id} does not exist or is not active"))),
                    }
                    let done = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET compartment_id = $1, version = version + 1 WHERE id = $2 AND version = $3")))
                        .bind(compartment_id)
                        .bind(id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::VersionMismatch);
                    }
                    put_retry(&mut tx, retry).await?;
                    tx.commit().await?;
                    Ok(())
                }
            }

            fn map_insert_error(e: sqlx::Error) -> StoreError {
                if is_unique_violation(&e) {
                    StoreError::Conflict("a resource with this id already exists".into())
                } else if is_foreign_key_violation(&e) {
                    StoreError::MissingReference("a referenced resource does not exist".into())
                } else {
                    e.into()
                }
            }

            /// The completions of a dispatch batch (see `Store::work_request_dispatch`).
            async fn complete_in(
                store: &$store,
                tx: &mut Tx,
                reports: &[AgentOutcomes],
                now: Timestamp,
                parents: &mut std::collections::BTreeSet<String>,
            ) -> StoreResult<Vec<Vec<Result<Completed, CompletionRefused>>>> {
                use osm_core::lifecycle::{Event, finish_note, transition};
                let mut ids: Vec<&str> = reports.iter().flat_map(|r| r.items.iter().map(|c| c.id.as_str())).collect();
                if ids.is_empty() {
                    return Ok(reports.iter().map(|_| vec![]).collect());
                }
                ids.sort_unstable();
                ids.dedup();
                // Rows locked in id order, so replicas completing overlapping batches cannot deadlock.
                let mut current = std::collections::HashMap::with_capacity(ids.len());
                {
                    let rows = store.completion_states(tx, &ids).await?;
                    for (id, instance, status, operation, started, parent, locator) in rows {
                        let status: WorkRequestStatus = parse_enum("status", &status)?;
                        let operation: OperationType = parse_enum("operation_type", &operation)?;
                        current.insert(id, (instance, status, operation, started.map(ts), parent, locator));
                    }
                }
                let mut results = Vec::with_capacity(reports.len());
                let mut finished: Vec<FinishedRow> = vec![];
                let mut logs: Vec<(&str, Vec<&str>)> = vec![];
                let mut errors: Vec<(&str, &str, &str)> = vec![];
                for report in reports {
                    let mut answers = Vec::with_capacity(report.items.len());
                    for c in &report.items {
                        // Another instance's work request does not exist for this agent.
                        let Some((_, status, operation, started, parent, locator)) = current
                            .get_mut(c.id.as_str())
                            .filter(|(instance, ..)| instance.as_deref() == Some(report.instance_id.as_str()))
                        else {
                            answers.push(Err(CompletionRefused::NotFound));
                            continue;
                        };
                        let agent_event = matches!(c.event, Event::Succeed | Event::Fail | Event::Stopped);
                        let Some(to) = transition(*status, c.event).filter(|_| agent_event) else {
                            answers.push(Err(CompletionRefused::WrongState(*status)));
                            continue;
                        };
                        let mut lines: Vec<&str> = c.log.iter().map(String::as_str).collect();
                        lines.push(finish_note(*status, c.event));
                        // A short report stays with the work request's row (migration 0012).
                        let inline = to_json(&lines);
                        let outcome_lines = if inline.len() <= OUTCOME_LINES_INLINE {
                            Some(inline)
                        } else {
                            logs.push((c.id.as_str(), lines));
                            None
                        };
                        errors.extend(c.errors.iter().map(|(code, message)| (c.id.as_str(), code.as_str(), message.as_str())));
                        // (A request finishes once: a second report of it is refused.)
                        finished.push((c.id.as_str(), to.as_str(), outcome_lines, locator.take()));
                        if let Some(p) = parent.as_ref() {
                            parents.insert(p.clone());
                        }
                        // A second report for the same request in this batch sees the new state.
                        *status = to;
                        answers.push(Ok(Completed { id: c.id.clone(), status: to, operation_type: *operation, time_started: started.or(Some(now)) }));
                    }
                    results.push(answers);
                }
                // Their leases end with them.
                store.finish_completed(tx, &finished, micros(now)).await?;
                insert_logs(tx, &logs, now).await?;
                let rows: Vec<Vec<Cell>> = errors
                    .iter()
                    .map(|(id, code, message)| vec![Cell::text(*id), Cell::text(entry_id()), Cell::text(*code), Cell::text(*message), Cell::Int(Some(micros(now)))])
                    .collect();
                insert_rows(tx, "INSERT INTO work_request_errors (work_request_id, entry_id, code, message, time_created)", &rows).await?;
                Ok(results)
            }

            /// The claims of a dispatch batch (see `Store::work_request_dispatch`).
            async fn claim_in(
                store: &$store,
                tx: &mut Tx,
                claims: &[Claim],
                now: Timestamp,
                lease: jiff::SignedDuration,
                parents: &mut std::collections::BTreeSet<String>,
            ) -> StoreResult<Vec<Vec<ClaimedWork>>> {
                // One lookup per instance, for all its claims together.
                let mut wanted: Vec<(String, u32)> = vec![];
                for c in claims.iter().filter(|c| c.limit > 0) {
                    match wanted.iter_mut().find(|(i, _)| *i == c.instance_id) {
                        Some((_, n)) => *n += c.limit,
                        None => wanted.push((c.instance_id.clone(), c.limit)),
                    }
                }
                if wanted.is_empty() {
                    return Ok(claims.iter().map(|_| vec![]).collect());
                }
                let ids = store.claim_candidates(tx, &wanted, micros(now + lease)).await?;
                let mut claimed: std::collections::HashMap<String, std::collections::VecDeque<ClaimedWork>> = Default::default();
                if !ids.is_empty() {
                    // A claimed request is leased at once; candidates no longer ACCEPTED (the
                    // store keeps the queue in step, so this only mends an inconsistency)
                    // leave the queue. "Started by the agent" is `time_claimed` (migration 0012).
                    let rows = store.start_claimed(tx, &ids, micros(now), micros(now + lease)).await?;
                    for (id, instance, parent, description, action, time_accepted) in rows {
                        if let Some(p) = parent {
                            parents.insert(p);
                        }
                        let work = ClaimedWork {
                            id,
                            description,
                            action: action.map(|a| from_json("action", &a)).transpose()?,
                            time_accepted: ts(time_accepted),
                        };
                        claimed.entry(instance.unwrap_or_default()).or_default().push_back(work);
                    }
                }
                for queue in claimed.values_mut() {
                    queue.make_contiguous().sort_by(|a, b| (a.time_accepted, &a.id).cmp(&(b.time_accepted, &b.id)));
                }
                Ok(claims
                    .iter()
                    .map(|c| {
                        let queue = claimed.get_mut(&c.instance_id);
                        let take = queue.as_ref().map_or(0, |q| q.len().min(c.limit as usize));
                        queue.map(|q| q.drain(..take).collect()).unwrap_or_default()
                    })
                    .collect())
            }

            /// Appends the lines of each work request, all stamped `now`: one row per work
            /// request, in as few statements as [`insert_rows`] takes.
            async fn insert_logs(tx: &mut Tx, lines: &[(&str, Vec<&str>)], now: Timestamp) -> StoreResult<()> {
                let rows: Vec<Vec<Cell>> = lines.iter().filter(|(_, l)| !l.is_empty()).map(|(id, l)| log_row(id, l, now)).collect();
                insert_rows(tx, LOG_COLUMNS, &rows).await
            }

            const LOG_COLUMNS: &str = "INSERT INTO work_request_logs (work_request_id, entry_id, message, lines, time_created)";

            /// A row of [`LOG_COLUMNS`] holding `lines` (at least one) written at `time`: a single
            /// line in `message`, several as a JSON array in `lines` (migration 0011).
            fn log_row(id: &str, lines: &[&str], time: Timestamp) -> Vec<Cell> {
                let (message, several) = match lines {
                    [one] => (one.to_string(), None),
                    _ => (String::new(), Some(to_json(&lines))),
                };
                vec![Cell::text(id), Cell::text(entry_id()), Cell::text(message), Cell::Text(several), Cell::Int(Some(micros(time)))]
            }

            /// Re-derives a parent work request's status and progress from all its children
            /// (locking the parent so concurrent children do it one at a time).
            async fn rederive_parent(tx: &mut Tx, parent: &str, now: Timestamp) -> StoreResult<()> {
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM work_requests WHERE id = $1{FOR_UPDATE}")))
                    .bind(parent)
                    .fetch_optional(&mut **tx)
                    .await?;
                let rows = sqlx::query("SELECT status FROM work_requests WHERE parent_id = $1").bind(parent).fetch_all(&mut **tx).await?;
                let statuses = rows
                    .iter()
                    .map(|r| parse_enum::<WorkRequestStatus>("status", &r.try_get::<String, _>("status")?))
                    .collect::<StoreResult<Vec<_>>>()?;
                let (status, percent) = osm_core::lifecycle::parent_status(&statuses);
                let started = (status != WorkRequestStatus::Accepted).then(|| micros(now));
                let finished = status.is_terminal().then(|| micros(now));
                sqlx::query(
                    "UPDATE work_requests SET status = $1, percent_complete = $2, time_started = COALESCE(time_started, $3), time_finished = COALESCE(time_finished, $4) WHERE id = $5",
                )
                .bind(status.as_str())
                .bind(percent as f64)
                .bind(started)
                .bind(finished)
                .bind(parent)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            fn install_key(r: &DbRow) -> StoreResult<InstallKey> {
                Ok(InstallKey {
                    id: r.try_get("id")?,
                    compartment_id: r.try_get("compartment_id")?,
                    display_name: r.try_get("display_name")?,
                    time_created: ts(r.try_get("time_created")?),
                    time_revoked: opt_ts(r.try_get("time_revoked")?),
                })
            }

            /// The occurrence after `occurrence` of a recurring job (none for a one-time job).
            fn next_occurrence(j: &ScheduledJob, anchor: Option<i64>, occurrence: Timestamp) -> Option<Timestamp> {
                match (j.schedule_type, j.interval_type, j.interval_value) {
                    (ScheduleType::Recurring, Some(it), Some(iv)) => {
                        let anchor = anchor.map(ts).unwrap_or(occurrence);
                        osm_core::schedule::Recurrence::new(anchor, it, iv, j.time_zone.as_deref())
                            .map(|r| r.next_after(occurrence).1)
                            .ok()
                    }
                    _ => None,
                }
            }

            /// The `resources` column of `w`: empty when they are the ones its instance implies
            /// (`osm_core::work::instance_resources`, nearly every request), which keeps ~300
            /// bytes out of each row the claim and the completion rewrite; else their JSON.
            fn resources_column(w: &WorkRequest) -> String {
                match &w.managed_instance {
                    Some(mi) if w.resources == osm_core::work::instance_resources(&mi.id, &mi.display_name) => String::new(),
                    _ => to_json(&w.resources),
                }
            }

            /// Inserts work requests (queueing those an agent runs) and log lines, one statement
            /// per table however many there are.
            async fn insert_work_requests(store: &$store, tx: &mut Tx, wrs: &[WorkRequest], logs: &[(String, WorkRequestLogEntry)]) -> StoreResult<()> {
                let rows: Vec<Vec<Cell>> = wrs
                    .iter()
                    .map(|w| {
                        vec![
                            Cell::text(&w.id), Cell::text(&w.compartment_id), Cell::text(w.operation_type.as_str()), Cell::text(w.status.as_str()),
                            Cell::Text(w.description.clone()), Cell::Text(w.message.clone()),
                            Cell::Text(w.managed_instance.as_ref().map(|m| m.id.clone())),
                            Cell::Text(w.managed_instance.as_ref().map(|m| m.display_name.clone())),
                            Cell::text(w.os_family.as_str()), Cell::Float(w.percent_complete as f64), Cell::Int(Some(micros(w.time_accepted))),
                            Cell::Int(opt_micros(w.time_started)), Cell::Int(opt_micros(w.time_finished)), Cell::Text(w.parent_id.clone()),
                            Cell::Text(w.scheduled_job_id.clone()), Cell::text(resources_column(w)), Cell::Text(w.action.as_ref().map(to_json)),
                        ]
                    })
                    .collect();
                insert_rows(
                    tx,
                    "INSERT INTO work_requests (id, compartment_id, operation_type, status, description, message, managed_instance_id, managed_instance_name, os_family, percent_complete, time_accepted, time_started, time_finished, parent_id, scheduled_job_id, resources, action)",
                    &rows,
                )
                .await
                .map_err(|e| match e {
                    StoreError::Database(e) => map_insert_error(e),
                    other => other,
                })?;
                let queued: Vec<(&str, &str, i64)> = wrs
                    .iter()
                    .filter(|w| w.status == WorkRequestStatus::Accepted && w.action.is_some())
                    .filter_map(|w| w.managed_instance.as_ref().map(|m| (w.id.as_str(), m.id.as_str(), micros(w.time_accepted))))
                    .collect();
                store.queue_work(tx, &queued).await?;
                let rows: Vec<Vec<Cell>> = logs
                    .iter()
                    .map(|(wr, l)| vec![Cell::text(wr), Cell::text(entry_id()), Cell::text(&l.message), Cell::Int(Some(micros(l.timestamp)))])
                    .collect();
                insert_rows(tx, "INSERT INTO work_request_logs (work_request_id, entry_id, message, time_created)", &rows).await?;
                Ok(())
            }

            async fn insert_compartment(tx: &mut Tx, c: &Compartment) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO compartments (id, parent_id, name, description, lifecycle_state, time_created, freeform_tags, defined_tags, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&c.id)
                .bind(&c.parent_id)
                .bind(&c.name)
                .bind(&c.description)
                .bind(c.lifecycle_state.as_str())
                .bind(micros(c.time_created))
                .bind(to_json(&c.freeform_tags))
                .bind(to_json(&c.defined_tags))
                .bind(c.version)
                .execute(&mut **tx)
                .await
                // A name clash stays a database error so the caller can say which name.
                .map_err(|e| if violates(&e, &ACTIVE_NAME_INDEX) { StoreError::Database(e) } else { map_insert_error(e) })?;
                Ok(())
            }

            async fn insert_user(tx: &mut Tx, u: &User) -> StoreResult<()> {
                sqlx::query("INSERT INTO users (id, tenancy_id, name, description, time_created) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&u.id)
                    .bind(&u.tenancy_id)
                    .bind(&u.name)
                    .bind(&u.description)
                    .bind(micros(u.time_created))
                    .execute(&mut **tx)
                    .await
                    .map_err(map_insert_error)?;
                Ok(())
            }

            async fn insert_key(tx: &mut Tx, k: &ApiKey) -> StoreResult<()> {
                sqlx::query("INSERT INTO api_keys (user_id, fingerprint, public_key_pem, time_created) VALUES ($1, $2, $3, $4)")
                    .bind(&k.user_id)
                    .bind(&k.fingerprint)
                    .bind(&k.public_key_pem)
                    .bind(micros(k.time_created))
                    .execute(&mut **tx)
                    .await
                    .map_err(map_insert_error)?;
                Ok(())
            }

            async fn insert_group(tx: &mut Tx, g: &Group) -> StoreResult<()> {
                sqlx::query("INSERT INTO user_groups (id, name, description, time_created) VALUES ($1, $2, $3, $4)")
                    .bind(&g.id)
                    .bind(&g.name)
                    .bind(&g.description)
                    .bind(micros(g.time_created))
                    .execute(&mut **tx)
                    .await
                    .map_err(map_insert_error)?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;
