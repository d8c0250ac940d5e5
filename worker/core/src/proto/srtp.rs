//! SRTP/SRTCP for one transport (RFC 3711, RFC 7714 for AEAD), keyed from DTLS-SRTP keying
//! material (RFC 5764 §4.2). Sans IO and synchronous, on `rtc-srtp`.
//!
//! Inbound packets that fail authentication, replay or are malformed are dropped and counted by
//! reason; they never reach the router.
//!
//! Replay protection follows RFC 3550 A.1 like the streams above it ([`SequenceReplay`]): a
//! standard sliding window lets one authenticated packet far ahead (a buggy sender's stray
//! number) move the window so that every real packet after it is refused as "too old", and
//! refuses a restarted sender's new numbers for as long; here neither can happen.

use std::sync::Arc;

use bytes::BytesMut;
use rtc_shared::error::Error as RtcError;
use rtc_shared::replay_detector::ReplayDetector;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCryptoProvider;
use rtc_srtp::option::ContextOption;
use rtc_srtp::protection_profile::ProtectionProfile;

use crate::proto::seq::SeqTracker;

/// SRTP/SRTCP replay protection (one per SSRC, rtc-srtp's [`ReplayDetector`]) on a
/// [`SeqTracker`]: numbers already received within its 2048-number window are replays; a jump
/// does not move the window until the next number after it confirms it (RFC 3550 A.1); two
/// consecutive numbers that were both received before (a restart that lands just behind) move
/// it the same way. `check` runs before authentication, `accept` after: only authenticated
/// packets change the window.
///
/// SRTP (`pass_jumps`): a jump is authenticated and passed on: the producer stream's own
/// tracker holds it (and checks its timestamps), so a confirmed restart loses nothing. SRTCP:
/// nothing above holds an RTCP packet, so a jump is refused and only remembered as the
/// candidate its successor can confirm. The first of two consecutive duplicates is refused.
///
/// What this gives up against a plain window: an on-path attacker who replays two consecutive
/// captured packets moves the window to them once; the RTP streams above drop replayed media
/// by their own windows and timestamps, and the sender's next packets move the window back.
struct SequenceReplay<const BITS: u32> {
    tracker: SeqTracker<BITS>,
    pending: Option<u64>,
    pass_jumps: bool,
}

impl<const BITS: u32> SequenceReplay<BITS> {
    fn option(pass_jumps: bool) -> ContextOption {
        Box::new(move || -> Box<dyn ReplayDetector> {
            Box::new(SequenceReplay::<BITS> {
                tracker: SeqTracker::default(),
                pending: None,
                pass_jumps,
            })
        })
    }
}

impl<const BITS: u32> ReplayDetector for SequenceReplay<BITS> {
    fn check(&mut self, seq: u64) -> bool {
        self.pending = None;
        let jump = self.tracker.is_unconfirmed_jump(seq);
        if (self.tracker.is_duplicate(seq) || (jump && !self.pass_jumps))
            && !self.tracker.confirms_candidate(seq)
        {
            self.tracker.hold(seq);
            return false;
        }
        self.pending = Some(seq);
        true
    }

    fn accept(&mut self) {
        if let Some(seq) = self.pending.take() {
            // Timestamps are not known here: a confirmed pair of duplicates is a restart.
            self.tracker.check(seq, false, || true);
        }
    }
}

/// The SRTP protection profiles ferrosfu negotiates, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    AeadAes256Gcm,
    AeadAes128Gcm,
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl SrtpProfile {
    pub const PREFERENCE: [SrtpProfile; 4] = [
        SrtpProfile::AeadAes256Gcm,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
    ];

    fn rtc(self) -> ProtectionProfile {
        match self {
            SrtpProfile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
            SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProfile::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpProfile::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }

    /// Master key + salt lengths.
    pub fn key_len(self) -> usize {
        self.rtc().key_len()
    }

    pub fn salt_len(self) -> usize {
        self.rtc().salt_len()
    }

    /// Bytes of DTLS exporter output ("EXTRACTOR-dtls_srtp") this profile needs.
    pub fn keying_material_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }

    /// The IANA DTLS-SRTP protection profile id (use_srtp extension).
    pub fn iana_id(self) -> u16 {
        self.rtc() as u16
    }
}

/// Why an inbound packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpDrop {
    /// Authentication tag (or AEAD) check failed.
    AuthFailed,
    /// Sequence number (SRTP) or index (SRTCP) already seen or too old.
    Replayed,
    /// Too short, or not parsable as RTP/RTCP.
    Malformed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrtpStats {
    pub auth_failed: u64,
    pub replayed: u64,
    pub malformed: u64,
}

#[derive(Debug)]
pub enum SrtpSetupError {
    KeyingMaterial { need: usize, got: usize },
    Crypto(String),
}

impl std::fmt::Display for SrtpSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SrtpSetupError::KeyingMaterial { need, got } => {
                write!(f, "keying material of {got} bytes, profile needs {need}")
            }
            SrtpSetupError::Crypto(e) => write!(f, "srtp context: {e}"),
        }
    }
}

impl std::error::Error for SrtpSetupError {}

/// The two SRTP contexts of a transport: one to unprotect what the remote sends, one to protect
/// what we send.
pub struct SrtpSession {
    profile: SrtpProfile,
    inbound: Context,
    outbound: Context,
    stats: SrtpStats,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("SrtpSession")
            .field("profile", &self.profile)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// Splits DTLS-SRTP keying material `client_key | server_key | client_salt | server_salt`
    /// (RFC 5764 §4.2); `local_is_dtls_client` says which half is ours.
    pub fn from_keying_material(
        profile: SrtpProfile,
        material: &[u8],
        local_is_dtls_client: bool,
        crypto: &Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self, SrtpSetupError> {
        let (k, s) = (profile.key_len(), profile.salt_len());
        if material.len() != profile.keying_material_len() {
            return Err(SrtpSetupError::KeyingMaterial {
                need: profile.keying_material_len(),
                got: material.len(),
            });
        }
        let client_key = &material[..k];
        let server_key = &material[k..2 * k];
        let client_salt = &material[2 * k..2 * k + s];
        let server_salt = &material[2 * k + s..];
        let (local, remote) = if local_is_dtls_client {
            ((client_key, client_salt), (server_key, server_salt))
        } else {
            ((server_key, server_salt), (client_key, client_salt))
        };
        Self::new(profile, local, remote, crypto)
    }

    /// `local`/`remote` are (master key, master salt).
    pub fn new(
        profile: SrtpProfile,
        local: (&[u8], &[u8]),
        remote: (&[u8], &[u8]),
        crypto: &Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self, SrtpSetupError> {
        let ctx = |(key, salt): (&[u8], &[u8])| {
            Context::new(
                key,
                salt,
                profile.rtc(),
                Some(SequenceReplay::<16>::option(true)),
                Some(SequenceReplay::<31>::option(false)),
                crypto.crypto(),
            )
            .map_err(|e| SrtpSetupError::Crypto(e.to_string()))
        };
        Ok(Self {
            profile,
            inbound: ctx(remote)?,
            outbound: ctx(local)?,
            stats: SrtpStats::default(),
        })
    }

    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// Decrypts and authenticates an inbound SRTP packet.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpDrop> {
        let r = self.inbound.decrypt_rtp(packet);
        self.count(r)
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpDrop> {
        let r = self.inbound.decrypt_rtcp(packet);
        self.count(r)
    }

    /// Encrypts an outbound RTP packet. Fails only on a packet we built wrong.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpDrop> {
        self.outbound
            .encrypt_rtp(packet)
            .map_err(|_| SrtpDrop::Malformed)
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpDrop> {
        self.outbound
            .encrypt_rtcp(packet)
            .map_err(|_| SrtpDrop::Malformed)
    }

    fn count(&mut self, r: Result<BytesMut, RtcError>) -> Result<BytesMut, SrtpDrop> {
        r.map_err(|e| {
            let why = match e {
                RtcError::ErrFailedToVerifyAuthTag
                | RtcError::RtpFailedToVerifyAuthTag
                | RtcError::RtcpFailedToVerifyAuthTag => SrtpDrop::AuthFailed,
                RtcError::SrtpSsrcDuplicated(..) | RtcError::SrtcpSsrcDuplicated(..) => {
                    SrtpDrop::Replayed
                }
                _ => SrtpDrop::Malformed,
            };
            match why {
                SrtpDrop::AuthFailed => self.stats.auth_failed += 1,
                SrtpDrop::Replayed => self.stats.replayed += 1,
                SrtpDrop::Malformed => self.stats.malformed += 1,
            }
            why
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> Arc<dyn RTCCryptoProvider> {
        rtc_srtp::crypto::default_provider().expect("ring provider")
    }

    /// Client and server sessions from the same keying material, as after a DTLS handshake.
    fn pair(profile: SrtpProfile) -> (SrtpSession, SrtpSession) {
        let material: Vec<u8> = (0..profile.keying_material_len())
            .map(|i| (i * 7 + 3) as u8)
            .collect();
        let c = crypto();
        (
            SrtpSession::from_keying_material(profile, &material, true, &c).unwrap(),
            SrtpSession::from_keying_material(profile, &material, false, &c).unwrap(),
        )
    }

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes()); // timestamp
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes()); // ssrc
        p.extend_from_slice(payload);
        p
    }

    fn receiver_report() -> Vec<u8> {
        // RR with no report blocks: V=2, RC=0, PT=201, length=1, SSRC.
        vec![0x80, 201, 0, 1, 0xde, 0xad, 0xbe, 0xef]
    }

    #[test]
    fn every_profile_round_trips_rtp_and_rtcp_both_ways() {
        for profile in SrtpProfile::PREFERENCE {
            let (mut client, mut server) = pair(profile);
            let plain = rtp(1, b"opus frame bytes");
            let sent = client.protect_rtp(&plain).unwrap();
            assert_ne!(
                &sent[12..],
                &plain[12..],
                "{profile:?}: payload is encrypted"
            );
            assert_eq!(
                &server.unprotect_rtp(&sent).unwrap()[..],
                &plain[..],
                "{profile:?}"
            );
            let back = server.protect_rtp(&rtp(9, b"reply")).unwrap();
            assert_eq!(
                &client.unprotect_rtp(&back).unwrap()[..],
                &rtp(9, b"reply")[..]
            );

            let rr = client.protect_rtcp(&receiver_report()).unwrap();
            assert_eq!(
                &server.unprotect_rtcp(&rr).unwrap()[..],
                &receiver_report()[..],
                "{profile:?}"
            );
        }
    }

    #[test]
    fn a_wrong_tag_is_dropped_and_counted() {
        for profile in SrtpProfile::PREFERENCE {
            let (mut client, mut server) = pair(profile);
            let mut sent = client.protect_rtp(&rtp(1, b"payload")).unwrap();
            let last = sent.len() - 1;
            sent[last] ^= 0x01;
            assert_eq!(
                server.unprotect_rtp(&sent),
                Err(SrtpDrop::AuthFailed),
                "{profile:?}"
            );
            // A flipped payload bit fails the same way.
            let mut sent = client.protect_rtp(&rtp(2, b"payload")).unwrap();
            sent[13] ^= 0x80;
            assert_eq!(
                server.unprotect_rtp(&sent),
                Err(SrtpDrop::AuthFailed),
                "{profile:?}"
            );
            assert_eq!(server.stats().auth_failed, 2);
            // The stream goes on.
            let ok = client.protect_rtp(&rtp(3, b"payload")).unwrap();
            assert!(server.unprotect_rtp(&ok).is_ok());
        }
    }

    #[test]
    fn a_replayed_packet_is_dropped_and_counted() {
        for profile in SrtpProfile::PREFERENCE {
            let (mut client, mut server) = pair(profile);
            let first = client.protect_rtp(&rtp(100, b"a")).unwrap();
            assert!(server.unprotect_rtp(&first).is_ok());
            assert_eq!(
                server.unprotect_rtp(&first),
                Err(SrtpDrop::Replayed),
                "{profile:?}"
            );
            // Reordered but new is fine.
            let p102 = client.protect_rtp(&rtp(102, b"c")).unwrap();
            let p101 = client.protect_rtp(&rtp(101, b"b")).unwrap();
            assert!(server.unprotect_rtp(&p102).is_ok());
            assert!(server.unprotect_rtp(&p101).is_ok());
            assert_eq!(server.unprotect_rtp(&p101), Err(SrtpDrop::Replayed));
            let rr = client.protect_rtcp(&receiver_report()).unwrap();
            assert!(server.unprotect_rtcp(&rr).is_ok());
            assert_eq!(
                server.unprotect_rtcp(&rr),
                Err(SrtpDrop::Replayed),
                "{profile:?}"
            );
            assert_eq!(server.stats().replayed, 3);
        }
    }

    #[test]
    fn garbage_is_dropped_and_bad_keying_material_refused() {
        let (_, mut server) = pair(SrtpProfile::AeadAes128Gcm);
        assert_eq!(
            server.unprotect_rtp(&[0x80, 111, 0]),
            Err(SrtpDrop::Malformed)
        );
        assert_eq!(server.unprotect_rtcp(&[0x80]), Err(SrtpDrop::Malformed));
        assert_eq!(server.stats().malformed, 2);
        let err = SrtpSession::from_keying_material(
            SrtpProfile::AeadAes128Gcm,
            &[0; 10],
            true,
            &crypto(),
        )
        .unwrap_err();
        assert!(
            matches!(err, SrtpSetupError::KeyingMaterial { got: 10, .. }),
            "{err}"
        );
    }

    #[test]
    fn one_authenticated_jump_does_not_move_the_replay_window() {
        for jump in [3000u16, 32_767, 0u16.wrapping_sub(3000)] {
            let (mut client, mut server) = pair(SrtpProfile::AeadAes128Gcm);
            for seq in 100..110 {
                let p = client.protect_rtp(&rtp(seq, b"a")).unwrap();
                assert!(server.unprotect_rtp(&p).is_ok());
            }
            // Passed on (the stream above decides), but the window stays.
            let stray = client
                .protect_rtp(&rtp(109u16.wrapping_add(jump), b"x"))
                .unwrap();
            assert!(server.unprotect_rtp(&stray).is_ok(), "jump {jump}");
            for seq in 110..120 {
                let p = client.protect_rtp(&rtp(seq, b"a")).unwrap();
                assert!(server.unprotect_rtp(&p).is_ok(), "jump {jump}: {seq}");
                assert_eq!(server.unprotect_rtp(&p), Err(SrtpDrop::Replayed));
            }
        }
    }

    #[test]
    fn a_restarted_sender_is_followed_and_srtcp_confirms_a_reset_index() {
        let (mut client, mut server) = pair(SrtpProfile::AesCm128HmacSha1_80);
        for seq in 1000..1100 {
            let p = client.protect_rtp(&rtp(seq, b"a")).unwrap();
            assert!(server.unprotect_rtp(&p).is_ok());
        }
        // Onto numbers just received: the first is a replay for all SRTP can tell, the second
        // confirms the new space.
        let (mut c2, _) = pair(SrtpProfile::AesCm128HmacSha1_80);
        let first = c2.protect_rtp(&rtp(1050, b"n")).unwrap();
        let second = c2.protect_rtp(&rtp(1051, b"n")).unwrap();
        let third = c2.protect_rtp(&rtp(1052, b"n")).unwrap();
        assert_eq!(server.unprotect_rtp(&first), Err(SrtpDrop::Replayed));
        assert!(server.unprotect_rtp(&second).is_ok());
        assert!(server.unprotect_rtp(&third).is_ok());
        // SRTCP: a sender whose index restarts far behind has its second packet accepted.
        for _ in 0..5 {
            let rr = client.protect_rtcp(&receiver_report()).unwrap();
            assert!(server.unprotect_rtcp(&rr).is_ok());
        }
        let (mut c3, _) = pair(SrtpProfile::AesCm128HmacSha1_80);
        for _ in 0..4000 {
            client.protect_rtcp(&receiver_report()).unwrap();
        }
        let far = client.protect_rtcp(&receiver_report()).unwrap();
        assert_eq!(
            server.unprotect_rtcp(&far),
            Err(SrtpDrop::Replayed),
            "a jump: held"
        );
        let r1 = c3.protect_rtcp(&receiver_report()).unwrap();
        let r2 = c3.protect_rtcp(&receiver_report()).unwrap();
        assert_eq!(server.unprotect_rtcp(&r1), Err(SrtpDrop::Replayed));
        assert!(server.unprotect_rtcp(&r2).is_ok());
    }
}
