-- Errata from imported OSV advisories, matched against instances' available updates (see
-- docs/errata.md).

-- What an erratum that came from an OSV record carries besides what agents report: its
-- description, issuer ("from"), solution, references (one URL a line), fixed packages (a JSON
-- list), the record's "modified" and "withdrawn" times.
ALTER TABLE errata ADD COLUMN description TEXT;
ALTER TABLE errata ADD COLUMN issuer TEXT;
ALTER TABLE errata ADD COLUMN solution TEXT;
ALTER TABLE errata ADD COLUMN refs TEXT;
ALTER TABLE errata ADD COLUMN packages TEXT NOT NULL DEFAULT '[]';
ALTER TABLE errata ADD COLUMN osv_modified BIGINT;
ALTER TABLE errata ADD COLUMN withdrawn BIGINT;
CREATE INDEX errata_by_time ON errata (time_created, id);

-- What the agent reported of each available update. update_type, cves and advisories hold
-- that merged with the OSV records the update fixes; these keep the agent's own values, so a
-- record that changes or is withdrawn can be matched again.
ALTER TABLE instance_updates ADD COLUMN reported_type TEXT;
ALTER TABLE instance_updates ADD COLUMN reported_cves TEXT;
ALTER TABLE instance_updates ADD COLUMN reported_advisories TEXT;
UPDATE instance_updates SET reported_type = update_type, reported_cves = cves, reported_advisories = advisories;

-- Imported OSV records (their JSON text as imported), one per OSV id.
CREATE TABLE osv_records (
    id TEXT COLLATE "C" PRIMARY KEY,
    modified BIGINT NOT NULL,
    withdrawn BIGINT,
    document TEXT NOT NULL,
    time_imported BIGINT NOT NULL
);

-- The package names each record affects (in ecosystems osm matches).
CREATE TABLE osv_packages (
    name TEXT COLLATE "C" NOT NULL,
    osv_id TEXT COLLATE "C" NOT NULL REFERENCES osv_records (id) ON DELETE CASCADE,
    PRIMARY KEY (name, osv_id)
);
CREATE INDEX osv_packages_by_record ON osv_packages (osv_id);

-- The advisory names of every available update (its effective advisories): which errata
-- apply to which instance. Rows go with their update.
CREATE TABLE instance_errata (
    instance_id TEXT NOT NULL,
    item_key TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (instance_id, item_key, name),
    FOREIGN KEY (instance_id, item_key) REFERENCES instance_updates (instance_id, item_key) ON DELETE CASCADE
);
CREATE INDEX instance_errata_by_name ON instance_errata (name, instance_id);
INSERT INTO instance_errata (instance_id, item_key, name)
    SELECT u.instance_id, u.item_key, j.value FROM instance_updates u, jsonb_array_elements_text(u.advisories::jsonb) AS j(value) WHERE 1 = 1
    ON CONFLICT DO NOTHING;
