//! The real `ferrosfu-worker` binary, spawned with a channel on fds 3/4, spoken to in raw frames:
//! the protocol, garbage resistance, and exit codes.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ferrosfu_fbs::*;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

const WORKER: &str = env!("CARGO_BIN_EXE_ferrosfu-worker");
const WAIT: Duration = Duration::from_secs(10);

struct Worker {
    child: Child,
    tx: std::fs::File,
    frames: mpsc::Receiver<Message>,
    enc: Encoder,
    next_id: u32,
}

/// A fd number >= 10 so that dup2 onto 3 and 4 in the child can never clobber the other one.
fn high(fd: OwnedFd) -> OwnedFd {
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10)).expect("dup");
    // SAFETY: fcntl returned a new fd that nothing else owns.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) }
}

fn spawn(args: &[&str]) -> Worker {
    let (to_worker_r, to_worker_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let (from_worker_r, from_worker_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let (child_in, child_out) = (high(to_worker_r), high(from_worker_w));
    let (in_fd, out_fd) = (child_in.as_raw_fd(), child_out.as_raw_fd());
    let mut cmd = Command::new(WORKER);
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(in_fd, 3) < 0 || libc::dup2(out_fd, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn worker");
    drop((child_in, child_out));
    let (ftx, frx) = mpsc::channel();
    let mut rx = std::fs::File::from(from_worker_r);
    std::thread::spawn(move || {
        let mut fb = FrameBuffer::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = match rx.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            fb.extend_from_slice(&buf[..n]);
            while let Some(FrameEvent::Frame(p)) = fb.next_event() {
                if ftx
                    .send(decode_message(&p).expect("worker sends valid frames"))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Worker {
        child,
        tx: std::fs::File::from(to_worker_w),
        frames: frx,
        enc: Encoder::new(),
        next_id: 1,
    }
}

impl Worker {
    fn next(&self) -> Message {
        self.frames.recv_timeout(WAIT).expect("worker message")
    }

    /// Next message that is not a log line.
    fn next_non_log(&self) -> Message {
        loop {
            match self.next() {
                Message::Log(_) => continue,
                m => return m,
            }
        }
    }

    fn running(&self) -> WorkerRunning {
        match self.next_non_log() {
            Message::Notification(Notification {
                event: Event::WorkerRunning(r),
                ..
            }) => r,
            m => panic!("expected running, got {m:?}"),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.tx.write_all(bytes).expect("write");
    }

    fn frame(&mut self, id: u32, handler: &str, body: RequestBody) -> Vec<u8> {
        let req = Request {
            id: RequestId(id),
            handler_id: HandlerId::new(handler),
            body,
        };
        self.enc.frame(&Message::Request(req)).expect("encode")
    }

    fn request(
        &mut self,
        handler: &str,
        body: RequestBody,
    ) -> Result<ResponseBody, RequestFailure> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = self.frame(id, handler, body);
        self.send_raw(&frame);
        match self.next_non_log() {
            Message::Response(r) if r.id == RequestId(id) => r.result,
            m => panic!("expected response {id}, got {m:?}"),
        }
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "worker did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dump(w: &mut Worker) -> WorkerDump {
    match w.request("", RequestBody::WorkerDump) {
        Ok(ResponseBody::WorkerDump(d)) => d,
        r => panic!("dump: {r:?}"),
    }
}

#[test]
fn announces_itself_then_creates_dumps_and_closes_a_router() {
    let mut w = spawn(&[]);
    let running = w.running();
    assert_eq!(running.pid, w.child.id());
    assert_eq!(running.protocol_version, PROTOCOL_VERSION);

    let rid = RouterId::new("router-1");
    assert_eq!(
        w.request(
            "",
            RequestBody::WorkerCreateRouter {
                router_id: rid.clone()
            }
        ),
        Ok(ResponseBody::None)
    );
    assert_eq!(dump(&mut w).router_ids, vec![rid.clone()]);
    assert_eq!(
        w.request("router-1", RequestBody::RouterDump),
        Ok(ResponseBody::RouterDump(RouterDump {
            id: rid,
            transport_ids: vec![]
        }))
    );
    assert_eq!(
        w.request("router-1", RequestBody::RouterClose),
        Ok(ResponseBody::None)
    );
    let err = w.request("router-1", RequestBody::RouterDump).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);

    assert_eq!(
        w.request("", RequestBody::WorkerClose),
        Ok(ResponseBody::None)
    );
    assert_eq!(w.wait_exit(), 0);
}

#[test]
fn reports_resource_usage() {
    let mut w = spawn(&[]);
    w.running();
    let Ok(ResponseBody::ResourceUsage(u)) = w.request("", RequestBody::WorkerGetResourceUsage)
    else {
        panic!("rusage");
    };
    assert!(u.ru_maxrss > 0, "{u:?}");
}

#[test]
fn log_settings_change_at_run_time() {
    let mut w = spawn(&["--log-level", "warn"]);
    w.running();
    w.request(
        "",
        RequestBody::WorkerCreateRouter {
            router_id: "quiet".into(),
        },
    )
    .unwrap();
    // Raise the "router" target to debug: creating a router now logs.
    w.request(
        "",
        RequestBody::WorkerUpdateSettings(UpdateSettings {
            log_level: Some(LogLevel::Debug),
            log_targets: Some(vec!["router".into()]),
        }),
    )
    .unwrap();
    let frame = w.frame(
        900,
        "",
        RequestBody::WorkerCreateRouter {
            router_id: "loud".into(),
        },
    );
    w.send_raw(&frame);
    let mut saw_log = false;
    loop {
        match w.next() {
            Message::Log(l) if l.target == "router" && l.text.contains("loud") => {
                assert_eq!(l.level, LogLevel::Debug);
                saw_log = true;
            }
            Message::Log(l) => assert!(!l.text.contains("quiet"), "{l:?}"),
            Message::Response(r) if r.id == RequestId(900) => break,
            m => panic!("unexpected {m:?}"),
        }
    }
    assert!(saw_log, "debug log for target router after update_settings");

    let bad = w.request(
        "",
        RequestBody::WorkerUpdateSettings(UpdateSettings {
            log_level: None,
            log_targets: Some(vec!["no spaces allowed".into()]),
        }),
    );
    assert_eq!(bad.unwrap_err().kind, ErrorKind::InvalidArgument);
}

fn expect_channel_error(w: &Worker) -> String {
    match w.next_non_log() {
        Message::Notification(Notification {
            event: Event::WorkerChannelError { reason },
            ..
        }) => reason,
        m => panic!("expected a channel error, got {m:?}"),
    }
}

#[test]
fn garbage_is_reported_and_the_channel_keeps_serving() {
    let mut w = spawn(&[]);
    w.running();

    // 1. A well-framed payload that is not a FlatBuffers message.
    let junk = b"this is not a flatbuffer at all";
    let mut frame = (junk.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(junk);
    w.send_raw(&frame);
    assert!(expect_channel_error(&w).contains("undecodable"));
    dump(&mut w);

    // 2. An oversized length header followed by noise.
    let mut frame = u32::MAX.to_le_bytes().to_vec();
    frame.extend_from_slice(&[0xAB; 100]);
    w.send_raw(&frame);
    assert!(expect_channel_error(&w).contains("exceeds"));
    dump(&mut w);

    // 3. A request whose body is corrupt but whose id is readable: an error response for that id.
    let good = w.frame(
        555,
        "",
        RequestBody::WorkerCreateRouter {
            router_id: "xyz".into(),
        },
    );
    let at = good.windows(3).position(|s| s == b"xyz").unwrap();
    let mut broken = good.clone();
    broken[at - 4..at].copy_from_slice(&u32::MAX.to_le_bytes());
    w.send_raw(&broken);
    match w.next_non_log() {
        Message::Response(Response { id, result: Err(f) }) => {
            assert_eq!(id, RequestId(555));
            assert_eq!(f.kind, ErrorKind::InvalidArgument);
        }
        m => panic!("expected an error response, got {m:?}"),
    }

    // 4. A message the supervisor never sends to a worker.
    let log = w
        .enc
        .frame(&Message::Log(LogRecord {
            level: LogLevel::Info,
            target: "x".into(),
            text: "y".into(),
        }))
        .unwrap();
    w.send_raw(&log);
    assert!(expect_channel_error(&w).contains("unexpected"));

    // Still serving, and the router of the corrupt request was never created.
    w.request(
        "",
        RequestBody::WorkerCreateRouter {
            router_id: "after".into(),
        },
    )
    .unwrap();
    assert_eq!(dump(&mut w).router_ids, vec![RouterId::new("after")]);
}

#[test]
fn exits_when_the_supervisor_closes_the_channel() {
    let mut w = spawn(&[]);
    w.running();
    // Replace our write end with an unrelated pipe so the worker's fd 3 sees EOF.
    let (_, dummy) = nix::unistd::pipe().unwrap();
    w.tx = std::fs::File::from(dummy);
    assert_eq!(w.wait_exit(), 0);
}

#[test]
fn bad_settings_exit_with_42() {
    for args in [
        &["--log-level", "loud"][..],
        &["--rtc-ports", "5000-10"],
        &["--core", "100000"],
        &["--no-such-flag"],
    ] {
        let status = Command::new(WORKER)
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(42), "{args:?}");
    }
}

#[test]
fn without_channel_fds_it_fails_with_1() {
    let status = Command::new(WORKER).stderr(Stdio::null()).status().unwrap();
    assert_eq!(status.code(), Some(1));
}
