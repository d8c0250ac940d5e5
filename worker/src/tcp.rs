//! ICE-TCP (passive) connections: RFC 4571 framing (a 2-byte big-endian length, then one STUN,
//! DTLS, RTP or RTCP packet) and a bounded per-connection write buffer.

use std::io;
use std::task::Waker;

use tokio::net::TcpStream;

/// Largest frame accepted from a peer. RFC 4571 allows 65535; media and STUN over ICE-TCP stay
/// near the path MTU, so anything this big is a confused or hostile peer.
pub(crate) const MAX_FRAME: usize = 16 * 1024;

/// Read buffer growth per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why a byte stream stopped being a valid RFC 4571 stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A zero-length frame: no packet is empty.
    Empty,
    /// A declared length above [`MAX_FRAME`].
    Oversize(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Empty => write!(f, "zero-length frame"),
            FrameError::Oversize(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME}"),
        }
    }
}

/// Splits a byte stream into RFC 4571 frames, however the reads cut it.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    pos: usize,
}

impl Framer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The buffer to read into (bytes are appended to it); compacts consumed frames first so the
    /// buffer never holds more than one partial frame plus one read.
    pub(crate) fn read_buf(&mut self) -> &mut Vec<u8> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }

    /// Appends bytes (for callers that did not read into [`Framer::read_buf`]).
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.read_buf().extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until more bytes arrive, or an error after which the stream
    /// is unusable (there is no way to find the next frame boundary).
    pub(crate) fn next_frame(&mut self) -> Option<Result<&[u8], FrameError>> {
        let rest = &self.buf[self.pos..];
        let [hi, lo, ..] = *rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Some(Err(FrameError::Empty));
        }
        if len > MAX_FRAME {
            return Some(Err(FrameError::Oversize(len)));
        }
        if rest.len() < 2 + len {
            return None;
        }
        let start = self.pos + 2;
        self.pos = start + len;
        Some(Ok(&self.buf[start..start + len]))
    }
}

/// Why a connection's write side gave up.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The peer does not read fast enough: the bounded buffer would overflow.
    Overflow,
    /// A packet longer than a 16-bit length can frame.
    TooLong(usize),
    Io(io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Overflow => write!(f, "write buffer full (peer not reading)"),
            WriteError::TooLong(n) => write!(f, "packet of {n} bytes cannot be framed"),
            WriteError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// One accepted connection, owned by the socket tables ([`crate::net::Net`]).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) io: TcpStream,
    wbuf: Vec<u8>,
    wpos: usize,
    /// The last write hit `WouldBlock`: the connection's pump waits for writability.
    pub(crate) blocked: bool,
    /// Queued for the end-of-turn flush.
    pub(crate) dirty: bool,
    /// The connection's pump, woken when the connection is closed or becomes blocked.
    pub(crate) waker: Option<Waker>,
}

impl Conn {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            wbuf: Vec::new(),
            wpos: 0,
            blocked: false,
            dirty: false,
            waker: None,
        }
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Queues one framed packet; `limit` bounds the unwritten bytes.
    pub(crate) fn enqueue(&mut self, packet: &[u8], limit: usize) -> Result<(), WriteError> {
        let len = u16::try_from(packet.len()).map_err(|_| WriteError::TooLong(packet.len()))?;
        if self.pending() + 2 + packet.len() > limit {
            return Err(WriteError::Overflow);
        }
        if self.wpos > 0 && self.wpos >= self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        self.wbuf.extend_from_slice(&len.to_be_bytes());
        self.wbuf.extend_from_slice(packet);
        Ok(())
    }

    /// Writes as much as the socket takes without blocking. `Ok` with `blocked` set means the
    /// rest waits for writability; an error means the connection is dead.
    pub(crate) fn flush(&mut self) -> Result<(), WriteError> {
        while self.wpos < self.wbuf.len() {
            match self.io.try_write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(WriteError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WriteError::Io(e)),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        self.blocked = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn drain(f: &mut Framer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = f.next_frame() {
            out.push(r.unwrap().to_vec());
        }
        out
    }

    #[test]
    fn frames_split_across_reads_byte_by_byte() {
        let payloads: [&[u8]; 3] = [b"\x00\x01stun", b"\x80rtp-packet", &[0x16; 300]];
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let mut f = Framer::new();
        let mut got = Vec::new();
        for b in &stream {
            f.push(&[*b]);
            got.extend(drain(&mut f));
        }
        assert_eq!(got, payloads.map(<[u8]>::to_vec));
    }

    #[test]
    fn merged_frames_in_one_read_and_a_trailing_partial_one() {
        let mut stream = Vec::new();
        for i in 0..10u8 {
            stream.extend(frame(&[i; 50]));
        }
        let last = frame(&[0xAA; 1000]);
        stream.extend_from_slice(&last[..500]);
        let mut f = Framer::new();
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(got.len(), 10);
        assert!(got.iter().enumerate().all(|(i, p)| p == &[i as u8; 50]));
        f.push(&last[500..]);
        assert_eq!(drain(&mut f), vec![vec![0xAA; 1000]]);
        assert!(f.next_frame().is_none());
        // Compaction keeps the buffer small after many frames.
        for _ in 0..1000 {
            f.push(&frame(&[1; 100]));
            assert_eq!(drain(&mut f).len(), 1);
        }
        assert!(f.buf.len() < 2 * READ_CHUNK);
    }

    #[test]
    fn oversize_and_empty_frames_are_errors() {
        let mut f = Framer::new();
        f.push(&((MAX_FRAME + 1) as u16).to_be_bytes());
        assert_eq!(
            f.next_frame(),
            Some(Err(FrameError::Oversize(MAX_FRAME + 1)))
        );
        let mut f = Framer::new();
        f.push(&frame(&[7; MAX_FRAME]));
        assert_eq!(f.next_frame(), Some(Ok(&[7u8; MAX_FRAME][..])));
        let mut f = Framer::new();
        f.push(&[0, 0, 1, 2, 3]);
        assert_eq!(f.next_frame(), Some(Err(FrameError::Empty)));
    }

    #[test]
    fn garbage_never_panics() {
        // An HTTP request where a frame should be: its first two bytes declare 18245 bytes.
        let mut f = Framer::new();
        f.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(f.next_frame(), Some(Err(FrameError::Oversize(0x4745))));
        // Pseudo-random bytes in random cuts: frames or errors, never a panic.
        let mut x: u32 = 0x9E37_79B9;
        for _ in 0..200 {
            let mut f = Framer::new();
            for _ in 0..20 {
                let n = (x % 64) as usize;
                let chunk: Vec<u8> = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x % 8) as u8 // small bytes: small declared lengths, many frames
                    })
                    .collect();
                f.push(&chunk);
                while let Some(r) = f.next_frame() {
                    if r.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
