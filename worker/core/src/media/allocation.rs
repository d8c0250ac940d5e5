//! The send-side controller of each transport, on top of its estimate ([`crate::bwe`]): the
//! pacing rate, the allocation of the estimate between its consumers
//! ([`crate::bwe::allocator`]: layer ceilings, pauses and resumes), probing when more is wanted
//! than estimated, and which layers each producer's consumers need (dynacast).

use std::time::{Duration, Instant};

use ferrosfu_fbs::{HandlerId, MediaEvent, MediaKind};

use crate::WorkerCore;
use crate::bwe::allocator::{Candidate, Grant, KEEP_SHARE, UpGate, allocate};
use crate::bwe::pacer::PACING_FACTOR;
use crate::bwe::prober::{RETRY_AFTER, RETRY_PAUSED_AFTER, VERIFY_MARGIN};
use crate::bwe::{BandwidthUsage, BweUpdate};
use crate::tables::{ConsumerKey, ProducerKey, TransportKey};

/// The allocator runs this often (and at once when the estimate drops).
const ALLOCATE_EVERY: Duration = Duration::from_millis(250);
/// An estimate this far under the last allocated one is congestion: allocate at once.
const DROP_RATIO: f64 = 0.9;
/// Of the estimate, what media may take (the rest: our header extensions, SRTP, RTX).
const MEDIA_SHARE: f64 = 0.95;
/// Dynacast: how often the layers a producer's consumers need are checked.
const DYNACAST_EVERY: Duration = Duration::from_millis(500);
/// Sending without any transport-wide feedback this long: the path drops everything (or the
/// feedback): the estimate halves every [`FEEDBACK_TIMEOUT_BACKOFF_EVERY`] until some comes.
const FEEDBACK_TIMEOUT: Duration = Duration::from_millis(1500);
const FEEDBACK_TIMEOUT_BACKOFF_EVERY: Duration = Duration::from_millis(500);
const FEEDBACK_TIMEOUT_FACTOR: f64 = 0.5;
/// Dynacast tells a publisher to stop a layer only once it has been unneeded this long.
const DYNACAST_DOWN_AFTER: Duration = Duration::from_secs(3);
/// After an upgrade, only loss switches down for this long.
const UPGRADE_GRACE: Duration = Duration::from_secs(1);
/// The layers a subscriber receives are kept by its acknowledged bitrate only while it loses
/// less than this...
const KEEP_MAX_LOSS: f64 = 0.02;
/// ... and unless the estimate has stayed under what is sent for this long while less than
/// [`KEEP_ACKED_SHARE`] of it arrives: a keyframe's queue sets off an overuse that passes and
/// drains; a bottleneck's queue grows, delivering intact until it overflows, so what the
/// subscriber received then is no reason to keep the layers.
const KEEP_BY_RECEIVED_UNDER: Duration = Duration::from_secs(1);
const KEEP_ACKED_SHARE: f64 = 0.95;
/// ... or at once when the estimate fell under this share of what is sent (a keyframe's
/// overuse backs the estimate off to 0.85 of what arrives, and on a path with room as much
/// arrives as is sent; repeated backoffs under what arrives are a bottleneck's) and less than
/// [`KEEP_ACKED_SHARE`] of it arrives, unless an upgrade's keyframes may be the cause
/// ([`KEEP_AFTER_UPGRADE`]): the layers a link just narrowed under go at once, before its
/// queue overflows.
const KEEP_DEEP_UNDER: f64 = 0.8;
/// Whatever arrives, the overuse of an upgrade's keyframes is over this long after it.
const KEEP_AFTER_UPGRADE: Duration = Duration::from_secs(3);
/// An allocation that takes more than this share of the budget is tight: its upgrades wait
/// for a verification ([`crate::bwe::prober::Prober::verify`]) that the path carries them.
/// Short probes read a link's rate up to 35 % high behind Chromium, and the estimate jumps to
/// them: an estimate that covers an upgrade's cost less than twice is no proof the path takes
/// that layer and its keyframe (behind 600 kbit/s, 1280 px took 600 of an estimate of 687
/// read by a probe and lost 60 % of its packets; another probe read 763).
const TIGHT_SHARE: f64 = 0.5;
/// How long after a probe raised the estimate a tight upgrade needs that verification (an
/// estimate grown since by the delay-based control, with media, is then trusted as before).
const PROBE_DOUBTED_FOR: Duration = Duration::from_secs(10);
/// `bwe` traces at most this often, unless the estimate drops.
const TRACE_EVERY: Duration = Duration::from_secs(1);

/// What the prober probes toward when the allocation grants `granted` of the `desired` bit/s:
/// while something is held back, the estimate that lets media take `desired` (it may take
/// [`MEDIA_SHARE`] of it). Probing only to `desired` could stop at an estimate the allocator
/// still finds too small for the step it waits for (seen with a top layer stopped by dynacast,
/// offered at its last cost: the estimate settled 0.2 % above that cost and the layer never
/// came back).
/// With [`VERIFY_MARGIN`] on top: the room a tight upgrade must see verified.
fn probe_target(desired: u64, granted: u64) -> u64 {
    if granted < desired {
        (desired as f64 / MEDIA_SHARE * VERIFY_MARGIN) as u64
    } else {
        desired
    }
}

/// One consumer as the allocator sees it, with the layers behind each of its steps.
struct Plan {
    ck: ConsumerKey,
    cand: Candidate,
    /// (spatial, temporal ceiling) of each step; the temporal is `u8::MAX` for the highest one
    /// measured of that spatial layer (whatever temporal ids it carries). Empty: simple.
    layers: Vec<(u8, u8)>,
}

impl WorkerCore {
    /// Transport `tk`'s estimate was updated by a feedback: pace at it, follow a probe result,
    /// reallocate at once if it dropped.
    pub(crate) fn bwe_updated(&mut self, tk: TransportKey, update: &BweUpdate, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        let Some(e) = t.estimate_bps() else {
            return;
        };
        t.pacer
            .set_rate(Some((e as f64 * PACING_FACTOR) as u64), now);
        let max = t.bwe_max_bps();
        let ctl = &mut t.bwe_ctl;
        if update.probe_bps.is_some_and(|bps| bps > ctl.last_estimate) {
            ctl.probe_raised_at = Some(now);
        }
        // What the estimate was when the awaited cluster started: its result, up to that, is
        // a floor.
        let probe_floor = update
            .probe_measured
            .and_then(|m| ctl.prober.cluster_from(m.cluster).map(|f| m.bps.min(f)));
        if let Some(m) = update.probe_measured
            && ctl
                .prober
                .on_result(
                    m.cluster,
                    m.bps,
                    update.probe_bps.is_some(),
                    probe_target(ctl.desired_bps, ctl.effective_desired_bps).min(max),
                    now,
                )
                .is_some()
        {
            self.pacing(tk, now);
        }
        let t = &mut self.tables.transports[tk];
        let mut e = e;
        // While probing, and until its queue is gone, the estimate stays at least where it was
        // before: what the probing's own queue set off says nothing of the path. Unless the
        // path loses packets: then the loss-based estimate goes down whatever was probed.
        let lossless = t.bwe.fraction_loss() < KEEP_MAX_LOSS;
        let probing_floor = t.bwe_ctl.prober.floor(now).filter(|_| lossless);
        let floor = probe_floor.max(probing_floor);
        if let Some(floor) = floor.filter(|&f| f > e) {
            e = t.bwe.raise_to(floor, now);
            t.pacer
                .set_rate(Some((e as f64 * PACING_FACTOR) as u64), now);
        }
        let ctl = &mut t.bwe_ctl;
        if update.usage != ctl.last_usage || (e as f64) < ctl.last_update_bps as f64 * 0.95 {
            tracing::debug!(
                target: "bwe",
                from = ctl.last_update_bps,
                estimate = e,
                usage = ?update.usage,
                acked = update.acked_bps,
                delay = update.delay_based_bps,
                loss_based = update.loss_based_bps,
                loss = t.bwe.fraction_loss(),
                floor = ?ctl.prober.floor(now),
                "estimate"
            );
        }
        ctl.last_usage = update.usage;
        ctl.last_update_bps = e;
        if (e as f64) < t.bwe_ctl.last_estimate as f64 * DROP_RATIO {
            t.bwe_ctl.hysteresis.congested();
            t.bwe_ctl.next_trace = None;
            self.allocate_transport(tk, now);
        } else if t.bwe_ctl.next_run.is_none() {
            t.bwe_ctl.next_run = Some(now);
        }
    }

    /// A REMB from transport `tk`'s subscriber: the estimate when it sends no transport-wide
    /// feedback, a ceiling when it does.
    pub(crate) fn remb_received(&mut self, tk: TransportKey, bps: u64, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        t.remb_bps = Some(bps);
        let update = BweUpdate::default();
        self.bwe_updated(tk, &update, now);
    }

    /// Consumer `ck` joined transport `tk`: if it negotiated transport-wide-cc or REMB, the
    /// transport allocates from now on (from the start estimate until feedback comes).
    pub(crate) fn bwe_consumer_added(&mut self, tk: TransportKey, ck: ConsumerKey, now: Instant) {
        let Some(c) = self.tables.consumers.get(ck) else {
            return;
        };
        let remb = c
            .params
            .codecs
            .iter()
            .any(|codec| codec.rtcp_feedback.iter().any(|f| f.kind == "goog-remb"));
        if c.twcc_ext == 0 && !remb {
            return;
        }
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        t.bwe_expected = true;
        self.allocate_transport(tk, now);
    }

    /// Runs the allocators that are due (from the tick).
    pub(crate) fn allocation_tick(&mut self, now: Instant) {
        let due: Vec<TransportKey> = self
            .tables
            .transports
            .iter()
            .filter(|(_, t)| t.has_estimate() && t.bwe_ctl.next_run.is_some_and(|r| r <= now))
            .map(|(k, _)| k)
            .collect();
        for tk in due {
            self.allocate_transport(tk, now);
        }
    }

    /// Splits transport `tk`'s estimate between its consumers and applies it (down at once,
    /// up after the hysteresis), then probes if more is wanted than estimated.
    pub(crate) fn allocate_transport(&mut self, tk: TransportKey, now: Instant) {
        let Some(t) = self.tables.transports.get_mut(tk) else {
            return;
        };
        let sent = u64::from(t.counters.send_rate.bitrate(now));
        // (`bwe_fed`: some feedback came, and `last_feedback` says when the last did.)
        if t.bwe_fed
            && sent > 0
            && !t.bwe_ctl.feedback_fresh(FEEDBACK_TIMEOUT, now)
            && t.bwe_ctl
                .last_timeout_backoff
                .is_none_or(|b| now >= b + FEEDBACK_TIMEOUT_BACKOFF_EVERY)
        {
            t.bwe_ctl.last_timeout_backoff = Some(now);
            let e = t.bwe.on_feedback_timeout(FEEDBACK_TIMEOUT_FACTOR, now);
            tracing::debug!(target: "bwe", estimate = e, "no feedback: backing off");
            t.pacer
                .set_rate(Some((e as f64 * PACING_FACTOR) as u64), now);
            t.bwe_ctl.hysteresis.congested();
            t.bwe_ctl.next_trace = None;
        }
        let Some(estimate) = t.estimate_bps() else {
            return;
        };
        t.bwe_ctl.next_run = Some(now + ALLOCATE_EVERY);
        t.bwe_ctl.last_estimate = estimate;
        let probed = t.bwe_ctl.prober.bytes_sent;
        let new = probed.saturating_sub(t.counters.probe_seen);
        t.counters.probe_seen = probed;
        t.counters.probe_rate.add(new as usize, now);
        let was_alr = t.bwe_ctl.alr.in_alr();
        let alr = t.bwe_ctl.alr.update(sent, estimate);
        t.bwe.set_in_alr(alr);
        if was_alr && !alr {
            t.bwe.expect_fast_rate_change();
        }
        let consumers = t.consumers.clone();
        let plans: Vec<Plan> = consumers
            .into_iter()
            .filter_map(|ck| self.plan(ck, now))
            .collect();
        let cands: Vec<Candidate> = plans.iter().map(|p| p.cand.clone()).collect();
        let budget = (estimate as f64 * MEDIA_SHARE) as u64;
        let (mut wanted, used) = allocate(budget, &cands);
        // What is kept: by the estimate, or by what the subscriber demonstrably receives (what
        // was sent over the last second) while it loses (almost) nothing — an overuse backoff
        // after a layer switch's keyframe says less about the path than intact delivery does —
        // unless the estimate has been under what is sent for a while and less arrives than is
        // sent (a bottleneck).
        let t = &mut self.tables.transports[tk];
        if estimate < sent {
            t.bwe_ctl.under_since.get_or_insert(now);
        } else {
            t.bwe_ctl.under_since = None;
        }
        let short = t
            .bwe
            .acked_bitrate()
            .is_some_and(|a| (a as f64) < KEEP_ACKED_SHARE * sent as f64);
        let under_long = t
            .bwe_ctl
            .under_since
            .is_some_and(|u| now >= u + KEEP_BY_RECEIVED_UNDER);
        let settled = t
            .bwe_ctl
            .upgraded_at
            .is_none_or(|u| now >= u + KEEP_AFTER_UPGRADE);
        let bottleneck = (under_long && (short || settled))
            || ((estimate as f64) < KEEP_DEEP_UNDER * sent as f64 && short && settled);
        // Without fresh feedback, nothing says what arrived.
        let fresh = t.bwe_ctl.feedback_fresh(FEEDBACK_TIMEOUT, now);
        let received = if !bottleneck && fresh && t.bwe.fraction_loss() < KEEP_MAX_LOSS {
            (sent as f64 * (1.0 - t.bwe.fraction_loss())) as u64
        } else {
            0
        };
        let basis = (estimate.max(received) as f64 * MEDIA_SHARE / KEEP_SHARE) as u64;
        let (mut keep, _) = allocate(basis, &cands);
        let desired: u64 = cands.iter().filter_map(|c| c.steps.last()).sum();
        let mut applied: Vec<Grant> = plans
            .iter()
            .zip(&wanted)
            .map(|(p, &w)| self.applied_grant(p, w))
            .collect();
        let t = &mut self.tables.transports[tk];
        // Just after an upgrade, what was sent does not show the new layers yet and their
        // keyframes' queue may set off an overuse: only loss switches down then.
        let grace = t
            .bwe_ctl
            .upgraded_at
            .is_some_and(|u| now < u + UPGRADE_GRACE);
        // Nor while a verification is under way: the overuse its own queue sets off passes,
        // and its result sets the estimate to what the path carried. (A short probe's overuse
        // cannot take the estimate under where it was: `Prober::floor`. Keeping the layers
        // then too held 1280 px 0.6 s longer into a new 600 kbit/s limit: 40 % lost.)
        let verifying_now = t.bwe_ctl.prober.in_verification(now);
        if (grace || verifying_now) && t.bwe.fraction_loss() < KEEP_MAX_LOSS {
            keep.clone_from(&applied);
        }
        // Before any feedback the estimate is only the start value: it picks layers, but never
        // pauses a consumer.
        if !t.bwe_fed && t.remb_bps.is_none() {
            for g in applied
                .iter_mut()
                .chain(wanted.iter_mut())
                .chain(keep.iter_mut())
            {
                if *g == Grant::Paused {
                    *g = Grant::Step(0);
                }
            }
        }
        // A tight upgrade on an estimate a probe raised waits for a verification that the path
        // carries it.
        let tight = t.bwe_fed
            && used as f64 > TIGHT_SHARE * budget as f64
            && t.bwe_ctl
                .probe_raised_at
                .is_some_and(|at| now < at + PROBE_DOUBTED_FOR);
        let need = (used as f64 / MEDIA_SHARE) as u64;
        let upgrade = wanted.iter().zip(&applied).any(|(w, a)| w > a);
        let unverified = tight && upgrade && !t.bwe_ctl.prober.verified(need, now);
        // No probing into a queue that grows: the estimate is on its way down, and a cluster
        // started from it would hold it up (see `Prober::floor`).
        let overused = t.bwe.usage() == BandwidthUsage::Overusing;
        let mut verifying = false;
        if unverified && !overused {
            let max = t.bwe_max_bps();
            verifying = t.bwe_ctl.prober.verify(need, estimate, max, now).is_some();
            if verifying {
                t.bwe.expect_fast_rate_change();
            }
        }
        tracing::trace!(
            target: "bwe",
            estimate,
            used,
            sent,
            tight,
            unverified,
            ?applied,
            ?wanted,
            ?keep,
            "allocation"
        );
        let gate = if unverified {
            UpGate::Wait
        } else if tight && upgrade {
            UpGate::Verified
        } else {
            UpGate::Hold
        };
        let before = applied.clone();
        t.bwe_ctl
            .hysteresis
            .apply(&mut applied, &wanted, &keep, gate, now);
        if applied != before {
            tracing::debug!(
                target: "bwe",
                estimate,
                sent,
                acked = t.bwe.acked_bitrate(),
                loss = t.bwe.fraction_loss(),
                short,
                under_long,
                settled,
                bottleneck,
                received,
                grace,
                verifying_now,
                ?before,
                ?applied,
                ?wanted,
                ?keep,
                "layers"
            );
        }
        if applied.iter().zip(&before).any(|(a, b)| a > b) {
            t.bwe_ctl.upgraded_at = Some(now);
            t.bwe.expect_fast_rate_change();
        }
        t.bwe_ctl.desired_bps = desired;
        t.bwe_ctl.effective_desired_bps = used;
        // With every video consumer paused, no media shows that the path has room again, only
        // probes: probe sooner after a failure. (With video flowing, the estimate grows with it.)
        let mut video = plans
            .iter()
            .zip(&applied)
            .filter(|(p, _)| !p.cand.audio)
            .map(|(_, &g)| g)
            .peekable();
        let retry = if video.peek().is_some() && video.all(|g| g == Grant::Paused) {
            RETRY_PAUSED_AFTER
        } else {
            RETRY_AFTER
        };
        for (p, g) in plans.iter().zip(applied) {
            self.apply_grant(p, g, now);
        }
        let t = &mut self.tables.transports[tk];
        let max = t.bwe_max_bps();
        if verifying
            || !overused
                && t.bwe_ctl
                    .prober
                    .maybe_probe(
                        probe_target(desired, used).min(max),
                        estimate,
                        max,
                        retry,
                        now,
                    )
                    .is_some()
        {
            self.pacing(tk, now);
        }
        self.bwe_trace(tk, now);
    }

    /// What the allocator needs of consumer `ck`; `None` when it wants nothing now (paused by
    /// its app or its producer) or nothing is measured to allocate.
    fn plan(&mut self, ck: ConsumerKey, now: Instant) -> Option<Plan> {
        let c = self.tables.consumers.get(ck)?;
        if !c.wanted() {
            return None;
        }
        let p = self.tables.producers.get_mut(c.producer)?;
        let audio = c.kind == MediaKind::Audio;
        let Some(l) = c.layers.as_deref() else {
            let rate = p.encodings.first_mut()?.stream.as_mut()?.rate.bitrate(now);
            return Some(Plan {
                ck,
                cand: Candidate {
                    priority: c.priority,
                    audio,
                    steps: vec![u64::from(rate)],
                },
                layers: Vec::new(),
            });
        };
        let pref = l.preferred();
        let svc = p.encodings.len() == 1;
        let spatial_max = if svc {
            usize::from(pref.spatial_layer)
        } else {
            usize::from(pref.spatial_layer).min(p.encodings.len().saturating_sub(1))
        };
        let temporal_max = usize::from(pref.temporal_layer.unwrap_or(u8::MAX))
            .min(crate::streams::layer_rates::MAX_TEMPORAL_LAYERS - 1);
        let (mut steps, mut layers) = (Vec::new(), Vec::new());
        // SVC: a spatial layer costs the ones under it too (at the same temporal layers):
        // `below[t]`, the bitrate of temporal layer t of the spatial layers under this one.
        let mut below = vec![0u64; temporal_max + 1];
        for s in 0..=spatial_max {
            // Stopped by dynacast (what is still measured of it is its rate fading): counted
            // at its last cost measured while it was sent, whole.
            let stopped = p
                .layers_needed
                .as_ref()
                .is_some_and(|n| !n.contains(&(s as u8)));
            if s > 0 && stopped {
                let cost = p.last_layer_cost.get(s).copied().unwrap_or(0);
                if cost > 0 && !steps.is_empty() {
                    layers.push((s as u8, u8::MAX));
                    steps.push(cost);
                }
                continue;
            }
            if p.layer_rates.layer(s, 0, now) == 0 {
                continue;
            }
            let mut sum = 0u64;
            let mut this = Vec::new();
            for (t, &under) in below.iter().enumerate() {
                let r = u64::from(p.layer_rates.layer(s, t, now));
                if t > 0 && r == 0 {
                    break;
                }
                sum += r + if svc { under } else { 0 };
                this.push(((s as u8, t as u8), sum));
            }
            if svc {
                for (t, b) in below.iter_mut().enumerate() {
                    *b += u64::from(p.layer_rates.layer(s, t, now));
                }
            }
            // The lowest spatial layer degrades by frame rate (each temporal layer a step);
            // a higher one is taken only whole, at the frame rate the app prefers.
            let top = this.len() - 1;
            if p.last_layer_cost.len() <= s {
                p.last_layer_cost.resize(s + 1, 0);
            }
            p.last_layer_cost[s] = this[top].1;
            for (i, ((s, t), cost)) in this.into_iter().enumerate() {
                if s > 0 && i < top && !steps.is_empty() {
                    continue;
                }
                layers.push((s, if i == top { u8::MAX } else { t }));
                steps.push(cost);
            }
        }
        if steps.is_empty() {
            // Nothing measured yet (the first packets): the lowest layer until it is.
            steps.push(0);
            layers.push((0, u8::MAX));
        }
        Some(Plan {
            ck,
            cand: Candidate {
                priority: c.priority,
                audio,
                steps,
            },
            layers,
        })
    }

    /// What consumer `p.ck` has now, as a step of its plan (`wanted` for one not allocated
    /// yet: a new consumer starts where the allocation puts it).
    fn applied_grant(&self, p: &Plan, wanted: Grant) -> Grant {
        let Some(c) = self.tables.consumers.get(p.ck) else {
            return wanted;
        };
        if c.bwe_paused {
            return Grant::Paused;
        }
        if p.layers.is_empty() {
            return Grant::Step(0);
        }
        match c.granted {
            None => wanted,
            Some(g) => Grant::Step(p.layers.iter().rposition(|&l| l <= g).unwrap_or(0)),
        }
    }

    fn apply_grant(&mut self, p: &Plan, g: Grant, now: Instant) {
        let Some(c) = self.tables.consumers.get_mut(p.ck) else {
            return;
        };
        match g {
            Grant::Paused => {
                if !c.bwe_paused {
                    c.bwe_paused = true;
                    c.granted = None;
                    let h = HandlerId::from(&c.id);
                    // A simulcast / SVC consumer reports no layers (`layerschange` to none,
                    // as mediasoup's when its bandwidth allocation leaves it nothing); its
                    // layers are reported again when forwarding restarts.
                    self.apply_layers(
                        p.ck,
                        |l| {
                            l.stop();
                            None
                        },
                        now,
                    );
                    // What it still had queued would only delay the audio behind it.
                    let tk = self.tables.consumers[p.ck].transport;
                    if let Some(t) = self.tables.transports.get_mut(tk)
                        && t.discard_queued(p.ck) > 0
                    {
                        self.pacing(tk, now);
                    }
                    self.bwe_pause_changed(h, true);
                }
            }
            Grant::Step(i) => {
                let resumed = c.bwe_paused;
                if resumed {
                    c.bwe_paused = false;
                    c.resync();
                }
                if let Some(&layers) = p.layers.get(i)
                    && c.granted != Some(layers)
                {
                    c.granted = Some(layers);
                    self.apply_layers(p.ck, |l| l.set_ceiling(Some(layers), now), now);
                }
                if resumed {
                    let h = HandlerId::from(&self.tables.consumers[p.ck].id);
                    self.bwe_pause_changed(h, false);
                    self.consumer_key_frame(p.ck, now);
                }
            }
        }
    }

    /// The allocator paused (or resumed) the consumer `h`: its app hears of it.
    fn bwe_pause_changed(&mut self, h: HandlerId, paused: bool) {
        tracing::debug!(target: "bwe", consumer = %h.as_str(), paused, "allocator");
        let event = if paused {
            MediaEvent::ConsumerBwePause
        } else {
            MediaEvent::ConsumerBweResume
        };
        self.notify(h, event);
    }

    /// A `bwe` trace of transport `tk` when due (at most every [`TRACE_EVERY`], at once when
    /// the estimate dropped), if its app enabled them.
    fn bwe_trace(&mut self, tk: TransportKey, now: Instant) {
        let ts = self.timestamp(now);
        let t = &mut self.tables.transports[tk];
        if t.bwe_ctl.next_trace.is_some_and(|n| now < n) {
            return;
        }
        t.bwe_ctl.next_trace = Some(now + TRACE_EVERY);
        let trace = t.bwe_trace(ts);
        tracing::debug!(
            target: "bwe",
            desired = trace.desired_bitrate,
            effective = trace.effective_desired_bitrate,
            available = trace.available_bitrate,
            alr = t.bwe_ctl.alr.in_alr(),
            "trace"
        );
        if t.trace_bwe {
            let h = HandlerId::from(&t.id);
            self.notify(h, MediaEvent::TransportBweTrace(trace));
        }
    }

    /// Every [`DYNACAST_EVERY`]: tells each simulcast producer's publisher which spatial layers
    /// its consumers need, when that changed.
    pub(crate) fn dynacast_tick(&mut self, now: Instant) {
        if self.next_dynacast.is_some_and(|t| now < t) {
            return;
        }
        self.next_dynacast = Some(now + DYNACAST_EVERY);
        let pks: Vec<ProducerKey> = self
            .tables
            .producers
            .iter()
            .filter(|(_, p)| p.kind == MediaKind::Video && p.encodings.len() > 1)
            .map(|(k, _)| k)
            .collect();
        for pk in pks {
            if let Some(needed) = self.layers_needed(pk, now) {
                let h = HandlerId::from(&self.tables.producers[pk].id);
                tracing::debug!(target: "bwe", producer = %h.as_str(), ?needed, "layers needed");
                self.notify(h, MediaEvent::ProducerLayersNeeded(needed));
            }
        }
    }

    /// The spatial layers producer `pk`'s consumers need now, when the publisher should be
    /// told: every one up to the highest any active consumer is granted (or prefers, without
    /// an allocator), or prefers and that was never measured (the allocator offers a layer
    /// only at a cost it measured; one the publisher has not sent yet — a browser holds its
    /// top encoding back while its own estimate ramps up — would otherwise be stopped before
    /// it ever flowed and never be granted). More layers are told at once; fewer only once
    /// they have stayed fewer for [`DYNACAST_DOWN_AFTER`] (a publisher starts with every
    /// encoding on, and a layer flapping with the estimate must not stop and restart its
    /// encoder). A pipe consumer needs every encoding. `None`: nothing to tell.
    pub(crate) fn layers_needed(&mut self, pk: ProducerKey, now: Instant) -> Option<Vec<u8>> {
        let p = self.tables.producers.get(pk)?;
        if p.encodings.len() < 2 {
            return None;
        }
        let highest = u8::try_from(p.encodings.len() - 1).unwrap_or(u8::MAX);
        let unmeasured = |s: u8| {
            p.last_layer_cost
                .get(usize::from(s))
                .is_none_or(|&cost| cost == 0)
        };
        let mut top: Option<u8> = None;
        for &ck in &p.consumers {
            let Some(c) = self.tables.consumers.get(ck) else {
                continue;
            };
            if !c.active() {
                continue;
            }
            let s = match (&c.layers, c.granted) {
                // A simple consumer needs the first encoding, each stream of a pipe consumer
                // its own (a piped producer keeps every encoding: the far routers' needs are
                // not told back).
                (None, _) => c.encoding,
                (Some(l), Some((s, _))) => {
                    let preferred = l.preferred().spatial_layer.min(highest);
                    (s + 1..=preferred)
                        .rev()
                        .find(|&u| unmeasured(u))
                        .unwrap_or(s)
                }
                (Some(l), None) => l.preferred().spatial_layer,
            };
            top = Some(top.map_or(s, |x| x.max(s)));
        }
        let needed: Vec<u8> = top.map_or_else(Vec::new, |t| (0..=t).collect());
        let p = self.tables.producers.get_mut(pk)?;
        let told = p.layers_needed.as_ref().map_or(p.encodings.len(), Vec::len);
        if needed.len() == told {
            p.dynacast_pending = None;
            return None;
        }
        if needed.len() < told {
            match p.dynacast_pending {
                Some((n, since)) if n == needed.len() => {
                    if now < since + DYNACAST_DOWN_AFTER {
                        return None;
                    }
                }
                _ => {
                    p.dynacast_pending = Some((needed.len(), now));
                    return None;
                }
            }
        }
        p.dynacast_pending = None;
        p.layers_needed = Some(needed.clone());
        Some(needed)
    }
}
