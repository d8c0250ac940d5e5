//! The worker's SCTP layer (data channels, issue 14), sans IO: a [`SctpAssociation`] wraps one
//! `rtc_sctp` endpoint and association. It is fed the bytes DTLS delivers as application data
//! ([`SctpAssociation::handle_input`]) and produces SCTP packets to hand to DTLS `write`
//! ([`SctpAssociation::poll_transmit`]); time is always an argument.
//!
//! Streams are negotiated out of band, as mediasoup does: outgoing ids are opened with
//! [`SctpAssociation::open_stream`], incoming ids are accepted with
//! [`SctpAssociation::register_inbound`]. Everything else a peer sends — messages on other ids or
//! ids at or above MIS, DCEP (PPID 50), unknown PPIDs, oversize messages — is read, counted in
//! [`SctpCounters`] and dropped.
//!
//! Not wired yet: no transport owns one (next step of issue 14).

mod dcep;
mod guard;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rtc_sctp::{
    Association, AssociationError, AssociationHandle, ClientConfig, DatagramEvent, Endpoint,
    EndpointConfig, Event, Payload, PayloadProtocolIdentifier, ServerConfig, StreamEvent,
    TransportConfig,
};
use rtc_shared::TransportProtocol;

pub use dcep::{Dcep, DcepError, DcepOpen, DcepReliability};
pub use stream::{
    PPID_BINARY, PPID_BINARY_EMPTY, PPID_DCEP, PPID_STRING, PPID_STRING_EMPTY, StreamParams,
};

/// The SCTP port both ends use in WebRTC (RFC 8841 default; mediasoup uses it too).
const SCTP_PORT: u16 = 5000;
/// Virtual addresses: the association runs over DTLS, not over sockets.
const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), SCTP_PORT);
const REMOTE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), SCTP_PORT);
/// Events queued for the owner at most; beyond, messages are dropped and counted.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Bytes the association may hold for reassembly and reordering (the crate's receive buffer).
pub(crate) const MAX_RECEIVE_BUFFER: u32 = 1024 * 1024;

/// Association settings (mediasoup's `numSctpStreams`, `maxSctpMessageSize`,
/// `sctpSendBufferSize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpConfig {
    /// Outgoing streams announced (OS).
    pub os: u16,
    /// Incoming streams accepted (MIS): ids at or above are dropped.
    pub mis: u16,
    /// Largest message sent or delivered.
    pub max_message_size: usize,
    /// Largest sum of buffered amounts over the outgoing streams.
    pub send_buffer_size: usize,
    /// Largest SCTP packet (its DATA payload is this minus the SCTP headers): the path MTU
    /// minus IP/UDP and DTLS overhead.
    pub mtu: u32,
}

impl Default for SctpConfig {
    fn default() -> Self {
        Self {
            os: 1024,
            mis: 1024,
            max_message_size: 262_144,
            send_buffer_size: 262_144,
            mtu: 1130,
        }
    }
}

/// The association's state, as mediasoup's `sctpState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SctpState {
    New,
    Connecting,
    Connected,
    Failed,
    Closed,
}

/// What the association tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SctpEvent {
    StateChanged(SctpState),
    /// A whole message on a registered inbound stream. PPIDs 56/57 give an empty payload.
    Message {
        stream_id: u16,
        ppid: u32,
        payload: Bytes,
    },
    /// An outgoing stream's buffered amount fell to its low threshold.
    BufferedAmountLow {
        stream_id: u16,
    },
    /// The peer reset a registered stream (RFC 6525).
    StreamClosed {
        stream_id: u16,
    },
}

/// Why [`SctpAssociation::send`] refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Larger than `max_message_size`.
    TooLarge,
    /// The buffered amounts would exceed `send_buffer_size` (mediasoup's `sctpsendbufferfull`).
    SendBufferFull,
    /// No outgoing stream opened with this id.
    UnknownStream,
    /// The association is not connected.
    NotConnected,
    /// A PPID other than 51, 53, 56, 57.
    BadPpid,
}

/// What was received, sent and dropped. Drops never close the association.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SctpCounters {
    /// Packets the endpoint could not decode or place, and read errors.
    pub malformed: u64,
    /// Messages on unregistered ids or ids at or above MIS.
    pub unknown_stream: u64,
    /// DCEP messages (PPID 50), valid or not.
    pub dcep_ignored: u64,
    /// Messages with a PPID other than 50, 51, 53, 56, 57.
    pub unknown_ppid: u64,
    /// Messages over `max_message_size`, received or refused for sending.
    pub oversize: u64,
    /// Sends refused because the send buffer was full.
    pub send_buffer_full: u64,
    /// Messages dropped because [`MAX_QUEUED_EVENTS`] were queued.
    pub events_dropped: u64,
    /// Packets that made rtc-sctp panic (caught; the association was dropped).
    pub crate_panics: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Copy, Debug)]
struct Outbound {
    params: StreamParams,
    /// Applied to the crate's stream when it opens.
    low_threshold: usize,
    /// Opened in the association (deferred until connected).
    opened: bool,
}

/// One SCTP association over DTLS. See the module docs.
pub struct SctpAssociation {
    config: SctpConfig,
    client: bool,
    endpoint: Endpoint,
    assoc: Option<(AssociationHandle, Association)>,
    state: SctpState,
    outbound: BTreeMap<u16, Outbound>,
    inbound: BTreeMap<u16, StreamParams>,
    events: VecDeque<SctpEvent>,
    transmits: VecDeque<Bytes>,
    counters: SctpCounters,
    guard: guard::TsnGuard,
}

impl SctpAssociation {
    /// A new association; `client` is the DTLS role (the DTLS client sends the INIT).
    pub fn new(config: SctpConfig, client: bool) -> Self {
        let mut ep_config = EndpointConfig::new();
        ep_config.max_payload_size(rtc_sctp::max_payload_size_for_mtu(
            config.mtu.max(rtc_sctp::MIN_DATA_PACKET_MTU),
        ));
        let server = (!client).then(|| Arc::new(ServerConfig::new(transport_config(&config))));
        let endpoint = Endpoint::new(LOCAL, TransportProtocol::UDP, Arc::new(ep_config), server);
        Self {
            config,
            client,
            endpoint,
            assoc: None,
            state: SctpState::New,
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            counters: SctpCounters::default(),
            guard: guard::TsnGuard::default(),
        }
    }

    /// Starts the association once DTLS is connected: the client sends its INIT, the server
    /// waits for one (and accepts only the first).
    pub fn start(&mut self, now: Instant) {
        if self.state != SctpState::New {
            return;
        }
        if self.client {
            let config = ClientConfig::new(transport_config(&self.config));
            match self.endpoint.connect(now, config, REMOTE) {
                Ok(pair) => self.assoc = Some(pair),
                Err(_) => {
                    self.set_state(SctpState::Failed);
                    return;
                }
            }
        }
        self.set_state(SctpState::Connecting);
        self.pump(now);
    }

    pub fn state(&self) -> SctpState {
        self.state
    }

    pub fn counters(&self) -> SctpCounters {
        self.counters
    }

    pub fn config(&self) -> &SctpConfig {
        &self.config
    }

    /// One SCTP packet, as DTLS delivered it.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if matches!(
            self.state,
            SctpState::New | SctpState::Closed | SctpState::Failed
        ) {
            self.counters.malformed += 1;
            return;
        }
        if !self.guard.inbound(data) {
            self.counters.malformed += 1;
            return;
        }
        let Some((handle, event)) =
            self.endpoint
                .handle(now, REMOTE, None, Bytes::copy_from_slice(data))
        else {
            self.counters.malformed += 1;
            return;
        };
        match event {
            DatagramEvent::NewAssociation(assoc) => {
                if self.assoc.is_none() && !self.client {
                    self.assoc = Some((handle, assoc));
                    // A peer on a slow link resends INIT: later ones must not build more
                    // associations (each would live in the endpoint forever).
                    self.endpoint.reject_new_associations();
                }
            }
            DatagramEvent::AssociationEvent(event) => match &mut self.assoc {
                Some((h, assoc)) if *h == handle => {
                    // Backstop: rtc-sctp 0.21.1 has panicked on forged chunks (see guard.rs).
                    // A panic must not take the worker down; the association may be half
                    // updated, so it is dropped and the owner sees it fail.
                    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        assoc.handle_event(event)
                    }));
                    if handled.is_err() {
                        self.counters.malformed += 1;
                        self.counters.crate_panics += 1;
                        self.assoc = None;
                        let end = if self.state == SctpState::Connected {
                            SctpState::Closed
                        } else {
                            SctpState::Failed
                        };
                        self.set_state(end);
                        return;
                    }
                }
                _ => self.counters.malformed += 1,
            },
            _ => self.counters.malformed += 1,
        }
        self.pump(now);
    }

    /// The earliest instant [`Self::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.assoc.as_ref().and_then(|(_, a)| a.poll_timeout())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, assoc)) = &mut self.assoc {
            if assoc.poll_timeout().is_some_and(|t| t <= now) {
                assoc.handle_timeout(now);
            }
        }
        self.pump(now);
    }

    /// The next SCTP packet to hand to DTLS `write`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.transmits.is_empty() {
            self.pump(now);
        }
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SctpEvent> {
        self.events.pop_front()
    }

    /// Opens (or reconfigures) an outgoing stream; deferred until connected.
    pub fn open_stream(&mut self, stream_id: u16, params: StreamParams) -> Result<(), SendError> {
        if stream_id >= self.config.os {
            return Err(SendError::UnknownStream);
        }
        let low_threshold = self.outbound.get(&stream_id).map_or(0, |o| o.low_threshold);
        self.outbound.insert(
            stream_id,
            Outbound {
                params,
                low_threshold,
                opened: false,
            },
        );
        self.open_pending();
        Ok(())
    }

    /// Accepts messages on an incoming stream id (below MIS).
    pub fn register_inbound(&mut self, stream_id: u16, params: StreamParams) -> bool {
        if stream_id >= self.config.mis {
            return false;
        }
        self.inbound.insert(stream_id, params);
        true
    }

    /// Stops accepting messages on an incoming stream id.
    pub fn unregister_inbound(&mut self, stream_id: u16) {
        self.inbound.remove(&stream_id);
    }

    /// Sends one message on an outgoing stream.
    pub fn send(
        &mut self,
        stream_id: u16,
        ppid: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), SendError> {
        self.send_bytes(stream_id, ppid, Bytes::copy_from_slice(payload), now)
    }

    /// [`Self::send`] without a copy (a fan-out shares one `Bytes`).
    pub fn send_bytes(
        &mut self,
        stream_id: u16,
        ppid: u32,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), SendError> {
        if payload.len() > self.config.max_message_size {
            self.counters.oversize += 1;
            return Err(SendError::TooLarge);
        }
        let ppi = stream::outgoing_ppi(ppid, payload.is_empty()).ok_or(SendError::BadPpid)?;
        if self.state != SctpState::Connected {
            return Err(SendError::NotConnected);
        }
        match self.outbound.get(&stream_id) {
            Some(o) if o.opened => {}
            _ => return Err(SendError::UnknownStream),
        }
        if self.total_buffered() + payload.len() > self.config.send_buffer_size {
            self.counters.send_buffer_full += 1;
            return Err(SendError::SendBufferFull);
        }
        // RFC 8831 §6.6: an empty message is one byte with an "empty" PPID.
        let wire = if payload.is_empty() {
            Bytes::from_static(&[0])
        } else {
            payload
        };
        let Some((_, assoc)) = &mut self.assoc else {
            return Err(SendError::NotConnected);
        };
        let mut s = assoc
            .stream(stream_id)
            .map_err(|_| SendError::UnknownStream)?;
        match s.write_chunk_with_ppi(now, &wire, ppi) {
            Ok(_) => {}
            Err(rtc_shared::error::Error::ErrOutboundPacketTooLarge) => {
                self.counters.oversize += 1;
                return Err(SendError::TooLarge);
            }
            Err(_) => return Err(SendError::UnknownStream),
        }
        self.counters.messages_out += 1;
        self.counters.bytes_out += u64::try_from(wire.len()).unwrap_or(u64::MAX);
        self.pump(now);
        Ok(())
    }

    /// Sends a DCEP message (PPID 50) on an outgoing stream. The worker answers no DCEP today
    /// (negotiated channels only); this exists for the in-band policy and for tests that play a
    /// browser opening a channel in band.
    pub fn send_dcep(&mut self, stream_id: u16, msg: &Dcep, now: Instant) -> Result<(), SendError> {
        if self.state != SctpState::Connected {
            return Err(SendError::NotConnected);
        }
        if !self.outbound.get(&stream_id).is_some_and(|o| o.opened) {
            return Err(SendError::UnknownStream);
        }
        let mut buf = bytes::BytesMut::new();
        msg.marshal_to(&mut buf);
        let Some((_, assoc)) = &mut self.assoc else {
            return Err(SendError::NotConnected);
        };
        let mut s = assoc
            .stream(stream_id)
            .map_err(|_| SendError::UnknownStream)?;
        s.write_chunk_with_ppi(now, &buf.freeze(), PayloadProtocolIdentifier::Dcep)
            .map_err(|_| SendError::TooLarge)?;
        self.pump(now);
        Ok(())
    }

    /// Bytes queued or in flight on an outgoing stream (0 if unknown).
    pub fn buffered_amount(&mut self, stream_id: u16) -> usize {
        match &mut self.assoc {
            Some((_, assoc)) if self.outbound.get(&stream_id).is_some_and(|o| o.opened) => assoc
                .stream(stream_id)
                .and_then(|s| s.buffered_amount())
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Sum of the buffered amounts of the outgoing streams.
    pub fn total_buffered(&mut self) -> usize {
        let ids: Vec<u16> = self.outbound.keys().copied().collect();
        ids.into_iter().map(|id| self.buffered_amount(id)).sum()
    }

    /// [`SctpEvent::BufferedAmountLow`] comes when the stream's buffered amount falls to `n`.
    pub fn set_buffered_amount_low_threshold(&mut self, stream_id: u16, n: usize) {
        let Some(o) = self.outbound.get_mut(&stream_id) else {
            return;
        };
        o.low_threshold = n;
        if o.opened {
            if let Some((_, assoc)) = &mut self.assoc {
                if let Ok(mut s) = assoc.stream(stream_id) {
                    let _ = s.set_buffered_amount_low_threshold(n);
                }
            }
        }
    }

    /// Closes a stream both ways: forgets it and, if it was open, resets its outgoing side
    /// (RFC 6525) so the peer's channel closes.
    pub fn close_stream(&mut self, stream_id: u16, now: Instant) {
        let was_inbound = self.inbound.remove(&stream_id).is_some();
        let was_outbound = self.outbound.remove(&stream_id).is_some();
        if !(was_inbound || was_outbound) {
            return;
        }
        if let Some((_, assoc)) = &mut self.assoc {
            if let Ok(mut s) = assoc.stream(stream_id) {
                let _ = s.close(now);
            }
        }
        self.pump(now);
    }

    fn set_state(&mut self, state: SctpState) {
        if self.state != state {
            self.state = state;
            // State changes always get through: they are few.
            self.events.push_back(SctpEvent::StateChanged(state));
        }
    }

    fn push_event(&mut self, event: SctpEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.counters.events_dropped += 1;
        } else {
            self.events.push_back(event);
        }
    }

    /// Opens the outgoing streams registered while not connected.
    fn open_pending(&mut self) {
        if self.state != SctpState::Connected {
            return;
        }
        let Some((_, assoc)) = &mut self.assoc else {
            return;
        };
        for (&id, o) in self.outbound.iter_mut().filter(|(_, o)| !o.opened) {
            let opened = match assoc.open_stream(id, PayloadProtocolIdentifier::Binary) {
                Ok(s) => Some(s),
                // The peer's DATA created it first.
                Err(_) => assoc.stream(id).ok(),
            };
            if let Some(mut s) = opened {
                let (unordered, kind, value) = o.params.reliability();
                let _ = s.set_reliability_params(unordered, kind, value);
                let _ = s.set_buffered_amount_low_threshold(o.low_threshold);
                o.opened = true;
            }
        }
    }

    /// Moves everything the association has to say into `events` and `transmits`.
    fn pump(&mut self, now: Instant) {
        let Some((handle, assoc)) = &mut self.assoc else {
            return;
        };
        let handle = *handle;
        while let Some(ev) = assoc.poll_endpoint_event() {
            self.endpoint.handle_event(handle, ev);
        }
        let mut readable = Vec::new();
        let mut became_connected = false;
        let mut lost = None;
        let mut other = Vec::new();
        while let Some(ev) = assoc.poll() {
            match ev {
                Event::Connected => became_connected = true,
                Event::HandshakeFailed { .. } => lost = Some(SctpState::Failed),
                Event::AssociationLost {
                    reason: AssociationError::Reset,
                    id,
                } => other.push(SctpEvent::StreamClosed { stream_id: id }),
                Event::AssociationLost { .. } => {
                    lost.get_or_insert(SctpState::Closed);
                }
                Event::Stream(StreamEvent::Readable { id }) => readable.push(id),
                Event::Stream(StreamEvent::BufferedAmountLow { id }) => {
                    other.push(SctpEvent::BufferedAmountLow { stream_id: id })
                }
                _ => {}
            }
        }
        // Streams the peer's DATA opened are reached through `stream(id)`; the accept queue
        // would otherwise grow with every new id.
        while assoc.accept_stream().is_some() {}
        while let Some(t) = assoc.poll_transmit(now) {
            if let Payload::RawEncode(packets) = t.message {
                for p in &packets {
                    self.guard.outbound(p);
                }
                self.transmits.extend(packets);
            }
        }
        if became_connected && self.state == SctpState::Connecting {
            self.set_state(SctpState::Connected);
            self.open_pending();
        }
        for id in readable {
            self.drain(id);
        }
        for ev in other {
            let known = match &ev {
                SctpEvent::BufferedAmountLow { stream_id } => self.outbound.contains_key(stream_id),
                SctpEvent::StreamClosed { stream_id } => {
                    self.inbound.contains_key(stream_id) || self.outbound.contains_key(stream_id)
                }
                _ => true,
            };
            if known {
                self.push_event(ev);
            }
        }
        if let Some(state) = lost {
            if matches!(self.state, SctpState::Connecting | SctpState::Connected) {
                self.set_state(if self.state == SctpState::Connecting {
                    SctpState::Failed
                } else {
                    state
                });
            }
        }
        // Opening streams or draining may have queued packets (SACKs, resets).
        if let Some((_, assoc)) = &mut self.assoc {
            while let Some(t) = assoc.poll_transmit(now) {
                if let Payload::RawEncode(packets) = t.message {
                    for p in &packets {
                        self.guard.outbound(p);
                    }
                    self.transmits.extend(packets);
                }
            }
        }
    }

    /// Reads every whole message of a stream (Readable is edge-triggered), delivering those of
    /// registered streams and counting the rest.
    fn drain(&mut self, id: u16) {
        let max = self.config.max_message_size;
        let accepted = id < self.config.mis && self.inbound.contains_key(&id);
        loop {
            let Some((_, assoc)) = &mut self.assoc else {
                return;
            };
            let Ok(mut s) = assoc.stream(id) else {
                return;
            };
            let chunks = match s.read_sctp() {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(_) => {
                    self.counters.malformed += 1;
                    return;
                }
            };
            let ppid = stream::ppid_number(chunks.ppi);
            if ppid == Some(PPID_DCEP) {
                // Parsed only to be sure it is DCEP at all; either way it is dropped.
                let _ = chunks.to_payload(max).map(|p| Dcep::parse(&p));
                self.counters.dcep_ignored += 1;
                continue;
            }
            let Some(ppid) = ppid else {
                self.counters.unknown_ppid += 1;
                continue;
            };
            if !accepted {
                self.counters.unknown_stream += 1;
                continue;
            }
            let Ok(data) = chunks.to_payload(max) else {
                self.counters.oversize += 1;
                continue;
            };
            let payload = match ppid {
                PPID_STRING_EMPTY | PPID_BINARY_EMPTY => Bytes::new(),
                _ => data.freeze(),
            };
            self.counters.messages_in += 1;
            self.counters.bytes_in += u64::try_from(payload.len()).unwrap_or(u64::MAX);
            self.push_event(SctpEvent::Message {
                stream_id: id,
                ppid,
                payload,
            });
        }
    }
}

impl std::fmt::Debug for SctpAssociation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SctpAssociation")
            .field("client", &self.client)
            .field("state", &self.state)
            .field("outbound", &self.outbound.len())
            .field("inbound", &self.inbound.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn transport_config(config: &SctpConfig) -> TransportConfig {
    TransportConfig::default()
        .with_sctp_port(SCTP_PORT)
        .with_max_receive_buffer_size(MAX_RECEIVE_BUFFER)
        .with_max_message_size(u32::try_from(config.max_message_size).unwrap_or(u32::MAX))
        .with_max_num_outbound_streams(config.os)
        .with_max_num_inbound_streams(config.mis)
}
