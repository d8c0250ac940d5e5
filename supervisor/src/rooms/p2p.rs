//! Two-party calls peer to peer (`[rooms] p2p = "auto"`): while a room holds exactly two
//! peers, both connected here and both announcing `device.p2p: true` at `join`, they are told
//! to connect directly (`p2pStart {peerId, polite, iceServers}`) and the server relays their
//! SDP and ICE (`p2pSignal`, only between those two). Meanwhile the consumers between them are
//! paused here (the SFU forwards nothing for them; the apps pause their producers too). When a
//! third peer joins, a recording starts, one of them leaves or they do not both report
//! `p2pConnected` within `p2p_connect_timeout_s`, both hear `p2pStop {peerId, reason}` and the
//! consumers between them are resumed: the apps resume their producers and close the direct
//! connection once the SFU's media decodes. A room that falls back to two returns to P2P only
//! after `p2p_return_after_s` without a crowd (a flapping third peer causes no churn).
//!
//! The rules are one pure function of the room's state and the time ([`RoomState::p2p_review`]),
//! run by one task per room whenever its membership changes or a deadline passes; its effects
//! (notifications, consumer pauses, the meeting's mode history) are applied under the room lock.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::Notification;
use super::state::RoomState;
use super::{Room, RoomError};
pub(crate) use crate::config::{P2pMode, P2pSettings};
use crate::media::Consumer;
use crate::store::Write;

/// Largest `p2pSignal` `description` or `candidate`, JSON bytes (an offer with audio, video
/// and data and every codec of a browser is ~10 KiB).
pub(crate) const MAX_SIGNAL_BYTES: usize = 64 * 1024;
/// How long the other peer has to accept a relayed `p2pSignal`.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries of the mode history kept for the meeting's settings.
const MAX_HISTORY: usize = 100;

/// The two peers of a direct call: `a` offers (`polite: false`), `b` is polite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pair {
    pub a: String,
    pub b: String,
}

impl Pair {
    fn has(&self, id: &str) -> bool {
        self.a == id || self.b == id
    }

    /// The other one of the pair.
    fn other(&self, id: &str) -> &str {
        if self.a == id { &self.b } else { &self.a }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Phase {
    /// Media goes through the SFU.
    #[default]
    Sfu,
    /// Told to connect directly at `since`; `connected[0]`/`[1]`: `a`/`b` said `p2pConnected`;
    /// `held`: the consumers between them are paused already (a new call: nothing to show
    /// through the SFU first). A pair back from the SFU keeps its SFU media until it is direct.
    Connecting {
        pair: Pair,
        since: Instant,
        connected: [bool; 2],
        held: bool,
    },
    /// Both connected directly.
    Direct { pair: Pair },
}

impl Phase {
    pub(super) fn pair(&self) -> Option<&Pair> {
        match self {
            Phase::Sfu => None,
            Phase::Connecting { pair, .. } | Phase::Direct { pair } => Some(pair),
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Sfu => "sfu",
            Phase::Connecting { .. } => "connecting",
            Phase::Direct { .. } => "p2p",
        }
    }
}

/// A room's P2P state (in [`RoomState`]).
#[derive(Debug, Default)]
pub(crate) struct P2p {
    /// The room's own mode (the join URL's `p2p=` of the first peer that gave one).
    pub(super) mode: Option<P2pMode>,
    pub(super) phase: Phase,
    /// A pair that did not connect in time: not told again while both stay.
    failed: Option<Pair>,
    /// Running recordings: the room stays on the SFU while one runs.
    pub(super) holds: usize,
    /// Whether the last review saw a crowd (over two peers, or a hold), and when it ended.
    crowded: bool,
    uncrowded_at: Option<Instant>,
    /// Mode changes (`{mode, at, reason}`), for the meeting's settings.
    pub(super) history: Vec<Value>,
    /// Woken at every change of the members or holds (see [`Room::run_p2p`]).
    pub(super) changed: Arc<tokio::sync::Notify>,
}

impl P2p {
    /// The members or the holds changed: the room's P2P task reviews it.
    pub(super) fn touch(&self) {
        self.changed.notify_one();
    }

    /// Whether the server holds the consumers between `x` and `y` paused (they talk directly
    /// or are about to).
    pub(super) fn blocks(&self, x: &str, y: &str) -> bool {
        self.phase
            .pair()
            .is_some_and(|p| x != y && p.has(x) && p.has(y))
    }
}

/// What a review asks for, applied by [`Room::apply_p2p`].
#[derive(Debug, PartialEq)]
pub(super) enum Effect {
    /// `p2pStart` to `to`, about `other`.
    Start {
        to: String,
        other: String,
        polite: bool,
    },
    /// `p2pStop` to `to`, about `other`.
    Stop {
        to: String,
        other: String,
        reason: &'static str,
    },
    /// Pause (true) or resume the consumers between the two.
    Hold(Pair, bool),
    /// The meeting's mode history changed.
    History,
}

impl RoomState {
    /// The two peers that may talk directly now: exactly two peers in the room, both joined
    /// and connected to this node, both announcing `device.p2p: true`, nothing recording, the
    /// room's mode `auto`. `a` is the one that joined first.
    fn p2p_candidates(&self, mode: P2pMode) -> Option<Pair> {
        if mode != P2pMode::Auto || self.p2p.holds > 0 || self.peers.len() != 2 {
            return None;
        }
        let mut peers: Vec<_> = self.peers.values().collect();
        let able = |p: &&super::state::Peer| {
            p.joined && p.link.is_some() && p.remote.is_none() && p.device["p2p"] == true
        };
        if !peers.iter().all(able) {
            return None;
        }
        peers.sort_by_key(|p| (p.participant.as_ref().map(|x| x.joined), p.id.clone()));
        let pair = Pair {
            a: peers[0].id.clone(),
            b: peers[1].id.clone(),
        };
        (self.p2p.failed.as_ref() != Some(&pair)).then_some(pair)
    }

    /// Applies the P2P rules at `now` (see the module's text): the effects to carry out and
    /// when to review again (a connection deadline, the end of a return hysteresis).
    pub(super) fn p2p_review(
        &mut self,
        settings: &P2pSettings,
        now: Instant,
    ) -> (Vec<Effect>, Option<Instant>) {
        let mode = self.p2p.mode.unwrap_or(settings.mode);
        let joined = self.peers.values().filter(|p| p.joined).count();
        let crowded = joined > 2 || self.p2p.holds > 0;
        if self.p2p.crowded && !crowded {
            self.p2p.uncrowded_at = Some(now);
        }
        if joined <= 1 {
            self.p2p.uncrowded_at = None;
        }
        self.p2p.crowded = crowded;
        if let Some(f) = &self.p2p.failed
            && !(self.peers.contains_key(&f.a) && self.peers.contains_key(&f.b))
        {
            self.p2p.failed = None;
        }
        let cand = self.p2p_candidates(mode);
        let mut fx = Vec::new();
        let mut wake = None;
        match self.p2p.phase.clone() {
            Phase::Connecting { pair, since, .. } if cand.as_ref() == Some(&pair) => {
                let deadline = since + settings.connect_timeout;
                if now >= deadline {
                    self.p2p.failed = Some(pair.clone());
                    self.p2p_stop(&pair, "timeout", now, &mut fx);
                } else {
                    wake = Some(deadline);
                }
            }
            Phase::Direct { pair } if cand.as_ref() == Some(&pair) => {}
            Phase::Connecting { pair, .. } | Phase::Direct { pair } => {
                let reason = if mode != P2pMode::Auto {
                    "off"
                } else if self.p2p.holds > 0 {
                    "recording"
                } else if !(self.peers.contains_key(&pair.a) && self.peers.contains_key(&pair.b)) {
                    "peerLeft"
                } else {
                    "peers"
                };
                self.p2p_stop(&pair, reason, now, &mut fx);
            }
            Phase::Sfu => {
                if let Some(pair) = cand {
                    match self.p2p.uncrowded_at {
                        Some(t) if now < t + settings.return_after => {
                            wake = Some(t + settings.return_after);
                        }
                        _ => {
                            // Back from the SFU: its media goes on until they are direct.
                            let held = self.p2p.uncrowded_at.take().is_none();
                            fx.push(Effect::Start {
                                to: pair.a.clone(),
                                other: pair.b.clone(),
                                polite: false,
                            });
                            fx.push(Effect::Start {
                                to: pair.b.clone(),
                                other: pair.a.clone(),
                                polite: true,
                            });
                            if held {
                                fx.push(Effect::Hold(pair.clone(), true));
                            }
                            wake = Some(now + settings.connect_timeout);
                            self.p2p.phase = Phase::Connecting {
                                pair,
                                since: now,
                                connected: [false; 2],
                                held,
                            };
                        }
                    }
                }
            }
        }
        (fx, wake)
    }

    /// Back to the SFU: both (those still here) hear `p2pStop`, their consumers resume.
    fn p2p_stop(&mut self, pair: &Pair, reason: &'static str, now: Instant, fx: &mut Vec<Effect>) {
        let was_direct = matches!(self.p2p.phase, Phase::Direct { .. });
        self.p2p.phase = Phase::Sfu;
        for (to, other) in [(&pair.a, &pair.b), (&pair.b, &pair.a)] {
            if let Some(p) = self.peers.get_mut(to.as_str()) {
                if let Some(part) = &mut p.participant {
                    part.p2p_end(now);
                }
                fx.push(Effect::Stop {
                    to: to.clone(),
                    other: other.clone(),
                    reason,
                });
            }
        }
        fx.push(Effect::Hold(pair.clone(), false));
        if was_direct || reason == "timeout" {
            self.p2p_history("sfu", reason);
            fx.push(Effect::History);
        }
    }

    fn p2p_history(&mut self, mode: &str, reason: &str) {
        let h = &mut self.p2p.history;
        if h.len() >= MAX_HISTORY {
            h.remove(0);
        }
        h.push(json!({ "mode": mode, "at": chrono::Utc::now().to_rfc3339(), "reason": reason }));
    }

    /// `peer_id` reports its direct connection up; once both have, the call is direct (the
    /// effects: the consumers between them pause, if not yet, and the history grows).
    pub(super) fn p2p_connected(
        &mut self,
        peer_id: &str,
        now: Instant,
    ) -> Result<Vec<Effect>, RoomError> {
        let Phase::Connecting {
            pair,
            connected,
            held,
            ..
        } = &mut self.p2p.phase
        else {
            return match &self.p2p.phase {
                Phase::Direct { pair } if pair.has(peer_id) => Ok(Vec::new()),
                _ => Err(RoomError::conflict("not in a peer-to-peer call")),
            };
        };
        if !pair.has(peer_id) {
            return Err(RoomError::conflict("not in a peer-to-peer call"));
        }
        connected[usize::from(pair.b == peer_id)] = true;
        if connected != &[true, true] {
            return Ok(Vec::new());
        }
        let pair = pair.clone();
        let mut fx = Vec::new();
        if !*held {
            fx.push(Effect::Hold(pair.clone(), true));
        }
        fx.push(Effect::History);
        for id in [&pair.a, &pair.b] {
            if let Some(part) = self
                .peers
                .get_mut(id.as_str())
                .and_then(|p| p.participant.as_mut())
            {
                part.p2p_start(now);
            }
        }
        self.p2p.phase = Phase::Direct { pair };
        self.p2p_history("p2p", "twoPeers");
        Ok(fx)
    }

    /// The consumers between the two of `pair`.
    fn consumers_between(&self, pair: &Pair) -> Vec<Consumer> {
        let mut out = Vec::new();
        for (me, other) in [(&pair.a, &pair.b), (&pair.b, &pair.a)] {
            let (Some(me), Some(other)) =
                (self.peers.get(me.as_str()), self.peers.get(other.as_str()))
            else {
                continue;
            };
            out.extend(
                me.consumers
                    .values()
                    .filter(|c| other.producers.contains_key(c.producer_id().as_str()))
                    .cloned(),
            );
        }
        out
    }
}

/// Checks a `p2pSignal`'s `data` (without `peerId`): one of `description` ({type, sdp}) or
/// `candidate` (an RTCIceCandidateInit, or null for the end of candidates), each at most
/// [`MAX_SIGNAL_BYTES`].
pub(crate) fn check_signal(data: &serde_json::Map<String, Value>) -> Result<(), RoomError> {
    let bad = |why: &str| Err(RoomError::bad_request(format!("p2pSignal: {why}")));
    let size = serde_json::to_string(data).map_or(usize::MAX, |s| s.len());
    if size > MAX_SIGNAL_BYTES {
        return Err(RoomError::too_large(format!(
            "p2pSignal: {size} bytes, at most {MAX_SIGNAL_BYTES}"
        )));
    }
    if data.keys().any(|k| k != "description" && k != "candidate") {
        return bad("only 'description' or 'candidate' besides 'peerId'");
    }
    match (data.get("description"), data.get("candidate")) {
        (Some(Value::Object(d)), None) => {
            let kind = d.get("type").and_then(Value::as_str);
            if !matches!(kind, Some("offer" | "answer" | "pranswer" | "rollback")) {
                return bad("description.type must be offer, answer, pranswer or rollback");
            }
            if d.keys().any(|k| k != "type" && k != "sdp") {
                return bad("description has only 'type' and 'sdp'");
            }
            match d.get("sdp") {
                Some(Value::String(_)) => Ok(()),
                None if kind == Some("rollback") => Ok(()),
                _ => bad("description.sdp must be a string"),
            }
        }
        (None, Some(Value::Null)) => Ok(()),
        (None, Some(Value::Object(c))) => {
            let ok = c.iter().all(|(k, v)| match k.as_str() {
                "candidate" | "sdpMid" | "usernameFragment" => v.is_string() || v.is_null(),
                "sdpMLineIndex" => v.is_null() || v.as_u64().is_some_and(|i| i < 1024),
                _ => false,
            });
            if ok && c.get("candidate").is_some_and(Value::is_string) {
                Ok(())
            } else {
                bad("candidate is {candidate, sdpMid, sdpMLineIndex, usernameFragment}")
            }
        }
        _ => bad("give one of 'description' or 'candidate'"),
    }
}

/// Keeps a room on the SFU while it lives (a recording holds one).
#[derive(Debug)]
pub(crate) struct SfuHold(std::sync::Weak<Room>);

impl Drop for SfuHold {
    fn drop(&mut self) {
        if let Some(room) = self.0.upgrade() {
            tokio::spawn(async move {
                let mut st = room.state.lock().await;
                st.p2p.holds = st.p2p.holds.saturating_sub(1);
                st.p2p.touch();
            });
        }
    }
}

impl Room {
    fn p2p_settings(&self) -> P2pSettings {
        self.cx.media.p2p
    }

    /// The join URL's `p2p=` of a connecting peer: the room's mode, when none was set.
    pub(crate) async fn set_p2p_mode(&self, mode: P2pMode) {
        let mut st = self.state.lock().await;
        if st.p2p.mode.is_none() {
            st.p2p.mode = Some(mode);
            st.p2p.touch();
        }
    }

    /// Switches the room to the SFU (it stays there while the hold lives): returns once both
    /// peers of a direct call were told and their consumers resumed.
    pub(crate) async fn hold_sfu(self: &Arc<Self>) -> SfuHold {
        let mut st = self.state.lock().await;
        st.p2p.holds += 1;
        let (fx, _) = st.p2p_review(&self.p2p_settings(), Instant::now());
        self.apply_p2p(&st, fx).await;
        SfuHold(Arc::downgrade(self))
    }

    /// The room's P2P task (started when it opens): reviews the room whenever its members or
    /// holds change or a deadline passes, until the room closes.
    pub(super) fn run_p2p(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let changed = self.p2p_wake.clone();
        tokio::spawn(async move {
            let mut wake: Option<Instant> = None;
            loop {
                match wake {
                    Some(at) => {
                        tokio::select! {
                            () = changed.notified() => {}
                            () = tokio::time::sleep_until(at) => {}
                        }
                    }
                    None => changed.notified().await,
                }
                let Some(room) = weak.upgrade() else { return };
                if room.is_closed() {
                    return;
                }
                let mut st = room.state.lock().await;
                let (fx, next) = st.p2p_review(&room.p2p_settings(), Instant::now());
                room.apply_p2p(&st, fx).await;
                wake = next;
            }
        });
    }

    /// Carries out a review's effects (under the room lock: consumer pauses and resumes are
    /// worker requests, ordered with the consumers the room makes meanwhile).
    async fn apply_p2p(&self, st: &RoomState, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Start { to, other, polite } => {
                    tracing::info!(room = %self.id, peer = %to, other = %other, "peer to peer: start");
                    let ice_servers = self
                        .cx
                        .rooms
                        .upgrade()
                        .and_then(|r| r.turn())
                        .map_or_else(Vec::new, |t| t.ice_servers(&to));
                    if let Some(p) = st.peers.get(&to) {
                        p.notify(&Notification::P2pStart {
                            peer_id: other,
                            polite,
                            ice_servers,
                        });
                    }
                }
                Effect::Stop { to, other, reason } => {
                    tracing::info!(room = %self.id, peer = %to, other = %other, reason, "peer to peer: stop");
                    if let Some(p) = st.peers.get(&to) {
                        p.notify(&Notification::P2pStop {
                            peer_id: other,
                            reason,
                        });
                    }
                }
                Effect::Hold(pair, pause) => {
                    for c in st.consumers_between(&pair) {
                        let r = if pause {
                            c.pause().await
                        } else {
                            c.resume().await
                        };
                        if let Err(e) = r {
                            tracing::debug!(room = %self.id, consumer = %c.id().as_str(), "p2p hold: {e}");
                        }
                    }
                }
                Effect::History => self.write_settings(st),
            }
        }
    }

    /// `peer_id` says its direct connection carries the other's media.
    pub(crate) async fn p2p_connected(&self, peer_id: &str) -> Result<(), RoomError> {
        let mut st = self.state.lock().await;
        let fx = st.p2p_connected(peer_id, Instant::now())?;
        if !fx.is_empty() {
            tracing::info!(room = %self.id, "peer to peer: both connected");
        }
        self.apply_p2p(&st, fx).await;
        Ok(())
    }

    /// Relays `signal` ({description} or {candidate}) from `from` to `to`, its partner in a
    /// direct call; Ok once `to` accepted it.
    pub(crate) async fn p2p_signal(
        &self,
        from: &str,
        to: &str,
        signal: serde_json::Map<String, Value>,
    ) -> Result<(), RoomError> {
        check_signal(&signal)?;
        let link = {
            let st = self.state.lock().await;
            match st.p2p.phase.pair() {
                Some(p) if p.has(from) && p.other(from) == to => {}
                _ => {
                    return Err(RoomError::forbidden(format!(
                        "p2pSignal: \"{to}\" is not your peer-to-peer partner"
                    )));
                }
            }
            st.peer(to)?.link.clone().ok_or_else(RoomError::peer_gone)?
        };
        let mut data = signal;
        data.insert("peerId".into(), Value::String(from.to_owned()));
        link.request("p2pSignal", Value::Object(data), SIGNAL_TIMEOUT)
            .await
            .map(drop)
    }

    /// The meeting's settings: where it runs, its modes, its mode history.
    pub(super) fn write_settings(&self, st: &RoomState) {
        self.cx.store.write(Write::MeetingSettings {
            code: self.id.clone(),
            settings: json!({
                "routerId": self.router.id().as_str(),
                "workerPid": self.router.worker().pid(),
                "p2p": st.p2p.mode.unwrap_or(self.p2p_settings().mode),
                "e2ee": self.is_e2ee(),
                "mode": st.p2p.phase.name(),
                "modeHistory": st.p2p.history,
            }),
        });
    }
}

#[cfg(test)]
#[path = "p2p_tests.rs"]
mod tests;
