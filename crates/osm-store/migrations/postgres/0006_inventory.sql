-- Package inventory agents report (see docs/agent-protocol.md). Rows belong to their instance
-- and go with it. Sorted text columns compare by byte (COLLATE "C"), as on SQLite, so both
-- backends list and page alike. Every row carries the revision of the upload that last
-- (re)asserted it: a full upload upserts everything at the new revision, then drops the rows of
-- older revisions.

-- The revision of each instance's inventory (bumped by every accepted upload) and when it was
-- last reported.
CREATE TABLE instance_inventories (
    instance_id TEXT PRIMARY KEY REFERENCES managed_instances (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    time_reported BIGINT NOT NULL
);

-- Installed (kind 'INSTALLED') and installable ('AVAILABLE') packages. item_key is
-- name || ' ' || architecture ('' when absent): unique per instance and kind, and the row id
-- page cursors carry.
CREATE TABLE instance_packages (
    instance_id TEXT NOT NULL REFERENCES managed_instances (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    item_key TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    architecture TEXT NOT NULL,
    version TEXT NOT NULL,
    package_type TEXT,
    install_time BIGINT,
    revision BIGINT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (instance_id, kind, item_key)
);
CREATE INDEX instance_packages_by_name ON instance_packages (instance_id, kind, name, item_key);
CREATE INDEX instance_packages_by_time ON instance_packages (instance_id, kind, time_created, item_key);

-- Available updates; cves and advisories (advisory names) are JSON lists.
CREATE TABLE instance_updates (
    instance_id TEXT NOT NULL REFERENCES managed_instances (id) ON DELETE CASCADE,
    item_key TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    architecture TEXT NOT NULL,
    installed_version TEXT NOT NULL,
    available_version TEXT NOT NULL,
    update_type TEXT NOT NULL,
    package_type TEXT,
    cves TEXT NOT NULL,
    advisories TEXT NOT NULL,
    revision BIGINT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (instance_id, item_key)
);
CREATE INDEX instance_updates_by_name ON instance_updates (instance_id, name, item_key);
CREATE INDEX instance_updates_by_time ON instance_updates (instance_id, time_created, item_key);

-- Windows updates of each instance, installed or not.
CREATE TABLE instance_windows_updates (
    instance_id TEXT NOT NULL REFERENCES managed_instances (id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    update_type TEXT NOT NULL,
    installed BOOLEAN NOT NULL,
    installable TEXT,
    reboot_required BOOLEAN,
    revision BIGINT NOT NULL,
    time_created BIGINT NOT NULL,
    PRIMARY KEY (instance_id, name)
);
CREATE INDEX instance_windows_updates_by_name ON instance_windows_updates (instance_id, display_name, name);
CREATE INDEX instance_windows_updates_by_time ON instance_windows_updates (instance_id, time_created, name);
CREATE INDEX instance_windows_updates_update ON instance_windows_updates (name);

-- The catalogue of Windows updates any instance reported (what GET /updates lists).
CREATE TABLE windows_updates (
    name TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT COLLATE "C" NOT NULL,
    description TEXT,
    update_type TEXT NOT NULL,
    size_in_bytes BIGINT,
    kb_article_ids TEXT NOT NULL,
    reboot_required BOOLEAN,
    installable TEXT,
    time_created BIGINT NOT NULL,
    time_updated BIGINT NOT NULL
);
CREATE INDEX windows_updates_by_name ON windows_updates (display_name, name);
CREATE INDEX windows_updates_by_time ON windows_updates (time_created, name);

-- The errata catalogue: one entry per advisory name in a tenancy, upserted from the advisories
-- agents report; related_cves is a JSON list.
CREATE TABLE errata (
    id TEXT PRIMARY KEY,
    compartment_id TEXT NOT NULL REFERENCES compartments (id),
    name TEXT COLLATE "C" NOT NULL,
    advisory_type TEXT,
    synopsis TEXT,
    issued BIGINT,
    related_cves TEXT NOT NULL,
    time_created BIGINT NOT NULL,
    time_updated BIGINT NOT NULL,
    UNIQUE (compartment_id, name)
);
