//! The send-side controller toward an SVC subscriber (issue 13) in simulated time: a VP9 L3T3
//! publisher whose spatial layers cost about 150, 500 and 1400 kbit/s (each with those under
//! it), a subscriber behind a bottleneck link answering with transport-wide feedback. The
//! allocator picks the spatial layer that fits, as it does for simulcast
//! (tests/bwe_allocation.rs), and follows the link down and up.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use ferrosfu_fbs::*;
use ferrosfu_sim::bwe::{RxWindow, TWCC_EXT, between, loss, settled_on, windows_with, with_twcc};
use ferrosfu_sim::svc::{SvcPublisher, svc_layer, svc_subscriber_with};
use ferrosfu_sim::*;

const STEP: Duration = Duration::from_millis(250);

/// Filler bytes a packet of each spatial layer (1, 2 and 3 packets a picture, one picture
/// every 30 ms): about 150, +350 and +900 kbit/s.
const FILLER: [usize; 3] = [550, 650, 1120];

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

struct Svc {
    sim: Sim,
    publisher: SvcPublisher,
    peer: usize,
}

impl Svc {
    fn new(seed: u64, rate: u64) -> Svc {
        let mut sim = Sim::new(seed);
        let mut publisher = SvcPublisher::new(&mut sim, "svc", false);
        publisher.filler = FILLER;
        let peer = svc_subscriber_with(&mut sim, "c0", "svc", None, with_twcc);
        let p = &mut sim.peers[peer];
        let mut down = Link::bottleneck(rate);
        down.latency = Duration::from_millis(20);
        p.down = down;
        p.twcc_ext = Some(TWCC_EXT);
        p.rr_loss = true;
        Svc {
            sim,
            publisher,
            peer,
        }
    }

    /// Publishes for `d`, printing the estimate every 250 ms.
    fn run(&mut self, d: Duration) {
        let end = self.sim.now + d;
        let mut next_print = self.sim.now;
        while self.sim.now < end {
            self.publisher.send_picture(&mut self.sim);
            if self.sim.now >= next_print {
                next_print += STEP;
                let tid = self.sim.peers[self.peer].transport_id.clone();
                let est = match self.sim.request(&tid, RequestBody::TransportGetStats) {
                    Ok(ResponseBody::TransportStats(st)) => st.available_outgoing_bitrate,
                    other => panic!("transport.getStats: {other:?}"),
                };
                let l = &self.sim.peers[self.peer].down.stats;
                eprintln!(
                    "t={:>6.2}s est={est:>8} drops={} maxq={}ms",
                    self.sim.now.duration_since(self.sim.start).as_secs_f64(),
                    l.queue_drops,
                    l.max_queue_delay.as_millis()
                );
            }
        }
    }

    /// What the subscriber received in 250 ms windows; `layer` is the top spatial layer (the
    /// one with most packets: layer s sends s + 1 packets a picture).
    fn timeline(&self) -> Vec<RxWindow> {
        let ssrc = *self.sim.peers[self.peer].rtx_of.values().min().unwrap();
        let ws = windows_with(&self.sim, self.peer, ssrc, self.sim.start, STEP, svc_layer);
        for w in &ws {
            eprintln!(
                "  [{:>5.2}-{:>5.2}] spatial={:?} {:>8} bps loss={:.3}",
                w.start.as_secs_f64(),
                w.end.as_secs_f64(),
                w.layer,
                w.bitrate_bps,
                w.loss_before_repair(),
            );
        }
        ws
    }
}

#[test]
fn an_svc_subscriber_behind_600k_gets_spatial_1_then_follows_the_link_down_and_up() {
    let mut s = Svc::new(5, 600_000);
    s.run(secs(15.0));
    s.sim.peers[s.peer].down.rate_bps = Some(250_000);
    s.run(secs(10.0));
    s.sim.peers[s.peer].down.rate_bps = Some(5_000_000);
    s.run(secs(15.0));
    let ws = s.timeline();
    let mid = settled_on(&ws, 1, 0.0, 15.0).expect("settles on spatial layer 1");
    assert!(mid <= secs(5.0), "on spatial layer 1 from {mid:?}");
    let l = loss(&between(&ws, 5.0, 15.0));
    assert!(l < 0.02, "loss {l:.3} on spatial layer 1 behind 600k");
    let low = settled_on(&ws, 0, 15.0, 25.0).expect("settles on spatial layer 0");
    assert!(
        low <= secs(16.0),
        "on spatial layer 0 {:?} after the drop",
        low.saturating_sub(secs(15.0))
    );
    let top = settled_on(&ws, 2, 25.0, 40.0).expect("settles on spatial layer 2");
    assert!(
        top <= secs(35.0),
        "on spatial layer 2 {:?} after the lift",
        top.saturating_sub(secs(25.0))
    );
}
