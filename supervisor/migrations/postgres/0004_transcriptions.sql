-- Live captions (issue 19): the final hypotheses of a room's speech-to-text, one row per
-- utterance of one participant's audio producer. Same columns as ../sqlite.

CREATE TABLE transcriptions (
    id             TEXT PRIMARY KEY,
    meeting_id     TEXT NOT NULL REFERENCES meetings (id),
    participant_id TEXT NOT NULL REFERENCES participants (id),
    producer_id    TEXT NOT NULL,
    text           TEXT NOT NULL CHECK (octet_length(text) BETWEEN 1 AND 4096),
    started_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX transcriptions_meeting_id_started_at ON transcriptions (meeting_id, started_at);
