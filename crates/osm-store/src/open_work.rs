//! The open agent work of a SQLite store, kept in memory: which work requests wait for their
//! agent (queued, oldest first per instance) and which an agent holds under a lease.
//!
//! On SQLite one osmd process owns the database and every write goes through its one writer,
//! so this index can stand in for the queue table PostgreSQL keeps (there replicas share the
//! queue): a claim and a completion then write only the work request's row. The rows stay the
//! truth: the index is rebuilt from them when the store opens (see
//! `SqliteStore::load_open_work`) and after any write that changed it without committing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use osm_core::{OperationType, WorkRequestStatus};

/// A work request an agent holds (IN_PROGRESS or CANCELLING).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Held {
    pub instance: Arc<str>,
    pub time_accepted: i64,
    pub status: WorkRequestStatus,
    pub operation: OperationType,
    /// When it started (µs).
    pub started: Option<i64>,
    pub parent: Option<String>,
    /// The lease's deadline (µs).
    pub lease_expires: i64,
}

/// Queued and held work requests, by id and by instance.
#[derive(Debug, Default)]
pub(crate) struct OpenWork {
    /// Per instance, its queued work requests in claim order: (time accepted, id).
    queued: HashMap<Arc<str>, BTreeSet<(i64, Arc<str>)>>,
    /// Each queued work request's place in `queued`.
    queued_at: HashMap<Arc<str>, (Arc<str>, i64)>,
    held: HashMap<Arc<str>, Held>,
    /// Per instance, the work requests its agent holds: (time accepted, id).
    held_by: HashMap<Arc<str>, BTreeSet<(i64, Arc<str>)>>,
}

impl OpenWork {
    /// Queues a work request for its instance's agent.
    pub fn queue(&mut self, id: &str, instance: &str, time_accepted: i64) {
        let id: Arc<str> = id.into();
        let instance: Arc<str> = self.interned(instance);
        self.queued
            .entry(instance.clone())
            .or_default()
            .insert((time_accepted, id.clone()));
        self.queued_at.insert(id, (instance, time_accepted));
    }

    /// Takes a work request out of the queue; false if it was not queued.
    pub fn unqueue(&mut self, id: &str) -> bool {
        let Some((instance, time)) = self.queued_at.remove(id) else {
            return false;
        };
        if let Some(set) = self.queued.get_mut(&instance) {
            set.remove(&(time, Arc::from(id)));
            if set.is_empty() {
                self.queued.remove(&instance);
            }
        }
        true
    }

    /// Up to `limit` queued work requests of `instance`, oldest first.
    pub fn queued_of(&self, instance: &str, limit: usize) -> impl Iterator<Item = &str> + use<'_> {
        self.queued
            .get(instance)
            .into_iter()
            .flat_map(move |set| set.iter().take(limit).map(|(_, id)| &**id))
    }

    /// Records that an agent holds `id` (taking it out of the queue).
    pub fn hold(&mut self, id: &str, mut held: Held) {
        self.unqueue(id);
        self.release(id);
        let id: Arc<str> = id.into();
        held.instance = self.interned(&held.instance);
        self.held_by
            .entry(held.instance.clone())
            .or_default()
            .insert((held.time_accepted, id.clone()));
        self.held.insert(id, held);
    }

    pub fn held(&self, id: &str) -> Option<&Held> {
        self.held.get(id)
    }

    /// Changes the status of a held work request (to CANCELLING); false if none is held.
    pub fn set_status(&mut self, id: &str, status: WorkRequestStatus) -> bool {
        match self.held.get_mut(id) {
            Some(h) => {
                h.status = status;
                true
            }
            None => false,
        }
    }

    /// Ends the lease on `id`, if an agent held it.
    pub fn release(&mut self, id: &str) {
        let Some(held) = self.held.remove(id) else {
            return;
        };
        if let Some(set) = self.held_by.get_mut(&held.instance) {
            set.remove(&(held.time_accepted, Arc::from(id)));
            if set.is_empty() {
                self.held_by.remove(&held.instance);
            }
        }
    }

    /// Moves the deadline of every lease `instance`'s agent holds to `until`; returns those
    /// work requests and their statuses in claim order.
    pub fn renew(&mut self, instance: &str, until: i64) -> Vec<(String, WorkRequestStatus)> {
        let Some(ids) = self.held_by.get(instance) else {
            return vec![];
        };
        ids.iter()
            .filter_map(|(_, id)| {
                let held = self.held.get_mut(id)?;
                held.lease_expires = until;
                Some((id.to_string(), held.status))
            })
            .collect()
    }

    /// Up to `limit` held work requests whose lease ended before `now`, earliest deadline
    /// first: (id, deadline).
    pub fn expired(&self, now: i64, limit: usize) -> Vec<(String, i64)> {
        let mut out: Vec<(i64, &str)> = self
            .held
            .iter()
            .filter(|(_, h)| h.lease_expires < now)
            .map(|(id, h)| (h.lease_expires, &**id))
            .collect();
        out.sort_unstable();
        out.truncate(limit);
        out.into_iter().map(|(t, id)| (id.to_string(), t)).collect()
    }

    /// The instance's id, shared with the entries that already name it.
    fn interned(&self, instance: &str) -> Arc<str> {
        if let Some((k, _)) = self.queued.get_key_value(instance) {
            return k.clone();
        }
        if let Some((k, _)) = self.held_by.get_key_value(instance) {
            return k.clone();
        }
        instance.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(instance: &str, time_accepted: i64, lease_expires: i64) -> Held {
        Held {
            instance: instance.into(),
            time_accepted,
            status: WorkRequestStatus::InProgress,
            operation: OperationType::UpdateAll,
            started: Some(time_accepted + 1),
            parent: None,
            lease_expires,
        }
    }

    fn queued<'a>(open: &'a OpenWork, instance: &str, limit: usize) -> Vec<&'a str> {
        open.queued_of(instance, limit).collect()
    }

    #[test]
    fn queued_work_comes_out_oldest_first_per_instance() {
        let mut open = OpenWork::default();
        open.queue("c", "m1", 30);
        open.queue("a", "m1", 10);
        open.queue("b2", "m1", 20);
        open.queue("b1", "m1", 20);
        open.queue("x", "m2", 5);
        assert_eq!(queued(&open, "m1", 10), ["a", "b1", "b2", "c"]);
        assert_eq!(queued(&open, "m1", 2), ["a", "b1"]);
        assert_eq!(queued(&open, "m2", 10), ["x"]);
        assert!(queued(&open, "m3", 10).is_empty());
        assert!(open.unqueue("b1"));
        assert!(!open.unqueue("b1"), "a second unqueue finds nothing");
        assert_eq!(queued(&open, "m1", 10), ["a", "b2", "c"]);
    }

    #[test]
    fn holding_takes_work_out_of_the_queue_and_release_ends_it() {
        let mut open = OpenWork::default();
        open.queue("a", "m1", 10);
        open.queue("b", "m1", 20);
        open.hold("a", held("m1", 10, 100));
        assert_eq!(queued(&open, "m1", 10), ["b"]);
        assert_eq!(open.held("a").map(|h| h.lease_expires), Some(100));
        assert!(open.set_status("a", WorkRequestStatus::Cancelling));
        assert!(
            !open.set_status("b", WorkRequestStatus::Cancelling),
            "b is queued, not held"
        );
        assert_eq!(
            open.renew("m1", 500),
            [("a".to_string(), WorkRequestStatus::Cancelling)]
        );
        open.release("a");
        assert!(open.held("a").is_none());
        assert!(open.renew("m1", 600).is_empty());
        assert!(open.held_by.is_empty() && open.held.is_empty());
    }

    #[test]
    fn renewal_moves_only_the_instances_leases() {
        let mut open = OpenWork::default();
        open.hold("b", held("m1", 20, 100));
        open.hold("a", held("m1", 10, 100));
        open.hold("z", held("m2", 5, 100));
        let renewed: Vec<String> = open
            .renew("m1", 300)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(renewed, ["a", "b"], "in claim order");
        assert_eq!(open.expired(200, 10), [("z".to_string(), 100)]);
    }

    #[test]
    fn expired_leases_come_earliest_first_up_to_the_limit() {
        let mut open = OpenWork::default();
        open.hold("late", held("m1", 1, 90));
        open.hold("early", held("m2", 2, 50));
        open.hold("live", held("m3", 3, 200));
        open.hold("mid", held("m1", 4, 70));
        assert_eq!(
            open.expired(100, 10),
            [
                ("early".to_string(), 50),
                ("mid".to_string(), 70),
                ("late".to_string(), 90)
            ]
        );
        assert_eq!(open.expired(100, 1), [("early".to_string(), 50)]);
        assert!(
            open.expired(50, 10).is_empty(),
            "a lease ending at 50 holds at 50"
        );
    }
}
