-- What the errata read paths need (see docs/errata.md, "Storage").

-- list_errata by issue date (the default order) within the catalogue's compartment: the
-- keyset order COALESCE(issued, 0), id. By name it uses the unique (compartment_id, name).
CREATE INDEX errata_by_issue_date ON errata (compartment_id, (COALESCE(issued, 0)), id);

-- Errata by advisory name alone: an instance's errata (instance_errata names them) and the
-- errata of its available updates.
CREATE INDEX errata_by_name ON errata (name);

-- The CVEs agents reported for each erratum (a JSON list), kept apart from related_cves so a
-- re-imported OSV record that names fewer CVEs never drops one an agent reported:
-- related_cves is reported_cves merged with the current OSV record's CVEs. Entries from before
-- this migration cannot tell the two apart, so all their CVEs count as reported (none is lost).
ALTER TABLE errata ADD COLUMN reported_cves TEXT NOT NULL DEFAULT '[]';
UPDATE errata SET reported_cves = related_cves;
