-- The compliance report counts each instance's pending updates by classification and reads
-- those of the counted classifications: with the classification beside the instance in an
-- index, counting reads the index alone and the security updates of an instance are a seek,
-- not a visit of each of its rows.
CREATE INDEX instance_updates_by_type ON instance_updates (instance_id, update_type);
