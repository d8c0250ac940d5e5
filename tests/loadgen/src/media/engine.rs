//! The engine thread's state and loop ([`Core`]): the peers (slots), their timers, the
//! publishers' streams, the measurement window, the decryption sampling control.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bytes::BytesMut;
use tokio::sync::oneshot;

use super::socket::{AddrMap, RxArena, send_queue};
use super::streams::{OutStream, RecvStream, keyframe_requests, receiver_report, sent_at_ns};
use super::{
    BATCH, CPU_CONTROL_PERIOD, Cmd, DECRYPT_CPU_HIGH, DECRYPT_CPU_LOW, DECRYPT_EVERY_MAX, PeerId,
    RX_BATCHES_PER_TURN, RX_BUF, Status, StreamId, WINDOW_GRACE, Window,
};
use crate::peer::{Event, Peer};
use crate::stats::{Histogram, thread_cpu, thread_run_delay, wall_ns};
use crate::types::Latency;

pub(super) struct Slot {
    name: String,
    /// Removed by signaling (`Cmd::RemovePeer`): kept so peer ids stay indices.
    removed: bool,
    peer: Peer,
    /// The deadline this slot has in the timer heap.
    timer: Option<Instant>,
    failed: Option<String>,
    out: Vec<StreamId>,
    recv: Vec<RecvStream>,
}

pub(super) struct WindowState {
    started: Instant,
    /// Send stamps in [t0, t1) belong to the window.
    t0_ns: u64,
    t1_ns: Option<u64>,
    /// Wall time of the window (set at close).
    wall: Duration,
    /// Close requested: the reply goes out at `grace_until`.
    reply: Option<oneshot::Sender<Window>>,
    grace_until: Option<Instant>,
    /// Counters frozen at close.
    closed: Option<Window>,
    cpu: Duration,
    run_delay: Duration,
    drops: u64,
    srtp_failures: u64,
    unknown_ssrc: u64,
    send_errors: u64,
    decrypt_every_max: u32,
}

pub(super) struct Core {
    socket: socket2::Socket,
    local: SocketAddr,
    wake: Arc<OwnedFd>,
    rx: mpsc::Receiver<Cmd>,
    slots: Vec<Slot>,
    demux: AddrMap<PeerId>,
    streams: Vec<OutStream>,
    producers: HashMap<String, StreamId>,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    queue: Vec<(SocketAddr, BytesMut)>,
    hist: Histogram,
    window: Option<WindowState>,
    decrypt_every: u32,
    /// `--decrypt-every`: the sampling interval never goes below this.
    decrypt_every_min: u32,
    cpu_mark: (Instant, Duration),
    /// Cumulative SO_RXQ_OVFL counter, and its value at the last CPU control.
    drops: u64,
    drops_mark: u64,
    srtp_failures: u64,
    unknown_ssrc: u64,
    unknown_source: u64,
    send_errors: u64,
    scratch: Vec<u8>,
    keyframe_ssrcs: Vec<u32>,
    /// `--rtcp-interval`: every subscriber sends a receiver report this often.
    pub(super) rtcp_interval: Option<Duration>,
    rtcp_due: BinaryHeap<Reverse<(Instant, PeerId)>>,
    rtcp_sent: u64,
}

impl Core {
    pub(super) fn new(
        socket: socket2::Socket,
        local: SocketAddr,
        wake: Arc<OwnedFd>,
        rx: mpsc::Receiver<Cmd>,
        decrypt_every_min: u32,
    ) -> Core {
        Core {
            socket,
            local,
            wake,
            rx,
            slots: Vec::new(),
            demux: AddrMap::default(),
            streams: Vec::new(),
            producers: HashMap::new(),
            timers: BinaryHeap::new(),
            queue: Vec::with_capacity(4 * BATCH),
            hist: Histogram::new(),
            window: None,
            decrypt_every: decrypt_every_min,
            decrypt_every_min,
            cpu_mark: (Instant::now(), thread_cpu()),
            drops: 0,
            drops_mark: 0,
            srtp_failures: 0,
            unknown_ssrc: 0,
            unknown_source: 0,
            send_errors: 0,
            scratch: Vec::with_capacity(RX_BUF),
            keyframe_ssrcs: Vec::new(),
            rtcp_interval: None,
            rtcp_due: BinaryHeap::new(),
            rtcp_sent: 0,
        }
    }

    pub(super) fn run(&mut self) {
        let mut arena = RxArena::new();
        let fd = self.socket.as_raw_fd();
        loop {
            if !self.commands() {
                tracing::debug!(target: "media", local = %self.local, "media engine stopped");
                return;
            }
            let now = Instant::now();
            self.pace(now);
            self.flush();
            for _ in 0..RX_BATCHES_PER_TURN {
                match arena.recv(fd) {
                    Ok(0) => break,
                    Ok(n) => {
                        let now = Instant::now();
                        for i in 0..n {
                            let (from, data, ts, drops) = arena.message(i);
                            if let Some(d) = drops {
                                self.drops = u64::from(d);
                            }
                            if let Some(from) = from {
                                self.on_datagram(now, from, data, ts);
                            }
                        }
                        if n < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // ICMP errors (a server port closed) surface here: keep going.
                        tracing::debug!(target: "media", "recvmmsg: {e}");
                        break;
                    }
                }
            }
            let now = Instant::now();
            self.timers(now);
            self.reports(now);
            self.flush();
            self.cpu_control(now);
            self.finish_window(now);
            self.sleep(fd, now);
        }
    }

    /// Applies pending commands; false on Stop.
    fn commands(&mut self) -> bool {
        let mut buf = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                (&raw mut buf).cast::<libc::c_void>(),
                8,
            )
        };
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Cmd::Stop => return false,
                Cmd::AddPeer { name, peer, reply } => {
                    let id = self.slots.len() as PeerId;
                    let failed = self.demux.insert(peer.remote_addr(), id).map(|other| {
                        // A server that puts every transport on one port (a WebRtcServer):
                        // the demux by server address cannot tell these peers apart.
                        let why = format!(
                            "server address {} already used by peer {} (a WebRtcServer? the \
                             generator needs a port per server transport)",
                            peer.remote_addr(),
                            self.slots[other as usize].name
                        );
                        tracing::error!(target: "media", peer = %name, "{why}");
                        why
                    });
                    self.slots.push(Slot {
                        name,
                        removed: false,
                        peer: *peer,
                        timer: None,
                        failed,
                        out: Vec::new(),
                        recv: Vec::new(),
                    });
                    self.after_io(id, Instant::now());
                    let _ = reply.send(id);
                }
                Cmd::AddSendStream { peer, spec, reply } => {
                    let r = match self.slots.get_mut(peer as usize) {
                        Some(slot) => {
                            let id = self.streams.len() as StreamId;
                            let mut s = OutStream::new(peer, spec, Instant::now());
                            if slot.peer.is_connected() {
                                s.next_due = Some(Instant::now());
                            }
                            self.streams.push(s);
                            slot.out.push(id);
                            Ok(id)
                        }
                        None => Err(anyhow!("no peer {peer}")),
                    };
                    let _ = reply.send(r);
                }
                Cmd::BindProducer {
                    stream,
                    producer_id,
                } => {
                    self.producers.insert(producer_id, stream);
                }
                Cmd::AddConsumer {
                    peer,
                    ssrc,
                    producer_id,
                } => {
                    if let Some(slot) = self.slots.get_mut(peer as usize)
                        && !slot.recv.iter().any(|r| r.ssrc == ssrc)
                    {
                        if slot.recv.is_empty()
                            && let Some(every) = self.rtcp_interval
                        {
                            // Spread the subscribers' reports over the interval.
                            let offset = every.mul_f64(f64::from(peer % 997) / 997.0);
                            self.rtcp_due.push(Reverse((Instant::now() + offset, peer)));
                        }
                        slot.recv.push(RecvStream::new(ssrc, producer_id));
                    }
                }
                Cmd::RemovePeer(peer) => self.remove_peer(peer),
                Cmd::Status(reply) => {
                    let _ = reply.send(self.status());
                }
                Cmd::StartWindow(reply) => {
                    self.start_window();
                    let _ = reply.send(());
                }
                Cmd::EndWindow(reply) => self.close_window(reply),
            }
        }
    }

    fn remove_peer(&mut self, peer: PeerId) {
        let Some(slot) = self.slots.get_mut(peer as usize) else {
            return;
        };
        if slot.removed {
            return;
        }
        slot.removed = true;
        slot.timer = None;
        slot.recv.clear();
        for &s in &slot.out {
            // Its streams stop; what they sent stays in the window's count.
            self.streams[s as usize].next_due = None;
        }
        let addr = slot.peer.remote_addr();
        if self.demux.get(&addr) == Some(&peer) {
            self.demux.remove(&addr);
        }
    }

    fn status(&self) -> Status {
        let mut s = Status::default();
        for slot in self.slots.iter().filter(|s| !s.removed) {
            s.peers += 1;
            if slot.peer.is_connected() {
                s.connected += 1;
            }
            let st = slot.peer.stats();
            s.dropped += st.stun_dropped + st.dtls_errors + st.other_dropped;
            if let Some(why) = &slot.failed {
                s.failed.push((slot.name.clone(), why.clone()));
            }
            s.consumers += slot.recv.len() as u32;
            let flowing = slot.recv.iter().filter(|r| r.received > 0).count() as u32;
            s.flowing += flowing;
            if (flowing as usize) < slot.recv.len() && s.waiting.len() < 20 {
                s.waiting.push(slot.name.clone());
            }
        }
        s
    }

    fn start_window(&mut self) {
        for slot in &mut self.slots {
            for r in &mut slot.recv {
                r.window_arrived = 0;
                r.window_stamped = 0;
                r.window_base = r.highest;
                r.window_end = None;
            }
        }
        for s in &mut self.streams {
            s.window_sent = 0;
        }
        self.hist.clear();
        self.window = Some(WindowState {
            started: Instant::now(),
            t0_ns: wall_ns(),
            t1_ns: None,
            wall: Duration::ZERO,
            reply: None,
            grace_until: None,
            closed: None,
            cpu: thread_cpu(),
            run_delay: thread_run_delay(),
            drops: self.drops,
            srtp_failures: self.srtp_failures,
            unknown_ssrc: self.unknown_ssrc,
            send_errors: self.send_errors,
            decrypt_every_max: self.decrypt_every,
        });
    }

    /// Closes the window: publishers stop counting, CPU and drop counters are read now; the
    /// reply waits `WINDOW_GRACE` for packets sent inside the window still in flight.
    fn close_window(&mut self, reply: oneshot::Sender<Window>) {
        let Some(w) = self.window.as_mut() else {
            let _ = reply.send(Window::default());
            return;
        };
        w.t1_ns = Some(wall_ns());
        w.wall = w.started.elapsed();
        w.grace_until = Some(Instant::now() + WINDOW_GRACE);
        w.reply = Some(reply);
        w.closed = Some(Window {
            wall: w.wall,
            engine_cpu: thread_cpu().saturating_sub(w.cpu),
            engine_run_delay: thread_run_delay().saturating_sub(w.run_delay),
            rx_drops: self.drops.saturating_sub(w.drops),
            srtp_failures: self.srtp_failures - w.srtp_failures,
            unknown_ssrc: self.unknown_ssrc - w.unknown_ssrc,
            send_errors: self.send_errors - w.send_errors,
            decrypt_every_max: w.decrypt_every_max,
            ..Window::default()
        });
        for slot in &mut self.slots {
            for r in &mut slot.recv {
                r.window_end = r.highest;
            }
        }
    }

    /// After the grace: counts and replies.
    fn finish_window(&mut self, now: Instant) {
        let due = self.window.as_ref().and_then(|w| w.grace_until);
        if due.is_none_or(|t| now < t) {
            return;
        }
        let Some(mut w) = self.window.take() else {
            return;
        };
        let mut out = w.closed.take().unwrap_or_default();
        out.sent = self.streams.iter().map(|s| s.window_sent).sum();
        let (mut arrived, mut stamped) = (0, 0);
        for slot in &self.slots {
            for r in &slot.recv {
                arrived += r.window_arrived;
                stamped += r.window_stamped;
                match self.producers.get(&r.producer_id) {
                    Some(&s) => out.expected += self.streams[s as usize].window_sent,
                    None => out.unmapped_consumers += 1,
                }
                if let (Some(b), Some(e)) = (r.window_base, r.window_end) {
                    out.seq_gap_lost += (e - b).saturating_sub(r.window_arrived);
                }
            }
        }
        // Every packet decrypted: membership by send stamp, exact at the window's edges.
        // Sampled: by arrival time (edges cost up to one fan-out burst).
        out.received = if out.decrypt_every_max == 1 {
            stamped
        } else {
            arrived
        };
        out.latency = Latency {
            p50_us: self.hist.percentile(0.50),
            p99_us: self.hist.percentile(0.99),
            p999_us: self.hist.percentile(0.999),
        };
        out.latency_samples = self.hist.count();
        out.latency_max_us = self.hist.max();
        if let Some(reply) = w.reply.take() {
            let _ = reply.send(out);
        }
    }

    /// Re-arms a slot's timer and queues what it wants to send.
    fn after_io(&mut self, id: PeerId, now: Instant) {
        let slot = &mut self.slots[id as usize];
        while let Some(d) = slot.peer.poll_transmit() {
            self.queue
                .push((slot.peer.remote_addr(), BytesMut::from(&d[..])));
        }
        let t = slot.peer.poll_timeout();
        if t != slot.timer {
            slot.timer = t;
            if let Some(t) = t {
                self.timers.push(Reverse((t.max(now), id)));
            }
        }
    }

    fn on_event(&mut self, id: PeerId, ev: Event, now: Instant) {
        let slot = &mut self.slots[id as usize];
        match ev {
            Event::Connected => {
                tracing::debug!(target: "media", peer = %slot.name, "connected");
                for &s in &slot.out {
                    let st = &mut self.streams[s as usize];
                    if st.next_due.is_none() {
                        st.next_due = Some(now);
                    }
                }
            }
            Event::Failed(why) => {
                tracing::warn!(target: "media", peer = %slot.name, "transport failed: {why}");
                slot.failed = Some(why);
            }
            Event::IceConnected | Event::Rtp | Event::Rtcp => {}
        }
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], rx_ns: Option<u64>) {
        let Some(&id) = self.demux.get(&from) else {
            self.unknown_source += 1;
            return;
        };
        let ev = self.slots[id as usize].peer.handle_datagram(now, data);
        match ev {
            Some(Event::Rtp) => self.on_rtp(id, data, rx_ns),
            Some(Event::Rtcp) => self.on_rtcp(id, data),
            Some(ev) => {
                self.on_event(id, ev, now);
                self.after_io(id, now);
            }
            None => self.after_io(id, now),
        }
    }

    fn on_rtp(&mut self, id: PeerId, data: &[u8], rx_ns: Option<u64>) {
        if data.len() < 12 {
            return;
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let slot = &mut self.slots[id as usize];
        let Some(r) = slot.recv.iter_mut().find(|r| r.ssrc == ssrc) else {
            self.unknown_ssrc += 1;
            return;
        };
        r.on_seq(seq);
        let Some(w) = self.window.as_ref() else {
            if r.received % u64::from(self.decrypt_every) == 0
                && slot.peer.unprotect_rtp(data).is_none()
            {
                self.srtp_failures += 1;
            }
            return;
        };
        if w.t1_ns.is_none() {
            r.window_arrived += 1;
        }
        if r.received % u64::from(self.decrypt_every) != 0 {
            return;
        }
        let Some(plain) = slot.peer.unprotect_rtp(data) else {
            self.srtp_failures += 1;
            return;
        };
        if let Some(tx) = sent_at_ns(&plain)
            && tx >= w.t0_ns
            && w.t1_ns.is_none_or(|t1| tx < t1)
        {
            r.window_stamped += 1;
            if let Some(rx) = rx_ns {
                self.hist.record(rx.saturating_sub(tx) / 1000);
            }
        }
    }

    fn on_rtcp(&mut self, id: PeerId, data: &[u8]) {
        let slot = &mut self.slots[id as usize];
        let Some(plain) = slot.peer.unprotect_rtcp(data) else {
            self.srtp_failures += 1;
            return;
        };
        self.keyframe_ssrcs.clear();
        keyframe_requests(&plain, &mut self.keyframe_ssrcs);
        for &s in &slot.out {
            let st = &mut self.streams[s as usize];
            if self.keyframe_ssrcs.contains(&st.spec.ssrc) {
                st.keyframe_due = true;
            }
        }
    }

    fn pace(&mut self, now: Instant) {
        let counting = self.window.as_ref().is_some_and(|w| w.t1_ns.is_none());
        let mut buf = std::mem::take(&mut self.scratch);
        for s in &mut self.streams {
            while s.next_due.is_some_and(|t| t <= now) {
                s.next_packet(now, &mut buf);
                if counting {
                    s.window_sent += 1;
                }
                let slot = &mut self.slots[s.peer as usize];
                match slot.peer.protect_rtp(&buf) {
                    Ok(p) => self.queue.push((slot.peer.remote_addr(), p)),
                    Err(_) => self.send_errors += 1,
                }
            }
        }
        self.scratch = buf;
    }

    fn timers(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[id as usize];
            if slot.removed || slot.timer.is_none_or(|want| want > now) {
                // Stale entry (re-armed later, or already served).
                continue;
            }
            slot.timer = None;
            if let Some(ev) = slot.peer.handle_timeout(now) {
                self.on_event(id, ev, now);
            }
            self.after_io(id, now);
        }
    }

    /// Receiver reports of the subscribers that are due (`--rtcp-interval`), as a browser sends
    /// them: one report block per received stream.
    fn reports(&mut self, now: Instant) {
        let Some(every) = self.rtcp_interval else {
            return;
        };
        while let Some(Reverse((t, id))) = self.rtcp_due.peek().copied() {
            if t > now {
                break;
            }
            self.rtcp_due.pop();
            let slot = &mut self.slots[id as usize];
            if slot.removed {
                continue;
            }
            self.rtcp_due.push(Reverse((t + every, id)));
            if slot.failed.is_some() || !slot.peer.is_connected() {
                continue;
            }
            let blocks: Vec<(u32, u32)> = slot
                .recv
                .iter()
                .filter_map(|r| Some((r.ssrc, r.highest? as u32)))
                .take(31)
                .collect();
            let rr = receiver_report(0x1000_0000 | id, &blocks);
            match slot.peer.protect_rtcp(&rr) {
                Ok(p) => {
                    self.queue.push((slot.peer.remote_addr(), p));
                    self.rtcp_sent += 1;
                }
                Err(_) => self.send_errors += 1,
            }
        }
    }

    fn flush(&mut self) {
        if !self.queue.is_empty() {
            send_queue(
                self.socket.as_raw_fd(),
                &mut self.queue,
                &mut self.send_errors,
            );
        }
    }

    fn cpu_control(&mut self, now: Instant) {
        let (t0, c0) = self.cpu_mark;
        let wall = now.saturating_duration_since(t0);
        if wall < CPU_CONTROL_PERIOD {
            return;
        }
        let cpu = thread_cpu();
        let share = cpu.saturating_sub(c0).as_secs_f64() / wall.as_secs_f64();
        self.cpu_mark = (now, cpu);
        // Drops mean we fell behind even if our CPU share looks low (other processes on the
        // core take the rest).
        let dropping = self.drops > self.drops_mark;
        self.drops_mark = self.drops;
        if (share > DECRYPT_CPU_HIGH || dropping) && self.decrypt_every < DECRYPT_EVERY_MAX {
            self.decrypt_every *= 2;
        } else if share < DECRYPT_CPU_LOW && self.decrypt_every > self.decrypt_every_min {
            self.decrypt_every /= 2;
        }
        if let Some(w) = self.window.as_mut() {
            w.decrypt_every_max = w.decrypt_every_max.max(self.decrypt_every);
        }
    }

    fn sleep(&mut self, fd: i32, now: Instant) {
        let mut next = now + Duration::from_millis(100);
        for s in &self.streams {
            if let Some(t) = s.next_due {
                next = next.min(t);
            }
        }
        if let Some(Reverse((t, _))) = self.timers.peek() {
            next = next.min(*t);
        }
        if let Some(Reverse((t, _))) = self.rtcp_due.peek() {
            next = next.min(*t);
        }
        if let Some(t) = self.window.as_ref().and_then(|w| w.grace_until) {
            next = next.min(t);
        }
        let wait = next.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return;
        }
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two live pollfds and a live timespec; no signal mask change.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    }
}
