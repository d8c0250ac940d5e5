-- Live captions (issue 19): the final hypotheses of a room's speech-to-text, one row per
-- utterance of one participant's audio producer. The meeting is the participant's; `text` is 1
-- to 4096 bytes of UTF-8; started_at/ended_at bound the utterance. Same columns as ../postgres.

CREATE TABLE transcriptions (
    id             TEXT NOT NULL PRIMARY KEY,
    meeting_id     TEXT NOT NULL REFERENCES meetings (id),
    participant_id TEXT NOT NULL REFERENCES participants (id),
    producer_id    TEXT NOT NULL,
    text           TEXT NOT NULL CHECK (length(CAST(text AS BLOB)) BETWEEN 1 AND 4096),
    started_at     TEXT NOT NULL,
    ended_at       TEXT NOT NULL
) STRICT;

CREATE INDEX transcriptions_meeting_id_started_at ON transcriptions (meeting_id, started_at);
