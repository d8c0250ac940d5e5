//! The process-wide DTLS identity (one certificate, its fingerprint, one handshake config per
//! remote certificate and role), SRTP profiles and keys, and fresh local ICE credentials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Result, anyhow};
use ferrosfu_sim::dtls::{certificate, config, verify_first};
use ferrosfu_worker_core::{SrtpSession, fingerprint};
use rtc_dtls::config::HandshakeConfig;
use rtc_dtls::crypto::Certificate;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCryptoProvider;
use rtc_srtp::protection_profile::ProtectionProfile;

use crate::types::{LocalTransport, Profile};

/// Replay windows of the raw forwarder's inbound contexts.
const SRTP_REPLAY_WINDOW: usize = 512;
const SRTCP_REPLAY_WINDOW: usize = 128;

/// The process-wide DTLS identity and crypto provider (one certificate for every peer, as a
/// browser uses one per PeerConnection: the handshake cost per peer is the same).
pub(crate) struct Identity {
    provider: Arc<dyn RTCCryptoProvider>,
    certificate: Certificate,
    fingerprint: String,
    /// One handshake config per (remote fingerprint, our role, profile): every transport of a
    /// ferrosfu worker shares its certificate.
    configs: Mutex<HashMap<(String, bool, u8), Arc<HandshakeConfig>>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

impl Identity {
    /// The identity, generated on first use.
    pub(crate) fn get() -> Result<&'static Identity> {
        if let Some(id) = IDENTITY.get() {
            return Ok(id);
        }
        let provider =
            rtc_srtp::crypto::default_provider().map_err(|e| anyhow!("crypto provider: {e:?}"))?;
        let certificate = certificate("loadgen");
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| anyhow!("certificate chain is empty"))?;
        let fingerprint = sha256_fingerprint(der);
        Ok(IDENTITY.get_or_init(|| Identity {
            provider,
            certificate,
            fingerprint,
            configs: Mutex::new(HashMap::new()),
        }))
    }

    /// Upper-case colon hex SHA-256 of our certificate (what signaling sends as `sha-256`).
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(super) fn config(
        &self,
        remote_fingerprint: &str,
        is_client: bool,
        profile: Profile,
    ) -> Arc<HandshakeConfig> {
        let key = (
            remote_fingerprint.to_ascii_uppercase(),
            is_client,
            profile as u8,
        );
        let mut cache = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return c.clone();
        }
        let expected = key.0.clone();
        // One profile only: every system under test runs the same cipher suite.
        let config = config(
            is_client,
            vec![self.certificate.clone()],
            profile.srtp(),
            Some(verify_first(move |der| sha256_fingerprint(der) == expected)),
        );
        cache.insert(key, config.clone());
        config
    }
}

/// Upper-case colon-separated hex SHA-256 of a DER certificate.
pub(crate) fn sha256_fingerprint(der: &[u8]) -> String {
    fingerprint("sha-256", der).unwrap_or_default()
}

pub(crate) fn srtp_profile(p: Profile) -> ProtectionProfile {
    match p {
        Profile::Cm80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Profile::Gcm128 => ProtectionProfile::AeadAes128Gcm,
    }
}

/// Random bytes from the system CSPRNG.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut v = vec![0; n];
    ring::rand::SystemRandom::new()
        .fill(&mut v)
        .expect("the system random source does not fail on Linux");
    v
}

pub(super) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
    random_bytes(len)
        .into_iter()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// Our side of a new transport: fresh ICE credentials (RFC 8445: ufrag ≥ 4, pwd ≥ 22 chars),
/// the shared socket's address and the process certificate's fingerprint.
pub(crate) fn local_transport(addr: SocketAddr) -> Result<LocalTransport> {
    Ok(LocalTransport {
        addr,
        ice_ufrag: random_token(8),
        ice_pwd: random_token(24),
        fingerprint_sha256: Identity::get()?.fingerprint().to_owned(),
    })
}

/// A pre-shared SRTP master key and salt (the raw forwarder has no DTLS).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SrtpKey {
    pub(crate) key: Vec<u8>,
    pub(crate) salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpKey(..)")
    }
}

impl SrtpKey {
    pub(crate) fn random(profile: Profile) -> SrtpKey {
        let p = srtp_profile(profile);
        SrtpKey {
            key: random_bytes(p.key_len()),
            salt: random_bytes(p.salt_len()),
        }
    }

    /// An outbound context (no replay window) for this key.
    pub(crate) fn outbound(&self, profile: Profile) -> Result<Context> {
        let crypto = Identity::get()?;
        Context::new(
            &self.key,
            &self.salt,
            srtp_profile(profile),
            None,
            None,
            crypto.provider.crypto(),
        )
        .map_err(|e| anyhow!("srtp context: {e}"))
    }

    /// A session protecting with this key and unprotecting with `inbound`'s.
    pub(crate) fn session(&self, inbound: &SrtpKey, profile: Profile) -> Result<SrtpSession> {
        let provider = Identity::get()?.provider.clone();
        SrtpSession::new(
            profile.srtp(),
            (&self.key, &self.salt),
            (&inbound.key, &inbound.salt),
            &provider,
        )
        .map_err(|e| anyhow!("srtp session: {e}"))
    }

    /// An inbound context with replay windows.
    pub(crate) fn inbound(&self, profile: Profile) -> Result<Context> {
        let crypto = Identity::get()?;
        Context::new(
            &self.key,
            &self.salt,
            srtp_profile(profile),
            Some(rtc_srtp::option::srtp_replay_protection(SRTP_REPLAY_WINDOW)),
            Some(rtc_srtp::option::srtcp_replay_protection(
                SRTCP_REPLAY_WINDOW,
            )),
            crypto.provider.crypto(),
        )
        .map_err(|e| anyhow!("srtp context: {e}"))
    }
}
