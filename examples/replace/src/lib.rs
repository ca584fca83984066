//! An application's own console and general-purpose allocator, at the
//! system's well-known ids, replacing the framework's defaults (which the
//! application turned off in its Cargo.toml).
//!
//! - [`TallyConsole`]: the console. Natively it writes to QEMU's debug
//!   console (port 0xe9, which `cargo ebbrt run`/`test` put on stdio);
//!   hosted to stdout. It counts the bytes it printed.
//! - [`ArenaAllocator`]: the general-purpose allocator: power-of-two
//!   blocks carved from a static 64 MiB arena, with a free list per size,
//!   behind one lock. It counts its allocations. Installed as the
//!   `#[global_allocator]` (both runtimes) through `ebbrt::memory::EbbGlobal`.
//!
//! `print!`, the kernel core's panic and fault reports and the registry all
//! reach them through their interfaces, without the framework naming them.
#![cfg_attr(target_os = "none", no_std)]

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use ebbrt::console::Console;
use ebbrt::ebb;
use ebbrt::ebb::ids;
use ebbrt::memory::{EbbGlobal, GeneralPurposeAllocator};

/// The application's console: QEMU's debug console natively, stdout
/// hosted; counts what it prints.
#[ebb(shared, id = ids::CONSOLE, interface = Console, static_rep = console)]
pub struct TallyConsole {
    bytes: AtomicUsize,
    lock: spin::Mutex<()>,
}

static CONSOLE: TallyConsole = TallyConsole {
    bytes: AtomicUsize::new(0),
    lock: spin::Mutex::new(()),
};

fn console() -> &'static TallyConsole {
    &CONSOLE
}

impl TallyConsole {
    /// Bytes printed so far.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A writer to the device that counts.
struct Out<'a>(&'a AtomicUsize);

impl Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.fetch_add(s.len(), Ordering::Relaxed);
        device::write(s.as_bytes());
        Ok(())
    }
}

impl Console for TallyConsole {
    fn print(&self, args: fmt::Arguments<'_>) {
        let _held = self.lock.lock();
        let _ = Out(&self.bytes).write_fmt(args);
    }

    fn emergency(&self, report: &mut dyn FnMut(&mut dyn Write)) {
        // No lock: a fault report must not wait for the code it interrupted.
        report(&mut Out(&self.bytes));
    }
}

#[cfg(target_os = "none")]
mod device {
    use x86_64::instructions::port::PortWriteOnly;

    pub(crate) fn write(bytes: &[u8]) {
        let mut port = PortWriteOnly::<u8>::new(0xe9);
        for &b in bytes {
            // SAFETY: port 0xe9 is QEMU's debug console (or nothing): the
            // write only emits the byte; no memory, no DMA.
            unsafe { port.write(b) };
        }
    }
}

#[cfg(not(target_os = "none"))]
mod device {
    use std::io::Write;

    pub(crate) fn write(bytes: &[u8]) {
        let _ = std::io::stdout().lock().write_all(bytes);
    }
}

const ARENA: usize = 64 << 20;
/// Smallest block: 16 bytes (2^4); largest: the arena.
const MIN_SHIFT: u32 = 4;
const CLASSES: usize = (ARENA.trailing_zeros() - MIN_SHIFT + 1) as usize;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA]>);

// SAFETY: the bytes are handed out in disjoint blocks under `Heap`'s lock;
// the arena itself is never read or written as a whole.
unsafe impl Sync for Arena {}

static MEMORY: Arena = Arena(UnsafeCell::new([0; ARENA]));

struct Heap {
    /// Offset of the first never-used byte.
    bump: usize,
    /// Per size class, the first free block (its first word links the next).
    free: [usize; CLASSES],
}

/// The application's general-purpose allocator: power-of-two blocks from a
/// static arena, a free list per size, one lock; counts allocations.
#[ebb(shared, id = ids::GP_ALLOCATOR, interface = GeneralPurposeAllocator, static_rep = allocator)]
pub struct ArenaAllocator {
    heap: spin::Mutex<Heap>,
    allocations: AtomicUsize,
}

static ALLOCATOR: ArenaAllocator = ArenaAllocator {
    heap: spin::Mutex::new(Heap {
        bump: 0,
        free: [0; CLASSES],
    }),
    allocations: AtomicUsize::new(0),
};

fn allocator() -> &'static ArenaAllocator {
    &ALLOCATOR
}

/// What the application installs as its `#[global_allocator]`.
pub type Global = EbbGlobal<ArenaAllocator>;

impl ArenaAllocator {
    /// Allocations served so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }

    /// The size class of `layout`: blocks of `1 << (class + MIN_SHIFT)`
    /// bytes, aligned to their size.
    fn class(layout: Layout) -> Option<usize> {
        let need = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
        let shift = need.checked_next_power_of_two()?.trailing_zeros();
        let class = (shift - MIN_SHIFT) as usize;
        (class < CLASSES).then_some(class)
    }

    fn base() -> *mut u8 {
        MEMORY.0.get().cast()
    }
}

impl GeneralPurposeAllocator for ArenaAllocator {
    fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        let class = Self::class(layout)?;
        let size = 1usize << (class + MIN_SHIFT as usize);
        let mut heap = self.heap.lock();
        let offset = match heap.free[class] {
            0 => {
                // Aligned to its size: any alignment up to it is met.
                let at = heap.bump.next_multiple_of(size);
                if at.checked_add(size)? > ARENA {
                    return None;
                }
                heap.bump = at + size;
                at
            }
            // Free-list entries are offsets + 1 (0 ends the list).
            head => {
                let at = head - 1;
                // SAFETY: `at` is a free block of this class inside the
                // arena; its first word holds the next entry, written by
                // `deallocate` under this lock.
                heap.free[class] = unsafe { Self::base().add(at).cast::<usize>().read() };
                at
            }
        };
        self.allocations.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `offset + size <= ARENA`: inside the arena.
        NonNull::new(unsafe { Self::base().add(offset) })
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = Self::class(layout) else {
            return;
        };
        let at = ptr.as_ptr() as usize - Self::base() as usize;
        let mut heap = self.heap.lock();
        // SAFETY: the caller gives back a block of ours (at least 16 bytes,
        // aligned to its size) that nobody uses any more: its first word is
        // ours to link the free list through.
        unsafe { ptr.as_ptr().cast::<usize>().write(heap.free[class]) };
        heap.free[class] = at + 1;
    }
}
