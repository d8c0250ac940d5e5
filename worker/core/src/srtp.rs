//! SRTP/SRTCP for one transport (RFC 3711, RFC 7714 for AEAD), keyed from DTLS-SRTP keying
//! material (RFC 5764 §4.2). Sans IO and synchronous, on `rtc-srtp`.
//!
//! Inbound packets that fail authentication, replay or are malformed are dropped and counted by
//! reason; they never reach the router.

use std::sync::Arc;

use bytes::BytesMut;
use rtc_shared::error::Error as RtcError;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCryptoProvider;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

/// Replay windows, in packets. 512 tolerates the reordering a congested video path shows;
/// libsrtp's default is 128.
const SRTP_REPLAY_WINDOW: usize = 512;
const SRTCP_REPLAY_WINDOW: usize = 128;

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
                Some(srtp_replay_protection(SRTP_REPLAY_WINDOW)),
                Some(srtcp_replay_protection(SRTCP_REPLAY_WINDOW)),
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
}
