-- Chat (issue 14): messages sent on the `chat` data channel, kept so that a peer joining late
-- gets the last ones and operators can read a meeting's chat. Same columns as ../postgres.
-- The meeting is the sender's participant's; `display_name` is the sender's name when it sent
-- the message; `text` is 1 to 4096 bytes of UTF-8 (crate::chat::MAX_CHAT_BYTES).

CREATE TABLE chat_messages (
    id             TEXT NOT NULL PRIMARY KEY,
    meeting_id     TEXT NOT NULL REFERENCES meetings (id),
    participant_id TEXT NOT NULL REFERENCES participants (id),
    display_name   TEXT NOT NULL,
    sent_at        TEXT NOT NULL,
    text           TEXT NOT NULL CHECK (length(CAST(text AS BLOB)) BETWEEN 1 AND 4096)
) STRICT;

CREATE INDEX chat_messages_meeting_id_sent_at ON chat_messages (meeting_id, sent_at);
