-- The work-request engine's indexes hold only the rows they serve, so claims and completions
-- touch small indexes and no plan can mistake a status index for a way to find rows by id:
-- queued work per instance in claim order; running work by lease deadline (the rescuer) and per
-- instance (heartbeats); finished work by finish time (retention). `lease_expires` is set
-- exactly while a work request is IN_PROGRESS or CANCELLING.
DROP INDEX work_requests_queue;
DROP INDEX work_requests_leases;
DROP INDEX work_requests_finished;
UPDATE work_requests SET lease_expires = NULL WHERE status NOT IN ('IN_PROGRESS', 'CANCELLING');
CREATE INDEX work_requests_queue ON work_requests (managed_instance_id, time_accepted, id)
    WHERE status = 'ACCEPTED' AND action IS NOT NULL;
CREATE INDEX work_requests_leases ON work_requests (lease_expires) WHERE lease_expires IS NOT NULL;
CREATE INDEX work_requests_running ON work_requests (managed_instance_id) WHERE lease_expires IS NOT NULL;
CREATE INDEX work_requests_finished ON work_requests (time_finished) WHERE time_finished IS NOT NULL;
