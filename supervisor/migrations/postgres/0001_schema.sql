-- ferrosfu store schema, PostgreSQL flavour (same tables and columns as ../sqlite).

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE meetings (
    id           TEXT PRIMARY KEY,
    meeting_code TEXT NOT NULL UNIQUE,
    creator_id   TEXT NULL REFERENCES users (id),
    started_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ NULL,
    settings     JSONB NOT NULL DEFAULT '{}'::jsonb,
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended'))
);

CREATE TABLE participants (
    id           TEXT PRIMARY KEY,
    meeting_id   TEXT NOT NULL REFERENCES meetings (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    display_name TEXT NOT NULL,
    joined_at    TIMESTAMPTZ NOT NULL,
    left_at      TIMESTAMPTZ NULL,
    stats        JSONB NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX participants_meeting_id ON participants (meeting_id);

CREATE TABLE media_tracks (
    id             TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants (id),
    kind           TEXT NOT NULL CHECK (kind IN ('audio', 'video')),
    codec          TEXT NOT NULL,
    parameters     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX media_tracks_participant_id ON media_tracks (participant_id);

CREATE TABLE recordings (
    id               TEXT PRIMARY KEY,
    meeting_id       TEXT NOT NULL REFERENCES meetings (id),
    storage_path     TEXT NOT NULL,
    size_bytes       BIGINT NULL,
    duration_seconds DOUBLE PRECISION NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('starting', 'recording', 'finalizing', 'done', 'failed')),
    created_at       TIMESTAMPTZ NOT NULL,
    metadata         JSONB NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX recordings_meeting_id ON recordings (meeting_id);
CREATE INDEX recordings_status ON recordings (status);
