//! What the core sends, queued in one byte arena owned by the core and handed out into a
//! buffer the caller owns ([`WorkerCore::poll_transmit`](crate::WorkerCore::poll_transmit), as
//! quinn's `poll_transmit(now, &mut buf)`): no `Vec` per outgoing packet on either side.
//! Consecutive datagrams to one destination of one size (the last may be shorter) leave as one
//! [`Transmit`] with a `segment_size`, which the shell sends as one GSO batch.

use std::collections::VecDeque;
use std::ops::Range;

use crate::proto::ice::Tuple;

/// Largest GSO batch the core groups (the kernel's limit is 64 KiB of payload).
pub const MAX_TRANSMIT_BYTES: usize = 64_000;

/// A datagram (or one RFC 4571 frame of a TCP connection), or a batch of datagrams to one
/// destination, written into the caller's buffer by
/// [`WorkerCore::poll_transmit`](crate::WorkerCore::poll_transmit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// `local` names the socket (UDP socket or TCP listener) and the source address: the address
    /// the tuple's datagrams arrive at, which for a socket bound to `0.0.0.0`/`::` is a specific
    /// IP on the socket's port (the shell finds the wildcard socket and sends from that IP);
    /// `remote` is the destination (for TCP: the connection).
    pub tuple: Tuple,
    /// Bytes appended to the caller's buffer.
    pub size: usize,
    /// `Some(n)`: `size` bytes are datagrams of `n` bytes each, the last possibly shorter (send
    /// them as one GSO batch, or one by one); `None`: one datagram.
    pub segment_size: Option<usize>,
}

impl Transmit {
    /// The datagrams of this transmit, given the bytes it was written into.
    pub fn datagrams<'a>(&self, contents: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        let n = self.segment_size.unwrap_or(self.size).max(1);
        contents[..self.size.min(contents.len())].chunks(n)
    }
}

#[derive(Debug)]
struct Item {
    tuple: Tuple,
    bytes: Range<usize>,
}

/// The core's outgoing datagrams, in order, in one arena that is reset whenever it drains.
#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    arena: Vec<u8>,
    items: VecDeque<Item>,
}

impl TransmitQueue {
    /// Queues the bytes `write` appends to the arena, unless it returns false: the size queued,
    /// `None` when nothing was.
    pub(crate) fn push_with(
        &mut self,
        tuple: Tuple,
        write: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> Option<usize> {
        let start = self.arena.len();
        if write(&mut self.arena) && self.arena.len() > start {
            self.items.push_back(Item {
                tuple,
                bytes: start..self.arena.len(),
            });
            Some(self.arena.len() - start)
        } else {
            self.arena.truncate(start);
            None
        }
    }

    pub(crate) fn push(&mut self, tuple: Tuple, data: &[u8]) {
        self.push_with(tuple, |a| {
            a.extend_from_slice(data);
            true
        });
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends the next datagram, or run of up to `max_segments` same-size datagrams to the same
    /// destination, to `buf`.
    /// The destination of the next transmit, if any.
    pub(crate) fn peek(&self) -> Option<Tuple> {
        self.items.front().map(|i| i.tuple)
    }

    pub(crate) fn poll(&mut self, max_segments: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        let first = self.items.pop_front()?;
        let seg = first.bytes.len();
        buf.extend_from_slice(&self.arena[first.bytes]);
        let (mut n, mut size) = (1, seg);
        while n < max_segments && size + seg <= MAX_TRANSMIT_BYTES {
            let Some(next) = self.items.front() else {
                break;
            };
            let len = next.bytes.len();
            if next.tuple != first.tuple || len > seg {
                break;
            }
            let next = self.items.pop_front().expect("front exists");
            buf.extend_from_slice(&self.arena[next.bytes]);
            n += 1;
            size += len;
            if len < seg {
                // A shorter datagram ends a GSO batch.
                break;
            }
        }
        if self.items.is_empty() {
            self.arena.clear();
        }
        Some(Transmit {
            tuple: first.tuple,
            size,
            segment_size: (n > 1).then_some(seg),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ice::Protocol;

    fn tuple(port: u16) -> Tuple {
        Tuple {
            local: "127.0.0.1:4000".parse().expect("addr"),
            remote: format!("127.0.0.1:{port}").parse().expect("addr"),
            protocol: Protocol::Udp,
        }
    }

    fn drain(q: &mut TransmitQueue, max: usize) -> Vec<(Transmit, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = q.poll(max, &mut buf) {
            out.push((t, t.datagrams(&buf).map(<[u8]>::to_vec).collect()));
            buf.clear();
        }
        out
    }

    #[test]
    fn datagrams_to_one_destination_are_batched_until_a_shorter_one_or_another_destination() {
        let mut q = TransmitQueue::default();
        q.push(tuple(1), &[1; 100]);
        q.push(tuple(1), &[2; 100]);
        q.push(tuple(1), &[3; 60]);
        q.push(tuple(1), &[4; 100]);
        q.push(tuple(2), &[5; 100]);
        let out = drain(&mut q, 64);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].0.segment_size, Some(100));
        assert_eq!(out[0].0.size, 260);
        assert_eq!(out[0].1, vec![vec![1; 100], vec![2; 100], vec![3; 60]]);
        assert_eq!((out[1].0.tuple, out[1].0.segment_size), (tuple(1), None));
        assert_eq!((out[2].0.tuple, out[2].0.segment_size), (tuple(2), None));
        assert!(
            q.is_empty() && q.arena.is_empty(),
            "the arena resets once drained"
        );
    }

    #[test]
    fn a_batch_respects_the_segment_limit_and_a_longer_datagram_starts_a_new_one() {
        let mut q = TransmitQueue::default();
        for _ in 0..5 {
            q.push(tuple(1), &[0; 10]);
        }
        q.push(tuple(1), &[0; 20]);
        let sizes: Vec<_> = drain(&mut q, 2)
            .iter()
            .map(|(t, d)| (t.size, d.len()))
            .collect();
        assert_eq!(sizes, vec![(20, 2), (20, 2), (10, 1), (20, 1)]);
    }

    #[test]
    fn a_write_that_fails_queues_nothing() {
        let mut q = TransmitQueue::default();
        let failed = q.push_with(tuple(1), |a| {
            a.extend_from_slice(b"partial");
            false
        });
        assert_eq!(failed, None);
        assert_eq!(q.push_with(tuple(1), |_| true), None, "nothing written");
        assert!(q.is_empty() && q.arena.is_empty());
    }
}
