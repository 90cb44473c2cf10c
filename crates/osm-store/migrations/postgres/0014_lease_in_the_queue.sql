-- A claimed work request keeps its queue row, which then carries the lease: `lease_expires`
-- NULL is a request waiting for its agent (ACCEPTED), a deadline one an agent holds
-- (IN_PROGRESS or CANCELLING). A claim sets the deadline and a finish deletes the row, where
-- they used to delete the queue row, insert a lease row and delete that again. On PostgreSQL
-- no index covers the column, so setting and renewing a lease update the row in place.
ALTER TABLE work_queue ADD COLUMN lease_expires BIGINT;
INSERT INTO work_queue (work_request_id, managed_instance_id, time_accepted, lease_expires)
    SELECT l.work_request_id, l.managed_instance_id, w.time_accepted, l.lease_expires
    FROM work_leases l JOIN work_requests w ON w.id = l.work_request_id
    WHERE w.status IN ('IN_PROGRESS', 'CANCELLING')
    ON CONFLICT (work_request_id) DO UPDATE SET lease_expires = excluded.lease_expires;
DROP TABLE work_leases;
-- Room on each page for the claim's version of every row (and a renewal or two), as for
-- work_requests in migration 0013: a full page would move the row and add index entries.
ALTER TABLE work_queue SET (fillfactor = 50);
