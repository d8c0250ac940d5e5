//! End-to-end encryption's key relay (README "End-to-end encryption"). The server never sees a
//! media key: each peer publishes an ECDH P-256 public key (`e2eeKey {publicKey}`, kept with the
//! peer and told to every other joined peer, and to each peer that joins later), and sends its
//! own frame key to each other peer wrapped under the key both derive from their ECDH secret
//! (`e2eeSenderKey {peerId, keyId, wrapped, iv}`, relayed to that peer only, with `peerId` = the
//! sender). A room where a peer publishes a key is end-to-end encrypted: it is not recorded.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::api::Notification;
use super::{Room, RoomError};

/// A peer's ECDH public key: an uncompressed P-256 point (65 bytes), base64.
const PUBLIC_KEY_BYTES: usize = 65;
/// A wrapped frame key: AES-GCM of a 16- or 32-byte key (+ 16-byte tag), base64.
const MAX_WRAPPED_BYTES: usize = 64;
const IV_BYTES: usize = 12;

/// `e2eeSenderKey`: a frame key for one receiver (from the sender's request, to the receiver's
/// notification).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SenderKey {
    /// The receiver in a request, the sender in the notification.
    pub peer_id: String,
    /// Which of the sender's keys (frames name it in their trailer).
    pub key_id: u8,
    /// base64 of the AES-GCM-wrapped key.
    pub wrapped: String,
    /// base64 of the 12-byte IV it was wrapped with.
    pub iv: String,
}

fn decoded(what: &str, b64: &str, max: usize) -> Result<Vec<u8>, RoomError> {
    if b64.len() > max.div_ceil(3) * 4 + 4 {
        return Err(RoomError::too_large(format!("{what}: too long")));
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| RoomError::bad_request(format!("{what}: not base64")))
}

/// Checks a public key: base64 of an uncompressed P-256 point.
pub(crate) fn check_public_key(b64: &str) -> Result<(), RoomError> {
    let raw = decoded("publicKey", b64, PUBLIC_KEY_BYTES)?;
    if raw.len() != PUBLIC_KEY_BYTES || raw[0] != 4 {
        return Err(RoomError::bad_request(
            "publicKey: an uncompressed P-256 point (65 bytes, base64)",
        ));
    }
    Ok(())
}

impl SenderKey {
    pub(crate) fn check(&self) -> Result<(), RoomError> {
        let wrapped = decoded("wrapped", &self.wrapped, MAX_WRAPPED_BYTES)?;
        if !(16..=MAX_WRAPPED_BYTES).contains(&wrapped.len()) {
            return Err(RoomError::bad_request("wrapped: 16 to 64 bytes"));
        }
        if decoded("iv", &self.iv, IV_BYTES)?.len() != IV_BYTES {
            return Err(RoomError::bad_request("iv: 12 bytes"));
        }
        Ok(())
    }
}

impl Room {
    /// `peer_id` publishes its ECDH public key: the room becomes end-to-end encrypted and every
    /// other joined peer hears `e2eeKey {peerId, publicKey}`.
    pub(crate) async fn e2ee_key(
        &self,
        peer_id: &str,
        public_key: String,
    ) -> Result<(), RoomError> {
        check_public_key(&public_key)?;
        self.set_e2ee().await;
        let mut st = self.state.lock().await;
        let peer = st.peer_mut(peer_id)?;
        if !peer.joined {
            return Err(RoomError::conflict("join first"));
        }
        peer.e2ee_key = Some(public_key.clone());
        st.notify_joined(
            peer_id,
            &Notification::E2eeKey {
                peer_id: peer_id.to_owned(),
                public_key,
            },
        );
        Ok(())
    }

    /// Relays `key` from `from` to the joined peer it names.
    pub(crate) async fn e2ee_sender_key(
        &self,
        from: &str,
        key: SenderKey,
    ) -> Result<(), RoomError> {
        key.check()?;
        let st = self.state.lock().await;
        let to = st
            .peers
            .get(&key.peer_id)
            .filter(|p| p.joined && p.id != from)
            .ok_or_else(|| RoomError::not_found(format!("no peer \"{}\" here", key.peer_id)))?;
        to.notify(&Notification::E2eeSenderKey(SenderKey {
            peer_id: from.to_owned(),
            ..key
        }));
        Ok(())
    }

    /// A peer that joined hears every public key published so far.
    pub(super) async fn send_e2ee_keys(self: &Arc<Self>, peer_id: &str) {
        let st = self.state.lock().await;
        let Some(me) = st.peers.get(peer_id) else {
            return;
        };
        for p in st.peers.values().filter(|p| p.id != peer_id) {
            if let Some(k) = &p.e2ee_key {
                me.notify(&Notification::E2eeKey {
                    peer_id: p.id.clone(),
                    public_key: k.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(n: usize, first: u8) -> String {
        let mut v = vec![7u8; n];
        v[0] = first;
        base64::engine::general_purpose::STANDARD.encode(v)
    }

    #[test]
    fn public_keys_are_p256_points() {
        check_public_key(&b64(65, 4)).unwrap();
        assert_eq!(check_public_key(&b64(65, 2)).unwrap_err().status(), 400);
        assert_eq!(check_public_key(&b64(33, 4)).unwrap_err().status(), 400);
        assert_eq!(check_public_key("%%%").unwrap_err().status(), 400);
        assert_eq!(check_public_key(&b64(4096, 4)).unwrap_err().status(), 413);
    }

    #[test]
    fn sender_keys_are_bounded() {
        let k = |wrapped: String, iv: String| SenderKey {
            peer_id: "b".into(),
            key_id: 1,
            wrapped,
            iv,
        };
        k(b64(48, 1), b64(12, 1)).check().unwrap();
        assert_eq!(k(b64(8, 1), b64(12, 1)).check().unwrap_err().status(), 400);
        assert_eq!(k(b64(48, 1), b64(11, 1)).check().unwrap_err().status(), 400);
        assert_eq!(
            k(b64(4096, 1), b64(12, 1)).check().unwrap_err().status(),
            413
        );
        let parsed: Result<SenderKey, _> = serde_json::from_value(serde_json::json!({
            "peerId": "b", "keyId": 300, "wrapped": "", "iv": ""
        }));
        assert!(parsed.is_err());
    }
}
