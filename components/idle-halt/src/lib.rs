//! # ebbrt-idle-halt
//!
//! The default idle policy of the event loops: [`HaltWhenIdle`], a shared
//! Ebb at the well-known id `IDLE_POLICY` implementing
//! [`ebbrt_core::exec::IdlePolicy`]. A core with nothing to run sleeps in
//! the platform until an event: natively it arms the LAPIC timer for its
//! next deadline and halts (`sti; hlt`) until an interrupt or a wake IPI;
//! hosted it waits in `epoll_wait` with its `timerfd` armed. Selected by
//! the `ebbrt` facade's default feature `idle-halt`; `idle-poll` is the
//! alternative.
//!
//! It keeps no state and uses no `unsafe` code: the sleeping itself is the
//! platform's (`Platform::idle`).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;
use ebbrt_core::exec::IdlePolicy;
use ebbrt_core::platform::Platform;
use ebbrt_core::time::Instant;

/// Idle policy: halt until an interrupt, a wake or the next timer.
///
/// The lowest cost for an idle core (a halted vCPU costs the host nothing)
/// at the price of a wake-up: an interrupt or an IPI out of `hlt`, and
/// under a hypervisor a VM exit and entry.
#[ebb(shared, id = ids::IDLE_POLICY, interface = IdlePolicy, static_rep = instance, feature = "idle-halt", default)]
pub struct HaltWhenIdle {
    _private: (),
}

static INSTANCE: HaltWhenIdle = HaltWhenIdle { _private: () };

fn instance() -> &'static HaltWhenIdle {
    &INSTANCE
}

impl IdlePolicy for HaltWhenIdle {
    fn idle(&self, platform: &'static dyn Platform, deadline: Option<Instant>) {
        platform.idle(deadline);
    }
}

#[cfg(test)]
mod tests {
    use ebbrt_core::ebb::binding;
    use ebbrt_core::exec::IdlePolicy;

    #[test]
    fn it_is_the_bound_policy() {
        let b = binding::<dyn IdlePolicy>().expect("one idle policy");
        assert_eq!(b.component, "HaltWhenIdle");
        let r = ebbrt_core::registry::find("HaltWhenIdle").expect("linked");
        assert_eq!((r.feature, r.default), (Some("idle-halt"), true));
        assert_eq!(r.interface, "ebbrt_core::exec::IdlePolicy");
    }
}
