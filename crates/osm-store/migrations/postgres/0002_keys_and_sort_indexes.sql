-- Names sort by code point, as on SQLite, whatever the server's default collation: both
-- backends list in the same order and page cursors compare the same way.
ALTER TABLE compartments ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE managed_instances ALTER COLUMN display_name TYPE TEXT COLLATE "C";
ALTER TABLE managed_instance_groups ALTER COLUMN display_name TYPE TEXT COLLATE "C";
ALTER TABLE scheduled_jobs ALTER COLUMN display_name TYPE TEXT COLLATE "C";
ALTER TABLE work_requests ALTER COLUMN description TYPE TEXT COLLATE "C";
ALTER TABLE work_request_logs ALTER COLUMN message TYPE TEXT COLLATE "C";
ALTER TABLE work_request_errors ALTER COLUMN code TYPE TEXT COLLATE "C";

-- Active sibling compartments have distinct names. compartment_create checks first (for a clear
-- message); this index makes the rule hold when several replicas create at once.
CREATE UNIQUE INDEX compartments_active_name ON compartments (parent_id, name)
    WHERE lifecycle_state <> 'DELETED';
CREATE INDEX compartments_by_time ON compartments (parent_id, time_created, id);

-- Work requests sorted by name sort by description with NULL as '' (what page cursors carry).
DROP INDEX work_requests_by_name;
CREATE INDEX work_requests_by_name ON work_requests (compartment_id, (COALESCE(description, '')), id);
