//! `[recording.storage]`: where finished recordings go (S3 or an S3-compatible server such as
//! MinIO), with its flags. See `crate::recording::storage` for the uploader.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`)
//! or from `credentials_file` (the AWS shared credentials format); they are never logged nor
//! shown by `--print-config`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[recording.storage]` as the file gives it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileStorage {
    pub(super) url: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) path_style: Option<bool>,
    pub(super) keep_local: Option<bool>,
    pub(super) credentials_file: Option<PathBuf>,
    pub(super) profile: Option<String>,
    pub(super) part_size_mb: Option<u64>,
    pub(super) presign_expiry_s: Option<u64>,
    pub(super) give_up_after_s: Option<u64>,
}

/// The storage flags (each also an environment variable).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct StorageCli {
    /// Upload finished recordings to this bucket and prefix, e.g. s3://recordings/node-1
    /// ("off": keep them on the local disk).
    #[arg(
        long = "recording-storage-url",
        env = "FERROSFU_RECORDING_STORAGE_URL",
        value_name = "s3://BUCKET/PREFIX"
    )]
    pub url: Option<String>,

    /// The S3 endpoint, e.g. http://127.0.0.1:9000 for a local MinIO (default: AWS).
    #[arg(
        long = "recording-storage-endpoint",
        env = "FERROSFU_RECORDING_STORAGE_ENDPOINT",
        value_name = "URL"
    )]
    pub endpoint: Option<String>,
}

/// An access key pair. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they came from: "environment" or the file's path.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials(from {})", self.source)
    }
}

/// Where finished recordings are uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageSettings {
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    /// `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key` (MinIO and the like).
    pub path_style: bool,
    /// Keep the local file once uploaded.
    pub keep_local: bool,
    pub credentials: Credentials,
    /// Files larger than this go up in parts of this size (multipart upload).
    pub part_size: usize,
    /// How long a presigned download link is valid.
    pub presign_expiry: Duration,
    /// An upload still failing this long after its first attempt fails for good (the local
    /// file is kept).
    pub give_up_after: Duration,
}

impl StorageSettings {
    /// `s3://bucket/prefix` of the object stored under `key`.
    pub fn object_url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The object key of a local file name.
    pub fn key_for(&self, file_name: &str) -> String {
        if self.prefix.is_empty() {
            file_name.to_owned()
        } else {
            format!("{}/{file_name}", self.prefix)
        }
    }
}

/// Splits `s3://bucket/prefix` into its bucket and prefix.
fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        format!("recording.storage.url {url:?}: use s3://bucket or s3://bucket/prefix")
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(format!(
            "recording.storage.url {url:?}: {bucket:?} is not a bucket name (3-63 of a-z 0-9 . -)"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
        return Err(format!(
            "recording.storage.url {url:?}: bad prefix {prefix:?}"
        ));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// Reads `profile` of an AWS shared credentials file (`[default]`, `aws_access_key_id = …`).
fn credentials_from_file(path: &Path, profile: &str) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("recording.storage.credentials_file {}: {e}", path.display()))?;
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if in_profile {
            let v = Some(v.trim().to_owned());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
            source: path.display().to_string(),
        }),
        _ => Err(format!(
            "recording.storage.credentials_file {}: profile [{profile}] has no aws_access_key_id and aws_secret_access_key",
            path.display()
        )),
    }
}

/// The environment's keys, when both are set.
fn credentials_from_env() -> Option<Credentials> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(Credentials {
        access_key_id: get("AWS_ACCESS_KEY_ID")?,
        secret_access_key: get("AWS_SECRET_ACCESS_KEY")?,
        session_token: get("AWS_SESSION_TOKEN"),
        source: "environment".into(),
    })
}

/// The storage settings from the flags and the file (`None`: recordings stay local).
pub(super) fn merge(
    cli: &StorageCli,
    f: Option<FileStorage>,
) -> Result<Option<StorageSettings>, String> {
    let f = f.unwrap_or_default();
    let Some(url) = cli.url.clone().or(f.url).filter(|u| u != "off") else {
        return Ok(None);
    };
    let (bucket, prefix) = parse_url(&url)?;
    let endpoint = cli.endpoint.clone().or(f.endpoint);
    if let Some(e) = &endpoint {
        let ok = url::Url::parse(e).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(format!(
                "recording.storage.endpoint {e:?}: use http://host:port or https://host"
            ));
        }
    }
    let credentials = match (credentials_from_env(), &f.credentials_file) {
        (Some(c), _) => c,
        (None, Some(path)) => {
            credentials_from_file(path, f.profile.as_deref().unwrap_or("default"))?
        }
        (None, None) => {
            return Err("recording.storage: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or credentials_file".into());
        }
    };
    let part_size_mb = f.part_size_mb.unwrap_or(8);
    if !(5..=5120).contains(&part_size_mb) {
        return Err(format!(
            "recording.storage.part_size_mb {part_size_mb}: S3 takes parts of 5 to 5120 MiB"
        ));
    }
    let presign = f.presign_expiry_s.unwrap_or(3600);
    if !(1..=604_800).contains(&presign) {
        return Err(format!(
            "recording.storage.presign_expiry_s {presign}: 1 to 604800 (7 days)"
        ));
    }
    Ok(Some(StorageSettings {
        bucket,
        prefix,
        endpoint,
        region: f.region.unwrap_or_else(|| "us-east-1".into()),
        path_style: f.path_style.unwrap_or(false),
        keep_local: f.keep_local.unwrap_or(false),
        credentials,
        part_size: usize::try_from(part_size_mb << 20).unwrap_or(usize::MAX),
        presign_expiry: Duration::from_secs(presign),
        give_up_after: Duration::from_secs(f.give_up_after_s.unwrap_or(86_400)),
    }))
}

/// `--print-config`'s view: everything but the keys.
pub(super) fn to_json(s: Option<&StorageSettings>) -> serde_json::Value {
    match s {
        None => serde_json::json!({ "url": "off" }),
        Some(s) => serde_json::json!({
            "url": format!("s3://{}/{}", s.bucket, s.prefix),
            "endpoint": s.endpoint,
            "region": s.region,
            "path_style": s.path_style,
            "keep_local": s.keep_local,
            "credentials": s.credentials.source,
            "part_size_mb": s.part_size >> 20,
            "presign_expiry_s": s.presign_expiry.as_secs(),
            "give_up_after_s": s.give_up_after.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://rec/node-1/").unwrap(),
            ("rec".into(), "node-1".into())
        );
        assert_eq!(parse_url("s3://rec").unwrap(), ("rec".into(), "".into()));
        for bad in [
            "http://rec/x",
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://rec/../x",
            "s3://rec/a//b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_credentials_file_profile_is_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "[other]\naws_access_key_id = X\naws_secret_access_key = Y\n\n[default]\n# keys\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key= wJalrXUtnFEMI\n",
        )
        .unwrap();
        let c = credentials_from_file(&path, "default").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AKIDEXAMPLE", "wJalrXUtnFEMI")
        );
        assert!(!format!("{c:?}").contains("wJalr"));
        assert!(credentials_from_file(&path, "missing").is_err());
    }
}
