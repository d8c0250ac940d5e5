//! The loopback UDP ports (`recording.ports`) that recorders and transcribers receive on,
//! shared by both: a port is taken until given back, and only while nobody else holds it.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::config::PortRange;

#[derive(Debug)]
pub(crate) struct PortPool {
    range: PortRange,
    in_use: Mutex<BTreeSet<u16>>,
}

impl PortPool {
    pub(crate) fn new(range: PortRange) -> Self {
        Self {
            range,
            in_use: Mutex::default(),
        }
    }

    /// `n` free loopback ports of the range, taken until [`PortPool::give_back`].
    pub(crate) fn take(&self, n: usize) -> Result<Vec<u16>, String> {
        let mut used = self.in_use.lock().expect("never held across a panic");
        let mut out = Vec::with_capacity(n);
        for p in self.range.min..=self.range.max {
            if out.len() == n {
                break;
            }
            if !used.contains(&p) && super::recorder::udp_port_free(p) {
                out.push(p);
            }
        }
        if out.len() < n {
            return Err(format!(
                "no free recording ports in {}-{} (recording.ports)",
                self.range.min, self.range.max
            ));
        }
        used.extend(out.iter().copied());
        Ok(out)
    }

    pub(crate) fn give_back(&self, ports: &[u16]) {
        let mut used = self.in_use.lock().expect("never held across a panic");
        for p in ports {
            used.remove(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_taken_once_until_given_back() {
        let pool = PortPool::new(PortRange {
            min: 47990,
            max: 47999,
        });
        let a = pool.take(4).unwrap();
        let b = pool.take(4).unwrap();
        assert!(a.iter().all(|p| !b.contains(p)));
        assert!(pool.take(4).is_err(), "only 10 in the range");
        pool.give_back(&a);
        assert_eq!(pool.take(4).unwrap().len(), 4);
    }
}
