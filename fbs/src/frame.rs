//! Framing: `u32` little-endian payload length, then the payload.

use bytes::{Buf, Bytes, BytesMut};

/// Largest payload either side sends or accepts: 4 MiB.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// What the front of a byte buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Split<'a> {
    /// Not a whole frame yet; `needed` more bytes would complete the header or the payload.
    Incomplete { needed: usize },
    /// One whole frame: its payload and how many bytes (header included) it took.
    Frame { payload: &'a [u8], consumed: usize },
    /// The header announces more than [`MAX_FRAME_LEN`].
    Oversized { declared: u32 },
}

/// Looks at the front of `buf`. Pure; never panics.
pub fn split_frame(buf: &[u8]) -> Split<'_> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Split::Incomplete {
            needed: 4 - buf.len(),
        };
    };
    let declared = u32::from_le_bytes(*header);
    let len = declared as usize;
    if len > MAX_FRAME_LEN {
        return Split::Oversized { declared };
    }
    match buf.get(4..4 + len) {
        Some(payload) => Split::Frame {
            payload,
            consumed: 4 + len,
        },
        None => Split::Incomplete {
            needed: 4 + len - buf.len(),
        },
    }
}

/// Something the channel reader got out of the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    Frame(Bytes),
    /// A header announced `declared` bytes, over the limit. The bytes buffered at that point
    /// (`discarded`) were dropped: an oversized length cannot be trusted to skip by, so the reader
    /// resynchronises on the next read boundary (writers send whole frames in one write).
    Oversized {
        declared: u32,
        discarded: usize,
    },
}

/// Accumulates bytes read from a channel fd and yields frames.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: BytesMut,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// The buffer to read into (e.g. with `AsyncReadExt::read_buf`), after reserving room.
    pub fn read_target(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        &mut self.buf
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<FrameEvent> {
        match split_frame(&self.buf) {
            Split::Incomplete { .. } => None,
            Split::Frame { consumed, .. } => {
                let mut frame = self.buf.split_to(consumed);
                frame.advance(4);
                Some(FrameEvent::Frame(frame.freeze()))
            }
            Split::Oversized { declared } => {
                let discarded = self.buf.len();
                self.buf.clear();
                Some(FrameEvent::Oversized {
                    declared,
                    discarded,
                })
            }
        }
    }
}
