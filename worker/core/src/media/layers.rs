//! Simulcast consumers' layers outside the per-packet path: which encodings of a producer are
//! active (media within [`INACTIVE_AFTER`]), the app's preferred layers, and what a change of
//! either does to each consumer (a keyframe request for the encoding it switches to, a
//! `consumer.layerschange` when it stops).

use std::time::Instant;

use ferrosfu_fbs::{ConsumerId, ConsumerLayers, HandlerId, MediaEvent};

use crate::WorkerCore;
use crate::producer::INACTIVE_AFTER;
use crate::streams::layered::Layers;
use crate::tables::{ConsumerKey, ProducerKey};

impl WorkerCore {
    /// Encoding `enc` of producer `pk` received media: active again if it was not.
    pub(crate) fn encoding_alive(&mut self, pk: ProducerKey, enc: usize, now: Instant) {
        let Some(e) = self
            .tables
            .producers
            .get_mut(pk)
            .and_then(|p| p.encodings.get_mut(enc))
        else {
            return;
        };
        if !e.active {
            e.active = true;
            self.encoding_usable(pk, enc, true, now);
        }
    }

    /// Encodings of producer `pk` silent for [`INACTIVE_AFTER`] become inactive.
    pub(super) fn encoding_activity(&mut self, pk: ProducerKey, now: Instant) {
        let Some(p) = self.tables.producers.get_mut(pk) else {
            return;
        };
        let mut stopped = 0u32;
        for (i, e) in p.encodings.iter_mut().enumerate().take(32) {
            let recent = e
                .last_seen
                .is_some_and(|at| now.saturating_duration_since(at) < INACTIVE_AFTER);
            if e.active && !recent {
                e.active = false;
                stopped |= 1 << i;
            }
        }
        for i in 0..32 {
            if stopped & (1 << i) != 0 {
                self.encoding_usable(pk, i, false, now);
            }
        }
    }

    /// Every simulcast consumer of producer `pk` learns whether encoding `enc` is usable.
    fn encoding_usable(&mut self, pk: ProducerKey, enc: usize, usable: bool, now: Instant) {
        let Some(p) = self.tables.producers.get(pk) else {
            return;
        };
        if p.layered_consumers == 0 {
            return;
        }
        let consumers = p.consumers.clone();
        for ck in consumers {
            self.apply_layers(ck, |l| l.set_usable(enc as u8, usable, now), now);
        }
    }

    /// `consumer.set_preferred_layers`: the preference as applied (`None` for a simple
    /// consumer, which has no layers).
    pub(crate) fn set_preferred_layers(
        &mut self,
        ck: ConsumerKey,
        layers: ConsumerLayers,
        now: Instant,
    ) -> Option<ConsumerLayers> {
        let mut applied = None;
        self.apply_layers(
            ck,
            |l| {
                let (a, key) = l.set_preferred(layers.spatial_layer, layers.temporal_layer, now);
                applied = Some(a);
                key
            },
            now,
        );
        applied
    }

    /// The per-consumer "target layers" input of a bandwidth allocator: the highest layers
    /// consumer `consumer` may forward whatever its app prefers (`None`: no limit; a temporal
    /// layer `None`: every one of that spatial layer). Returns whether the consumer exists and
    /// selects layers. A switch it causes waits for a keyframe like any other (asked at once).
    pub fn set_layer_ceiling(
        &mut self,
        consumer: &ConsumerId,
        ceiling: Option<ConsumerLayers>,
        now: Instant,
    ) -> bool {
        let Ok(ck) = self.tables.consumer_key(&HandlerId::from(consumer)) else {
            return false;
        };
        if self.tables.consumers[ck].layers.is_none() {
            return false;
        }
        let ceiling = ceiling.map(|c| (c.spatial_layer, c.temporal_layer.unwrap_or(u8::MAX)));
        self.apply_layers(ck, |l| l.set_ceiling(ceiling, now), now);
        true
    }

    /// A new simulcast consumer learns which encodings are active now.
    pub(crate) fn init_layers(&mut self, ck: ConsumerKey, now: Instant) {
        let Some(c) = self.tables.consumers.get(ck) else {
            return;
        };
        let Some(p) = self.tables.producers.get(c.producer) else {
            return;
        };
        let active: Vec<bool> = p.encodings.iter().map(|e| e.active).collect();
        self.apply_layers(
            ck,
            |l| {
                let mut key = None;
                for (i, &a) in active.iter().enumerate() {
                    key = l.set_usable(i as u8, a, now).or(key);
                }
                // The encoding it starts on, whichever change chose it.
                key.and(l.key_encoding())
            },
            now,
        );
    }

    /// Runs `change` on consumer `ck`'s layers (a simulcast or SVC consumer's), then asks for
    /// the keyframe of the encoding `change` returns and reports a change of the layers
    /// forwarded.
    pub(super) fn apply_layers(
        &mut self,
        ck: ConsumerKey,
        change: impl FnOnce(&mut Layers) -> Option<u8>,
        now: Instant,
    ) {
        let Some(c) = self.tables.consumers.get_mut(ck) else {
            return;
        };
        let active = c.active();
        let Some(l) = c.layers.as_deref_mut() else {
            return;
        };
        let key = change(l);
        let report = l.layers_change();
        let (pk, h) = (c.producer, HandlerId::from(&c.id));
        if let Some(layers) = report {
            self.notify(h, MediaEvent::ConsumerLayersChange(layers));
        }
        if let (Some(s), true) = (key, active) {
            self.request_key_frame(pk, usize::from(s), now);
        }
    }
}
