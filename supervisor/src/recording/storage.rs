//! Object storage of finished recordings (`[recording.storage]`): S3 or an S3-compatible server.
//!
//! `object_store` (Apache Arrow's, the `aws` feature only) does the S3 protocol: SigV4 signing,
//! multipart uploads, SHA-256 checksums on every request (`x-amz-checksum-sha256`, checked by
//! the server), presigned URLs. It shares reqwest/hyper/rustls with what we build already;
//! `aws-sdk-s3` would add the whole smithy runtime for the same five calls.
//!
//! A file up to `part_size` goes up in one PUT; a larger one as a multipart upload of
//! `part_size` parts read from disk one at a time (memory stays at one part per upload).
//! Afterwards the object's size is read back (HEAD) and compared with the file's.

use std::path::Path;
use std::time::Duration;

use axum::http::Method;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::StorageSettings;

/// Why an upload attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// Worth another attempt later (the server is unreachable, busy, or answered 5xx).
    Retry(String),
    /// Another attempt would fail the same way (credentials refused, local file gone).
    Permanent(String),
}

impl UploadError {
    pub fn message(&self) -> &str {
        match self {
            UploadError::Retry(m) | UploadError::Permanent(m) => m,
        }
    }
}

/// Another attempt helps unless the server refused our credentials.
fn classify(what: &str, e: object_store::Error) -> UploadError {
    let msg = format!("{what}: {e}");
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => UploadError::Permanent(msg),
        _ => UploadError::Retry(msg),
    }
}

/// The bucket recordings go to.
#[derive(Debug)]
pub struct Storage {
    s3: AmazonS3,
    settings: StorageSettings,
}

impl Storage {
    pub fn new(settings: StorageSettings) -> Result<Self, String> {
        let c = &settings.credentials;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&c.access_key_id)
            .with_secret_access_key(&c.secret_access_key)
            .with_checksum_algorithm(Checksum::SHA256)
            // A few quick retries inside one attempt; the uploader's own backoff (minutes)
            // covers a server that stays away.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(30),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(300))
                    .with_allow_http(
                        settings
                            .endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            );
        if let Some(t) = &c.session_token {
            b = b.with_token(t);
        }
        if let Some(e) = &settings.endpoint {
            if settings.path_style {
                b = b.with_endpoint(e.trim_end_matches('/'));
            } else {
                // Virtual-hosted style: object_store takes the bucket's own endpoint.
                let mut u = url::Url::parse(e).map_err(|err| format!("{e}: {err}"))?;
                let host = format!("{}.{}", settings.bucket, u.host_str().unwrap_or_default());
                u.set_host(Some(&host))
                    .map_err(|err| format!("{e}: {err}"))?;
                b = b
                    .with_endpoint(u.as_str().trim_end_matches('/'))
                    .with_virtual_hosted_style_request(true);
            }
        } else if !settings.path_style {
            b = b.with_virtual_hosted_style_request(true);
        }
        let s3 = b.build().map_err(|e| format!("recording.storage: {e}"))?;
        Ok(Self { s3, settings })
    }

    pub fn settings(&self) -> &StorageSettings {
        &self.settings
    }

    /// Uploads `file` as `key` (replacing an object of that key: attempts are idempotent).
    pub async fn upload(&self, file: &Path, key: &str) -> Result<(), UploadError> {
        let key = Key::parse(key).map_err(|e| UploadError::Permanent(format!("key {key}: {e}")))?;
        let local = |e: std::io::Error| UploadError::Permanent(format!("{}: {e}", file.display()));
        let mut f = tokio::fs::File::open(file).await.map_err(local)?;
        let len = f.metadata().await.map_err(local)?.len();
        let part = self.settings.part_size as u64;
        if len <= part {
            let mut data = Vec::with_capacity(len as usize);
            f.read_to_end(&mut data).await.map_err(local)?;
            self.s3
                .put(&key, PutPayload::from(data))
                .await
                .map_err(|e| classify("PUT", e))?;
        } else {
            let id = self
                .s3
                .create_multipart(&key)
                .await
                .map_err(|e| classify("CreateMultipartUpload", e))?;
            let parts = self.put_parts(&mut f, len, &key, &id).await;
            let done = match parts {
                Ok(parts) => self
                    .s3
                    .complete_multipart(&key, &id, parts)
                    .await
                    .map_err(|e| classify("CompleteMultipartUpload", e)),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                // Best effort: a bucket lifecycle rule removes what an abort cannot reach.
                let _ = self.s3.abort_multipart(&key, &id).await;
                return Err(e);
            }
        }
        let meta = self
            .s3
            .head(&key)
            .await
            .map_err(|e| classify("HEAD after upload", e))?;
        if meta.size != len {
            return Err(UploadError::Retry(format!(
                "the stored object has {} bytes, the file {len}",
                meta.size
            )));
        }
        Ok(())
    }

    async fn put_parts(
        &self,
        f: &mut tokio::fs::File,
        len: u64,
        key: &Key,
        id: &String,
    ) -> Result<Vec<PartId>, UploadError> {
        let part = self.settings.part_size as u64;
        let local = |e: std::io::Error| UploadError::Permanent(format!("reading the file: {e}"));
        f.seek(std::io::SeekFrom::Start(0)).await.map_err(local)?;
        let mut parts = Vec::new();
        let mut offset = 0u64;
        while offset < len {
            let n = part.min(len - offset) as usize;
            let mut buf = vec![0u8; n];
            f.read_exact(&mut buf).await.map_err(local)?;
            let idx = parts.len();
            let p = self
                .s3
                .put_part(key, id, idx, PutPayload::from(buf))
                .await
                .map_err(|e| classify(&format!("UploadPart {}", idx + 1), e))?;
            parts.push(p);
            offset += n as u64;
        }
        Ok(parts)
    }

    /// A link that downloads the object for `presign_expiry`.
    pub async fn presigned_get(&self, key: &str) -> Result<String, String> {
        let key = Key::parse(key).map_err(|e| format!("key {key}: {e}"))?;
        self.s3
            .signed_url(Method::GET, &key, self.settings.presign_expiry)
            .await
            .map(|u| u.to_string())
            .map_err(|e| format!("presign: {e}"))
    }
}

/// Delay before attempt `n + 1` after `n` failed ones: 1 s doubling to 5 min.
pub(crate) fn backoff(failed_attempts: u32) -> Duration {
    let exp = failed_attempts.saturating_sub(1).min(9);
    Duration::from_secs((1u64 << exp).min(300))
}

/// The object key of an `s3://bucket/key` URL of this bucket.
pub(crate) fn key_of<'a>(settings: &StorageSettings, url: &'a str) -> Option<&'a str> {
    url.strip_prefix("s3://")?
        .strip_prefix(settings.bucket.as_str())?
        .strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let s: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
