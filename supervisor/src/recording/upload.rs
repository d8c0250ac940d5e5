//! After a recording is finalized and probed: with `[recording.storage]`, its file goes to the
//! bucket (status `uploading`, then `done` with `storageUrl`), else it is `done` on the local
//! disk.
//!
//! An upload that fails is tried again with a backoff (1 s doubling to 5 min) for as long as the
//! server is unreachable or answers 5xx, up to `give_up_after_s` after its first attempt; then,
//! or at once when the server refuses the credentials, the recording is `done` with the file
//! kept locally and `upload.error` saying why. The attempt count and first-attempt time are in
//! the row's metadata, so a supervisor restarted in the middle resumes (`recover`). At most
//! [`UPLOADS_AT_ONCE`] files go up at a time.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::storage::{UploadError, backoff};
use super::{Active, Recordings, View};
use crate::store::RecordingStatus;

/// Uploads running at once; the others wait their turn in status `uploading`.
pub(super) const UPLOADS_AT_ONCE: usize = 2;

/// Where an upload stands (`upload` of a recording; kept in the row's metadata).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadState {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first attempt started (RFC 3339).
    pub since: Option<chrono::DateTime<Utc>>,
    /// The last attempt's error (None once uploaded).
    pub error: Option<String>,
    /// No more attempts: the file stays on the local disk.
    pub failed: bool,
    /// Seconds the successful attempt took.
    pub seconds: Option<f64>,
}

impl Recordings {
    /// The recording's file is finalized and probed (`f` sets its size, duration and streams):
    /// it is done, or, with object storage, uploading.
    pub(super) fn file_ready(self: &Arc<Self>, a: &Arc<Active>, f: impl FnOnce(&mut View)) {
        if self.storage.is_none() {
            self.finish(a, |v| {
                f(v);
                v.status = RecordingStatus::Done;
            });
            return;
        }
        self.update(a, |v| {
            f(v);
            v.status = RecordingStatus::Uploading;
            v.recorder_pid = None;
            v.upload.get_or_insert_with(UploadState::default);
        });
        tokio::spawn(self.clone().upload(a.clone()));
    }

    /// A recording of an earlier run, to be uploaded (or settled) by this one.
    pub(super) fn resume(self: &Arc<Self>, mut v: View) {
        if self.storage.is_none() {
            v.status = RecordingStatus::Done;
            let u = v.upload.get_or_insert_with(UploadState::default);
            u.failed = true;
            u.error = Some("recording.storage is off now: the file stays on the local disk".into());
            tracing::warn!(target: "recording", recording = %v.id, "not uploaded: recording.storage is off");
            self.store.write(v.stored());
            return;
        }
        let (stop, _) = mpsc::channel(1);
        let a = Arc::new(Active {
            view: watch::channel(v.clone()).0,
            stop,
        });
        self.active
            .lock()
            .expect("never held across a panic")
            .insert(v.id.clone(), a.clone());
        self.file_ready(&a, |_| {});
    }

    /// A presigned download link of an uploaded recording (`storage_url`).
    pub(crate) async fn download_link(&self, storage_url: &str) -> Result<String, String> {
        let storage = self
            .storage
            .as_ref()
            .ok_or("recording.storage is off: the stored object cannot be reached")?;
        let key = super::storage::key_of(storage.settings(), storage_url).ok_or_else(|| {
            format!(
                "{storage_url} is not in the configured bucket s3://{}",
                storage.settings().bucket
            )
        })?;
        storage.presigned_get(key).await
    }

    async fn upload(self: Arc<Self>, a: Arc<Active>) {
        let Some(storage) = self.storage.clone() else {
            return;
        };
        let _turn = self.upload_slots.acquire().await;
        let (id, path) = {
            let v = a.view.borrow();
            (v.id.clone(), v.path.clone())
        };
        let name = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| id.clone());
        let s = storage.settings();
        let key = s.key_for(&name);
        loop {
            let mut since = Utc::now();
            self.update(&a, |v| {
                let u = v.upload.get_or_insert_with(UploadState::default);
                u.attempts += 1;
                since = *u.since.get_or_insert(since);
            });
            let t = Instant::now();
            let result = storage.upload(Path::new(&path), &key).await;
            let attempts = a.view.borrow().upload.as_ref().map_or(1, |u| u.attempts);
            match result {
                Ok(()) => {
                    let seconds = t.elapsed().as_secs_f64();
                    let url = s.object_url(&key);
                    tracing::info!(target: "recording", recording = %id, %url, attempts, seconds, "recording uploaded");
                    if !s.keep_local {
                        if let Err(e) = tokio::fs::remove_file(&path).await {
                            tracing::warn!(target: "recording", recording = %id, "uploaded, but the local file stays: {e}");
                        }
                    }
                    self.finish(&a, |v| {
                        v.status = RecordingStatus::Done;
                        v.storage_url = Some(url);
                        let u = v.upload.get_or_insert_with(UploadState::default);
                        u.error = None;
                        u.seconds = Some(seconds);
                    });
                    return;
                }
                Err(e) => {
                    let waited = (Utc::now() - since).to_std().unwrap_or_default();
                    let give_up =
                        matches!(e, UploadError::Permanent(_)) || waited >= s.give_up_after;
                    if give_up {
                        tracing::warn!(target: "recording", recording = %id, attempts, "upload failed for good, the file stays on the local disk: {}", e.message());
                        self.finish(&a, |v| {
                            v.status = RecordingStatus::Done;
                            let u = v.upload.get_or_insert_with(UploadState::default);
                            u.error = Some(e.message().to_owned());
                            u.failed = true;
                        });
                        return;
                    }
                    let wait = backoff(attempts);
                    tracing::warn!(target: "recording", recording = %id, attempts, retry_in_s = wait.as_secs(), "upload failed, will retry: {}", e.message());
                    self.update(&a, |v| {
                        v.upload.get_or_insert_with(UploadState::default).error =
                            Some(e.message().to_owned());
                    });
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
