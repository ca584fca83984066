//! Read-after-write checking: which versions of a key a get may still
//! return, given the sets acknowledged before it was sent.
//!
//! Every set takes its version from its key's counter when it is issued
//! (all threads share one [`Ledger`]), so a key's versions are numbered in
//! the order their sets were issued, starting at 1 (0 means "no version",
//! see [`Payload::verify`](crate::payload::Payload::verify)).
//!
//! Racing writes. A version number alone cannot say which of two
//! overlapping sets the server applied last: set 5 may be sent first,
//! travel on a slow connection and be applied after set 6 was applied and
//! acknowledged. So the floor a get is checked against is not the highest
//! acknowledged version but, over the sets `u` acknowledged before the get
//! was sent, the highest `low(u)`: the lowest version of that key still
//! unsettled (issued, neither acknowledged nor refused) when `u` was
//! issued, or `u` itself if none was. Every version below `low(u)` was
//! settled before `u` was issued, so once `u` is acknowledged the server
//! must never return it again; versions from `low(u)` up overlapped `u`
//! and may legitimately be the newest. Without overlapping writes the
//! floor is exactly the highest acknowledged version.
//!
//! A hit is **stale** when its version is below the floor recorded when
//! the get was sent, or, once the key has an acknowledged write, when it
//! is a version this process never issued (another writer of the same
//! keys, or an old value resurrected). Gets of a key no set of this
//! process has been acknowledged for are not judged (a value left by an
//! earlier run is still verified byte for byte).
//!
//! At the end ([`Ledger::final_verdict`]), with no set in flight, the
//! value must be one of the acknowledged versions at or above the floor
//! (exactly the highest acknowledged one unless writes overlapped), or one
//! whose set's fate is unknown (its reply never came); a miss of a key
//! with an acknowledged write is **lost**.
//!
//! Sets whose reply never came (a lost connection, the drain ran out) stay
//! unsettled for good: the server may still apply them, so they hold the
//! floor down and remain acceptable answers. That weakens the check for
//! those keys only, and such a run has failed already.

use std::sync::Mutex;

/// Per-key version bookkeeping, shared by every thread of the process
/// (preload, every step and the final read-back).
#[derive(Debug)]
pub struct Ledger {
    keys: Vec<Mutex<KeyState>>,
}

#[derive(Debug, Default)]
struct KeyState {
    /// Versions issued so far are `1..next` (0 before the first set).
    next: u32,
    /// The floor: every version below it is dead once acknowledged writes
    /// are taken into account.
    floor: u32,
    /// Versions at or above the floor that are unsettled (`false`) or
    /// acknowledged (`true`); refused ones are dropped.
    live: Vec<(u32, bool)>,
}

/// What a hit's version says, judged against the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A version the server may return.
    Fresh,
    /// A version it must not return any more (see the module docs).
    Stale,
}

impl KeyState {
    fn low(&self) -> Option<u32> {
        self.live.iter().filter(|v| !v.1).map(|v| v.0).min()
    }
}

impl Ledger {
    /// Bookkeeping for `keys` keys, none written yet.
    pub fn new(keys: u32) -> Ledger {
        Ledger {
            keys: (0..keys).map(|_| Mutex::default()).collect(),
        }
    }

    fn key(&self, key: u32) -> std::sync::MutexGuard<'_, KeyState> {
        // A panic while holding a key's lock leaves its state consistent
        // (every update is one step), so a poisoned lock is still usable.
        self.keys[key as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A set of `key` is about to be sent: its version, and the mark to
    /// hand back to [`stored`](Self::stored) when it is acknowledged.
    pub fn issue_set(&self, key: u32) -> (u32, u32) {
        let mut k = self.key(key);
        let version = k.next.max(1);
        // 2^32 sets of one key is more than any run schedules (64 Mi
        // requests a step).
        k.next = version.checked_add(1).expect("a key's versions ran out");
        let low = k.low().unwrap_or(version);
        k.live.push((version, false));
        (version, low)
    }

    /// The set of `key` at `version`, issued with mark `low`, was stored.
    pub fn stored(&self, key: u32, version: u32, low: u32) {
        let mut k = self.key(key);
        let floor = k.floor.max(low);
        k.floor = floor;
        for v in &mut k.live {
            if v.0 == version {
                v.1 = true;
            }
        }
        k.live.retain(|v| v.0 >= floor);
    }

    /// The set of `key` at `version` was refused (not stored, or an error):
    /// it is settled and the server must never return it.
    pub fn refused(&self, key: u32, version: u32) {
        self.key(key).live.retain(|v| v.0 != version);
    }

    /// The floor of `key` now: record it when a get is sent.
    pub fn floor(&self, key: u32) -> u32 {
        self.key(key).floor
    }

    /// Judges a hit of `key` at `version` for a get sent when the floor was
    /// `floor`.
    pub fn verdict(&self, key: u32, floor: u32, version: u32) -> Verdict {
        if floor == 0 {
            return Verdict::Fresh;
        }
        let next = self.key(key).next;
        if version < floor || version >= next {
            Verdict::Stale
        } else {
            Verdict::Fresh
        }
    }

    /// Judges the final read-back of `key` (no set of it in flight):
    /// `Some(version)` for a hit, `None` for a miss.
    pub fn final_verdict(&self, key: u32, version: Option<u32>) -> Final {
        let k = self.key(key);
        match version {
            None if k.floor > 0 => Final::Lost,
            None => Final::Absent,
            Some(_) if k.floor == 0 => Final::Fresh,
            Some(v) if k.live.iter().any(|l| l.0 == v) => Final::Fresh,
            Some(_) => Final::Stale,
        }
    }

    /// Whether `key` has an acknowledged write.
    pub fn written(&self, key: u32) -> bool {
        self.key(key).floor > 0
    }

    /// The versions of `key` the final read-back accepts, for messages:
    /// acknowledged ones first.
    pub fn expected(&self, key: u32) -> Vec<u32> {
        let k = self.key(key);
        let mut v: Vec<(bool, u32)> = k.live.iter().map(|l| (!l.1, l.0)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, x)| x).collect()
    }
}

/// The final read-back's judgement of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Final {
    /// A hit at an acceptable version (or of a key this process never
    /// wrote).
    Fresh,
    /// A hit at a version the server must no longer hold.
    Stale,
    /// A miss of a key with an acknowledged write.
    Lost,
    /// A miss of a key without one.
    Absent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_writes_make_the_floor_the_last_acknowledged_version() {
        let l = Ledger::new(2);
        assert_eq!(l.floor(0), 0);
        // Nothing acknowledged: anything verifies.
        assert_eq!(l.verdict(0, 0, 77), Verdict::Fresh);
        let (v1, m1) = l.issue_set(0);
        assert_eq!((v1, m1), (1, 1));
        // In flight: not yet a floor.
        assert_eq!(l.floor(0), 0);
        l.stored(0, v1, m1);
        assert_eq!(l.floor(0), 1);
        let (v2, m2) = l.issue_set(0);
        l.stored(0, v2, m2);
        assert_eq!(l.floor(0), 2);
        assert_eq!(l.verdict(0, 2, 1), Verdict::Stale);
        assert_eq!(l.verdict(0, 2, 2), Verdict::Fresh);
        // A version never issued is no answer once the key is written.
        assert_eq!(l.verdict(0, 2, 3), Verdict::Stale);
        assert_eq!(l.final_verdict(0, Some(2)), Final::Fresh);
        assert_eq!(l.final_verdict(0, Some(1)), Final::Stale);
        assert_eq!(l.final_verdict(0, None), Final::Lost);
        assert_eq!(l.final_verdict(1, None), Final::Absent);
        assert_eq!(l.final_verdict(1, Some(9)), Final::Fresh);
        // Keys are independent.
        assert_eq!(l.floor(1), 0);
        assert!(l.written(0) && !l.written(1));
    }

    #[test]
    fn overlapping_writes_may_land_in_either_order() {
        let l = Ledger::new(1);
        let (a, ma) = l.issue_set(0); // 1, sent first, slow
        let (b, mb) = l.issue_set(0); // 2, overtakes it
        assert_eq!((a, b), (1, 2));
        l.stored(0, b, mb);
        // Set 1 was in flight when set 2 was issued: either may be newest.
        assert_eq!(l.floor(0), 1);
        assert_eq!(l.verdict(0, l.floor(0), 1), Verdict::Fresh);
        l.stored(0, a, ma);
        assert_eq!(l.final_verdict(0, Some(1)), Final::Fresh);
        assert_eq!(l.final_verdict(0, Some(2)), Final::Fresh);
        // A third set issued after both settled ends the ambiguity.
        let (c, mc) = l.issue_set(0);
        l.stored(0, c, mc);
        assert_eq!(l.floor(0), 3);
        assert_eq!(l.final_verdict(0, Some(1)), Final::Stale);
        assert_eq!(l.final_verdict(0, Some(2)), Final::Stale);
        assert_eq!(l.expected(0), [3]);
    }

    #[test]
    fn refused_and_unanswered_sets() {
        let l = Ledger::new(1);
        let (a, ma) = l.issue_set(0);
        l.stored(0, a, ma);
        // Refused: settled, never an acceptable answer.
        let (b, _) = l.issue_set(0);
        l.refused(0, b);
        assert_eq!(l.final_verdict(0, Some(b)), Final::Stale);
        assert_eq!(l.final_verdict(0, Some(a)), Final::Fresh);
        // Unanswered (never settled): it may still be applied, so it holds
        // later floors down and stays acceptable.
        let (c, _) = l.issue_set(0);
        let (d, md) = l.issue_set(0);
        l.stored(0, d, md);
        assert_eq!(l.floor(0), c);
        assert_eq!(l.final_verdict(0, Some(c)), Final::Fresh);
        assert_eq!(l.final_verdict(0, Some(d)), Final::Fresh);
        assert_eq!(l.final_verdict(0, Some(a)), Final::Stale);
        assert_eq!(l.expected(0), [d, c]);
    }
}
