//! The raw forwarding limit: what any forwarder must do at least, in a child process pinned to
//! the system-under-test core (`ferrosfu-loadgen raw-forward`). Each turn: `recvmmsg` a batch of
//! the generator's publisher packets, SRTP-unprotect each once, then for every subscriber copy
//! it, rewrite SSRC and payload type (as the worker rewrites headers), SRTP-protect the copy
//! with that subscriber's key, and `sendmmsg` each subscriber's queue.
//!
//! Socket layout: one UDP socket per subscriber, like ferrosfu's one port per WebRtcTransport
//! (so the generator demuxes the same way, and the syscall pattern matches). No ICE, no DTLS,
//! no RTCP: the generator hands the keys over (pre-shared, in the child's stdin).
//!
//! Child protocol, one JSON object per line. stdin: first [`RawInput`], then any number of
//! [`RawAdd`]; EOF ends the child. stdout: `{"rx": ADDR}` after the input, `{"tx": [ADDR…]}`
//! after each add (one socket per added subscriber, in order).

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::BytesMut;
use rtc_srtp::context::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::LoadConfig;
use crate::media::{EngineHandle, MediaKind, SendSpec, check_spec, sendmmsg_all, setsockopt_int};
use crate::peer::{self, SrtpKey, random_bytes};
use crate::types::{Profile, Scenario};

const BATCH: usize = 64;
const RX_BUF: usize = 2048;
const SOCKET_BUFFER: usize = 32 << 20;
/// Payload type the copies carry (the router's VP8 PT in ferrosfu).
const OUT_PT: u8 = 101;

/// `ferrosfu-loadgen raw-forward`: internal, started by `run --target raw`.
#[derive(Debug, clap::Args)]
pub(crate) struct RawArgs {
    /// Core to pin the forwarding loop to.
    #[arg(long)]
    core: Option<usize>,
    #[arg(long, value_enum, default_value = "cm80")]
    profile: Profile,
    /// IP to bind the sockets on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

#[derive(Debug, Serialize, Deserialize)]
struct HexKey {
    key: String,
    salt: String,
}

impl HexKey {
    fn from_key(k: &SrtpKey) -> HexKey {
        HexKey {
            key: hex(&k.key),
            salt: hex(&k.salt),
        }
    }

    fn to_key(&self) -> Result<SrtpKey> {
        Ok(SrtpKey {
            key: unhex(&self.key)?,
            salt: unhex(&self.salt)?,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        bail!("odd hex length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| anyhow!("hex: {e}")))
        .collect()
}

/// The publisher side: its key and the SSRCs it sends (input k → output SSRC base + k).
#[derive(Debug, Serialize, Deserialize)]
struct RawInput {
    input: HexKey,
    ssrcs: Vec<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RawSub {
    /// Output SSRC of input k is `ssrc_base + k`.
    ssrc_base: u32,
    key: HexKey,
    dest: SocketAddr,
}

#[derive(Debug, Serialize, Deserialize)]
struct RawAdd {
    add: Vec<RawSub>,
}

struct Sub {
    socket: std::net::UdpSocket,
    dest: SocketAddr,
    ssrc_base: u32,
    ctx: Context,
    queue: Vec<BytesMut>,
}

fn bind_socket(ip: IpAddr) -> Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    s.set_nonblocking(true)?;
    let fd = s.as_raw_fd();
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_BUFFER).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, SOCKET_BUFFER);
    }
    Ok(s)
}

/// Pins the calling thread (and what it spawns later) to `core`.
pub(crate) fn pin(core: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get valid pointers.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("pin to core {core}"));
    }
    Ok(())
}

/// The child's main: returns when stdin closes.
pub(crate) fn raw_forward_main(args: RawArgs) -> Result<()> {
    if let Some(c) = args.core {
        pin(c)?;
    }
    let mut first = String::new();
    std::io::stdin().read_line(&mut first)?;
    let input: RawInput = serde_json::from_str(&first).context("input line")?;
    let mut input_ctx = input.input.to_key()?.inbound(args.profile)?;
    let rx = bind_socket(args.bind)?;
    let rx_addr = rx.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", serde_json::json!({ "rx": rx_addr }))?;
    out.flush()?;

    // Subscribers are bound and keyed by the stdin thread, handed over ready.
    let (tx, new_subs) = mpsc::channel::<Vec<Sub>>();
    let profile = args.profile;
    let bind = args.bind;
    std::thread::spawn(move || -> Result<()> {
        let mut out = std::io::stdout();
        for line in std::io::stdin().lock().lines() {
            let add: RawAdd = serde_json::from_str(&line?).context("add line")?;
            let mut subs = Vec::with_capacity(add.add.len());
            let mut addrs = Vec::with_capacity(add.add.len());
            for s in add.add {
                let socket = bind_socket(bind)?;
                addrs.push(socket.local_addr()?);
                subs.push(Sub {
                    socket,
                    dest: s.dest,
                    ssrc_base: s.ssrc_base,
                    ctx: s.key.to_key()?.outbound(profile)?,
                    queue: Vec::with_capacity(BATCH),
                });
            }
            if tx.send(subs).is_err() {
                break;
            }
            writeln!(out, "{}", serde_json::json!({ "tx": addrs }))?;
            out.flush()?;
        }
        // stdin closed: the parent is done.
        std::process::exit(0);
    });

    let mut subs: Vec<Sub> = Vec::new();
    let mut bufs = vec![[0u8; RX_BUF]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut copy = Vec::with_capacity(RX_BUF);
    loop {
        while let Ok(more) = new_subs.try_recv() {
            subs.extend(more);
        }
        let mut pfd = libc::pollfd {
            fd: rx.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, 10) };
        let n = recv_batch(rx.as_raw_fd(), &mut bufs, &mut lens);
        for (buf, &len) in bufs.iter().zip(&lens).take(n) {
            let Ok(plain) = input_ctx.decrypt_rtp(&buf[..len]) else {
                continue;
            };
            if plain.len() < 12 {
                continue;
            }
            let in_ssrc = u32::from_be_bytes([plain[8], plain[9], plain[10], plain[11]]);
            let Some(k) = input.ssrcs.iter().position(|s| *s == in_ssrc) else {
                continue;
            };
            for sub in &mut subs {
                // Per-consumer header rewrite into a pooled buffer, then protect.
                copy.clear();
                copy.extend_from_slice(&plain);
                copy[1] = (copy[1] & 0x80) | OUT_PT;
                copy[8..12].copy_from_slice(&sub.ssrc_base.wrapping_add(k as u32).to_be_bytes());
                if let Ok(p) = sub.ctx.encrypt_rtp(&copy) {
                    sub.queue.push(p);
                }
            }
        }
        for sub in &mut subs {
            if !sub.queue.is_empty() {
                send_to_one(sub.socket.as_raw_fd(), sub.dest, &mut sub.queue);
            }
        }
    }
}

/// One non-blocking `recvmmsg` into `bufs`, lengths into `lens`; 0 when nothing is queued.
fn recv_batch(fd: i32, bufs: &mut [[u8; RX_BUF]], lens: &mut [usize; BATCH]) -> usize {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let n = bufs.len().min(BATCH);
    for i in 0..n {
        iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
        iovs[i].iov_len = RX_BUF;
        hdrs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the headers point into `iovs` and `bufs`, alive during the call.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if r <= 0 {
        return 0;
    }
    let r = r as usize;
    for (l, h) in lens.iter_mut().zip(&hdrs).take(r) {
        *l = (h.msg_len as usize).min(RX_BUF);
    }
    r
}

/// `sendmmsg` a queue to one destination; what the kernel refuses is dropped.
fn send_to_one(fd: i32, dest: SocketAddr, q: &mut Vec<BytesMut>) {
    let _ = sendmmsg_all(fd, q, |_| dest.into(), |d| d);
    q.clear();
}

/// The generator side of `--target raw`.
pub(crate) struct RawTarget {
    cfg: LoadConfig,
    engine: EngineHandle,
    core: usize,
    child: Option<RawChild>,
    publishers: u32,
    subs: u32,
}

struct RawChild {
    proc: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// Input SSRCs, in order.
    ssrcs: Vec<u32>,
}

impl std::fmt::Debug for RawTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTarget")
            .field("core", &self.core)
            .field("subs", &self.subs)
            .finish_non_exhaustive()
    }
}

impl RawTarget {
    pub(crate) fn new(cfg: LoadConfig, engine: EngineHandle, core: usize) -> Result<RawTarget> {
        if cfg.scenario == Scenario::Meeting {
            bail!("--target raw runs fanout and audio-meeting (a meeting has no single fan-out)");
        }
        Ok(RawTarget {
            cfg,
            engine,
            core,
            child: None,
            publishers: 0,
            subs: 0,
        })
    }

    async fn start(&mut self) -> Result<()> {
        let exe = std::env::current_exe().context("own executable")?;
        let profile = match self.cfg.profile {
            Profile::Cm80 => "cm80",
            Profile::Gcm128 => "gcm128",
        };
        let local = self.engine.local_addr();
        let mut proc = tokio::process::Command::new(exe)
            .args(["raw-forward", "--core", &self.core.to_string()])
            .args(["--profile", profile, "--bind", &local.ip().to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn raw-forward")?;
        let mut stdin = proc.stdin.take().context("child stdin")?;
        let mut stdout = BufReader::new(proc.stdout.take().context("child stdout")?).lines();
        let key = SrtpKey::random(self.cfg.profile);
        let kind = match self.cfg.scenario {
            Scenario::AudioMeeting => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let ssrcs: Vec<u32> = (0..self.cfg.publishers)
            .map(|_| {
                let b = random_bytes(4);
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) | 1
            })
            .collect();
        let line = serde_json::to_string(&RawInput {
            input: HexKey::from_key(&key),
            ssrcs: ssrcs.clone(),
        })?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        let reply = stdout
            .next_line()
            .await?
            .context("raw-forward exited before binding")?;
        let v: serde_json::Value = serde_json::from_str(&reply)?;
        let rx: SocketAddr = v["rx"]
            .as_str()
            .context("raw-forward: no rx address")?
            .parse()?;
        // The publisher: pre-keyed with the child's input key; it never receives anything.
        let unused = SrtpKey::random(self.cfg.profile);
        let peer = peer::pre_keyed(rx, self.cfg.profile, &key, &unused)?;
        let id = self.engine.add_peer("raw-pub/send".into(), peer).await?;
        for (k, &ssrc) in ssrcs.iter().enumerate() {
            let spec = SendSpec {
                kind,
                ssrc,
                pt: 96,
                bitrate: self.cfg.bitrate,
                packet_size: self.cfg.packet_size,
            };
            check_spec(&spec)?;
            let stream = self.engine.add_send_stream(id, spec).await?;
            self.engine.bind_producer(stream, format!("raw-{k}"))?;
        }
        self.publishers = ssrcs.len() as u32;
        self.child = Some(RawChild {
            proc,
            stdin,
            stdout,
            ssrcs,
        });
        Ok(())
    }
}

impl crate::Target for RawTarget {
    async fn prepare(&mut self) -> Result<()> {
        if self.child.is_none() {
            self.start().await?;
        }
        Ok(())
    }

    async fn grow(&mut self, n: u32) -> Result<()> {
        self.prepare().await?;
        let child = self.child.as_mut().context("raw-forward not started")?;
        if n <= self.subs {
            return Ok(());
        }
        let local = self.engine.local_addr();
        let mut keys = Vec::new();
        let mut add = Vec::new();
        for _ in self.subs..n {
            let key = SrtpKey::random(self.cfg.profile);
            let b = random_bytes(4);
            let ssrc_base = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ff00;
            add.push(RawSub {
                ssrc_base,
                key: HexKey::from_key(&key),
                dest: local,
            });
            keys.push((key, ssrc_base));
        }
        let line = serde_json::to_string(&RawAdd { add })?;
        child
            .stdin
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        child.stdin.flush().await?;
        let reply = child
            .stdout
            .next_line()
            .await?
            .context("raw-forward exited")?;
        let v: serde_json::Value = serde_json::from_str(&reply)?;
        let tx: Vec<SocketAddr> = serde_json::from_value(v["tx"].clone())?;
        if tx.len() != keys.len() {
            bail!("raw-forward bound {} sockets for {}", tx.len(), keys.len());
        }
        for (i, ((key, base), addr)) in keys.into_iter().zip(tx).enumerate() {
            let unused = SrtpKey::random(self.cfg.profile);
            let peer = peer::pre_keyed(addr, self.cfg.profile, &unused, &key)?;
            let name = format!("sub{}/recv", self.subs as usize + i);
            let id = self.engine.add_peer(name, peer).await?;
            for k in 0..child.ssrcs.len() {
                self.engine
                    .add_consumer(id, base.wrapping_add(k as u32), format!("raw-{k}"))?;
            }
        }
        self.subs = n;
        Ok(())
    }

    fn publishers(&self) -> u32 {
        self.publishers
    }

    async fn sut_pids(&self) -> Result<Vec<u32>> {
        Ok(self
            .child
            .as_ref()
            .and_then(|c| c.proc.id())
            .into_iter()
            .collect())
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "raw: recvmmsg batch {BATCH}, SRTP unprotect once, per subscriber copy + SSRC/PT \
             rewrite + protect, sendmmsg per subscriber socket (one UDP socket per subscriber, \
             as ferrosfu's per-transport ports); pinned to core {}",
            self.core
        )]
    }

    async fn close(mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin);
            let _ = tokio::time::timeout(Duration::from_secs(2), c.proc.wait()).await;
            let _ = c.proc.kill().await;
        }
    }
}
