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
-- The rescuer finds expired leases by deadline without reading the queued backlog, which can
-- be large (work for instances that are offline). PostgreSQL goes without: an index on the
-- column would stop the claim's update being made in place, and its rescuer does not hold
-- the only writer while it reads.
CREATE INDEX work_queue_leases ON work_queue (lease_expires) WHERE lease_expires IS NOT NULL;
