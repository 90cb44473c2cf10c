-- What every agent-run work request logs is kept in its own row, not in work_request_logs:
-- `time_claimed` is when an agent claimed it (its "Started by the agent" entry) and
-- `outcome_lines` the lines of a short final report (a JSON array of strings, finish note
-- last, stamped `time_finished`). Longer reports still go to work_request_logs. Reading a log
-- merges the three; claiming and finishing then write no log row at all.
ALTER TABLE work_requests ADD COLUMN time_claimed BIGINT;
ALTER TABLE work_requests ADD COLUMN outcome_lines TEXT;
-- Claims recorded as a log row before this migration become `time_claimed`.
UPDATE work_requests SET time_claimed = time_started
    WHERE time_started IS NOT NULL AND EXISTS (
        SELECT 1 FROM work_request_logs l
        WHERE l.work_request_id = work_requests.id AND l.time_created = work_requests.time_started
          AND l.lines IS NULL AND l.message = 'Started by the agent');
DELETE FROM work_request_logs
    WHERE lines IS NULL AND message = 'Started by the agent' AND EXISTS (
        SELECT 1 FROM work_requests w
        WHERE w.id = work_request_logs.work_request_id AND w.time_claimed = work_request_logs.time_created);
