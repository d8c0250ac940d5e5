//! A simulated network for the worker core: real ICE (STUN from rtc-stun), real DTLS (rtc-dtls)
//! and real SRTP on every peer, a seeded [`Link`] per direction (bottleneck, loss, latency), and
//! simulated time. No
//! sockets, no sleeps: everything runs as fast as the CPU allows and is reproducible.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrosfu_fbs::*;
use ferrosfu_worker_core::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::client::{ClientConfig, ClientTransport, Consent, Event as ClientEvent, IceRole};
use crate::data::SctpPeer;
use crate::drive::{self, PEER_PRIORITY, Requests};
use crate::dtls::DtlsSetup;
use crate::link::Link;
use crate::scenario::CONSUMER_VP8_PT;

/// A simulated client peer of one WebRtcTransport: the project's client transport
/// ([`ClientTransport`]: ICE controlling, nominating, then consent checks every second; DTLS as
/// [`DtlsSetup`] says; SRTP) on a simulated link, with NACK generation and receiver reports for
/// what it receives and retransmission of what it sent.
pub struct Peer {
    pub addr: SocketAddr,
    pub server: SocketAddr,
    pub transport_id: String,
    pub client: ClientTransport,
    /// Peer → SFU.
    pub up: Link,
    /// SFU → peer.
    pub down: Link,
    /// Plaintext RTP received (after RTX unwrap for RTX streams: OSN restored).
    pub rx_rtp: Vec<Vec<u8>>,
    /// Every RTP packet as it arrived (decrypted; RTX not unwrapped, nothing deduplicated).
    pub rx_raw: Vec<Vec<u8>>,
    pub rx_rtcp: Vec<Rtcp>,
    /// Plaintext RTP we sent, by (ssrc, seq), to answer NACKs.
    history: HashMap<(u32, u16), Vec<u8>>,
    /// NACK generation for what we receive (subscribers), per media SSRC.
    recv: HashMap<u32, RecvStream>,
    /// RTX SSRC → media SSRC for unwrapping.
    pub rtx_of: HashMap<u32, u32>,
    pub nack_enabled: bool,
    /// (ntp middle, received at) of the last SR per SSRC, for our RRs.
    last_sr: HashMap<u32, (u32, Instant)>,
    next_rr: Instant,
    pub send_rr: bool,
    /// Receiver reports say what Chrome's do: fraction lost, cumulative loss, highest
    /// sequence number and jitter of every stream received. Off by default: only LSR and DLSR
    /// of the streams that sent an SR (what the older scenarios were written against).
    pub rr_loss: bool,
    pub nacks_received: u64,
    /// Padding-only RTX packets received (the SFU's probes).
    pub rx_padding: u64,
    pub retransmissions_sent: u64,
    /// When each packet of [`Peer::rx_raw`] arrived (simulated time), index for index.
    pub rx_times: Vec<Instant>,
    /// The id of the transport-wide-cc header extension in the RTP this peer receives (what
    /// its consumers' `rtp_parameters.header_extensions` say). When set, the peer answers as
    /// Chrome does: it notes the arrival time of every RTP packet that carries the extension
    /// (RTX included) and sends RTCP transport-wide feedback every 100 ms while packets arrive
    /// ([`TwccFeedback`]'s interval: libwebrtc's default at low rates, and mediasoup's), from
    /// its 10 ms tick, so up to 10 ms late. `None` (the default): no feedback.
    pub twcc_ext: Option<u8>,
    /// The peer's transport-wide feedback state (arrivals not reported yet).
    pub twcc: TwccFeedback,
    /// Transport-wide feedback packets sent.
    pub twcc_feedbacks_sent: u64,
    /// The peer's SCTP association (data channels), when its transport has SCTP.
    pub sctp: Option<SctpPeer>,
}

/// One worker core and its client peers on a simulated network, in simulated time.
pub struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub core: WorkerCore,
    pub rng: StdRng,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    /// In flight: (to which peer, or the core when None; over which peer's link; tuple; data).
    items: HashMap<u64, (Option<usize>, usize, Tuple, Vec<u8>)>,
    seq: u64,
    pub peers: Vec<Peer>,
    requests: Requests,
    pub notifications: Vec<Notification>,
    next_peer_tick: Instant,
    pub router: RouterId,
    /// SCTP (data channels) on the transports of peers added from now on.
    pub sctp_options: Option<SctpOptions>,
    /// Datagrams the core sent to an address that is none of the peers' (a pipe's far end):
    /// kept here when `Some`, dropped when `None` (the default).
    pub outside: Option<Vec<(Tuple, Vec<u8>)>>,
}

fn is_rtp(data: &[u8]) -> bool {
    classify(data) == PacketKind::Rtp
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        #[allow(clippy::disallowed_methods)] // the simulation starts at a real instant
        let now = Instant::now();
        Self::new_at(seed, now)
    }

    /// A simulation whose time starts at `now` (two simulations in one time: [`crate::pipe`]).
    pub fn new_at(seed: u64, now: Instant) -> Self {
        let mut sim = Self {
            now,
            start: now,
            core: WorkerCore::new(drive::core_config(seed, now)),
            rng: StdRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            items: HashMap::new(),
            seq: 0,
            peers: Vec::new(),
            requests: Requests::default(),
            notifications: Vec::new(),
            next_peer_tick: now,
            router: RouterId::new("router-1"),
            sctp_options: None,
            outside: None,
        };
        let r = sim.router.clone();
        sim.request("", RequestBody::WorkerCreateRouter { router_id: r })
            .unwrap();
        sim
    }

    /// Sends a request and returns its result (outputs it caused are processed).
    pub fn request(
        &mut self,
        handler: &str,
        body: RequestBody,
    ) -> Result<ResponseBody, RequestFailure> {
        self.request_with_sockets(handler, body, None)
    }

    pub fn request_with_sockets(
        &mut self,
        handler: &str,
        body: RequestBody,
        sockets: Option<Vec<BoundSocket>>,
    ) -> Result<ResponseBody, RequestFailure> {
        let (result, others) = self
            .requests
            .send(&mut self.core, self.now, handler, body, sockets);
        for o in others {
            self.core_output(o);
        }
        self.drain_transmits();
        result
    }

    /// Every datagram the core has, onto the links (GSO batches split into their datagrams).
    fn drain_transmits(&mut self) {
        let mut sent = Vec::new();
        drive::transmits(&mut self.core, self.now, |tuple, d| {
            sent.push((tuple, d.to_vec()))
        });
        for (tuple, d) in sent {
            self.downlink(tuple, d);
        }
    }

    fn downlink(&mut self, tuple: Tuple, data: Vec<u8>) {
        let Some(i) = self.peers.iter().position(|p| p.addr == tuple.remote) else {
            if let Some(out) = self.outside.as_mut() {
                out.push((tuple, data));
            }
            return;
        };
        let rtp = is_rtp(&data);
        if let Some(at) = self.peers[i]
            .down
            .admit_any(self.now, &data, rtp, &mut self.rng)
        {
            self.schedule(at, Some(i), i, tuple, data);
        }
    }

    fn core_output(&mut self, o: Output) {
        match o {
            Output::Notify(n) => self.notifications.push(n),
            Output::Reply(_) | Output::ReleaseSockets(_) | Output::Closed => {}
        }
    }

    /// `data` arrives at `at` (at peer `to`, or at the core), over a link of peer `peer`.
    fn schedule(
        &mut self,
        at: Instant,
        to: Option<usize>,
        peer: usize,
        tuple: Tuple,
        data: Vec<u8>,
    ) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.items.insert(self.seq, (to, peer, tuple, data));
    }

    /// A peer sends a datagram to its transport.
    pub fn peer_send(&mut self, i: usize, data: Vec<u8>) {
        let p = &mut self.peers[i];
        let tuple = Tuple {
            local: p.server,
            remote: p.addr,
            protocol: Protocol::Udp,
        };
        let rtp = is_rtp(&data);
        if let Some(at) = p.up.admit_any(self.now, &data, rtp, &mut self.rng) {
            self.schedule(at, None, i, tuple, data);
        }
    }

    /// Creates a WebRtcTransport and a peer connected to it (ICE + DTLS + SRTP done).
    pub fn add_peer(&mut self, profile: SrtpProfile) -> usize {
        let i = self.add_peer_with(profile, DtlsSetup::default());
        let deadline = self.now + Duration::from_secs(5);
        while !self.peers[i].client.is_connected() {
            assert!(self.now < deadline, "peer {i} did not connect");
            self.step(deadline);
        }
        i
    }

    /// Creates a WebRtcTransport and a peer that connects to it as `setup` says; returns once
    /// `transport.connect` was accepted, without waiting for the handshake.
    pub fn add_peer_with(&mut self, profile: SrtpProfile, setup: DtlsSetup) -> usize {
        let (i, connected) = self.try_add_peer_with(profile, setup);
        connected.unwrap();
        i
    }

    /// [`Self::add_peer_with`], returning what `transport.connect` answered.
    pub fn try_add_peer_with(
        &mut self,
        profile: SrtpProfile,
        setup: DtlsSetup,
    ) -> (usize, Result<ResponseBody, RequestFailure>) {
        let i = self.peers.len();
        let server: SocketAddr = format!("10.0.0.1:{}", 40000 + i).parse().unwrap();
        let addr: SocketAddr = format!("192.168.1.{}:5000", 10 + i).parse().unwrap();
        let tid = format!("transport-{i}");
        let dump = match self
            .request_with_sockets(
                self.router.clone().as_str(),
                RequestBody::RouterCreateWebRtcTransport(WebRtcTransportOptions {
                    enable_tcp: false,
                    sctp: self.sctp_options,
                    ..drive::webrtc_options(
                        &tid,
                        WebRtcTransportListen::Individual(vec![drive::listen(
                            TransportProtocol::Udp,
                            server,
                        )]),
                    )
                }),
                Some(vec![drive::bound(Protocol::Udp, server)]),
            )
            .unwrap()
        {
            ResponseBody::WebRtcTransportDump(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(dump.ice_candidates[0].port, server.port());
        let (dtls, connect) =
            setup.client_dtls(profile, addr, dump.dtls_parameters.fingerprints.clone());
        let client = ClientTransport::new(
            ClientConfig {
                local_ufrag: format!("peer{}", addr.port()),
                local_pwd: String::new(),
                remote: server,
                remote_ufrag: dump.ice_parameters.username_fragment.clone(),
                remote_pwd: dump.ice_parameters.password.clone(),
                role: IceRole::Controlling,
                priority: PEER_PRIORITY,
                tie_breaker: 7,
                consent: Consent::Every(Duration::from_secs(1)),
                profile,
                dtls,
            },
            self.now,
        );
        self.peers.push(Peer {
            addr,
            server,
            transport_id: tid.clone(),
            client,
            up: Link::default(),
            down: Link::default(),
            rx_rtp: Vec::new(),
            rx_raw: Vec::new(),
            rx_rtcp: Vec::new(),
            history: HashMap::new(),
            recv: HashMap::new(),
            rtx_of: HashMap::new(),
            nack_enabled: true,
            last_sr: HashMap::new(),
            next_rr: self.now + Duration::from_millis(500),
            send_rr: true,
            rr_loss: false,
            nacks_received: 0,
            rx_padding: 0,
            retransmissions_sent: 0,
            rx_times: Vec::new(),
            twcc_ext: None,
            twcc: TwccFeedback::default(),
            twcc_feedbacks_sent: 0,
            sctp: self.sctp_options.map(|o| SctpPeer::new(&o)),
        });
        let connected = self.request(
            &tid,
            RequestBody::TransportConnect(ConnectParams::WebRtc {
                dtls_parameters: connect,
            }),
        );
        (i, connected)
    }

    /// Advances to the next event (not past `limit`) and processes it.
    pub fn step(&mut self, limit: Instant) {
        let mut next = limit.min(self.next_peer_tick);
        if let Some(Reverse((t, _))) = self.queue.peek() {
            next = next.min(*t);
        }
        if let Some(t) = self.core.poll_timeout() {
            next = next.min(t);
        }
        if next > self.now {
            self.now = next;
        }
        // Deliveries due.
        while let Some(Reverse((t, id))) = self.queue.peek().copied() {
            if t > self.now {
                break;
            }
            self.queue.pop();
            let (to, peer, tuple, data) = self.items.remove(&id).unwrap();
            match to {
                None => {
                    self.peers[peer].up.on_delivered(data.len());
                    self.core.handle_input(
                        Input::Datagram {
                            tuple,
                            data: &data,
                            arrival: self.now,
                        },
                        self.now,
                    );
                    self.drain();
                }
                Some(i) => {
                    self.peers[peer].down.on_delivered(data.len());
                    self.peer_receive(i, data);
                }
            }
        }
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_input(Input::Timeout, self.now);
            self.drain();
        }
        if self.next_peer_tick <= self.now {
            self.next_peer_tick = self.now + Duration::from_millis(10);
            for i in 0..self.peers.len() {
                self.peer_tick(i);
            }
        }
    }

    /// A datagram from outside (a pipe's far end) arrives at the core now.
    pub fn deliver(&mut self, tuple: Tuple, data: &[u8]) {
        self.core.handle_input(
            Input::Datagram {
                tuple,
                data,
                arrival: self.now,
            },
            self.now,
        );
        self.drain();
    }

    pub fn drain(&mut self) {
        self.drain_transmits();
        while let Some(o) = self.core.poll_output() {
            self.core_output(o);
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.step(until);
        }
    }

    fn peer_tick(&mut self, i: usize) {
        let now = self.now;
        // ICE checks and consent, DTLS retransmissions.
        let c = &mut self.peers[i].client;
        if c.poll_timeout().is_some_and(|t| t <= now) {
            let _ = c.handle_timeout(now);
        }
        self.peer_sctp(i);
        self.flush_client(i);
        // NACKs for what we receive.
        let mut nacks = Vec::new();
        if self.peers[i].nack_enabled {
            for (ssrc, s) in &mut self.peers[i].recv {
                let seqs = s.poll_nacks(now);
                if !seqs.is_empty() {
                    nacks.push(Rtcp::Nack {
                        media_ssrc: *ssrc,
                        seqs,
                    });
                }
            }
        }
        if !nacks.is_empty() {
            self.peer_send_rtcp(i, &nacks);
        }
        // Transport-wide feedback.
        let p = &mut self.peers[i];
        if p.twcc_ext.is_some() && p.twcc.timeout().is_some_and(|t| t <= now) {
            let fb: Vec<Rtcp> = p
                .twcc
                .poll_feedback(now, 0xDEAD_0000 + i as u32)
                .into_iter()
                .map(|f| Rtcp::TransportCc(Box::new(f)))
                .collect();
            if !fb.is_empty() {
                p.twcc_feedbacks_sent += fb.len() as u64;
                self.peer_send_rtcp(i, &fb);
            }
        }
        // Receiver reports.
        if self.peers[i].send_rr && self.peers[i].next_rr <= now {
            self.peers[i].next_rr = now + Duration::from_secs(1);
            let blocks = self.peers[i].report_blocks(now);
            if !blocks.is_empty() {
                self.peer_send_rtcp(
                    i,
                    &[Rtcp::ReceiverReport {
                        ssrc: 0xDEAD_0000 + i as u32,
                        reports: blocks,
                    }],
                );
            }
        }
    }

    pub(crate) fn flush_client(&mut self, i: usize) {
        while let Some(d) = self.peers[i].client.poll_transmit() {
            self.peer_send(i, d);
        }
    }

    pub fn peer_send_rtcp(&mut self, i: usize, items: &[Rtcp]) {
        let wire = build_rtcp(items, 0xDEAD_0000 + i as u32);
        let Ok(data) = self.peers[i].client.protect_rtcp(&wire) else {
            return;
        };
        self.peer_send(i, data.to_vec());
    }

    /// A plaintext RTP packet as peer `i` (connected) would send it: SRTP-protected.
    pub fn protect_rtp(&mut self, i: usize, plain: &[u8]) -> Vec<u8> {
        let c = &mut self.peers[i].client;
        c.protect_rtp(plain).expect("a connected peer").to_vec()
    }

    /// A peer sends a plaintext RTP packet (SRTP-protected on the way out) and keeps it for
    /// retransmission.
    pub fn peer_send_rtp(&mut self, i: usize, plain: Vec<u8>) {
        let h = RtpHeader::parse(&plain).unwrap();
        let data = self.protect_rtp(i, &plain);
        self.peers[i].history.insert((h.ssrc.0, h.seq), plain);
        self.peer_send(i, data);
    }

    fn peer_receive(&mut self, i: usize, data: Vec<u8>) {
        let now = self.now;
        let event = self.peers[i].client.handle_datagram(now, &data);
        self.peer_sctp(i);
        self.flush_client(i);
        match event {
            Some(ClientEvent::Rtp) => {
                let p = &mut self.peers[i];
                let Some(plain) = p.client.unprotect_rtp(&data) else {
                    return;
                };
                let mut plain = plain.to_vec();
                p.rx_raw.push(plain.clone());
                p.rx_times.push(now);
                let h = RtpHeader::parse(&plain).unwrap();
                if let Some(id) = p.twcc_ext
                    && let Some(&[a, b, ..]) = h.extension(&plain, id)
                {
                    p.twcc.on_packet(u16::from_be_bytes([a, b]), h.ssrc.0, now);
                }
                let mut retrans = false;
                if p.rtx_of.contains_key(&h.ssrc.0) && h.payload(&plain).len() < 2 {
                    // Padding only (a probe): no original packet inside.
                    p.rx_padding += 1;
                    return;
                }
                if let Some(&media) = p.rtx_of.get(&h.ssrc.0) {
                    // Unwrap RTX: OSN then the original payload.
                    let payload = h.payload(&plain);
                    let osn = u16::from_be_bytes([payload[0], payload[1]]);
                    let mut h2 = h;
                    h2.payload.0 += 2;
                    let map: [u8; 256] = std::array::from_fn(|i| i as u8);
                    let mut out = Vec::new();
                    write_rewritten(
                        &mut out,
                        &plain,
                        &h2,
                        &Rewrite {
                            ssrc: Ssrc(media),
                            pt: Pt(CONSUMER_VP8_PT),
                            seq: osn,
                            timestamp: h.timestamp,
                            marker: h.marker,
                            ext_map: &map,
                            own: OwnExts::default(),
                        },
                        &[],
                    );
                    plain = out;
                    retrans = true;
                }
                let h = RtpHeader::parse(&plain).unwrap();
                let stream = p.recv.entry(h.ssrc.0).or_insert_with(|| {
                    RecvStream::new(h.ssrc.0, None, None, "video/VP8".into(), 90000, true)
                });
                match stream.on_packet(&plain, h.seq, h.timestamp, now, retrans) {
                    RecvVerdict::Forward { .. } => p.rx_rtp.push(plain),
                    RecvVerdict::ForwardHeld { .. } => {
                        p.rx_rtp.push(stream.take_held());
                        p.rx_rtp.push(plain);
                    }
                    _ => {}
                }
            }
            Some(ClientEvent::Rtcp) => {
                let p = &mut self.peers[i];
                let Some(plain) = p.client.unprotect_rtcp(&data) else {
                    return;
                };
                let items = parse_rtcp(&plain).unwrap_or_default();
                let mut resend = Vec::new();
                for it in &items {
                    match it {
                        Rtcp::SenderReport { ssrc, ntp, .. } => {
                            p.last_sr.insert(*ssrc, ((ntp >> 16) as u32, now));
                        }
                        Rtcp::Nack { media_ssrc, seqs } => {
                            p.nacks_received += 1;
                            for s in seqs {
                                if let Some(pkt) = p.history.get(&(*media_ssrc, *s)) {
                                    resend.push(pkt.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                p.rx_rtcp.extend(items);
                for pkt in resend {
                    self.peers[i].retransmissions_sent += 1;
                    self.peer_send_rtp(i, pkt);
                }
            }
            _ => {}
        }
    }

    pub fn pli_count(&self, i: usize) -> usize {
        self.peers[i]
            .rx_rtcp
            .iter()
            .filter(|r| matches!(r, Rtcp::Pli { .. } | Rtcp::Fir { .. }))
            .count()
    }

    pub fn unique_payloads(&self, i: usize) -> HashSet<Vec<u8>> {
        self.peers[i]
            .rx_rtp
            .iter()
            .map(|p| RtpHeader::parse(p).unwrap().payload(p).to_vec())
            .collect()
    }
}

impl Peer {
    /// The blocks of our next receiver report: one per stream we received an SR for, its
    /// LSR and DLSR only; with [`Peer::rr_loss`], one per stream received, with its loss,
    /// highest sequence number and jitter too (in SSRC order).
    fn report_blocks(&mut self, now: Instant) -> Vec<ReportBlock> {
        let lsr_dlsr = |(lsr, at): (u32, Instant)| {
            let dlsr = (now.duration_since(at).as_secs_f64() * 65536.0) as u32;
            (lsr, dlsr)
        };
        if !self.rr_loss {
            return self
                .last_sr
                .iter()
                .map(|(ssrc, sr)| {
                    let (lsr, dlsr) = lsr_dlsr(*sr);
                    ReportBlock {
                        ssrc: *ssrc,
                        lsr,
                        dlsr,
                        ..Default::default()
                    }
                })
                .collect();
        }
        // The NTP clock only matters to a stream's own SR bookkeeping, which we do not use.
        let ntp = NtpClock {
            anchor: now,
            anchor_ntp: 0,
        };
        let mut ssrcs: Vec<u32> = self.recv.keys().copied().collect();
        ssrcs.sort_unstable();
        ssrcs
            .into_iter()
            .filter_map(|ssrc| {
                let mut block = self.recv.get_mut(&ssrc)?.report_block(now, &ntp)?;
                (block.lsr, block.dlsr) =
                    self.last_sr.get(&ssrc).map_or((0, 0), |sr| lsr_dlsr(*sr));
                Some(block)
            })
            .collect()
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.addr)
            .field("transport_id", &self.transport_id)
            .field("connected", &self.client.is_connected())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now.duration_since(self.start))
            .field("peers", &self.peers)
            .field("in_flight", &self.queue.len())
            .finish_non_exhaustive()
    }
}
