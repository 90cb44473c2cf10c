-- Active sibling compartments have distinct names. compartment_create checks first (for a clear
-- message); this index makes the rule hold even against a racing writer.
CREATE UNIQUE INDEX compartments_active_name ON compartments (parent_id, name)
    WHERE lifecycle_state <> 'DELETED';
CREATE INDEX compartments_by_time ON compartments (parent_id, time_created, id);

-- Work requests sorted by name sort by description with NULL as '' (what page cursors carry).
DROP INDEX work_requests_by_name;
CREATE INDEX work_requests_by_name ON work_requests (compartment_id, (COALESCE(description, '')), id);
