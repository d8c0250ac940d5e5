//! One producer `RecvStream` (VP8, 90 kHz, NACK on) fed a real stream — consecutive sequence
//! numbers and timestamps from a fuzzer-chosen start, paced in simulated time — interleaved
//! with stray packets (any sequence number and timestamp, maybe flagged as retransmissions),
//! time steps, sender reports and the periodic NACK / receiver-report calls.
//!
//! Must hold (RFC 3550 A.1 as the core implements it: a jump is held, the very next packet
//! confirms it):
//! - no panic;
//! - `ForwardHeld` comes only after a `Held`, and `take_held()` returns the packet that `Held`
//!   kept (once);
//! - every real packet R_k whose very next arrival is R_{k+1} is forwarded: `Forward` /
//!   `ForwardHeld` on its own arrival, or `Held` then released by `ForwardHeld` on R_{k+1}.
//!   Exempt: R_k or R_{k+1} carries a number a stray (or a real packet from before the
//!   sender's last restart) was already forwarded with in the current sequence space (it is a
//!   duplicate there; no validation can tell which copy is real).
//!
//! Input: start seq (u16), start timestamp (u32), timestamp step per packet, then ops: a burst
//! of real packets, a stray, a time step, RTCP work, a restart of the sender (new sequence and
//! timestamp spaces for the real packets that follow). Payloads are tagged `R<k>` / `S<j>`.
//!
//!   cd worker/core/fuzz && cargo +nightly fuzz run recv_stream -- -max_total_time=60
//!
//! `RECV_STREAM_TRACE=1` prints every arrival and verdict.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Result, Unstructured};
use ferrosfu_worker_core::{NtpClock, RecvStream, RecvVerdict};

/// Ops per input (each real-packet op is a burst of up to 64 packets).
const MAX_OPS: usize = 512;

fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("RECV_STREAM_TRACE").is_some())
}

/// Who sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    /// Real packet number k of the stream.
    Real(u32),
    /// Stray number j.
    Stray(u32),
}

impl From {
    fn payload(self) -> Vec<u8> {
        let (tag, n) = match self {
            From::Real(k) => (b'R', k),
            From::Stray(j) => (b'S', j),
        };
        let mut p = vec![tag];
        p.extend_from_slice(&n.to_be_bytes());
        p
    }
}

struct Run {
    stream: RecvStream,
    now: Instant,
    ntp: NtpClock,
    /// Real packet `base` has sequence number `base_seq` and timestamp `base_ts`; the next
    /// ones follow consecutively (until the sender restarts).
    base: u32,
    base_seq: u16,
    base_ts: u32,
    ts_step: u32,
    /// Real packets sent so far (the next one is R_next).
    next: u32,
    strays: u32,
    /// The previous arrival, and whether it was forwarded on its own arrival.
    prev: Option<(From, u16, bool)>,
    /// The packet the last `Held` kept (who, sequence number), until a `ForwardHeld`.
    held: Option<(From, u16)>,
    /// The previous arrival that was not a retransmission (the only one a packet can confirm).
    last_media: Option<From>,
    /// Wire numbers that packets other than the current run of real ones (strays, real packets
    /// from before the sender's last restart) were forwarded with, in the core's current
    /// sequence space: a real packet on one of them is a duplicate there.
    claimed: HashSet<u16>,
    /// Wire numbers real packets since the sender's last restart were forwarded with.
    own: HashSet<u16>,
}

impl Run {
    fn real_seq(&self, k: u32) -> u16 {
        self.base_seq.wrapping_add((k - self.base) as u16)
    }

    fn real_ts(&self, k: u32) -> u32 {
        self.base_ts
            .wrapping_add((k - self.base).wrapping_mul(self.ts_step))
    }

    /// The sender restarts: new sequence and timestamp spaces from the next real packet.
    fn restart(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        self.base = self.next;
        self.claimed.extend(self.own.drain());
        self.base_seq = u.arbitrary()?;
        self.base_ts = u.arbitrary()?;
        if trace() {
            eprintln!(
                "restart at R{} to seq {} ts {}",
                self.next, self.base_seq, self.base_ts
            );
        }
        Ok(())
    }

    fn real(&mut self) {
        let k = self.next;
        self.next += 1;
        // Paced like the sender's clock: one timestamp step of wall time per packet.
        self.now += Duration::from_micros(u64::from(self.ts_step) * 1_000 / 90);
        self.arrive(From::Real(k), self.real_seq(k), self.real_ts(k), false);
    }

    fn arrive(&mut self, from: From, seq: u16, ts: u32, retransmission: bool) {
        let payload = from.payload();
        // The pair (R_k, R_{k+1}) in one sequence space (no restart of the sender between
        // them), exemptions judged before R_{k+1} can change anything.
        let pair = match (self.prev, from) {
            (Some((From::Real(k), prev_seq, forwarded)), From::Real(k1))
                if k1 == k + 1 && k >= self.base =>
            {
                let exempt = self.claimed.contains(&prev_seq) || self.claimed.contains(&seq);
                Some((k, prev_seq, forwarded, exempt))
            }
            _ => None,
        };
        let v = self
            .stream
            .on_packet(&payload, seq, ts, self.now, retransmission);
        if trace() {
            eprintln!("{from:?} seq {seq} ts {ts} rtx {retransmission}: {v:?}");
        }
        let mut released = None;
        match v {
            RecvVerdict::Forward { .. } => self.claim(from, seq),
            RecvVerdict::ForwardHeld { restart, .. } => {
                let (who, held_seq) = self
                    .held
                    .take()
                    .expect("ForwardHeld only confirms a packet a Held kept");
                assert_eq!(
                    Some(who),
                    self.last_media,
                    "ForwardHeld confirms the packet that arrived just before it"
                );
                let got = self.stream.take_held();
                assert_eq!(
                    got,
                    who.payload(),
                    "take_held returns the packet of the preceding Held ({who:?})"
                );
                self.stream.recycle_held(got);
                if restart {
                    // The core forgets every number received before.
                    self.claimed.clear();
                    self.own.clear();
                }
                self.claim(who, held_seq);
                self.claim(from, seq);
                released = Some(who);
            }
            RecvVerdict::Held => self.held = Some((from, seq)),
            RecvVerdict::Duplicate | RecvVerdict::BadSequence => {}
        }
        if let Some((k, prev_seq, forwarded, exempt)) = pair
            && !exempt
        {
            assert!(
                forwarded || released == Some(From::Real(k)),
                "real packet R{k} (seq {prev_seq}) was followed by R{} (seq {seq}) and never \
                 forwarded (R{} got {v:?})",
                k + 1,
                k + 1,
            );
        }
        let forwarded = matches!(
            v,
            RecvVerdict::Forward { .. } | RecvVerdict::ForwardHeld { .. }
        );
        // Retransmissions arrive on their own stream: they do not come "between" two packets
        // of the media stream as far as a candidate is concerned, but they do for this check.
        self.prev = Some((from, seq, forwarded));
        if !retransmission {
            self.last_media = Some(from);
        }
    }

    /// Notes that `from` was forwarded with number `seq`.
    fn claim(&mut self, from: From, seq: u16) {
        match from {
            From::Real(k) if k >= self.base => self.own.insert(seq),
            _ => self.claimed.insert(seq),
        };
    }

    fn stray(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let j = self.strays;
        self.strays += 1;
        let next_seq = self.real_seq(self.next);
        let seq = if u.arbitrary()? {
            next_seq.wrapping_add(u.int_in_range(-4000..=4000i32)? as u16)
        } else {
            u.arbitrary()?
        };
        let ts = if u.arbitrary()? {
            let next_ts = self.real_ts(self.next);
            next_ts.wrapping_add(u.int_in_range(-900_000..=900_000i32)? as u32)
        } else {
            u.arbitrary()?
        };
        let retransmission = u.ratio(1, 4)?;
        self.arrive(From::Stray(j), seq, ts, retransmission);
        Ok(())
    }

    /// What the producer does periodically and on RTCP: NACKs, receiver reports, SRs.
    fn rtcp(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0..=3u8)? {
            0 => {
                let nacks = self.stream.poll_nacks(self.now);
                assert!(nacks.len() <= 1000, "NACK list bounded");
                let _ = self.stream.nack_timeout();
            }
            1 => {
                let _ = self.stream.report_block(self.now, &self.ntp);
                let _ = self.stream.packets_lost();
                let _ = self.stream.rtp_time_at(self.now);
            }
            2 => {
                let ntp = self
                    .ntp
                    .ntp(self.now)
                    .wrapping_add(u.arbitrary::<i32>()? as u64);
                let rtp = if u.arbitrary()? {
                    self.real_ts(self.next)
                } else {
                    u.arbitrary()?
                };
                self.stream.on_sender_report(ntp, rtp, self.now);
            }
            _ => self.stream.rtt = Some(Duration::from_millis(u.int_in_range(0..=2000)?)),
        }
        Ok(())
    }

    fn op(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0..=8u8)? {
            0..=3 => {
                for _ in 0..u.int_in_range(1..=64u8)? {
                    self.real();
                }
            }
            4 | 5 => self.stray(u)?,
            6 => {
                let ms = if u.ratio(1, 8)? {
                    u.int_in_range(0..=120_000u64)?
                } else {
                    u.int_in_range(0..=2000u64)?
                };
                self.now += Duration::from_millis(ms);
            }
            7 => self.rtcp(u)?,
            _ => self.restart(u)?,
        }
        Ok(())
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let _ = outcome(data);
}

/// Runs one input and returns the stream's (resyncs, packets dropped for their sequence
/// number), `None` for an input too short to start a stream.
pub fn outcome(data: &[u8]) -> Option<(u64, u64)> {
    static START: OnceLock<Instant> = OnceLock::new();
    let now = *START.get_or_init(Instant::now);
    let mut u = Unstructured::new(data);
    let (Ok(start_seq), Ok(start_ts), Ok(ts_step)) = (
        u.arbitrary::<u16>(),
        u.arbitrary::<u32>(),
        u.int_in_range(0..=9000u32),
    ) else {
        return None;
    };
    let mut r = Run {
        stream: RecvStream::new(0x1234, None, None, "video/VP8".into(), 90_000, true),
        now,
        ntp: NtpClock {
            anchor: now,
            anchor_ntp: 3_900_000_000u64 << 32,
        },
        base: 0,
        base_seq: start_seq,
        base_ts: start_ts,
        ts_step,
        next: 0,
        strays: 0,
        prev: None,
        held: None,
        last_media: None,
        claimed: HashSet::new(),
        own: HashSet::new(),
    };
    for _ in 0..MAX_OPS {
        if u.is_empty() || r.op(&mut u).is_err() {
            break;
        }
    }
    // The stream goes on: whatever strays did, two more real packets are forwarded.
    r.real();
    r.real();
    Some((r.stream.resyncs(), r.stream.bad_sequence()))
}
