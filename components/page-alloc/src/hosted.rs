//! The hosted arena: one large private mapping from Linux that stands for
//! "all of physical memory" in a hosted process. It is reserved with
//! `MAP_NORESERVE`, so pages cost nothing until first touched.
//!
//! Size: `EBBRT_ARENA_MIB` (MiB) if set, else [`DEFAULT_ARENA`]; when Linux
//! refuses the size, halves it down to [`MIN_ARENA`].
#![allow(unsafe_code)]

use core::ffi::CStr;

/// The arena reserved when `EBBRT_ARENA_MIB` is not set: 32 GiB of address
/// space.
pub const DEFAULT_ARENA: usize = 32 << 30;
/// The smallest arena worth mapping.
pub const MIN_ARENA: usize = 16 << 20;
const ALIGN: usize = 1 << 30;

fn wanted_size() -> usize {
    // Miri backs a mapping with real memory of its own: the smallest arena.
    if cfg!(miri) {
        return MIN_ARENA;
    }
    // SAFETY: `getenv` with a NUL-terminated name; it returns null or a
    // NUL-terminated string that stays valid while the environment is not
    // modified (we copy what we need at once, without allocating).
    let v = unsafe { libc::getenv(c"EBBRT_ARENA_MIB".as_ptr()) };
    if v.is_null() {
        return DEFAULT_ARENA;
    }
    // SAFETY: non-null `getenv` results are NUL-terminated.
    let s = unsafe { CStr::from_ptr(v) };
    match s.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()) {
        Some(mib) if mib > 0 => mib.saturating_mul(1 << 20).max(MIN_ARENA),
        _ => DEFAULT_ARENA,
    }
}

/// A private anonymous mapping, not counted against the commit limit
/// (Miri's `mmap` takes only `MAP_PRIVATE | MAP_ANONYMOUS`; its arena is
/// small).
const MAP_FLAGS: libc::c_int = if cfg!(miri) {
    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS
} else {
    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE
};

/// Maps the arena; returns its bounds, aligned to 1 GiB when large enough
/// that 1 GiB blocks exist.
pub(crate) fn map_arena() -> Option<(usize, usize)> {
    let mut size = wanted_size();
    while size >= MIN_ARENA {
        let slack = if size >= ALIGN { ALIGN } else { 0 };
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size + slack,
                libc::PROT_READ | libc::PROT_WRITE,
                MAP_FLAGS,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            let start = (p as usize).next_multiple_of(slack.max(1));
            return Some((start, start + size));
        }
        size /= 2;
    }
    None
}
