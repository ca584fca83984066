//! # ebbrt-idle-poll
//!
//! The low-latency idle policy of the event loops (the original EbbRT's
//! polling mode): [`PollWhenIdle`], a shared Ebb at the well-known id
//! `IDLE_POLICY` implementing [`ebbrt_core::exec::IdlePolicy`]. A core
//! with nothing to run never sleeps: it keeps dispatching platform events
//! (natively it opens a one-instruction interrupt window each pass, so a
//! device interrupt or a wake IPI is taken at once instead of ending a
//! `hlt`), and its loop notices work sent by other cores and due timers on
//! the next pass. Selected by the `ebbrt` facade's feature `idle-poll`
//! instead of the default `idle-halt`.
//!
//! The cost: every core of the image runs at 100% of its (v)CPU all the
//! time. docs/benchmarks.md measures what it buys on a 64-byte round trip.
//! It keeps no state and uses no `unsafe` code.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;
use ebbrt_core::exec::IdlePolicy;
use ebbrt_core::platform::Platform;
use ebbrt_core::time::Instant;

/// Idle policy: poll for events instead of halting (low latency, a busy
/// core).
///
/// Wake-ups cost no interrupt delivery out of `hlt` (nor, under a
/// hypervisor, a VM exit and entry): an event is seen on the loop's next
/// pass. Every core spins at full speed while idle.
#[ebb(shared, id = ids::IDLE_POLICY, interface = IdlePolicy, static_rep = instance, feature = "idle-poll")]
pub struct PollWhenIdle {
    _private: (),
}

static INSTANCE: PollWhenIdle = PollWhenIdle { _private: () };

fn instance() -> &'static PollWhenIdle {
    &INSTANCE
}

impl IdlePolicy for PollWhenIdle {
    fn idle(&self, platform: &'static dyn Platform, _deadline: Option<Instant>) {
        platform.idle_poll();
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use ebbrt_core::ebb::binding;
    use ebbrt_core::exec::IdlePolicy;

    #[test]
    fn it_is_the_bound_policy() {
        let b = binding::<dyn IdlePolicy>().expect("one idle policy");
        assert_eq!(b.component, "PollWhenIdle");
        let r = ebbrt_core::registry::find("PollWhenIdle").expect("linked");
        assert_eq!((r.feature, r.default), (Some("idle-poll"), false));
    }
}
