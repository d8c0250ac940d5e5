-- ferrosfu store schema, SQLite flavour (same tables and columns as ../postgres).
-- Timestamps are TEXT as sqlx writes chrono DateTime<Utc> (RFC 3339, UTC, "+00:00"), which
-- sorts chronologically as text. JSON is TEXT holding a valid JSON document.
-- STRICT tables: SQLite enforces the declared column types.

CREATE TABLE users (
    id           TEXT NOT NULL PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
) STRICT;

CREATE TABLE meetings (
    id           TEXT NOT NULL PRIMARY KEY,
    meeting_code TEXT NOT NULL UNIQUE,
    creator_id   TEXT NULL REFERENCES users (id),
    started_at   TEXT NOT NULL,
    ended_at     TEXT NULL,
    settings     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended'))
) STRICT;

CREATE TABLE participants (
    id           TEXT NOT NULL PRIMARY KEY,
    meeting_id   TEXT NOT NULL REFERENCES meetings (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    display_name TEXT NOT NULL,
    joined_at    TEXT NOT NULL,
    left_at      TEXT NULL,
    stats        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(stats))
) STRICT;

CREATE INDEX participants_meeting_id ON participants (meeting_id);

CREATE TABLE media_tracks (
    id             TEXT NOT NULL PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants (id),
    kind           TEXT NOT NULL CHECK (kind IN ('audio', 'video')),
    codec          TEXT NOT NULL,
    parameters     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(parameters)),
    created_at     TEXT NOT NULL
) STRICT;

CREATE INDEX media_tracks_participant_id ON media_tracks (participant_id);

CREATE TABLE recordings (
    id               TEXT NOT NULL PRIMARY KEY,
    meeting_id       TEXT NOT NULL REFERENCES meetings (id),
    storage_path     TEXT NOT NULL,
    size_bytes       INTEGER NULL,
    duration_seconds REAL NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('starting', 'recording', 'finalizing', 'done', 'failed')),
    created_at       TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
) STRICT;

CREATE INDEX recordings_meeting_id ON recordings (meeting_id);
CREATE INDEX recordings_status ON recordings (status);
