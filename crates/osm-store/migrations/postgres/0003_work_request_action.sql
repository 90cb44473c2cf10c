-- What the agent is to do (JSON), NULL for parents that gather children.
ALTER TABLE work_requests ADD COLUMN action TEXT;
