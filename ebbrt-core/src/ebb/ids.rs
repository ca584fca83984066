//! Well-known ids, and the id allocator Ebb that hands out the rest.
//!
//! Id space (all below [`TABLE_SIZE`]):
//! - `0` is never used, so a zeroed id is always a bug;
//! - `1..256`: system components, listed here;
//! - `256..1024`: fixed ids chosen by applications, with [`app`];
//! - `1024..TABLE_SIZE`: allocated at run time by [`IdAllocator`]; in a
//!   distributed application each node allocates from its own id space
//!   ([`space`], [`IdAllocator::use_space`]) of [`SPACE_SIZE`] ids, so ids
//!   that one node publishes (in the global id map) never collide with
//!   another node's.

use core::sync::atomic::{AtomicU32, Ordering};

use super::{EbbError, EbbId, EbbRef, TABLE_SIZE};

/// The id allocator (this module's [`IdAllocator`]).
pub const ID_ALLOCATOR: EbbId = EbbId::new(1);
/// The console (serial port native, stdout hosted).
pub const CONSOLE: EbbId = EbbId::new(2);
/// The page (buddy) allocator.
pub const PAGE_ALLOCATOR: EbbId = EbbId::new(3);
/// The slab allocator.
pub const SLAB_ALLOCATOR: EbbId = EbbId::new(4);
/// The general-purpose allocator behind `#[global_allocator]`.
pub const GP_ALLOCATOR: EbbId = EbbId::new(5);
/// The network manager.
pub const NETWORK_MANAGER: EbbId = EbbId::new(6);
/// The NIC driver.
pub const NET_DEVICE: EbbId = EbbId::new(7);
/// The messenger (Ebb-to-Ebb messages between nodes).
pub const MESSENGER: EbbId = EbbId::new(8);
/// The global id map of a distributed application.
pub const GLOBAL_ID_MAP: EbbId = EbbId::new(9);
/// The node allocator (boots native nodes from a hosted process).
pub const NODE_ALLOCATOR: EbbId = EbbId::new(10);
/// The clock (monotonic time; the platform's timer hardware under it).
pub const CLOCK: EbbId = EbbId::new(11);
/// The event manager: each core's event loop (executor and timers) is its
/// representative on that core.
pub const EVENT_MANAGER: EbbId = EbbId::new(12);
/// The event loop's idle policy (halt until an event, or poll).
pub const IDLE_POLICY: EbbId = EbbId::new(13);
/// Read-copy-update: deferred reclamation over the event loops' quiescent
/// states (`components/rcu`).
pub const RCU: EbbId = EbbId::new(14);
/// File access offloaded to the frontend (`components/fs-offload`).
pub const FILE_SYSTEM: EbbId = EbbId::new(15);

/// The name of a well-known system id (`"GP_ALLOCATOR"` for
/// [`GP_ALLOCATOR`]), for messages and the component catalog; `None` for
/// application and run-time ids.
pub const fn name(id: EbbId) -> Option<&'static str> {
    Some(match id.raw() {
        1 => "ID_ALLOCATOR",
        2 => "CONSOLE",
        3 => "PAGE_ALLOCATOR",
        4 => "SLAB_ALLOCATOR",
        5 => "GP_ALLOCATOR",
        6 => "NETWORK_MANAGER",
        7 => "NET_DEVICE",
        8 => "MESSENGER",
        9 => "GLOBAL_ID_MAP",
        10 => "NODE_ALLOCATOR",
        11 => "CLOCK",
        12 => "EVENT_MANAGER",
        13 => "IDLE_POLICY",
        14 => "RCU",
        15 => "FILE_SYSTEM",
        _ => return None,
    })
}

/// First id of the range applications choose fixed ids from.
pub const FIRST_APP: u32 = 256;
/// First id handed out at run time.
pub const FIRST_DYNAMIC: u32 = 1024;

/// The `n`th fixed application id (`n < 768`), for application Ebbs that
/// want a well-known id: `#[ebb(per_core, id = ebbrt_core::ebb::ids::app(0))]`.
pub const fn app(n: u32) -> EbbId {
    assert!(
        n < FIRST_DYNAMIC - FIRST_APP,
        "application fixed ids are app(0)..app(767)"
    );
    EbbId::new(FIRST_APP + n)
}

/// Run-time ids in each node's id space.
pub const SPACE_SIZE: u32 = 64;
/// How many id spaces there are: node `n` of a distributed application
/// allocates from space `n` (the frontend from space 0).
pub const SPACES: u32 = (TABLE_SIZE as u32 - FIRST_DYNAMIC) / SPACE_SIZE;

/// The run-time ids of id space `n`, if there is such a space.
pub const fn space(n: u32) -> Option<core::ops::Range<u32>> {
    if n >= SPACES {
        return None;
    }
    let start = FIRST_DYNAMIC + n * SPACE_SIZE;
    Some(start..start + SPACE_SIZE)
}

/// Hands out run-time Ebb ids; itself a shared Ebb at a well-known id.
///
/// Lives at [`ID_ALLOCATOR`]: the allocator is itself an Ebb. Ebbs are
/// never destroyed, so ids are never returned; allocation is one atomic add.
#[ebbrt_macros::ebb(shared, id = ID_ALLOCATOR)]
pub struct IdAllocator {
    next: AtomicU32,
    /// One past the last id it may hand out.
    end: AtomicU32,
}

impl Default for IdAllocator {
    fn default() -> Self {
        IdAllocator {
            next: AtomicU32::new(FIRST_DYNAMIC),
            end: AtomicU32::new(TABLE_SIZE as u32),
        }
    }
}

impl IdAllocator {
    /// A fresh run-time id.
    pub fn allocate(&self) -> Result<EbbId, EbbError> {
        let end = self.end.load(Ordering::Acquire);
        let raw = self.next.fetch_add(1, Ordering::Relaxed);
        if raw >= end {
            // Keep `next` from wrapping around after many failed calls.
            self.next.store(end, Ordering::Relaxed);
            return Err(EbbError::IdsExhausted);
        }
        Ok(EbbId::new(raw))
    }

    /// From now on hands out ids of id space `n` only ([`space`]): what a
    /// node of a distributed application does at start, before it makes
    /// Ebbs whose ids other nodes will see. Ids handed out before stay
    /// valid (on this node). `Err` if there is no space `n`, or if ids
    /// beyond its start were already handed out.
    pub fn use_space(&self, n: u32) -> Result<core::ops::Range<u32>, SpaceError> {
        let range = space(n).ok_or(SpaceError::NoSuchSpace(n))?;
        let next = self.next.load(Ordering::Relaxed);
        if next > range.start {
            return Err(SpaceError::AlreadyPast {
                space: n,
                next: next.min(TABLE_SIZE as u32),
            });
        }
        // `end` first: a racing allocation sees the new end and an old
        // `next` (an id below this space) at worst, never one above it.
        self.end.store(range.end, Ordering::Release);
        self.next.store(range.start, Ordering::Relaxed);
        Ok(range)
    }

    #[cfg(test)]
    pub(crate) fn new_for_test(next: u32) -> Self {
        IdAllocator {
            next: AtomicU32::new(next),
            end: AtomicU32::new(TABLE_SIZE as u32),
        }
    }

    /// How many run-time ids remain.
    pub fn remaining(&self) -> usize {
        (self.end.load(Ordering::Relaxed) as usize)
            .saturating_sub(self.next.load(Ordering::Relaxed) as usize)
    }
}

/// Why [`IdAllocator::use_space`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceError {
    /// There are only [`SPACES`] id spaces.
    NoSuchSpace(u32),
    /// Ids up to `next` were handed out already, past the space's start.
    AlreadyPast {
        /// The space asked for.
        space: u32,
        /// The next id the allocator would have handed out.
        next: u32,
    },
}

impl core::fmt::Display for SpaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpaceError::NoSuchSpace(n) => write!(
                f,
                "no id space {n}: there are {SPACES} spaces of {SPACE_SIZE} run-time ids"
            ),
            SpaceError::AlreadyPast { space: n, next } => write!(
                f,
                "id space {n} starts below id {next}, which is already handed out"
            ),
        }
    }
}

impl core::error::Error for SpaceError {}

/// The id allocator Ebb.
pub static ID_ALLOCATOR_REF: EbbRef<IdAllocator> = EbbRef::fixed();

/// Allocates a run-time id from the id allocator Ebb.
pub fn allocate() -> Result<EbbId, EbbError> {
    ID_ALLOCATOR_REF.allocate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_ids_have_their_names() {
        let all = [
            (ID_ALLOCATOR, "ID_ALLOCATOR"),
            (CONSOLE, "CONSOLE"),
            (PAGE_ALLOCATOR, "PAGE_ALLOCATOR"),
            (SLAB_ALLOCATOR, "SLAB_ALLOCATOR"),
            (GP_ALLOCATOR, "GP_ALLOCATOR"),
            (NETWORK_MANAGER, "NETWORK_MANAGER"),
            (NET_DEVICE, "NET_DEVICE"),
            (MESSENGER, "MESSENGER"),
            (GLOBAL_ID_MAP, "GLOBAL_ID_MAP"),
            (NODE_ALLOCATOR, "NODE_ALLOCATOR"),
            (CLOCK, "CLOCK"),
            (EVENT_MANAGER, "EVENT_MANAGER"),
            (IDLE_POLICY, "IDLE_POLICY"),
            (RCU, "RCU"),
            (FILE_SYSTEM, "FILE_SYSTEM"),
        ];
        for (id, n) in all {
            assert_eq!(name(id), Some(n));
        }
        assert_eq!(name(EbbId::new(16)), None);
        assert_eq!(name(app(0)), None);
        assert_eq!(name(EbbId::new(FIRST_DYNAMIC)), None);
    }

    #[test]
    fn id_spaces_partition_the_run_time_ids() {
        assert_eq!(space(0), Some(FIRST_DYNAMIC..FIRST_DYNAMIC + SPACE_SIZE));
        let last = space(SPACES - 1).unwrap();
        assert_eq!(last.end as usize, TABLE_SIZE);
        assert_eq!(space(SPACES), None);
        let a = IdAllocator::default();
        assert_eq!(a.use_space(3).unwrap(), space(3).unwrap());
        let first = a.allocate().unwrap().raw();
        assert_eq!(first, space(3).unwrap().start);
        for _ in 1..SPACE_SIZE {
            assert!(space(3).unwrap().contains(&a.allocate().unwrap().raw()));
        }
        assert_eq!(a.remaining(), 0);
        assert_eq!(a.allocate(), Err(EbbError::IdsExhausted));
        // Going back to a lower space is refused; so is a space that isn't.
        assert!(matches!(
            a.use_space(1),
            Err(SpaceError::AlreadyPast { space: 1, .. })
        ));
        assert_eq!(a.use_space(SPACES), Err(SpaceError::NoSuchSpace(SPACES)));
        assert!(alloc::format!("{}", SpaceError::NoSuchSpace(99)).contains("48 spaces"));
    }
}
