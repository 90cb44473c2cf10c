//! The application layer: authorisation, validation that needs the store, idempotency and
//! orchestration of store calls. HTTP handlers call it with parsed input and convert what it
//! returns; it never sees HTTP types other than the error it answers with.

pub mod actions;
pub mod agents;
pub mod compartments;
mod dispatch;
pub mod errata;
mod groups;
pub mod instances;
pub mod packages;
pub mod report;
mod retry;
mod scheduled_jobs;
mod work_requests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osm_core::httpsig::VerifyingKey;
use osm_store::Store;

use crate::http::error::{ApiError, ApiResult};

pub use retry::{RETRY_TOKEN_LIFETIME, RetryKey};

/// How long a verified key, a user's reach and the compartment tree are reused before being
/// read again (a revoked key or grant stops working within this time on every replica).
const CACHE_TTL: Duration = Duration::from_secs(5);

/// Who is calling, and which compartments it may act in.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    /// Every compartment the user reaches: its groups' grants and their subtrees.
    pub reach: Arc<HashSet<String>>,
    /// Ancestors of reachable compartments: visible when listing, not acted in.
    pub ancestors: Arc<HashSet<String>>,
}

impl Principal {
    pub fn reaches(&self, compartment_id: &str) -> bool {
        self.reach.contains(compartment_id)
    }
}

/// A cached key lookup: when it was read, and the key if there is one.
type CachedKey = (Instant, Option<Arc<VerifyingKey>>);

#[derive(Default)]
struct Caches {
    keys: HashMap<(String, String), CachedKey>,
    principals: HashMap<String, (Instant, Principal)>,
    tree: Option<(Instant, Arc<Tree>)>,
}

/// The compartment tree as parent links.
#[derive(Debug, Default)]
pub struct Tree {
    parent: HashMap<String, Option<String>>,
    children: HashMap<String, Vec<String>>,
}

impl Tree {
    fn new(rows: Vec<(String, Option<String>)>) -> Tree {
        let mut tree = Tree::default();
        for (id, parent) in rows {
            if let Some(p) = &parent {
                tree.children.entry(p.clone()).or_default().push(id.clone());
            }
            tree.parent.insert(id, parent);
        }
        tree
    }

    /// `root` and everything below it.
    pub fn subtree(&self, root: &str) -> Vec<String> {
        let mut out = vec![];
        let mut stack = vec![root.to_string()];
        while let Some(id) = stack.pop() {
            if let Some(kids) = self.children.get(&id) {
                stack.extend(kids.iter().cloned());
            }
            out.push(id);
        }
        out
    }

    pub fn ancestors(&self, id: &str) -> Vec<String> {
        let mut out = vec![];
        let mut cur = self.parent.get(id).cloned().flatten();
        while let Some(p) = cur {
            cur = self.parent.get(&p).cloned().flatten();
            out.push(p);
        }
        out
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    /// Wakes the scheduler when a job changes.
    pub scheduler_wake: Arc<tokio::sync::Notify>,
    /// Wakes long-polling agents when work is queued.
    pub work_signal: Arc<tokio::sync::Notify>,
    pub tenancy_id: String,
    pub home_region_key: String,
    /// How long a claimed work request belongs to its agent without a heartbeat.
    pub lease: jiff::SignedDuration,
    /// Most missing updates a compliance report lists with details (larger ones are refused).
    pub report_max_detail_updates: usize,
    /// Started on first use, with the lease then set.
    dispatcher: std::sync::OnceLock<dispatch::Dispatcher>,
    caches: Mutex<Caches>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, tenancy_id: String, home_region_key: String) -> Self {
        App {
            store,
            scheduler_wake: Arc::new(tokio::sync::Notify::new()),
            work_signal: Arc::new(tokio::sync::Notify::new()),
            tenancy_id,
            home_region_key,
            lease: agents::LEASE,
            report_max_detail_updates: osm_core::report::MAX_DETAIL_UPDATES,
            dispatcher: std::sync::OnceLock::new(),
            caches: Mutex::new(Caches::default()),
        }
    }

    /// The same with another lease length (`lease_secs` in the settings).
    pub fn with_lease(mut self, lease: jiff::SignedDuration) -> Self {
        self.lease = lease;
        self
    }

    /// The same with another limit on a compliance report's details
    /// (`report_max_detail_updates` in the settings).
    pub fn with_report_limit(mut self, max_detail_updates: usize) -> Self {
        self.report_max_detail_updates = max_detail_updates;
        self
    }

    /// Gathers agents' claims and reports into shared transactions (see `dispatch`).
    fn dispatcher(&self) -> &dispatch::Dispatcher {
        self.dispatcher.get_or_init(|| {
            // SQLite has one writer; PostgreSQL commits a few batches side by side (engine
            // bench, 2 cores: 1 worker ~25,000/s, 2 ~26,000, 3 ~30,000, 4 no better than 3).
            let workers = match self.store.backend() {
                osm_store::Backend::Sqlite => 1,
                osm_store::Backend::Postgres => 3,
            };
            dispatch::Dispatcher::start(self.store.clone(), self.lease, workers)
        })
    }

    /// The parsed public key a request's keyId names, or `None` when there is no such key.
    pub async fn verifying_key(
        &self,
        user_id: &str,
        fingerprint: &str,
    ) -> ApiResult<Option<Arc<VerifyingKey>>> {
        let cache_key = (user_id.to_string(), fingerprint.to_string());
        if let Some((at, key)) = self.caches.lock().unwrap().keys.get(&cache_key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = match self.store.api_key_get(user_id, fingerprint).await? {
            Some(k) => Some(Arc::new(
                VerifyingKey::from_pem(&k.public_key_pem).map_err(ApiError::internal)?,
            )),
            None => None,
        };
        let mut caches = self.caches.lock().unwrap();
        if caches.keys.len() > 10_000 {
            caches.keys.clear();
        }
        caches.keys.insert(cache_key, (Instant::now(), key.clone()));
        Ok(key)
    }

    pub async fn tree(&self) -> ApiResult<Arc<Tree>> {
        if let Some((at, tree)) = &self.caches.lock().unwrap().tree
            && at.elapsed() < CACHE_TTL
        {
            return Ok(tree.clone());
        }
        let tree = Arc::new(Tree::new(self.store.compartment_tree().await?));
        self.caches.lock().unwrap().tree = Some((Instant::now(), tree.clone()));
        Ok(tree)
    }

    /// Drops cached authorisation data after this replica changed the compartment tree.
    pub fn invalidate_tree(&self) {
        let mut caches = self.caches.lock().unwrap();
        caches.tree = None;
        caches.principals.clear();
    }

    pub async fn principal(&self, user_id: &str) -> ApiResult<Principal> {
        if let Some((at, p)) = self.caches.lock().unwrap().principals.get(user_id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(p.clone());
        }
        let grants = self.store.user_granted_compartments(user_id).await?;
        let tree = self.tree().await?;
        let mut reach = HashSet::new();
        let mut ancestors = HashSet::new();
        for root in &grants {
            reach.extend(tree.subtree(root));
            ancestors.extend(tree.ancestors(root));
        }
        let principal = Principal {
            user_id: user_id.to_string(),
            reach: Arc::new(reach),
            ancestors: Arc::new(ancestors),
        };
        let mut caches = self.caches.lock().unwrap();
        if caches.principals.len() > 10_000 {
            caches.principals.clear();
        }
        caches
            .principals
            .insert(user_id.to_string(), (Instant::now(), principal.clone()));
        Ok(principal)
    }

    /// 404 unless the caller reaches the compartment (existence is not revealed).
    pub fn authorize(&self, p: &Principal, compartment_id: &str) -> ApiResult<()> {
        if p.reaches(compartment_id) {
            Ok(())
        } else {
            Err(ApiError::not_found("compartment", compartment_id))
        }
    }
}

/// The etag of a resource version. Opaque to clients; `if-match` compares it exactly.
pub fn etag(id: &str, version: i64) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{id}:{version}").as_bytes(),
    );
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// Checks an `if-match` value against the current version (`*` matches any).
pub fn check_if_match(
    if_match: Option<&str>,
    what: &str,
    id: &str,
    version: i64,
) -> ApiResult<Option<i64>> {
    match if_match {
        None => Ok(None),
        Some("*") => Ok(Some(version)),
        Some(tag) => {
            let current = etag(id, version);
            if tag == current || format!("\"{tag}\"") == current {
                Ok(Some(version))
            } else {
                Err(ApiError::no_etag_match(what, id))
            }
        }
    }
}

#[cfg(test)]
mod layering {
    /// The application layer answers with `ApiError`, built by its named constructors: the
    /// HTTP status of each error is chosen in `http/error.rs`, never in `app/`.
    #[test]
    fn the_app_layer_builds_no_status_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/app");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Spelled in two parts so that this file does not find itself.
                let (status, new) = (concat!("Status", "Code"), concat!("ApiError", "::new("));
                assert!(
                    !text.contains(status) && !text.contains(new),
                    "{} builds an HTTP status itself; add a constructor to http/error.rs",
                    path.display()
                );
                read += 1;
            }
        }
        assert!(read > 5, "read the app layer's files ({read})");
    }
}
