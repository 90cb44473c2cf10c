-- Agent install keys: only a hash of the secret is kept.
CREATE TABLE install_keys (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL REFERENCES compartments (id),
    display_name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    time_created BIGINT NOT NULL,
    time_revoked BIGINT
);
-- The key each enrolled agent signs its requests with (HMAC-SHA256).
CREATE TABLE agent_credentials (
    instance_id TEXT PRIMARY KEY REFERENCES managed_instances (id),
    secret TEXT NOT NULL,
    time_created BIGINT NOT NULL
);
-- A claimed work request belongs to its agent until the lease runs out.
ALTER TABLE work_requests ADD COLUMN lease_expires BIGINT;
CREATE INDEX work_requests_queue ON work_requests (managed_instance_id, status, time_accepted);
CREATE INDEX work_requests_leases ON work_requests (status, lease_expires);
CREATE INDEX work_requests_finished ON work_requests (status, time_finished);
