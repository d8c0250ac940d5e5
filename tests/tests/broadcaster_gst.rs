//! A GStreamer broadcaster publishes into a room through the REST API exactly as
//! mediasoup-demo's `broadcasters/gstreamer.sh` does (plain transports with comedia, RTCP not
//! muxed, Opus PT 100 / SSRC 1111 and VP8 PT 101 / SSRC 2222 from `gst-launch-1.0` with rtpbin),
//! and a WebRTC peer in the room (protoo + webrtc-rs) receives both tracks.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrosfu_fbs::MediaKind;
use ferrosfu_tests::protoo::{self, ProtooClient};
use ferrosfu_tests::{SupervisorProcess, get_json, join_plain_receiver, post_json};
use serde_json::json;

struct Gst(Child);

impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_broadcaster_reaches_a_webrtc_peer() {
    assert!(
        Command::new("gst-launch-1.0")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "gst-launch-1.0 is missing: run scripts/setup"
    );
    let sup = SupervisorProcess::start_on_loopback("23300-23399", &["--dev"]);
    let room = "gst-room";

    // The WebRTC viewer joins first and is asked to consume what the broadcaster produces.
    let mut viewer = ProtooClient::connect(sup.http, room, "viewer", None)
        .await
        .unwrap();
    let caps = viewer.client_caps().await.unwrap();
    let recv = viewer
        .ok("createWebRtcTransport", json!({"consuming": true}))
        .await
        .unwrap();
    viewer
        .ok(
            "join",
            json!({"displayName": "Viewer", "rtpCapabilities": caps}),
        )
        .await
        .unwrap();

    // The broadcaster, step by step as gstreamer.sh.
    let http = reqwest::Client::new();
    let base = sup.url(&format!("/rooms/{room}/broadcasters"));
    let caps_http = get_json(&http, &sup.url(&format!("/rooms/{room}"))).await;
    assert!(caps_http["codecs"].is_array());
    post_json(
        &http,
        &base,
        json!({"id": "gst", "displayName": "Broadcaster", "device": {"name": "GStreamer"}}),
    )
    .await;
    assert_eq!(
        viewer.wait_for("newPeer").await.unwrap()["data"]["id"],
        "gst"
    );
    let mut ports = Vec::new();
    let mut producer_ids = Vec::new();
    for (kind, pt, ssrc, codec) in [
        (
            "audio",
            100,
            1111,
            json!({"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2, "parameters": {"sprop-stereo": 1}}),
        ),
        (
            "video",
            101,
            2222,
            json!({"mimeType": "video/vp8", "payloadType": 101, "clockRate": 90000}),
        ),
    ] {
        let t = post_json(
            &http,
            &format!("{base}/gst/transports"),
            json!({"type": "plain", "comedia": true, "rtcpMux": false}),
        )
        .await;
        let tid = t["id"].as_str().unwrap();
        assert_eq!(t["ip"], "127.0.0.1");
        ports.push((t["port"].as_u64().unwrap(), t["rtcpPort"].as_u64().unwrap()));
        let p = post_json(
            &http,
            &format!("{base}/gst/transports/{tid}/producers"),
            json!({"kind": kind, "rtpParameters": {
                "codecs": [codec], "encodings": [{"ssrc": ssrc}],
                "rtcp": {"cname": "gst"},
            }}),
        )
        .await;
        assert!(p["id"].is_string(), "{kind} PT {pt}: {p}");
        producer_ids.push(p["id"].as_str().unwrap().to_owned());
    }

    // The viewer accepts both consumers and connects its transport.
    let mut remote = Vec::new();
    for _ in 0..2 {
        let d = viewer.wait_for("newConsumer").await.unwrap()["data"].clone();
        assert_eq!(d["peerId"], "gst");
        remote.push(protoo::consumer_of(&d).unwrap());
    }
    let sub = protoo::connect_subscriber(&mut viewer, &recv, &remote)
        .await
        .unwrap();

    // gst-launch-1.0 sends Opus and VP8 (the pipeline of gstreamer.sh, test sources).
    let ((ap, arp), (vp, vrp)) = (ports[0], ports[1]);
    let pipeline = format!(
        "rtpbin name=rtpbin rtp-profile=avpf \
         audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! \
           audio/x-raw,channels=2,rate=48000 ! opusenc ! rtpopuspay pt=100 ssrc=1111 ! \
           rtprtxqueue ! rtpbin.send_rtp_sink_0 \
         rtpbin.send_rtp_src_0 ! udpsink host=127.0.0.1 port={ap} sync=false async=false \
         rtpbin.send_rtcp_src_0 ! udpsink host=127.0.0.1 port={arp} sync=false async=false \
         videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1 ! \
           videoconvert ! vp8enc target-bitrate=300000 deadline=1 cpu-used=4 keyframe-max-dist=30 ! \
           rtpvp8pay pt=101 ssrc=2222 picture-id-mode=2 ! rtprtxqueue ! rtpbin.send_rtp_sink_1 \
         rtpbin.send_rtp_src_1 ! udpsink host=127.0.0.1 port={vp} sync=false async=false \
         rtpbin.send_rtcp_src_1 ! udpsink host=127.0.0.1 port={vrp} sync=false async=false"
    );
    let gst = Gst(Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap());

    let audio = sub
        .wait_packets(MediaKind::Audio, 25, Duration::from_secs(20))
        .await
        .unwrap();
    let video = sub
        .wait_packets(MediaKind::Video, 25, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(audio.iter().all(|p| !p.payload.is_empty()));
    // A VP8 keyframe reaches the viewer (descriptor S=1 PID 0, then P=0 in the payload header).
    // gst-launch has no RTCP receive path here (as in gstreamer.sh), so PLIs cannot reach it;
    // its encoder sends one every 30 frames.
    let is_key = |d: &[u8]| {
        let skip = if d[0] & 0x80 != 0 {
            let x = d[1];
            let mut n = 2;
            if x & 0x80 != 0 {
                n += if d.get(n).is_some_and(|b| b & 0x80 != 0) {
                    2
                } else {
                    1
                };
            }
            if x & 0x40 != 0 {
                n += 1;
            }
            if x & 0x30 != 0 {
                n += 1;
            }
            n
        } else {
            1
        };
        d[0] & 0x17 == 0x10 && d.len() > skip && d[skip] & 0x01 == 0
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !sub
        .received(MediaKind::Video)
        .iter()
        .any(|p| is_key(&p.payload))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no VP8 keyframe reached the viewer ({} video packets)",
            video.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(gst);

    // A consuming broadcaster (as a REST recorder would be): consume?producerId= answers with
    // the consumer's parameters; unknown producers are 404.
    let tid = join_plain_receiver(
        &http,
        &base,
        json!({"id": "rx", "displayName": "Receiver", "device": {"name": "curl"}, "rtpCapabilities": caps_http}),
        9,
    )
    .await;
    let c = post_json(
        &http,
        &format!(
            "{base}/rx/transports/{tid}/consume?producerId={}",
            producer_ids[1]
        ),
        json!({}),
    )
    .await;
    assert_eq!(c["kind"], "video", "{c}");
    assert_eq!(
        c["rtpParameters"]["codecs"][0]["mimeType"], "video/VP8",
        "{c}"
    );
    let r = http
        .post(format!(
            "{base}/rx/transports/{tid}/consume?producerId=nope"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // DELETE the broadcaster: the viewer is told.
    let r = http.delete(format!("{base}/gst")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        viewer.wait_for("peerClosed").await.unwrap()["data"]["peerId"],
        "gst"
    );
    let _ = sub.close().await;
}
