//! When a mirror of something kubetron reads (marked switches as NADs, offered security profiles
//! as a ConfigMap) must be written again: when what it mirrors changed since the last good write,
//! when the periodic resync is due (hand edits are undone), and soon after a failed write.

use std::time::Duration;

use tokio::time::Instant;

/// The write schedule of one mirror of a `T`.
#[derive(Debug)]
pub(crate) struct Mirror<T> {
    last: Option<T>,
    next_full: Instant,
    /// After a failure, nothing is due before this (a persistent failure is not retried at the
    /// pace of the changes that wake the loop).
    not_before: Option<Instant>,
    resync: Duration,
    retry: Duration,
}

impl<T: PartialEq> Mirror<T> {
    /// A mirror written first at once, then every `resync`, `retry` after a failure.
    pub(crate) fn new(resync: Duration, retry: Duration) -> Mirror<T> {
        Mirror { last: None, next_full: Instant::now(), not_before: None, resync, retry }
    }

    /// Whether `now` must be written.
    pub(crate) fn due(&self, now: &T) -> bool {
        if self.not_before.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        Instant::now() >= self.next_full || self.last.as_ref() != Some(now)
    }

    /// `now` was written.
    pub(crate) fn written(&mut self, now: T) {
        self.last = Some(now);
        self.next_full = Instant::now() + self.resync;
        self.not_before = None;
    }

    /// A write (or the read before it) failed: write again after the retry delay.
    pub(crate) fn failed(&mut self) {
        self.last = None;
        self.next_full = Instant::now() + self.retry;
        self.not_before = Some(self.next_full);
    }

    /// What was written is unknown (leadership lost): write whatever comes next.
    pub(crate) fn forget(&mut self) {
        self.last = None;
    }

    /// Write everything at the next chance.
    pub(crate) fn resync_now(&mut self) {
        self.next_full = Instant::now();
    }

    /// How long until the next write is due by time alone.
    pub(crate) fn wait(&self) -> Duration {
        self.next_full.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_on_change_resync_and_after_failures() {
        let mut m = Mirror::new(Duration::from_secs(60), Duration::from_secs(1));
        assert!(m.due(&1), "first write at once");
        m.written(1);
        assert!(!m.due(&1) && m.due(&2), "only a change is due");
        assert!(m.wait() > Duration::from_secs(59));
        m.failed();
        assert!(!m.due(&1) && !m.due(&2), "nothing is due before the retry delay");
        assert!(m.wait() <= Duration::from_secs(1));
        let mut f = Mirror::new(Duration::from_secs(60), Duration::ZERO);
        f.written(1);
        f.failed();
        assert!(f.due(&1), "after the retry delay: a failure forgot what was written");
        m.written(1);
        m.forget();
        assert!(m.due(&1));
        m.written(1);
        m.resync_now();
        assert!(m.due(&1) && m.wait().is_zero());
        // The periodic resync: due again once its time has come.
        let mut r = Mirror::new(Duration::ZERO, Duration::from_secs(1));
        r.written(1);
        assert!(r.due(&1));
    }
}
