-- Object storage of recordings (issue 19): `storage_url` (s3://bucket/key) once a recording's
-- file is uploaded, and status `uploading` while it waits for that. SQLite cannot change a
-- CHECK constraint in place: the table is rebuilt (nothing references recordings). Same
-- columns as ../postgres.

CREATE TABLE recordings_new (
    id               TEXT NOT NULL PRIMARY KEY,
    meeting_id       TEXT NOT NULL REFERENCES meetings (id),
    storage_path     TEXT NOT NULL,
    size_bytes       INTEGER NULL,
    duration_seconds REAL NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('starting', 'recording', 'finalizing', 'uploading', 'done', 'failed')),
    created_at       TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    storage_url      TEXT NULL
) STRICT;

INSERT INTO recordings_new
    (id, meeting_id, storage_path, size_bytes, duration_seconds, status, created_at, metadata)
SELECT id, meeting_id, storage_path, size_bytes, duration_seconds, status, created_at, metadata
FROM recordings;

DROP TABLE recordings;
ALTER TABLE recordings_new RENAME TO recordings;

CREATE INDEX recordings_meeting_id ON recordings (meeting_id);
CREATE INDEX recordings_status ON recordings (status);
