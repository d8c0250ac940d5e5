//! Recordings to object storage (`[recording.storage]`), against a real S3-compatible server:
//! moto in server mode on a loopback port (tests/src/s3.rs), started and killed by the tests.
//!
//! - the uploader sends a 12 MB file as a multipart upload (5 MiB parts) and a presigned URL
//!   gives back the same bytes (SHA-256);
//! - a recording made through the REST API goes to the bucket (status `uploading` → `done`,
//!   `storageUrl`), `GET /api/recordings/:id/file` redirects to a presigned URL that downloads
//!   the same bytes as the recorded file; with the server down the upload is retried, it
//!   survives a supervisor restart, and completes once the server is back.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrosfu::config::{Credentials, StorageSettings};
use ferrosfu::recording::Storage;
use ferrosfu_tests::opus_sender::{OPUS_PT, OpusSender};
use ferrosfu_tests::s3::{ACCESS_KEY_ID, S3Server, SECRET_ACCESS_KEY};
use ferrosfu_tests::{SupervisorProcess, TempDir, get_json, plain_opus_publisher, post_json};
use serde_json::{Value, json};

const BUCKET: &str = "recordings";

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Polls `check` every 100 ms until it returns Some, at most `timeout`.
async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_parts_and_comes_back_the_same() {
    let s3 = tokio::task::block_in_place(|| S3Server::start(BUCKET)).unwrap();
    let dir = TempDir::new("s3-parts");
    // 12 MB of pseudo-random bytes (xorshift): 3 parts of 5 MiB, 5 MiB, ~1.5 MiB.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..12_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = dir.0.join("big.bin");
    std::fs::write(&file, &data).unwrap();

    let storage = Storage::new(StorageSettings {
        bucket: BUCKET.into(),
        prefix: "node-a".into(),
        endpoint: Some(s3.endpoint()),
        region: "us-east-1".into(),
        path_style: true,
        keep_local: false,
        credentials: Credentials {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: SECRET_ACCESS_KEY.into(),
            session_token: None,
            source: "test".into(),
        },
        part_size: 5 << 20,
        presign_expiry: Duration::from_secs(600),
        give_up_after: Duration::from_secs(60),
    })
    .unwrap();
    let t = std::time::Instant::now();
    storage.upload(&file, "node-a/big.bin").await.unwrap();
    eprintln!(
        "12 MB multipart upload to moto: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let keys = tokio::task::block_in_place(|| s3.keys(BUCKET)).unwrap();
    assert_eq!(keys, ["node-a/big.bin"]);

    // Back through a presigned URL, as a player would fetch it.
    let link = storage.presigned_get("node-a/big.bin").await.unwrap();
    assert!(link.contains("X-Amz-Signature="), "{link}");
    assert!(link.contains("X-Amz-Expires=600"), "{link}");
    let got = reqwest::get(&link).await.unwrap();
    assert_eq!(got.status(), 200);
    let got = got.bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));

    // A missing local file is a permanent failure (no retry would help).
    let missing = storage.upload(&dir.0.join("nope.bin"), "node-a/nope").await;
    assert!(
        matches!(missing, Err(ferrosfu::recording::UploadError::Permanent(_))),
        "{missing:?}"
    );
}

/// The supervisor's config: storage at `url` on `endpoint` (path style) and `extra` keys, keys
/// from a credentials file (never in the environment nor logs).
fn storage_config(dir: &Path, url: &str, endpoint: &str, extra: &str) -> PathBuf {
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n"
        ),
    )
    .unwrap();
    let cfg = dir.join("ferrosfu.toml");
    std::fs::write(
        &cfg,
        format!(
            "[recording.storage]\nurl = \"{url}\"\nendpoint = \"{endpoint}\"\npath_style = true\n{extra}credentials_file = \"{}\"\n",
            creds.display()
        ),
    )
    .unwrap();
    cfg
}

/// A supervisor on `dir`'s store and recordings with config `cfg`, media on `rtc_ports`,
/// recorders on `recording_ports`.
fn start_supervisor(
    dir: &Path,
    cfg: &Path,
    rtc_ports: &str,
    recording_ports: &str,
) -> SupervisorProcess {
    let db = format!("sqlite://{}", dir.join("ferrosfu.db").display());
    let recordings = dir.join("recordings");
    SupervisorProcess::start_on_loopback(
        rtc_ports,
        &[
            "--dev",
            "--config",
            cfg.to_str().unwrap(),
            "--database-url",
            &db,
            "--recordings-dir",
            recordings.to_str().unwrap(),
            "--recording-ports",
            recording_ports,
        ],
    )
}

/// `GET /api/recordings/:id/file` must redirect (307): the object's bytes from that link.
async fn download(http: &reqwest::Client, sup: &SupervisorProcess, id: &str) -> bytes::Bytes {
    let r = http
        .get(sup.url(&format!("/api/recordings/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let link = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(link.contains("X-Amz-Signature="), "{link}");
    reqwest::get(&link).await.unwrap().bytes().await.unwrap()
}

/// The recording, as the REST API shows it.
async fn recording(http: &reqwest::Client, sup: &SupervisorProcess, id: &str) -> Value {
    get_json(http, &sup.url(&format!("/api/recordings/{id}"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_go_to_the_bucket_through_an_outage_and_a_restart() {
    let mut s3 = tokio::task::block_in_place(|| S3Server::start(BUCKET)).unwrap();
    let dir = TempDir::new("s3-rec");
    let cfg = storage_config(
        &dir.0,
        &format!("s3://{BUCKET}/node-a"),
        &s3.endpoint(),
        "keep_local = false\n",
    );
    let mut sup = start_supervisor(&dir.0, &cfg, "29000-29049", "29050-29099");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // An Opus publisher (REST broadcaster + gst-launch), recorded for ~2 s.
    let base = sup.url("/rooms/s3/broadcasters");
    let (ingest, producer) = plain_opus_publisher(&http, &base, "gst", OPUS_PT, 4242).await;
    let _tone =
        OpusSender::start("audiotestsrc is-live=true wave=sine freq=440", 4242, ingest).unwrap();
    let record = |sup: &SupervisorProcess| {
        let url = sup.url("/api/rooms/s3/recordings");
        let http = http.clone();
        let producer = producer.clone();
        async move { post_json(&http, &url, json!({ "producerIds": [producer] })).await }
    };
    let first = record(&sup).await;
    let id = first["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = post_json(
        &http,
        &sup.url(&format!("/api/recordings/{id}/stop")),
        json!({}),
    )
    .await;
    let path = PathBuf::from(stopped["path"].as_str().unwrap());
    assert!(
        matches!(stopped["status"].as_str(), Some("uploading" | "done")),
        "{stopped}"
    );
    let done = wait_for(
        "the first recording is uploaded",
        Duration::from_secs(30),
        async || {
            let r = recording(&http, &sup, &id).await;
            (r["status"] == "done").then_some(r)
        },
    )
    .await;
    let key = format!("node-a/{}", path.file_name().unwrap().to_str().unwrap());
    assert_eq!(done["storageUrl"], format!("s3://{BUCKET}/{key}"), "{done}");
    assert_eq!(done["upload"]["attempts"], 1, "{done}");
    assert!(done["upload"]["error"].is_null(), "{done}");
    assert!(
        !path.exists(),
        "keep_local = false: the local file is removed"
    );
    let keys = tokio::task::block_in_place(|| s3.keys(BUCKET)).unwrap();
    assert_eq!(keys, [key.as_str()]);

    // The file endpoint redirects to a presigned URL of the object.
    let body = download(&http, &sup, &id).await;
    assert_eq!(body.len() as u64, done["size"].as_u64().unwrap());
    assert_eq!(sha256(&body[..4]), sha256(b"OggS"), "an Ogg file");

    // The server goes away; a second recording waits in `uploading`, retrying.
    tokio::task::block_in_place(|| s3.kill());
    let second = record(&sup).await;
    let id2 = second["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = post_json(
        &http,
        &sup.url(&format!("/api/recordings/{id2}/stop")),
        json!({}),
    )
    .await;
    assert_eq!(stopped["status"], "uploading", "{stopped}");
    let path2 = PathBuf::from(stopped["path"].as_str().unwrap());
    let local = std::fs::read(&path2).unwrap();
    let r = wait_for(
        "a failed attempt is shown",
        Duration::from_secs(60),
        async || {
            let r = recording(&http, &sup, &id2).await;
            (r["upload"]["attempts"].as_u64() >= Some(2)).then_some(r)
        },
    )
    .await;
    assert_eq!(r["status"], "uploading", "{r}");
    assert!(r["upload"]["error"].as_str().is_some(), "{r}");
    let listed = get_json(&http, &sup.url("/api/recordings?room=s3")).await;
    let row = listed["recordings"]
        .as_array()
        .unwrap_or_else(|| listed.as_array().unwrap())
        .iter()
        .find(|r| r["id"] == id2.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["status"], "uploading", "{listed}");
    // While it waits, the local copy is served.
    let r = http
        .get(sup.url(&format!("/api/recordings/{id2}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The supervisor is killed and started again on the same store: the upload resumes...
    let _ = nix::sys::signal::kill(sup.pid(), nix::sys::signal::Signal::SIGKILL);
    tokio::task::block_in_place(|| sup.wait_exit(Duration::from_secs(10)));
    drop(sup);
    let sup = start_supervisor(&dir.0, &cfg, "29000-29049", "29050-29099");
    // ...and completes once the server is back.
    tokio::task::block_in_place(|| s3.restart(BUCKET)).unwrap();
    let back = std::time::Instant::now();
    let done = wait_for(
        "the second recording is uploaded",
        Duration::from_secs(120),
        async || {
            let r = recording(&http, &sup, &id2).await;
            (r["status"] == "done").then_some(r)
        },
    )
    .await;
    eprintln!(
        "uploaded {:.1} s after the server came back, attempt {}",
        back.elapsed().as_secs_f64(),
        done["upload"]["attempts"]
    );
    assert!(done["upload"]["attempts"].as_u64().unwrap() >= 3, "{done}");
    let key2 = format!("node-a/{}", path2.file_name().unwrap().to_str().unwrap());
    assert_eq!(
        done["storageUrl"],
        format!("s3://{BUCKET}/{key2}"),
        "{done}"
    );
    let body = download(&http, &sup, &id2).await;
    assert_eq!(
        sha256(&body),
        sha256(&local),
        "the object is the recorded file"
    );
    assert!(!path2.exists());

    // The keys never reach the logs.
    let logs: Vec<String> = sup.lines.try_iter().collect();
    assert!(
        !logs.iter().any(|l| l.contains(SECRET_ACCESS_KEY)),
        "a log line has the secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_keeps_failing_gives_up_and_keeps_the_local_file() {
    let dir = TempDir::new("s3-giveup");
    // Nobody listens on the endpoint; attempts fail for 2 s, then the upload gives up.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = storage_config(
        &dir.0,
        &format!("s3://{BUCKET}"),
        &format!("http://127.0.0.1:{port}"),
        "give_up_after_s = 2\n",
    );
    let sup = start_supervisor(&dir.0, &cfg, "29100-29149", "29150-29199");
    let http = reqwest::Client::new();
    let base = sup.url("/rooms/giveup/broadcasters");
    let (ingest, producer) = plain_opus_publisher(&http, &base, "gst", OPUS_PT, 4343).await;
    let _tone = OpusSender::start("audiotestsrc is-live=true", 4343, ingest).unwrap();
    let rec = post_json(
        &http,
        &sup.url("/api/rooms/giveup/recordings"),
        json!({ "producerIds": [producer] }),
    )
    .await;
    let id = rec["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = post_json(
        &http,
        &sup.url(&format!("/api/recordings/{id}/stop")),
        json!({}),
    )
    .await;
    let done = wait_for("the upload gives up", Duration::from_secs(60), async || {
        let r = recording(&http, &sup, &id).await;
        (r["status"] == "done").then_some(r)
    })
    .await;
    assert_eq!(done["upload"]["failed"], true, "{done}");
    assert!(
        done["upload"]["error"].as_str().unwrap().contains("PUT"),
        "{done}"
    );
    assert!(done["storageUrl"].is_null(), "{done}");
    assert!(
        Path::new(stopped["path"].as_str().unwrap()).is_file(),
        "the local file stays"
    );
    let r = http
        .get(sup.url(&format!("/api/recordings/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served from the local disk");
}
