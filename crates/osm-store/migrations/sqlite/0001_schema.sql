-- The osm schema. Times are microseconds since the Unix epoch; tags and lists are JSON text.

CREATE TABLE compartments (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES compartments (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    lifecycle_state TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    freeform_tags TEXT NOT NULL,
    defined_tags TEXT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX compartments_parent ON compartments (parent_id, name);
-- Exactly one tenancy: bootstraps racing on a shared database insert here first.
CREATE TABLE tenancy_singleton (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    tenancy_id TEXT NOT NULL REFERENCES compartments (id)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenancy_id TEXT NOT NULL REFERENCES compartments (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    time_created BIGINT NOT NULL
);
CREATE TABLE api_keys (
    user_id TEXT NOT NULL REFERENCES users (id),
    fingerprint TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (user_id, fingerprint)
);
CREATE TABLE user_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    time_created BIGINT NOT NULL
);
CREATE TABLE user_group_members (
    group_id TEXT NOT NULL REFERENCES user_groups (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX user_group_members_user ON user_group_members (user_id);
CREATE TABLE user_group_grants (
    group_id TEXT NOT NULL REFERENCES user_groups (id),
    compartment_id TEXT NOT NULL REFERENCES compartments (id),
    PRIMARY KEY (group_id, compartment_id)
);

CREATE TABLE managed_instances (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL REFERENCES compartments (id),
    display_name TEXT NOT NULL,
    description TEXT,
    os_name TEXT,
    os_version TEXT,
    os_kernel_version TEXT,
    os_family TEXT NOT NULL,
    status TEXT NOT NULL,
    last_checkin BIGINT,
    last_boot BIGINT,
    is_reboot_required BOOLEAN NOT NULL,
    notification_topic_id TEXT,
    is_data_collection_authorized BOOLEAN NOT NULL,
    security_updates BIGINT NOT NULL,
    bug_updates BIGINT NOT NULL,
    enhancement_updates BIGINT NOT NULL,
    other_updates BIGINT NOT NULL,
    time_created BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX managed_instances_by_time ON managed_instances (compartment_id, time_created, id);
CREATE INDEX managed_instances_by_name ON managed_instances (compartment_id, display_name, id);

CREATE TABLE managed_instance_groups (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL REFERENCES compartments (id),
    display_name TEXT NOT NULL,
    description TEXT,
    os_family TEXT NOT NULL,
    lifecycle_state TEXT NOT NULL,
    freeform_tags TEXT NOT NULL,
    defined_tags TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX managed_instance_groups_by_time ON managed_instance_groups (compartment_id, time_created, id);
CREATE INDEX managed_instance_groups_by_name ON managed_instance_groups (compartment_id, display_name, id);
CREATE TABLE managed_instance_group_members (
    group_id TEXT NOT NULL REFERENCES managed_instance_groups (id),
    instance_id TEXT NOT NULL REFERENCES managed_instances (id),
    PRIMARY KEY (group_id, instance_id)
);
CREATE INDEX managed_instance_group_members_instance ON managed_instance_group_members (instance_id);

CREATE TABLE scheduled_jobs (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL REFERENCES compartments (id),
    display_name TEXT NOT NULL,
    description TEXT,
    schedule_type TEXT NOT NULL,
    time_next_execution BIGINT,
    time_last_execution BIGINT,
    interval_type TEXT,
    interval_value BIGINT,
    operation_type TEXT NOT NULL,
    update_type TEXT,
    package_names TEXT NOT NULL,
    update_names TEXT NOT NULL,
    lifecycle_state TEXT NOT NULL,
    freeform_tags TEXT NOT NULL,
    defined_tags TEXT NOT NULL,
    os_family TEXT NOT NULL,
    is_restricted BOOLEAN NOT NULL,
    time_zone TEXT,
    time_created BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX scheduled_jobs_by_time ON scheduled_jobs (compartment_id, time_created, id);
CREATE INDEX scheduled_jobs_by_name ON scheduled_jobs (compartment_id, display_name, id);
CREATE INDEX scheduled_jobs_next ON scheduled_jobs (time_next_execution);
-- Targets as rows, so "jobs on this instance or group" is an index lookup.
CREATE TABLE scheduled_job_targets (
    job_id TEXT NOT NULL REFERENCES scheduled_jobs (id),
    target_id TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (job_id, target_id)
);
CREATE INDEX scheduled_job_targets_target ON scheduled_job_targets (target_id);

CREATE TABLE work_requests (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL,
    operation_type TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT,
    message TEXT,
    managed_instance_id TEXT,
    managed_instance_name TEXT,
    os_family TEXT NOT NULL,
    percent_complete DOUBLE PRECISION NOT NULL,
    time_accepted BIGINT NOT NULL,
    time_started BIGINT,
    time_finished BIGINT,
    parent_id TEXT,
    scheduled_job_id TEXT,
    resources TEXT NOT NULL
);
CREATE INDEX work_requests_by_time ON work_requests (compartment_id, time_accepted, id);
CREATE INDEX work_requests_by_name ON work_requests (compartment_id, description, id);
CREATE INDEX work_requests_instance ON work_requests (managed_instance_id, time_accepted);
CREATE INDEX work_requests_parent ON work_requests (parent_id);
CREATE INDEX work_requests_job ON work_requests (scheduled_job_id);
CREATE TABLE work_request_logs (
    work_request_id TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    message TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (work_request_id, entry_id)
);
CREATE INDEX work_request_logs_time ON work_request_logs (work_request_id, time_created, entry_id);
CREATE TABLE work_request_errors (
    work_request_id TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (work_request_id, entry_id)
);
CREATE INDEX work_request_errors_time ON work_request_errors (work_request_id, time_created, entry_id);

CREATE TABLE retry_records (
    principal_id TEXT NOT NULL,
    token TEXT NOT NULL,
    operation TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (principal_id, token)
);
CREATE INDEX retry_records_time ON retry_records (time_created);
