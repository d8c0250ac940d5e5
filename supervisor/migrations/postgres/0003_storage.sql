-- Object storage of recordings (issue 19): `storage_url` (s3://bucket/key) once a recording's
-- file is uploaded, and status `uploading` while it waits for that. Same columns as ../sqlite.

ALTER TABLE recordings ADD COLUMN storage_url TEXT NULL;
ALTER TABLE recordings DROP CONSTRAINT recordings_status_check;
ALTER TABLE recordings ADD CONSTRAINT recordings_status_check
    CHECK (status IN ('starting', 'recording', 'finalizing', 'uploading', 'done', 'failed'));
