//! STUN messages signed with an ICE password (short-term credentials, RFC 8489 §9.1), as
//! clients send them: connectivity and consent checks, and answers to a remote's checks.

use std::sync::{Arc, OnceLock};

use rtc_stun::attributes::{
    ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME,
    RawAttribute,
};
use rtc_stun::crypto::RTCCryptoProvider;
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
use rtc_stun::textattrs::TextAttribute;

/// The process's STUN crypto provider (HMAC-SHA1 for MESSAGE-INTEGRITY), made once.
pub fn crypto() -> &'static Arc<dyn RTCCryptoProvider> {
    static CRYPTO: OnceLock<Arc<dyn RTCCryptoProvider>> = OnceLock::new();
    CRYPTO.get_or_init(|| rtc_stun::crypto::default_provider().expect("the ring crypto provider"))
}

/// A message of `setters`, then MESSAGE-INTEGRITY with `pwd` and FINGERPRINT.
pub fn signed(
    pwd: &str,
    setters: Vec<Box<dyn Setter>>,
) -> Result<Vec<u8>, rtc_shared::error::Error> {
    let mut m = Message::new();
    m.build(&setters)?;
    MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto().crypto())
        .add_to(&mut m)?;
    FINGERPRINT.add_to(&mut m)?;
    Ok(m.raw)
}

/// A connectivity (or consent) check: a binding request from `username`
/// (`remote-ufrag:local-ufrag`) signed with the remote's password.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    pub username: &'a str,
    pub pwd: &'a str,
    pub transaction: [u8; 12],
    pub priority: u32,
    /// ICE-CONTROLLING, else ICE-CONTROLLED, with `tie_breaker`.
    pub controlling: bool,
    pub tie_breaker: u64,
    /// USE-CANDIDATE.
    pub nominate: bool,
}

impl Check<'_> {
    pub fn build(&self) -> Result<Vec<u8>, rtc_shared::error::Error> {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId(self.transaction)),
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(ATTR_USERNAME, self.username.to_owned())),
            Box::new(RawAttribute {
                typ: ATTR_PRIORITY,
                length: 4,
                value: self.priority.to_be_bytes().to_vec(),
            }),
            Box::new(RawAttribute {
                typ: if self.controlling {
                    ATTR_ICE_CONTROLLING
                } else {
                    ATTR_ICE_CONTROLLED
                },
                length: 8,
                value: self.tie_breaker.to_be_bytes().to_vec(),
            }),
        ];
        if self.nominate {
            setters.push(Box::new(RawAttribute {
                typ: ATTR_USE_CANDIDATE,
                length: 0,
                value: vec![],
            }));
        }
        signed(self.pwd, setters)
    }
}
