//! Arbitrary SCTP input to a connected server-role [`SctpAssociation`] (the worker's usual role:
//! mediasoup-client is DTLS client): packets as given, packets with a valid common header
//! (the association's verification tag and CRC-32c patched in, so the chunks reach the
//! association), time steps, and real traffic from a client-role peer. Nothing may panic, and
//! the server's state may only move forward.
//!
//! Input: a sequence of ops, each one tag byte then its operands:
//! - `0, n, n bytes`: a raw packet;
//! - `1, n, n bytes`: chunks after a valid common header;
//! - `2, ms`: advance time by `ms * 4` milliseconds and run both timers;
//! - `3, id, n`: the client sends `n * 64` bytes on stream `id` (opened on first use);
//! - `4, id`: the server registers inbound stream `id`; `5, id`: the server closes stream `id`;
//! - `6, delta, id, ppid, n, n bytes`: an unordered DATA chunk (one whole message), TSN `delta + 1`
//!   after the client's last, on stream `id` with PPID `ppid`, in a valid packet;
//! - `7, d0, d1`: a FORWARD-TSN to the client's last TSN plus the little-endian u16 `d`.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run sctp -- -max_total_time=60

use std::time::{Duration, Instant};

use ferrosfu_worker_core::{
    SctpAssociation, SctpConfig, SctpCounters, SctpState, SctpStreamParams as StreamParams,
};

/// CRC-32c (Castagnoli, reflected), as SCTP's checksum.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

struct Pair {
    now: Instant,
    client: SctpAssociation,
    server: SctpAssociation,
    /// The verification tag the server expects (from the client's packets).
    vtag: [u8; 4],
    /// The TSN of the client's last DATA chunk.
    last_tsn: u32,
}

/// Notes the tag and the last DATA TSN of a client packet.
fn observe(pair_vtag: &mut [u8; 4], last_tsn: &mut u32, p: &[u8]) {
    if p.len() >= 8 {
        pair_vtag.copy_from_slice(&p[4..8]);
    }
    let mut off = 12;
    while let Some(h) = p.get(off..off + 4) {
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if h[0] == 0 {
            if let Some(t) = p.get(off + 4..off + 8) {
                *last_tsn = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            }
        }
        off += len.max(4).next_multiple_of(4);
    }
}

/// A packet to the server with a valid common header around `chunks`.
fn valid_packet(vtag: [u8; 4], chunks: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + chunks.len());
    p.extend_from_slice(&5000u16.to_be_bytes());
    p.extend_from_slice(&5000u16.to_be_bytes());
    p.extend_from_slice(&vtag);
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(chunks);
    let crc = crc32c(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

impl Pair {
    fn exchange(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(p) = self.client.poll_transmit(self.now) {
                observe(&mut self.vtag, &mut self.last_tsn, &p);
                self.server.handle_input(&p, self.now);
                moved = true;
            }
            while let Some(p) = self.server.poll_transmit(self.now) {
                self.client.handle_input(&p, self.now);
                moved = true;
            }
            while self.client.poll_event().is_some() {}
            while self.server.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.exchange();
    }
}

fn rank(s: SctpState) -> u8 {
    match s {
        SctpState::New => 0,
        SctpState::Connecting => 1,
        SctpState::Connected => 2,
        SctpState::Failed | SctpState::Closed => 3,
    }
}

/// One input.
pub fn run(data: &[u8]) {
    outcome(data);
}

/// Runs one input; the server's counters at the end (for the seeds' outcome test).
pub fn outcome(data: &[u8]) -> SctpCounters {
    let config = SctpConfig {
        mis: 64,
        os: 64,
        max_message_size: 64 * 1024,
        send_buffer_size: 64 * 1024,
        ..SctpConfig::default()
    };
    let mut pair = Pair {
        now: Instant::now(),
        client: SctpAssociation::new(config, true),
        server: SctpAssociation::new(config, false),
        vtag: [0; 4],
        last_tsn: 0,
    };
    pair.server.start(pair.now);
    pair.client.start(pair.now);
    pair.exchange();
    assert_eq!(pair.server.state(), SctpState::Connected);
    pair.server.register_inbound(1, StreamParams::default());

    let mut rest = data;
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    };
    let mut rank_seen = rank(pair.server.state());
    while let Some(&[op]) = take(1) {
        match op % 8 {
            0 | 1 => {
                let Some(&[n]) = take(1) else { break };
                let Some(body) = take(usize::from(n)) else {
                    break;
                };
                let packet = if op % 8 == 0 {
                    body.to_vec()
                } else {
                    valid_packet(pair.vtag, body)
                };
                pair.server.handle_input(&packet, pair.now);
                pair.exchange();
            }
            2 => {
                let Some(&[ms]) = take(1) else { break };
                pair.advance(Duration::from_millis(u64::from(ms) * 4));
            }
            3 => {
                let Some(&[id, n]) = take(2) else { break };
                let id = u16::from(id);
                let _ = pair.client.open_stream(id, StreamParams::default());
                let payload = vec![id as u8; usize::from(n) * 64];
                let _ = pair.client.send(id, 53, &payload, pair.now);
                pair.exchange();
            }
            4 => {
                let Some(&[id]) = take(1) else { break };
                pair.server
                    .register_inbound(u16::from(id), StreamParams::default());
            }
            5 => {
                let Some(&[id]) = take(1) else { break };
                pair.server.close_stream(u16::from(id), pair.now);
                pair.exchange();
            }
            6 => {
                let Some(&[delta, id, ppid, n]) = take(4) else {
                    break;
                };
                let Some(body) = take(usize::from(n)) else {
                    break;
                };
                let tsn = pair.last_tsn.wrapping_add(1 + u32::from(delta));
                // Unordered (U|B|E): no SSN to get right.
                let mut chunk = vec![0u8, 0x07];
                chunk.extend_from_slice(&u16::try_from(16 + body.len()).unwrap_or(0).to_be_bytes());
                chunk.extend_from_slice(&tsn.to_be_bytes());
                chunk.extend_from_slice(&u16::from(id).to_be_bytes());
                chunk.extend_from_slice(&0u16.to_be_bytes());
                chunk.extend_from_slice(&u32::from(ppid).to_be_bytes());
                chunk.extend_from_slice(body);
                chunk.resize(chunk.len().next_multiple_of(4), 0);
                pair.server
                    .handle_input(&valid_packet(pair.vtag, &chunk), pair.now);
                pair.exchange();
            }
            _ => {
                let Some(&[d0, d1]) = take(2) else { break };
                let new_cum = pair
                    .last_tsn
                    .wrapping_add(u32::from(u16::from_le_bytes([d0, d1])));
                let mut chunk = vec![192u8, 0, 0, 8];
                chunk.extend_from_slice(&new_cum.to_be_bytes());
                pair.server
                    .handle_input(&valid_packet(pair.vtag, &chunk), pair.now);
                pair.exchange();
            }
        }
        let r = rank(pair.server.state());
        assert!(
            r >= rank_seen,
            "state went back to {:?}",
            pair.server.state()
        );
        rank_seen = r;
        let c = pair.server.counters();
        assert!(c.messages_in <= c.bytes_in.max(c.messages_in));
    }
    pair.advance(Duration::from_secs(2));
    pair.server.counters()
}
