//! The COM1 16550 UART driver: the console's one byte sink. Probed and
//! initialised (115200 8N1, FIFO on) at the first write; without a UART,
//! output is dropped.
//!
//! A spin lock serialises cores. The lock remembers its owner so that a
//! fault or panic on the core that holds it (say, mid-print) can still
//! print: [`emergency`] takes the lock over from its own core, and from a
//! core that holds it for too long (one that died holding it).

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use ebbrt_core::cpu;

use uart_16550::Uart16550;
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config};

const COM1: u16 = 0x3f8;
const NO_OWNER: u32 = u32::MAX;

static UART: spin::Mutex<Option<Uart16550<PioBackend>>> = spin::Mutex::new(None);
static OWNER: AtomicU32 = AtomicU32::new(NO_OWNER);

static PROBED: AtomicBool = AtomicBool::new(false);

/// Probes and initialises COM1 once, under the lock.
fn probe(slot: &mut Option<Uart16550<PioBackend>>) {
    if PROBED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: 0x3f8..0x3ff is COM1 on every PC; only this module touches
    // it, and only under `UART`'s lock (held by our caller).
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return;
    };
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    if uart.init(config).is_ok() {
        *slot = Some(uart);
    }
}

fn me() -> u32 {
    cpu::try_current().map_or(NO_OWNER - 1, |c| c.0)
}

/// A held UART: writes go straight to the device.
pub(crate) struct UartGuard {
    guard: Option<spin::MutexGuard<'static, Option<Uart16550<PioBackend>>>>,
}

impl UartGuard {
    /// Sends `bytes`, translating `\n` into `\r\n`.
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        let Some(uart) = self.guard.as_mut().and_then(|g| g.as_mut()) else {
            return;
        };
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            match chunk.split_last() {
                Some((b'\n', line)) => {
                    uart.send_bytes_exact(line);
                    uart.send_bytes_exact(b"\r\n");
                }
                _ => uart.send_bytes_exact(chunk),
            }
        }
    }
}

impl fmt::Write for UartGuard {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Drop for UartGuard {
    fn drop(&mut self) {
        OWNER.store(NO_OWNER, Ordering::Release);
        drop(self.guard.take());
    }
}

/// Takes the UART, waiting for other cores. Interrupts must be off (they
/// are whenever kernel or application code runs).
pub(crate) fn lock() -> UartGuard {
    let mut guard = UART.lock();
    probe(&mut guard);
    OWNER.store(me(), Ordering::Release);
    UartGuard { guard: Some(guard) }
}

/// Takes the UART for a fatal report: from its holder if that is this core
/// (we interrupted ourselves mid-print) or if the holder does not let go
/// within a few hundred million spins (it died holding it).
pub(crate) fn emergency() -> UartGuard {
    let me = me();
    let mut spins: u64 = 0;
    loop {
        if let Some(mut guard) = UART.try_lock() {
            probe(&mut guard);
            OWNER.store(me, Ordering::Release);
            return UartGuard { guard: Some(guard) };
        }
        if OWNER.load(Ordering::Acquire) == me || spins > 300_000_000 {
            // SAFETY: the holder is this very core, stopped below us and
            // never to resume, or a core that has stopped making progress;
            // either way nobody else is using the UART now, and a garbled
            // byte beats losing the report of a crash.
            unsafe { UART.force_unlock() };
        }
        spins += 1;
        core::hint::spin_loop();
    }
}
