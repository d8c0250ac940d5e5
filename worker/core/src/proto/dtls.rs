//! DTLS 1.2 for a WebRtcTransport on `rtc-dtls`, the sans-IO DTLS of the webrtc-rs project
//! (chosen over the async `dtls` 0.17 crate so the handshake runs inside the core, in simulated
//! time, with no task or channel per transport).
//!
//! The endpoint is keyed by a fixed virtual remote address: DTLS is bound to the transport, not
//! to a 5-tuple, so an ICE tuple change (UDP → TCP, new port) does not break the association.
//!
//! The remote's certificate is what binds the media path to the signaling (RFC 5763 §5, RFC
//! 8122): in both roles it is required (as server we send a CertificateRequest and refuse a
//! handshake without a certificate) and must match one of the fingerprints given to `connect`
//! under the strongest hash algorithm among them; a mismatch fails the handshake, and no SRTP
//! key exists before it completes. Only SHA-256/384/512 fingerprints are accepted.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrosfu_fbs::{DtlsFingerprint, DtlsRole, DtlsState};
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;

use crate::proto::srtp::SrtpProfile;

/// A handshake not finished this long after it started fails (a peer that stalls it, e.g. one
/// with no certificate to give, or one gone silent). OpenSSL's retransmissions in mediasoup give
/// up after about as long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const LOCAL: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 2));
const REMOTE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 3));

/// The worker's DTLS identity: one certificate per worker, its fingerprints, the crypto provider.
#[derive(Clone)]
pub struct DtlsIdentity {
    pub certificate: Certificate,
    pub fingerprints: Vec<DtlsFingerprint>,
    pub crypto: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprints", &self.fingerprints)
            .finish_non_exhaustive()
    }
}

impl DtlsIdentity {
    /// Generates a self-signed ECDSA P-256 certificate.
    pub fn generate() -> Result<Self, String> {
        let crypto = rtc_dtls::crypto_provider::default_provider().map_err(|e| e.to_string())?;
        let certificate =
            Certificate::generate_self_signed(vec!["ferrosfu".to_owned()], crypto.crypto())
                .map_err(|e| e.to_string())?;
        Self::from_certificate(certificate, crypto)
    }

    /// From PEM (certificate + private key), e.g. a configured certificate.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let crypto = rtc_dtls::crypto_provider::default_provider().map_err(|e| e.to_string())?;
        let certificate = Certificate::from_pem(pem, crypto.crypto()).map_err(|e| e.to_string())?;
        Self::from_certificate(certificate, crypto)
    }

    fn from_certificate(
        certificate: Certificate,
        crypto: Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self, String> {
        let der = certificate
            .certificate
            .first()
            .ok_or("certificate chain is empty")?;
        let fingerprints = ["sha-256", "sha-384", "sha-512"]
            .iter()
            .map(|alg| DtlsFingerprint {
                algorithm: (*alg).to_owned(),
                value: fingerprint(alg, der).unwrap_or_default(),
            })
            .collect();
        Ok(Self {
            certificate,
            fingerprints,
            crypto,
        })
    }
}

/// The fingerprint hash algorithms accepted, weakest first (MD5 and SHA-1 are not: RFC 8122 §5
/// says to use the strongest offered, and a SHA-1 fingerprint no longer binds a certificate).
const ALGORITHMS: [&str; 3] = ["sha-256", "sha-384", "sha-512"];

fn digest_algorithm(algorithm: &str) -> Option<&'static ring::digest::Algorithm> {
    use ring::digest;
    match algorithm.to_ascii_lowercase().as_str() {
        "sha-256" => Some(&digest::SHA256),
        "sha-384" => Some(&digest::SHA384),
        "sha-512" => Some(&digest::SHA512),
        _ => None,
    }
}

/// Upper-case colon-separated hex digest of a DER certificate (SHA-256/384/512).
pub fn fingerprint(algorithm: &str, der: &[u8]) -> Option<String> {
    let alg = digest_algorithm(algorithm)?;
    let d = ring::digest::digest(alg, der);
    Some(
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Checks the fingerprints a remote signaled and keeps those it must be verified against: the
/// ones of the strongest accepted algorithm present (RFC 8122 §5). Weaker or unknown algorithms
/// beside an accepted one are ignored; a list with none, or an accepted one whose value is not
/// a well-formed digest of its length, is refused.
fn remote_fingerprints(fingerprints: Vec<DtlsFingerprint>) -> Result<Vec<DtlsFingerprint>, String> {
    if fingerprints.is_empty() {
        return Err("no remote DTLS fingerprint".into());
    }
    if fingerprints.len() > 16 {
        return Err("too many remote DTLS fingerprints".into());
    }
    let rank = |fp: &DtlsFingerprint| {
        ALGORITHMS
            .iter()
            .position(|a| a.eq_ignore_ascii_case(&fp.algorithm))
    };
    let Some(best) = fingerprints.iter().filter_map(rank).max() else {
        let algs: Vec<&str> = fingerprints.iter().map(|f| f.algorithm.as_str()).collect();
        return Err(format!(
            "unsupported fingerprint algorithm {algs:?} (sha-256, sha-384 or sha-512 required)"
        ));
    };
    let chosen: Vec<DtlsFingerprint> = fingerprints
        .into_iter()
        .filter(|fp| rank(fp) == Some(best))
        .collect();
    for fp in &chosen {
        let len = digest_algorithm(&fp.algorithm).map_or(0, |a| a.output_len());
        let bytes: Vec<&str> = fp.value.split(':').collect();
        let well_formed = bytes.len() == len
            && bytes
                .iter()
                .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
        if !well_formed {
            return Err(format!("malformed {} fingerprint", fp.algorithm));
        }
    }
    Ok(chosen)
}

/// The DTLS `use_srtp` profile (RFC 5764 §4.1.2) of an SRTP profile.
pub fn dtls_profile(p: SrtpProfile) -> SrtpProtectionProfile {
    match p {
        SrtpProfile::AeadAes256Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
        SrtpProfile::AeadAes128Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProfile::AesCm128HmacSha1_80 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        SrtpProfile::AesCm128HmacSha1_32 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
    }
}

fn our_profile(p: SrtpProtectionProfile) -> Option<SrtpProfile> {
    SrtpProfile::PREFERENCE
        .into_iter()
        .find(|o| dtls_profile(*o) == p)
}

/// What the handshake produced.
#[derive(Debug)]
pub(crate) struct DtlsConnected {
    pub(crate) profile: SrtpProfile,
    pub(crate) keying_material: Vec<u8>,
    pub(crate) is_client: bool,
}

#[derive(Debug)]
pub(crate) enum DtlsOutput {
    StateChanged(DtlsState, Option<String>),
    Connected(DtlsConnected),
}

/// The DTLS side of one WebRtcTransport.
pub(crate) struct Dtls {
    endpoint: Option<Endpoint>,
    role: Option<DtlsRole>,
    state: DtlsState,
    identity: DtlsIdentity,
    remote_fingerprints: Vec<DtlsFingerprint>,
    events: Vec<DtlsOutput>,
    /// When the handshake must be over.
    deadline: Option<Instant>,
    /// Datagrams the endpoint produced while reading, not polled yet.
    outgoing: VecDeque<Vec<u8>>,
    /// Application data (SCTP packets) read and not polled yet; at most [`MAX_APP_IN`].
    app_in: VecDeque<BytesMut>,
    /// Application data dropped: the queue was full, or it came before the handshake ended.
    pub(crate) app_dropped: u64,
}

/// Application-data records held between a read and the owner's poll (one datagram carries
/// a few records at most; the owner drains after every read).
const MAX_APP_IN: usize = 64;

impl std::fmt::Debug for Dtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dtls")
            .field("role", &self.role)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Dtls {
    pub(crate) fn new(identity: DtlsIdentity) -> Self {
        Self {
            endpoint: None,
            role: None,
            state: DtlsState::New,
            identity,
            remote_fingerprints: Vec::new(),
            events: Vec::new(),
            deadline: None,
            outgoing: VecDeque::new(),
            app_in: VecDeque::new(),
            app_dropped: 0,
        }
    }

    pub(crate) fn state(&self) -> DtlsState {
        self.state
    }

    /// Our role, once `connect` decided it.
    pub(crate) fn role(&self) -> Option<DtlsRole> {
        self.role
    }

    fn config(&self, is_client: bool) -> Result<Arc<HandshakeConfig>, String> {
        let expected = self.remote_fingerprints.clone();
        let verify = Arc::new(
            move |certs: &[Vec<u8>],
                  _: &[rustls_pki_types::CertificateDer<'static>]|
                  -> Result<(), rtc_shared::error::Error> {
                let Some(der) = certs.first() else {
                    return Err(rtc_shared::error::Error::Other(
                        "peer sent no certificate".into(),
                    ));
                };
                let ok = expected.iter().any(|fp| {
                    fingerprint(&fp.algorithm, der)
                        .is_some_and(|v| v.eq_ignore_ascii_case(&fp.value))
                });
                if ok {
                    Ok(())
                } else {
                    Err(rtc_shared::error::Error::Other(
                        "remote certificate does not match the signaled fingerprint".into(),
                    ))
                }
            },
        );
        let b = ConfigBuilder::default()
            .with_crypto_provider(self.identity.crypto.clone())
            .with_certificates(vec![self.identity.certificate.clone()])
            .with_srtp_protection_profiles(
                SrtpProfile::PREFERENCE
                    .into_iter()
                    .map(dtls_profile)
                    .collect(),
            )
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            // Self-signed certificates: no chain to check; the fingerprint is the check.
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            // As server, ask for the client's certificate and refuse a handshake without one
            // (the verifier above then checks it; rtc-dtls verifies its CertificateVerify).
            .with_client_auth(ClientAuthType::RequireAnyClientCert);
        b.build(is_client, None)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// `transport.connect`: the remote's role and fingerprints. Our role is the opposite of the
    /// remote's; when the remote says `auto` we are client (ICE-lite is ICE-controlled; as
    /// mediasoup does). The handshake starts once `start` is called with ICE connected.
    pub(crate) fn set_remote(
        &mut self,
        remote_role: DtlsRole,
        fingerprints: Vec<DtlsFingerprint>,
    ) -> Result<DtlsRole, String> {
        if self.role.is_some() {
            // The fingerprint binds the handshake to the signaling: it cannot change once
            // given (a new one needs a new transport).
            return Err("transport already connected".into());
        }
        self.remote_fingerprints = remote_fingerprints(fingerprints)?;
        let role = match remote_role {
            DtlsRole::Client => DtlsRole::Server,
            DtlsRole::Server | DtlsRole::Auto => DtlsRole::Client,
        };
        self.role = Some(role);
        Ok(role)
    }

    /// Starts the handshake (ICE is connected and the remote is known). Idempotent.
    pub(crate) fn start(&mut self, now: Instant) {
        if self.endpoint.is_some() || self.state != DtlsState::New {
            return;
        }
        let Some(role) = self.role else { return };
        let is_client = role == DtlsRole::Client;
        let result = (|| -> Result<Endpoint, String> {
            if is_client {
                let mut ep = Endpoint::new(LOCAL, TransportProtocol::UDP, None);
                ep.connect(now, REMOTE, self.config(true)?, None)
                    .map_err(|e| e.to_string())?;
                Ok(ep)
            } else {
                Ok(Endpoint::new(
                    LOCAL,
                    TransportProtocol::UDP,
                    Some(self.config(false)?),
                ))
            }
        })();
        match result {
            Ok(ep) => {
                self.endpoint = Some(ep);
                self.deadline = Some(now + HANDSHAKE_TIMEOUT);
                self.set_state(DtlsState::Connecting, None);
            }
            Err(e) => self.set_state(DtlsState::Failed, Some(e)),
        }
    }

    fn set_state(&mut self, s: DtlsState, reason: Option<String>) {
        if self.state != s {
            tracing::debug!(target: "dtls", state = ?s, ?reason, "dtls state");
            self.state = s;
            self.events.push(DtlsOutput::StateChanged(s, reason));
        }
    }

    /// A datagram of DTLS records from the remote. Returns false when it was dropped unread: not
    /// a sequence of whole records (RFC 6347 §4.1.2.7: invalid records are discarded; rtc-dtls
    /// would instead answer a truncated one with a fatal alert, so one damaged or spoofed
    /// datagram could end a handshake).
    pub(crate) fn handle_datagram(&mut self, data: &[u8], now: Instant) -> bool {
        if !whole_records(data) {
            tracing::debug!(target: "dtls", len = data.len(), "malformed dtls datagram dropped");
            return false;
        }
        let Some(ep) = self.endpoint.as_mut() else {
            return true;
        };
        if matches!(self.state, DtlsState::Failed | DtlsState::Closed) {
            return true;
        }
        let result = ep.read(now, REMOTE, None, BytesMut::from(data));
        // What the endpoint answers is kept here: a fatal alert among it means the handshake is
        // over, whatever words the error uses.
        let mut fatal_alert = false;
        while let Some(t) = ep.poll_transmit() {
            fatal_alert |= is_fatal_alert(&t.message);
            self.outgoing.push_back(t.message.to_vec());
        }
        match result {
            Ok(events) => {
                for e in events {
                    match e {
                        EndpointEvent::HandshakeComplete => self.on_complete(),
                        EndpointEvent::PeerClosed => self.set_state(DtlsState::Closed, None),
                        EndpointEvent::ApplicationData(d) => {
                            if self.state == DtlsState::Connected && self.app_in.len() < MAX_APP_IN
                            {
                                self.app_in.push_back(d);
                            } else {
                                self.app_dropped += 1;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                // A handshake failure is fatal; a stray bad record after connecting is not.
                if self.state == DtlsState::Connecting && (fatal_alert || is_fatal(&msg)) {
                    self.set_state(DtlsState::Failed, Some(msg));
                } else {
                    tracing::debug!(target: "dtls", error = %msg, "dtls record dropped");
                }
            }
        }
        if fatal_alert && self.state == DtlsState::Connecting {
            self.set_state(DtlsState::Failed, Some("fatal alert sent".into()));
        }
        true
    }

    fn on_complete(&mut self) {
        let Some(state) = self
            .endpoint
            .as_ref()
            .and_then(|ep| ep.get_connection_state(REMOTE))
        else {
            return;
        };
        let Some(profile) = our_profile(state.srtp_protection_profile()) else {
            self.set_state(DtlsState::Failed, Some("no SRTP profile negotiated".into()));
            return;
        };
        match state.export_keying_material(
            "EXTRACTOR-dtls_srtp",
            &[],
            profile.keying_material_len(),
        ) {
            Ok(m) => {
                let connected = DtlsConnected {
                    profile,
                    keying_material: m.into_bytes().to_vec(),
                    is_client: state.is_client(),
                };
                self.set_state(DtlsState::Connected, None);
                self.events.push(DtlsOutput::Connected(connected));
            }
            Err(e) => self.set_state(DtlsState::Failed, Some(e.to_string())),
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(d) = self.outgoing.pop_front() {
            return Some(d);
        }
        self.endpoint
            .as_mut()?
            .poll_transmit()
            .map(|t| t.message.to_vec())
    }

    /// Application data (an SCTP packet) the remote sent, once connected.
    pub(crate) fn poll_application_data(&mut self) -> Option<BytesMut> {
        self.app_in.pop_front()
    }

    /// Sends application data (an SCTP packet) to the remote; its records come out of
    /// [`Self::poll_transmit`]. False when not connected or the endpoint refused it.
    pub(crate) fn write_application_data(&mut self, data: &[u8], now: Instant) -> bool {
        if self.state != DtlsState::Connected {
            return false;
        }
        let Some(ep) = self.endpoint.as_mut() else {
            return false;
        };
        ep.write(now, REMOTE, data).is_ok()
    }

    pub(crate) fn poll_event(&mut self) -> Option<DtlsOutput> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.state != DtlsState::Connecting {
            return None;
        }
        let ep = self.endpoint.as_ref()?.poll_timeout(&REMOTE);
        match (ep, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.state != DtlsState::Connecting {
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.set_state(DtlsState::Failed, Some("handshake timed out".into()));
            return;
        }
        if let Some(ep) = self.endpoint.as_mut()
            && let Err(e) = ep.handle_timeout(REMOTE, now)
        {
            self.set_state(DtlsState::Failed, Some(e.to_string()));
        }
    }

    pub(crate) fn close(&mut self, now: Instant) {
        if let Some(ep) = self.endpoint.as_mut() {
            let _ = ep.close(now);
        }
        self.set_state(DtlsState::Closed, None);
    }
}

/// DTLS record header: type, version (2), epoch (2), sequence number (6), length (2).
const RECORD_HEADER: usize = 13;

/// Whether `data` is one or more whole DTLS records of a known content type.
fn whole_records(mut data: &[u8]) -> bool {
    if data.is_empty() {
        return false;
    }
    while !data.is_empty() {
        if data.len() < RECORD_HEADER || !(20..=25).contains(&data[0]) {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([data[11], data[12]]));
        let Some(rest) = data.get(RECORD_HEADER + len..) else {
            return false;
        };
        data = rest;
    }
    true
}

/// Whether a datagram we send carries a fatal alert in the clear (epoch 0: the handshake is
/// failing before any key is in use).
fn is_fatal_alert(mut data: &[u8]) -> bool {
    while data.len() > RECORD_HEADER {
        let len = usize::from(u16::from_be_bytes([data[11], data[12]]));
        let epoch = u16::from_be_bytes([data[3], data[4]]);
        if data[0] == 21 && epoch == 0 && len >= 2 && data.get(RECORD_HEADER) == Some(&2) {
            return true;
        }
        data = data.get(RECORD_HEADER + len..).unwrap_or_default();
    }
    false
}

fn is_fatal(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("certificate")
        || m.contains("fingerprint")
        || m.contains("alert")
        || m.contains("handshake")
        || m.contains("srtp")
        || m.contains("cipher")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(algorithm: &str, value: &str) -> DtlsFingerprint {
        DtlsFingerprint {
            algorithm: algorithm.into(),
            value: value.into(),
        }
    }

    fn digest(alg: &str, seed: u8) -> String {
        fingerprint(alg, &[seed; 40]).unwrap()
    }

    #[test]
    fn only_strong_well_formed_fingerprints_are_accepted() {
        let sha1 = "AB:".repeat(19) + "AB";
        let md5 = "AB:".repeat(15) + "AB";
        for bad in [
            vec![],
            vec![fp("sha-1", &sha1)],
            vec![fp("md5", &md5)],
            vec![fp("sha-1", &sha1), fp("md5", &md5)],
            vec![fp("sha-256", "AB:CD")],
            vec![fp("sha-256", &digest("sha-256", 1)[3..])],
            vec![fp("sha-256", &digest("sha-256", 1).replace(':', ""))],
            vec![fp("sha-256", &digest("sha-256", 1).replace('A', "Z"))],
            vec![fp("sha-256", &digest("sha-512", 1))],
            vec![fp("sha-256", &digest("sha-256", 1)); 17],
        ] {
            assert!(remote_fingerprints(bad.clone()).is_err(), "{bad:?}");
        }
        let ok = remote_fingerprints(vec![fp("SHA-256", &digest("sha-256", 1).to_lowercase())]);
        assert_eq!(ok.unwrap().len(), 1);
    }

    #[test]
    fn the_strongest_algorithm_present_is_the_one_verified() {
        let list = vec![
            fp("sha-1", &("AB:".repeat(19) + "AB")),
            fp("sha-256", &digest("sha-256", 1)),
            fp("sha-512", &digest("sha-512", 2)),
            fp("sha-512", &digest("sha-512", 3)),
            fp("sha-384", &digest("sha-384", 4)),
        ];
        let chosen = remote_fingerprints(list).unwrap();
        assert_eq!(
            chosen,
            vec![
                fp("sha-512", &digest("sha-512", 2)),
                fp("sha-512", &digest("sha-512", 3))
            ]
        );
        // A malformed entry of a weaker algorithm beside a good strong one is not looked at.
        let chosen = remote_fingerprints(vec![
            fp("sha-256", "junk"),
            fp("sha-384", &digest("sha-384", 4)),
        ])
        .unwrap();
        assert_eq!(chosen.len(), 1);
    }

    #[test]
    fn the_remote_cannot_change_once_connected() {
        let id = DtlsIdentity::generate().unwrap();
        let mut d = Dtls::new(id);
        let a = vec![fp("sha-256", &digest("sha-256", 1))];
        let b = vec![fp("sha-256", &digest("sha-256", 2))];
        assert_eq!(
            d.set_remote(DtlsRole::Client, a.clone()),
            Ok(DtlsRole::Server)
        );
        assert!(d.set_remote(DtlsRole::Client, b).is_err());
        assert!(d.set_remote(DtlsRole::Client, a).is_err());
        assert_eq!(d.remote_fingerprints.len(), 1);
        assert_eq!(d.remote_fingerprints[0].value, digest("sha-256", 1));
    }

    #[test]
    fn only_whole_records_are_read_and_fatal_alerts_are_seen() {
        let record = |ty: u8, epoch: u16, body: &[u8]| {
            let mut r = vec![ty, 0xfe, 0xfd];
            r.extend_from_slice(&epoch.to_be_bytes());
            r.extend_from_slice(&[0; 6]);
            r.extend_from_slice(&(body.len() as u16).to_be_bytes());
            r.extend_from_slice(body);
            r
        };
        let hs = record(22, 0, &[1; 40]);
        assert!(whole_records(&hs));
        assert!(whole_records(&[hs.clone(), record(20, 0, &[1])].concat()));
        assert!(!whole_records(&hs[..hs.len() - 1]), "truncated");
        assert!(
            !whole_records(&[hs.clone(), vec![22, 0xfe]].concat()),
            "trailing junk"
        );
        assert!(!whole_records(&record(30, 0, &[1])), "unknown content type");
        assert!(!whole_records(&[]));
        assert!(is_fatal_alert(
            &[hs.clone(), record(21, 0, &[2, 42])].concat()
        ));
        assert!(!is_fatal_alert(&record(21, 0, &[1, 0])), "a warning");
        assert!(
            !is_fatal_alert(&record(21, 1, &[2, 42])),
            "encrypted: unknown"
        );
        assert!(!is_fatal_alert(&hs));
    }
}
