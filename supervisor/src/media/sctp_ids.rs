//! SCTP stream ids of one transport (mediasoup's `Transport.getNextSctpStreamId`): a data
//! consumer takes the lowest id below the association's OS that no data producer or consumer
//! of the transport uses; ids come back when their entity closes.

use std::collections::BTreeSet;

#[derive(Debug)]
pub(super) struct SctpStreamIds {
    /// Outgoing streams (OS): consumer ids are below it.
    os: u16,
    used: BTreeSet<u16>,
}

impl SctpStreamIds {
    pub(super) fn new(os: u16) -> Self {
        Self {
            os,
            used: BTreeSet::new(),
        }
    }

    /// The lowest free id, taken; None when all OS ids are in use.
    pub(super) fn allocate(&mut self) -> Option<u16> {
        let id = (0..self.os).find(|id| !self.used.contains(id))?;
        self.used.insert(id);
        Some(id)
    }

    /// Marks an id the remote chose (a data producer's stream) as used; false if it was.
    pub(super) fn reserve(&mut self, id: u16) -> bool {
        self.used.insert(id)
    }

    pub(super) fn release(&mut self, id: u16) {
        self.used.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_free_id_below_os_is_taken_and_reused_after_release() {
        let mut ids = SctpStreamIds::new(3);
        assert!(ids.reserve(0), "a data producer's stream");
        assert!(!ids.reserve(0));
        assert_eq!(ids.allocate(), Some(1));
        assert_eq!(ids.allocate(), Some(2));
        assert_eq!(ids.allocate(), None, "OS = 3: ids 0-2 only");
        ids.release(1);
        assert_eq!(ids.allocate(), Some(1));
        ids.release(0);
        assert_eq!(ids.allocate(), Some(0));
    }
}
