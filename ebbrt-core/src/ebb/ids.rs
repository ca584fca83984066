//! Well-known ids, and the id allocator Ebb that hands out the rest.
//!
//! Id space (all below [`TABLE_SIZE`]):
//! - `0` is never used, so a zeroed id is always a bug;
//! - `1..256`: system components, listed here;
//! - `256..1024`: fixed ids chosen by applications, with [`app`];
//! - `1024..TABLE_SIZE`: allocated at run time by [`IdAllocator`].

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

/// Hands out run-time Ebb ids; itself a shared Ebb at a well-known id.
///
/// Lives at [`ID_ALLOCATOR`]: the allocator is itself an Ebb. Ebbs are
/// never destroyed, so ids are never returned; allocation is one atomic add.
#[ebbrt_macros::ebb(shared, id = ID_ALLOCATOR)]
pub struct IdAllocator {
    next: AtomicU32,
}

impl Default for IdAllocator {
    fn default() -> Self {
        IdAllocator {
            next: AtomicU32::new(FIRST_DYNAMIC),
        }
    }
}

impl IdAllocator {
    /// A fresh run-time id.
    pub fn allocate(&self) -> Result<EbbId, EbbError> {
        let raw = self.next.fetch_add(1, Ordering::Relaxed);
        if raw as usize >= TABLE_SIZE {
            // Keep `next` from wrapping around after many failed calls.
            self.next.store(TABLE_SIZE as u32, Ordering::Relaxed);
            return Err(EbbError::IdsExhausted);
        }
        Ok(EbbId::new(raw))
    }

    #[cfg(test)]
    pub(crate) fn new_for_test(next: u32) -> Self {
        IdAllocator {
            next: AtomicU32::new(next),
        }
    }

    /// How many run-time ids remain.
    pub fn remaining(&self) -> usize {
        TABLE_SIZE.saturating_sub(self.next.load(Ordering::Relaxed) as usize)
    }
}

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
        ];
        for (id, n) in all {
            assert_eq!(name(id), Some(n));
        }
        assert_eq!(name(EbbId::new(15)), None);
        assert_eq!(name(app(0)), None);
        assert_eq!(name(EbbId::new(FIRST_DYNAMIC)), None);
    }
}
