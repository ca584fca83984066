//! The executor's platform on native: the TSC clock, wake IPIs, and idling
//! with `sti; hlt`.

use core::sync::atomic::Ordering;

use super::{apic, clock, irq, percpu};
use crate::cpu::{self, CoreId};
use crate::platform::Platform;
use crate::time::Instant;

/// The native platform (one instance for every core).
pub(crate) struct NativePlatform;

/// The instance the executor is given.
pub(crate) static PLATFORM: NativePlatform = NativePlatform;

impl Platform for NativePlatform {
    fn now(&self) -> Instant {
        Instant::from_nanos(clock::now_ns())
    }

    fn wake(&self, core: CoreId) {
        let target = percpu::of(core);
        if cpu::try_current() == Some(core) {
            target.wake_pending.store(true, Ordering::Release);
            return;
        }
        // Pairs with `idle`: it publishes `sleeping` and then reads
        // `wake_pending`; we publish `wake_pending` and then read
        // `sleeping`. With both SeqCst, at least one side sees the other,
        // so a wake is never slept through.
        if !target.wake_pending.swap(true, Ordering::SeqCst)
            && target.sleeping.load(Ordering::SeqCst)
        {
            apic::send_ipi(target.apic_id.load(Ordering::Relaxed), irq::WAKE_VECTOR);
        }
    }

    fn idle(&self, deadline: Option<Instant>) {
        let me = percpu::this().expect("idle on a core that has not entered");
        // A partial console line is shown before the core waits.
        crate::console::flush();
        if irq::dispatch() || me.wake_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(d) = deadline {
            if d.as_nanos() <= clock::now_ns() {
                return;
            }
            apic::arm_timer(d.as_nanos());
        }
        me.sleeping.store(true, Ordering::SeqCst);
        if !me.wake_pending.load(Ordering::SeqCst) && !irq::any_pending(me) {
            // `sti` takes effect after the next instruction, so an interrupt
            // already pending (a wake IPI sent after we checked the flags)
            // ends the `hlt` instead of being taken before it. Handlers only
            // record events; interrupts are off again after it.
            x86_64::instructions::interrupts::enable_and_hlt();
            x86_64::instructions::interrupts::disable();
        }
        me.sleeping.store(false, Ordering::SeqCst);
        if deadline.is_some() {
            apic::disarm_timer();
        }
        me.wake_pending.store(false, Ordering::Release);
        irq::dispatch();
    }

    fn poll(&self) {
        irq::dispatch();
    }

    fn idle_poll(&self) {
        let me = percpu::this().expect("idle on a core that has not entered");
        // An interrupt window: `sti` takes effect after the next
        // instruction, so pending interrupts are taken here, whose handlers
        // only record events.
        x86_64::instructions::interrupts::enable();
        x86_64::instructions::nop();
        x86_64::instructions::interrupts::disable();
        me.wake_pending.store(false, Ordering::Release);
        irq::dispatch();
    }
}
