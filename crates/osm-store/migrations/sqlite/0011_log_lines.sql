-- Lines written together (an agent's report, an appended batch) share one row: `lines` holds
-- them as a JSON array of strings in order and `message` is empty; a row with `lines` NULL is
-- one line, its `message`. An entry of the log is then (row, position in `lines`): one row per
-- write instead of one per line, which is most of what finishing a work request writes.
ALTER TABLE work_request_logs ADD COLUMN lines TEXT;
