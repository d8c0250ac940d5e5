//! The IO shell: reads frames from fd 3, feeds the core, writes replies, notifications and logs to
//! fd 4; binds the media sockets requests ask for and drives the core's timer. All of it on one
//! thread.
//!
//! Three kinds of task share the [`Shell`] (an `Rc<RefCell<_>>` on the worker's `LocalSet`,
//! borrowed only between awaits): the channel loop ([`channel_loop`]: read frames, write what is
//! queued for the supervisor), the timer ([`timer`]: sleep until [`WorkerCore::poll_timeout`],
//! then [`Input::Timeout`]), and the socket pumps (see `net.rs`). Whoever feeds the core an input
//! drains its outputs at once, then ends the turn ([`Host::end_turn`]): queued datagrams are
//! flushed, and the channel loop or the timer is woken if the turn left them something to do.

use std::cell::RefCell;
use std::future::poll_fn;
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

use anyhow_lite::{Context, Error};
use ferrosfu_fbs::{
    DecodeError, Encoder, Event, FrameBuffer, FrameEvent, HandlerId, LogRecord, Message,
    Notification, PROTOCOL_VERSION, Request, RequestBody, RequestFailure, ResourceUsage, Response,
    ResponseBody, WorkerRunning, decode_message,
};
use ferrosfu_worker_core::{
    BoundSocket, CoreConfig, Input, MAX_TRANSMIT_BYTES, Output, Tuple, WorkerCore, sockets_needed,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use crate::logging::{self, LogControl};
use crate::net::{Host, Limits, Net, Wake};
use crate::ports;
use crate::settings::Settings;

/// Minimal error type for the shell (the worker keeps its dependency list short).
mod anyhow_lite {
    pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
    pub(crate) trait Context<T> {
        fn context(self, what: &str) -> Result<T, Error>;
    }
    impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
        fn context(self, what: &str) -> Result<T, Error> {
            self.map_err(|e| format!("{what}: {e}").into())
        }
    }
}

const CHANNEL_IN_FD: i32 = 3;
/// The most datagrams the core groups into one transmit (Linux's UDP GSO limit); the socket
/// queues split them again and regroup what their socket can send as one GSO batch.
const GSO_SEGMENTS: usize = 64;
const CHANNEL_OUT_FD: i32 = 4;

struct Shell {
    core: WorkerCore,
    log: LogControl,
    enc: Encoder,
    /// Frames queued for the supervisor (written by the channel loop).
    out: Vec<u8>,
    closing: bool,
    logs: mpsc::UnboundedReceiver<LogRecord>,
    net: Net,
    /// The buffer the core writes each transmit into (caller-owned, reused).
    tx_buf: Vec<u8>,
    rtc_ports: Option<(u16, u16)>,
    /// The sockets handed to the core with the request being handled: released again if the
    /// core's reply is an error (the core did not take them).
    lent: Option<(ferrosfu_fbs::RequestId, Vec<BoundSocket>)>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    wake_channel: Rc<Wake>,
    wake_timer: Rc<Wake>,
}

impl Host for Shell {
    fn net(&mut self) -> &mut Net {
        &mut self.net
    }

    fn on_datagram(&mut self, tuple: Tuple, data: &[u8], arrival: Instant, now: Instant) {
        self.core.handle_input(
            Input::Datagram {
                tuple,
                data,
                arrival,
            },
            now,
        );
        self.drain(now);
    }

    fn end_turn(&mut self) {
        self.net.flush();
        if !self.out.is_empty() {
            self.wake_channel.wake();
        }
        if self.core.poll_timeout() != self.armed {
            self.wake_timer.wake();
        }
    }
}

/// Takes ownership of the channel fds. Must run before anything else opens a fd (the runtime's
/// epoll and eventfd would otherwise land on 3 and 4 when the worker was started without them).
pub(crate) fn take_fds() -> Result<(OwnedFd, OwnedFd), Error> {
    for fd in [CHANNEL_IN_FD, CHANNEL_OUT_FD] {
        // SAFETY: F_GETFD only asks whether the fd is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(
                format!("channel fd {fd} is not open (workers are spawned by ferrosfu)").into(),
            );
        }
    }
    // SAFETY: fds 3 and 4 are open (checked above) and are the channel by contract with the
    // supervisor; nothing else in this process owns them.
    Ok(unsafe {
        (
            OwnedFd::from_raw_fd(CHANNEL_IN_FD),
            OwnedFd::from_raw_fd(CHANNEL_OUT_FD),
        )
    })
}

pub(crate) async fn run(settings: Settings, fds: (OwnedFd, OwnedFd)) -> Result<(), Error> {
    // Socket pumps and the timer are `spawn_local` tasks; they end with the channel loop.
    tokio::task::LocalSet::new()
        .run_until(channel_loop(settings, fds))
        .await
}

async fn channel_loop(settings: Settings, (rx_fd, tx_fd): (OwnedFd, OwnedFd)) -> Result<(), Error> {
    let (log_tx, log_rx) = mpsc::unbounded_channel::<LogRecord>();
    let log = logging::init(settings.log_level, &settings.log_targets, log_tx)
        .map_err(|e| format!("logging: {e}"))?;

    let mut rx = pipe::Receiver::from_owned_fd(rx_fd).context("channel fd 3 (in)")?;
    let mut tx = pipe::Sender::from_owned_fd(tx_fd).context("channel fd 4 (out)")?;

    let pid = std::process::id();
    let core = settings.core.unwrap_or(u32::MAX);
    let wake_channel = Rc::new(Wake::default());
    let wake_timer = Rc::new(Wake::default());
    let shell = Rc::new(RefCell::new(Shell {
        core: WorkerCore::new(CoreConfig::new(pid, core)),
        log,
        enc: Encoder::new(),
        out: Vec::with_capacity(64 * 1024),
        closing: false,
        logs: log_rx,
        net: Net::new(Limits::default()),
        tx_buf: Vec::with_capacity(MAX_TRANSMIT_BYTES),
        rtc_ports: Some(settings.rtc_ports),
        lent: None,
        armed: None,
        wake_channel: wake_channel.clone(),
        wake_timer: wake_timer.clone(),
    }));
    shell
        .borrow_mut()
        .push(&Message::Notification(Notification {
            handler_id: HandlerId::worker(),
            event: Event::WorkerRunning(WorkerRunning {
                pid,
                core,
                protocol_version: PROTOCOL_VERSION,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            }),
        }));
    tracing::info!(
        target: "channel",
        pid,
        core = settings.core,
        rtc_ports = ?settings.rtc_ports,
        "worker running"
    );
    tokio::task::spawn_local(timer(shell.clone(), wake_timer));

    let mut frames = FrameBuffer::new();
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        let closing = {
            let mut s = shell.borrow_mut();
            s.flush_logs();
            std::mem::swap(&mut s.out, &mut spare);
            s.closing
        };
        // Never borrowed across this await: the other tasks queue more meanwhile.
        if !spare.is_empty() {
            tx.write_all(&spare).await.context("channel write")?;
            spare.clear();
        }
        if closing {
            return Ok(());
        }
        tokio::select! {
            biased;
            n = rx.read_buf(frames.read_target()) => {
                if n.context("channel read")? == 0 {
                    // The supervisor closed our input: it is gone or wants us gone.
                    return Ok(());
                }
                let now = Instant::now();
                let mut s = shell.borrow_mut();
                while let Some(ev) = frames.next_event() {
                    s.on_frame(ev, now, &shell);
                }
                s.end_turn();
            }
            Some(record) = poll_fn(|cx| shell.borrow_mut().logs.poll_recv(cx)) => {
                shell.borrow_mut().push_log(record);
            }
            () = wake_channel.wait() => {}
        }
    }
}

/// Feeds [`Input::Timeout`] when [`WorkerCore::poll_timeout`] comes; re-arms whenever a turn
/// changed the deadline.
async fn timer(shell: Rc<RefCell<Shell>>, wake: Rc<Wake>) {
    loop {
        let deadline = {
            let mut s = shell.borrow_mut();
            s.armed = s.core.poll_timeout();
            s.armed
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let mut s = shell.borrow_mut();
                let now = Instant::now();
                s.core.handle_input(Input::Timeout, now);
                s.drain(now);
                s.end_turn();
            }
            () = wake.wait() => {}
        }
    }
}

impl Shell {
    /// Queues a message, after any log lines emitted before it (so logs precede the reply that
    /// caused them).
    fn push(&mut self, msg: &Message) {
        self.flush_logs();
        self.encode(msg);
    }

    fn flush_logs(&mut self) {
        while let Ok(record) = self.logs.try_recv() {
            self.push_log(record);
        }
    }

    fn push_log(&mut self, record: LogRecord) {
        self.encode(&Message::Log(record));
    }

    fn encode(&mut self, msg: &Message) {
        if let Err(e) = self.enc.encode_frame(msg, &mut self.out) {
            // Only a >4 MiB message could do this; report it instead of sending it.
            tracing::error!(target: "channel", "dropping outgoing message: {e}");
        }
    }

    fn channel_error(&mut self, reason: String) {
        tracing::error!(target: "channel", "{reason}");
        self.push(&Message::Notification(Notification {
            handler_id: HandlerId::worker(),
            event: Event::WorkerChannelError { reason },
        }));
    }

    fn on_frame(&mut self, ev: FrameEvent, now: Instant, this: &Rc<RefCell<Shell>>) {
        match ev {
            FrameEvent::Oversized {
                declared,
                discarded,
            } => self.channel_error(format!(
                "frame of {declared} bytes exceeds the limit; discarded {discarded} buffered bytes"
            )),
            FrameEvent::Frame(payload) => match decode_message(&payload) {
                Ok(Message::Request(req)) => self.on_request(req, now, this),
                Ok(other) => self.channel_error(format!(
                    "unexpected message from the supervisor: {}",
                    match other {
                        Message::Response(_) => "response",
                        Message::Notification(_) => "notification",
                        Message::Log(_) => "log",
                        Message::Request(_) => "request",
                    }
                )),
                Err(DecodeError {
                    request_id: Some(id),
                    reason,
                }) => {
                    tracing::warn!(target: "channel", id = id.0, "bad request: {reason}");
                    self.push(&Message::Response(Response {
                        id,
                        result: Err(RequestFailure::invalid_argument(reason)),
                    }));
                }
                Err(DecodeError {
                    request_id: None,
                    reason,
                }) => self.channel_error(format!(
                    "undecodable frame of {} bytes: {reason}",
                    payload.len()
                )),
            },
        }
    }

    fn on_request(&mut self, req: Request, now: Instant, this: &Rc<RefCell<Shell>>) {
        let id = req.id;
        match req.body {
            RequestBody::WorkerGetResourceUsage => {
                let sockets = self.net.stats().counters();
                let result = resource_usage()
                    .map(|u| ResponseBody::ResourceUsage(ResourceUsage { sockets, ..u }));
                self.push(&Message::Response(Response { id, result }));
            }
            RequestBody::WorkerUpdateSettings(s) => {
                let result = self
                    .log
                    .update(s.log_level, s.log_targets)
                    .map(|()| ResponseBody::None)
                    .map_err(RequestFailure::invalid_argument);
                self.push(&Message::Response(Response { id, result }));
            }
            _ => {
                let needed = sockets_needed(&req);
                if needed.is_empty() {
                    self.core.handle_input(Input::Command(req), now);
                } else {
                    let opened = ports::bind_all(&needed, self.rtc_ports).and_then(|bound| {
                        self.net.open(this, bound).map_err(RequestFailure::failed)
                    });
                    match opened {
                        Ok(sockets) => {
                            self.lent = Some((id, sockets.clone()));
                            self.core
                                .handle_input(Input::CommandWithSockets(req, sockets), now);
                        }
                        Err(failure) => {
                            tracing::debug!(target: "net", id = id.0, "{}", failure.reason);
                            self.push(&Message::Response(Response {
                                id,
                                result: Err(failure),
                            }));
                            return;
                        }
                    }
                }
                self.drain(now);
                self.lent = None;
            }
        }
    }

    /// Queues every datagram the core has for the end-of-turn flush, then acts on every output
    /// (the drive contract's steps 2 and 3).
    fn drain(&mut self, now: Instant) {
        // UDP transmits are written by the core straight into their socket's send queue; TCP
        // (and a tuple whose socket is gone, counted there) through `tx_buf`.
        while let Some(tuple) = self.core.peek_transmit() {
            let core = &mut self.core;
            let direct = self.net.transmit_udp_with(tuple, |queue| {
                core.poll_transmit(now, GSO_SEGMENTS, queue)
                    .map(|t| (t.size, t.segment_size))
            });
            if !direct {
                let Some(t) = self.core.poll_transmit(now, GSO_SEGMENTS, &mut self.tx_buf) else {
                    break;
                };
                self.net.transmit(t, &self.tx_buf);
                self.tx_buf.clear();
            }
        }
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Reply(r) => {
                    if r.result.is_err()
                        && let Some((_, sockets)) = self.lent.take_if(|(id, _)| *id == r.id)
                    {
                        self.net.release(&sockets);
                    }
                    self.push(&Message::Response(r));
                }
                Output::Notify(n) => self.push(&Message::Notification(n)),
                Output::ReleaseSockets(sockets) => self.net.release(&sockets),
                Output::Closed => {
                    tracing::debug!(target: "net", stats = ?self.net.stats(), "socket counters");
                    tracing::info!(target: "channel", "worker closed");
                    self.closing = true;
                }
            }
        }
    }
}

fn resource_usage() -> Result<ResourceUsage, RequestFailure> {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF)
        .map_err(|e| RequestFailure::failed(format!("getrusage: {e}")))?;
    let micros = |t: nix::sys::time::TimeVal| {
        (t.tv_sec() as u64)
            .saturating_mul(1_000_000)
            .saturating_add(t.tv_usec() as u64)
    };
    let n = |v: libc::c_long| v.max(0) as u64;
    Ok(ResourceUsage {
        ru_utime: micros(u.user_time()),
        ru_stime: micros(u.system_time()),
        ru_maxrss: n(u.max_rss()),
        ru_minflt: n(u.minor_page_faults()),
        ru_majflt: n(u.major_page_faults()),
        ru_inblock: n(u.block_reads()),
        ru_oublock: n(u.block_writes()),
        ru_nvcsw: n(u.voluntary_context_switches()),
        ru_nivcsw: n(u.involuntary_context_switches()),
        sockets: Default::default(),
    })
}
