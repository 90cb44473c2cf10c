-- The first occurrence a recurrence is computed from, so month-end jobs come back to their day.
ALTER TABLE scheduled_jobs ADD COLUMN recurrence_anchor BIGINT;
UPDATE scheduled_jobs SET recurrence_anchor = time_next_execution;
-- Every occurrence of every job, fired, missed or skipped. The key makes each occurrence fire
-- exactly once, across crashes and replicas.
CREATE TABLE scheduled_job_occurrences (
    job_id TEXT NOT NULL REFERENCES scheduled_jobs (id),
    occurrence_time BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    time_recorded BIGINT NOT NULL,
    PRIMARY KEY (job_id, occurrence_time)
);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (lifecycle_state, time_next_execution);
