//! Which core is running, and how many there are.
//!
//! A *core* is one event loop: a hardware thread on native, a pinned Linux
//! thread on hosted. Core ids are dense, `0..count()`.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The most cores one EbbRT instance supports.
pub const MAX_CORES: usize = 256;

/// The id of a core: an index in `0..count()`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct CoreId(pub u32);

impl CoreId {
    /// The core id as an index.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core {}", self.0)
    }
}

static CORE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// How many cores the running instance has (0 before a runtime started).
#[inline]
pub fn count() -> usize {
    CORE_COUNT.load(Ordering::Relaxed)
}

/// An iterator over every core of the running instance.
pub fn all() -> impl Iterator<Item = CoreId> {
    (0..count() as u32).map(CoreId)
}

/// The current core, or `None` on a thread that is not an EbbRT core (a
/// plain Linux thread of a hosted process, for instance).
#[inline]
pub fn try_current() -> Option<CoreId> {
    crate::percore::core_id()
}

/// The current core.
///
/// # Panics
/// On a thread that is not an EbbRT core: Ebbs and the executor only exist
/// inside a running EbbRT instance.
#[inline]
#[track_caller]
pub fn current() -> CoreId {
    match try_current() {
        Some(c) => c,
        None => not_a_core(),
    }
}

#[cold]
#[track_caller]
fn not_a_core() -> ! {
    panic!(
        "not running on an EbbRT core: start the runtime (e.g. #[ebbrt::main]) before using Ebbs or the executor"
    )
}

/// Errors when a runtime declares its cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreSetupError {
    /// More cores than [`MAX_CORES`], or zero.
    BadCount(usize),
    /// The core count was already set to another value.
    AlreadySet(usize),
}

impl fmt::Display for CoreSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCount(n) => write!(f, "invalid core count {n} (must be 1..={MAX_CORES})"),
            Self::AlreadySet(n) => write!(f, "core count already set to {n}"),
        }
    }
}

/// Declares how many cores this instance runs. Called once by a runtime
/// before any core enters its event loop.
pub fn set_count(n: usize) -> Result<(), CoreSetupError> {
    if n == 0 || n > MAX_CORES {
        return Err(CoreSetupError::BadCount(n));
    }
    match CORE_COUNT.compare_exchange(0, n, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(old) if old == n => Ok(()),
        Err(old) => Err(CoreSetupError::AlreadySet(old)),
    }
}

/// Makes the calling thread (hosted) or hardware thread (native) core `id`.
///
/// # Safety
/// Each core id must be entered by exactly one thread, and that thread must
/// remain that core for the rest of its life: representatives cached in its
/// translation table are `!Sync` and belong to it. On native, the per-core
/// block must already be installed (GS base) when this is called.
pub unsafe fn enter(id: CoreId) {
    assert!(
        id.index() < count(),
        "core {} entered but the instance has {} cores",
        id.0,
        count()
    );
    crate::percore::set_core_id(id);
}
