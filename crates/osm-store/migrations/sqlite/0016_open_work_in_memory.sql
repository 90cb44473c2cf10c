-- On SQLite one osmd process owns the database, so it keeps the queue of work waiting for its
-- agent and the leases agents hold in memory (osm-store's open_work.rs) instead of in
-- work_queue: a claim and a completion then write only the work request's row. The rows stay
-- the truth the memory is read from when osmd starts: ACCEPTED requests an agent runs are
-- queued, IN_PROGRESS and CANCELLING ones hold a lease until `lease_expires`, which a claim
-- sets and a heartbeat renews. PostgreSQL, shared by replicas, keeps work_queue.
ALTER TABLE work_requests ADD COLUMN lease_expires BIGINT;
UPDATE work_requests SET lease_expires = (
        SELECT q.lease_expires FROM work_queue q WHERE q.work_request_id = work_requests.id)
    WHERE status IN ('IN_PROGRESS', 'CANCELLING')
      AND id IN (SELECT work_request_id FROM work_queue WHERE lease_expires IS NOT NULL);
DROP TABLE work_queue;
