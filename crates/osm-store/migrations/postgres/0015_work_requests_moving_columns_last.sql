-- The columns a claim and a completion change (status, progress, times, the kept report) move
-- to the end of the row. PostgreSQL logs an in-place update as the bytes between the first and
-- the last changed column, so with `status` fourth each of the two updates logged nearly the
-- whole row (~350 bytes); now they log what they change. Column order is fixed at creation,
-- so the table is rebuilt: statements name their columns, nothing depends on the order.
CREATE TABLE work_requests_reordered (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL,
    operation_type TEXT NOT NULL,
    description TEXT COLLATE "C",
    message TEXT,
    managed_instance_id TEXT,
    managed_instance_name TEXT,
    os_family TEXT NOT NULL,
    time_accepted BIGINT NOT NULL,
    parent_id TEXT,
    scheduled_job_id TEXT,
    resources TEXT NOT NULL,
    action TEXT,
    status TEXT NOT NULL,
    percent_complete DOUBLE PRECISION NOT NULL,
    time_started BIGINT,
    time_claimed BIGINT,
    time_finished BIGINT,
    outcome_lines TEXT
) WITH (fillfactor = 30);
INSERT INTO work_requests_reordered
    SELECT id, compartment_id, operation_type, description, message, managed_instance_id,
           managed_instance_name, os_family, time_accepted, parent_id, scheduled_job_id,
           resources, action, status, percent_complete, time_started, time_claimed,
           time_finished, outcome_lines
    FROM work_requests;
DROP TABLE work_requests;
ALTER TABLE work_requests_reordered RENAME TO work_requests;
ALTER INDEX work_requests_reordered_pkey RENAME TO work_requests_pkey;
CREATE INDEX work_requests_by_time ON work_requests (compartment_id, time_accepted, id);
CREATE INDEX work_requests_by_name ON work_requests (compartment_id, (COALESCE(description, '')), id);
CREATE INDEX work_requests_instance ON work_requests (managed_instance_id, time_accepted);
CREATE INDEX work_requests_parent ON work_requests (parent_id);
CREATE INDEX work_requests_job ON work_requests (scheduled_job_id);
CREATE INDEX work_requests_accepted ON work_requests (time_accepted);
