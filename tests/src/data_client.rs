//! A data-channel-only WebRTC client on webrtc-rs 0.17, as mediasoup-client runs a transport
//! with SCTP against an ICE-lite SFU: the server hands out ICE, DTLS and SCTP parameters
//! (`createWebRtcTransport` with `sctpCapabilities`), the client builds the remote SDP from
//! them (an `m=application … webrtc-datachannel` answer, `a=sctp-port`, `a=max-message-size`)
//! and sends only its DTLS parameters back (role `client`: the SFU is DTLS server).
//!
//! Channels are `negotiated` with the stream id from `sctpStreamParameters`, as mediasoup-client
//! opens them, so no DCEP goes on the wire. One placeholder channel (created before the offer
//! so that it has an application m-section) tells when the association is up; channels
//! opened after that open at once. Channels are detached and read with a 1 MiB buffer: the
//! stock read loop of webrtc-rs reads into 64 KiB and cannot take larger messages.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use ferrosfu_fbs::{DtlsFingerprint, DtlsParameters, DtlsRole};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use webrtc::api::APIBuilder;
use webrtc::api::setting_engine::{SctpMaxMessageSize, SettingEngine};
use webrtc::data::data_channel::DataChannel;
use webrtc::data_channel::RTCDataChannel;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

/// The stream of the placeholder channel (never used for data; ids are allocated from 0 up).
const PLACEHOLDER_STREAM: u16 = 1000;
const READ_BUFFER: usize = 1 << 20;

/// One message as received: text (PPID 51/56) or binary (53/57).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub is_string: bool,
    pub data: Bytes,
}

/// An open negotiated data channel.
pub struct Channel {
    rtc: Arc<RTCDataChannel>,
    dc: Arc<DataChannel>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Becomes true when the stream is closed (reset by the remote) or fails.
    pub closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.rtc.id())
            .finish()
    }
}

impl Channel {
    pub async fn send(&self, is_string: bool, data: &[u8]) -> Result<()> {
        self.dc
            .write_data_channel(&Bytes::copy_from_slice(data), is_string)
            .await
            .context("write to the data channel")?;
        Ok(())
    }

    /// The next message, within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Message> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .map_err(|_| anyhow!("no message within {timeout:?}"))?
            .ok_or_else(|| anyhow!("channel closed"))
    }

    /// Closes the channel (resets its stream).
    pub async fn close(&self) -> Result<()> {
        self.rtc.close().await?;
        Ok(())
    }
}

/// One peer connection carrying data channels only (one mediasoup transport).
pub struct DataPeer {
    pc: Arc<RTCPeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    sctp_up: watch::Receiver<bool>,
    offer: String,
}

impl std::fmt::Debug for DataPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPeer")
            .field("state", &*self.state.borrow())
            .finish()
    }
}

fn fingerprint_of(sdp: &str) -> Result<DtlsFingerprint> {
    let line = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=fingerprint:"))
        .context("no fingerprint in the local SDP")?;
    let (algorithm, value) = line
        .trim()
        .split_once(' ')
        .context("bad fingerprint line")?;
    Ok(DtlsFingerprint {
        algorithm: algorithm.to_owned(),
        value: value.to_owned(),
    })
}

fn mid_of(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .unwrap_or("0")
        .trim()
        .to_owned()
}

impl DataPeer {
    /// The peer connection and its local offer (one application m-section), gathered.
    pub async fn new() -> Result<DataPeer> {
        let mut s = SettingEngine::default();
        s.set_include_loopback_candidate(true);
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        s.set_network_types(vec![NetworkType::Udp4]);
        s.detach_data_channels();
        // webrtc-rs sends at most 64 KiB unless told; the SFU's `maxMessageSize` then bounds it.
        s.set_sctp_max_message_size_can_send(SctpMaxMessageSize::Unbounded);
        let api = APIBuilder::new().with_setting_engine(s).build();
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        let (tx, state) = watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = tx.send(s);
            Box::pin(async {})
        }));
        let placeholder = pc
            .create_data_channel(
                "placeholder",
                Some(RTCDataChannelInit {
                    negotiated: Some(PLACEHOLDER_STREAM),
                    ..Default::default()
                }),
            )
            .await?;
        let (up_tx, sctp_up) = watch::channel(false);
        placeholder.on_open(Box::new(move || {
            let _ = up_tx.send(true);
            Box::pin(async {})
        }));
        let offer = pc.create_offer(None).await?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await?;
        tokio::time::timeout(Duration::from_secs(10), gathered.recv())
            .await
            .map_err(|_| anyhow!("ICE gathering did not complete"))?;
        let offer = pc.local_description().await.context("no local SDP")?.sdp;
        Ok(DataPeer {
            pc,
            state,
            sctp_up,
            offer,
        })
    }

    /// What `connectWebRtcTransport` needs: role client and the local fingerprint.
    pub fn local_dtls_parameters(&self) -> Result<DtlsParameters> {
        Ok(DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![fingerprint_of(&self.offer)?],
        })
    }

    /// Applies the remote answer built from `transport` (a `createWebRtcTransport` answer in
    /// mediasoup's JSON: iceParameters, iceCandidates, dtlsParameters, sctpParameters).
    pub async fn connect(&self, transport: &Value) -> Result<()> {
        let sctp = &transport["sctpParameters"];
        if !sctp.is_object() {
            bail!("the transport has no sctpParameters: {transport}");
        }
        let ice = &transport["iceParameters"];
        let fp = transport["dtlsParameters"]["fingerprints"]
            .as_array()
            .and_then(|f| {
                f.iter()
                    .find(|f| f["algorithm"] == "sha-256")
                    .or_else(|| f.first())
            })
            .context("no server fingerprint")?;
        let mid = mid_of(&self.offer);
        let mut s = String::new();
        s.push_str("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n");
        s.push_str(&format!(
            "a=group:BUNDLE {mid}\r\na=msid-semantic: WMS *\r\n"
        ));
        s.push_str("m=application 7 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        s.push_str("c=IN IP4 127.0.0.1\r\n");
        s.push_str(&format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
            ice["usernameFragment"]
                .as_str()
                .context("usernameFragment")?,
            ice["password"].as_str().context("password")?
        ));
        s.push_str(&format!(
            "a=fingerprint:{} {}\r\n",
            fp["algorithm"].as_str().unwrap_or("sha-256"),
            fp["value"].as_str().context("fingerprint value")?
        ));
        s.push_str("a=setup:passive\r\n");
        let mut n = 0;
        for (i, c) in transport["iceCandidates"]
            .as_array()
            .context("iceCandidates")?
            .iter()
            .enumerate()
        {
            if c["protocol"] != "udp" {
                continue;
            }
            s.push_str(&format!(
                "a=candidate:srv{i} 1 udp {} {} {} typ host\r\n",
                c["priority"],
                c["address"].as_str().context("address")?,
                c["port"]
            ));
            n += 1;
        }
        if n == 0 {
            bail!("no UDP candidate in {transport}");
        }
        s.push_str("a=end-of-candidates\r\n");
        s.push_str(&format!("a=mid:{mid}\r\n"));
        s.push_str(&format!("a=sctp-port:{}\r\n", sctp["port"]));
        s.push_str(&format!(
            "a=max-message-size:{}\r\n",
            sctp["maxMessageSize"]
        ));
        self.pc
            .set_remote_description(RTCSessionDescription::answer(s)?)
            .await
            .context("apply the remote answer")?;
        Ok(())
    }

    /// Waits until ICE, DTLS and the SCTP association are up.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state.clone();
        let mut up = self.sctp_up.clone();
        tokio::time::timeout(timeout, async {
            state
                .wait_for(|s| {
                    matches!(
                        s,
                        RTCPeerConnectionState::Connected
                            | RTCPeerConnectionState::Failed
                            | RTCPeerConnectionState::Closed
                    )
                })
                .await?;
            if *state.borrow() != RTCPeerConnectionState::Connected {
                bail!("peer connection {}", *state.borrow());
            }
            up.wait_for(|u| *u).await?;
            Ok(())
        })
        .await
        .map_err(|_| anyhow!("not connected with SCTP within {timeout:?}"))?
    }

    /// Opens a negotiated channel on `stream_id` (the association must be up).
    pub async fn open(&self, label: &str, stream_id: u16) -> Result<Channel> {
        if !*self.sctp_up.borrow() {
            bail!("the SCTP association is not up");
        }
        let rtc = self
            .pc
            .create_data_channel(
                label,
                Some(RTCDataChannelInit {
                    negotiated: Some(stream_id),
                    ..Default::default()
                }),
            )
            .await?;
        let dc = rtc.detach().await.context("detach the data channel")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(false);
        let reader = dc.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; READ_BUFFER];
            loop {
                match reader.read_data_channel(&mut buf).await {
                    Ok((0, _)) | Err(_) => break,
                    Ok((n, is_string)) => {
                        let m = Message {
                            is_string,
                            data: Bytes::copy_from_slice(&buf[..n]),
                        };
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = closed_tx.send(true);
        });
        Ok(Channel {
            rtc,
            dc,
            rx,
            closed,
        })
    }

    pub async fn close(&self) -> Result<()> {
        self.pc.close().await?;
        Ok(())
    }
}
