//! Live captions end to end: speech synthesized by `espeak-ng` (Debian), published as Opus
//! through the REST broadcaster API by a `gst-launch-1.0` child, transcribed by the node's
//! engine after `POST /api/rooms/:roomId/transcription`; a protoo peer in the room gets the
//! `transcript` notifications; the final text is scored against the spoken words and the
//! stored rows are read back from `GET /api/rooms/:roomId/transcript`. A transcriber child that
//! is killed comes back; an end-to-end encrypted room is refused.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrosfu_tests::opus_sender::{OPUS_PT, OpusSender};
use ferrosfu_tests::protoo::ProtooClient;
use ferrosfu_tests::{SupervisorProcess, TempDir, get_json, plain_opus_publisher, status_and_json};
use serde_json::json;

/// What the speaker says.
const SPOKEN: &str = "hello world this is a test of the captions";
/// Silence before and after the speech in the published audio, seconds.
const LEAD: f64 = 1.0;
const TAIL: f64 = 4.0;

/// `SPOKEN` as a WAV file with [`LEAD`] and [`TAIL`] seconds of silence around it; returns the
/// speech's length in seconds.
fn speech_wav(path: &Path) -> f64 {
    let raw = path.with_extension("raw.wav");
    let out = Command::new("espeak-ng")
        .args(["-v", "en-us+klatt", "-s", "160", "-w"])
        .arg(&raw)
        .arg(SPOKEN)
        .output()
        .expect("espeak-ng (Debian package espeak-ng; scripts/test installs it)");
    assert!(out.status.success(), "espeak-ng: {out:?}");
    let wav = std::fs::read(&raw).unwrap();
    // RIFF: "fmt " gives the format, "data" the samples (16-bit mono from espeak-ng).
    let mut i = 12;
    let (mut rate, mut data) = (0u32, None);
    while i + 8 <= wav.len() {
        let id = &wav[i..i + 4];
        let len = u32::from_le_bytes(wav[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = &wav[i + 8..(i + 8 + len).min(wav.len())];
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1, "PCM");
            assert_eq!(u16::from_le_bytes([body[2], body[3]]), 1, "mono");
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            data = Some(body.to_vec());
        }
        i += 8 + len + (len & 1);
    }
    let speech = data.expect("a data chunk");
    let silence = |s: f64| vec![0u8; 2 * (s * f64::from(rate)) as usize];
    let mut samples = silence(LEAD);
    samples.extend_from_slice(&speech);
    samples.extend(silence(TAIL));
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    out.extend_from_slice(&samples);
    std::fs::write(path, out).unwrap();
    speech.len() as f64 / 2.0 / f64::from(rate)
}

/// Share of the spoken words the text has (each heard word counted once).
fn word_accuracy(spoken: &str, heard: &str) -> f64 {
    let mut heard: Vec<String> = heard
        .split_whitespace()
        .map(|w| {
            w.to_lowercase()
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_owned()
        })
        .collect();
    let words: Vec<&str> = spoken.split_whitespace().collect();
    let found = words
        .iter()
        .filter(|w| {
            heard
                .iter()
                .position(|h| h == *w)
                .map(|i| heard.remove(i))
                .is_some()
        })
        .count();
    found as f64 / words.len() as f64
}

async fn joined(sup: &SupervisorProcess, room: &str, peer: &str) -> ProtooClient {
    ProtooClient::joined(sup.http, room, peer).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_words_become_captions_for_the_room_and_rows_in_the_store() {
    let dir = TempDir::new("captions-e2e");
    let wav = dir.0.join("speech.wav");
    let speech_s = speech_wav(&wav);
    let db = format!("sqlite://{}", dir.0.join("ferrosfu.db").display());
    let sup = SupervisorProcess::start_on_loopback(
        "29200-29249",
        &[
            "--dev",
            "--database-url",
            &db,
            "--recording-ports",
            "29250-29299",
        ],
    );
    let http = reqwest::Client::new();
    let mut listener = joined(&sup, "cc", "listener").await;
    let base = sup.url("/rooms/cc/broadcasters");
    let (ingest, producer) = plain_opus_publisher(&http, &base, "espeak", OPUS_PT, 5151).await;

    let (status, tap) = status_and_json(http.post(sup.url("/api/rooms/cc/transcription"))).await;
    assert_eq!(status, 201, "{tap}");
    assert_eq!(tap["active"], true);
    // The transcriber is up once it has a pid.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let s = get_json(&http, &sup.url("/api/rooms/cc/transcription")).await;
        if let Some(pid) = s["transcribers"][0]["pid"].as_u64() {
            assert_eq!(s["transcribers"][0]["producerId"], producer.as_str());
            assert_eq!(s["transcribers"][0]["peerId"], "pub");
            break pid;
        }
        assert!(Instant::now() < deadline, "no transcriber: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(pid > 0);

    // Speak.
    let sent = Instant::now();
    let _speaker = OpusSender::start(
        &format!("filesrc location={} ! wavparse", wav.display()),
        5151,
        ingest,
    )
    .unwrap();
    let speech_end = sent + Duration::from_secs_f64(LEAD + speech_s);
    let mut first = None;
    let mut partials = 0;
    let final_ = loop {
        let n = listener.wait_for("transcript").await.unwrap();
        let d = &n["data"];
        assert_eq!(d["peerId"], "pub", "{n}");
        assert_eq!(d["producerId"], producer.as_str(), "{n}");
        assert!(
            d["startMs"].as_u64().unwrap() <= d["endMs"].as_u64().unwrap(),
            "{n}"
        );
        first.get_or_insert_with(Instant::now);
        if d["final"] == true {
            break (Instant::now(), d.clone());
        }
        partials += 1;
    };
    let heard = final_.1["text"].as_str().unwrap().to_owned();
    let accuracy = word_accuracy(SPOKEN, &heard);
    let after_speech = final_.0.saturating_duration_since(speech_end).as_secs_f64();
    let first_after_start = first
        .unwrap()
        .saturating_duration_since(sent + Duration::from_secs_f64(LEAD))
        .as_secs_f64();
    eprintln!(
        "captions: spoken {SPOKEN:?} ({speech_s:.1} s); heard {heard:?}: word accuracy {:.0} %; \
         {partials} partials, the first {first_after_start:.1} s after the speech began; the \
         final {after_speech:.1} s after it ended",
        accuracy * 100.0
    );
    assert!(accuracy >= 0.5, "heard {heard:?} for {SPOKEN:?}");
    assert!(
        after_speech <= 5.0,
        "the final caption came {after_speech:.1} s after the speech"
    );

    // The final caption is stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let t = get_json(&http, &sup.url("/api/rooms/cc/transcript")).await;
        let rows = t["captions"].as_array().unwrap().clone();
        if !rows.is_empty() {
            break rows;
        }
        assert!(Instant::now() < deadline, "no stored caption: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows[0]["text"], heard.as_str());
    assert_eq!(rows[0]["peerId"], "pub");
    assert_eq!(rows[0]["producerId"], producer.as_str());
    assert!(rows[0]["startedAt"].as_str().unwrap() <= rows[0]["endedAt"].as_str().unwrap());

    // A transcriber that dies is started again; the room goes on.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = get_json(&http, &sup.url("/api/rooms/cc/transcription")).await;
        let t = &s["transcribers"][0];
        if t["restarts"].as_u64() >= Some(1) && t["pid"].as_u64().is_some_and(|p| p != pid) {
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listener
        .ok("getRouterRtpCapabilities", json!({}))
        .await
        .unwrap();

    // Stop: the transcriber goes away.
    let (status, s) = status_and_json(http.delete(sup.url("/api/rooms/cc/transcription"))).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["active"], false);
    let s = get_json(&http, &sup.url("/api/rooms/cc/transcription")).await;
    assert_eq!(s["active"], false, "{s}");
    let (status, _) = status_and_json(http.delete(sup.url("/api/rooms/cc/transcription"))).await;
    assert_eq!(status, 404);

    // An end-to-end encrypted room is refused; an unknown one is 404.
    let _secret = joined(&sup, "secret&e2ee=1", "x").await;
    let (status, body) =
        status_and_json(http.post(sup.url("/api/rooms/secret/transcription"))).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = status_and_json(http.post(sup.url("/api/rooms/nope/transcription"))).await;
    assert_eq!(status, 404);
}

/// The engine is configuration: `[captions] command` gets the decoded audio (16 kHz mono S16LE)
/// on stdin and its JSON lines become captions. The stand-in engine tests/engines/energy_stt.py
/// reports stretches of sound (it recognizes no words), so its captions say when and how long
/// the speech was: the plumbing and the timestamps are checked, not recognition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_engine_gets_the_audio_and_its_json_lines_become_captions() {
    let dir = TempDir::new("captions-command");
    let wav = dir.0.join("speech.wav");
    let speech_s = speech_wav(&wav);
    let engine = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("engines/energy_stt.py");
    let cfg = dir.0.join("ferrosfu.toml");
    std::fs::write(
        &cfg,
        format!("[captions]\ncommand = \"python3 {}\"\n", engine.display()),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.0.join("ferrosfu.db").display());
    let sup = SupervisorProcess::start_on_loopback(
        "29300-29349",
        &[
            "--dev",
            "--config",
            cfg.to_str().unwrap(),
            "--database-url",
            &db,
            "--recording-ports",
            "29350-29399",
        ],
    );
    let http = reqwest::Client::new();
    let mut listener = joined(&sup, "cmd", "listener").await;
    let base = sup.url("/rooms/cmd/broadcasters");
    let (ingest, _) = plain_opus_publisher(&http, &base, "espeak", OPUS_PT, 6161).await;
    let (status, tap) = status_and_json(http.post(sup.url("/api/rooms/cmd/transcription"))).await;
    assert_eq!(status, 201, "{tap}");
    assert_eq!(tap["engine"], "command");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = get_json(&http, &sup.url("/api/rooms/cmd/transcription")).await;
        if s["transcribers"][0]["pid"].as_u64().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no transcriber: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _speaker = OpusSender::start(
        &format!("filesrc location={} ! wavparse", wav.display()),
        6161,
        ingest,
    )
    .unwrap();
    let mut partials = 0;
    let d = loop {
        let n = listener.wait_for("transcript").await.unwrap();
        if n["data"]["final"] == true {
            break n["data"].clone();
        }
        partials += 1;
    };
    let text = d["text"].as_str().unwrap();
    let lasted: f64 = text
        .strip_prefix("sound 1 lasted ")
        .and_then(|t| t.strip_suffix(" seconds"))
        .unwrap_or_else(|| panic!("{d}"))
        .parse()
        .unwrap();
    let span_ms = d["endMs"].as_u64().unwrap() - d["startMs"].as_u64().unwrap();
    eprintln!(
        "command engine: {partials} partials, final {text:?} for {speech_s:.1} s of speech, \
         span {span_ms} ms"
    );
    // The engine's sound is the speech without espeak-ng's quiet edges: a little shorter.
    let plausible = |s: f64| s >= speech_s * 0.6 && s <= speech_s + 0.2;
    assert!(plausible(lasted), "{text} for {speech_s:.1} s");
    assert!(
        plausible(span_ms as f64 / 1000.0),
        "{span_ms} ms for {speech_s:.1} s"
    );
    assert!(partials >= 1);
}
