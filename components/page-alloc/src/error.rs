//! The errors of the memory allocator stack. Every layer (page, slab,
//! general-purpose, the talc alternative) reports failures with these two
//! values, so a failure names the allocator, the request and what was free.
//!
//! The general-purpose allocators print them without allocating
//! ([`report_alloc_failure`], [`bad_free`]): hosted, straight to file
//! descriptor 2 from a stack buffer; natively through the `log` logger (the
//! serial console), and a bad free panics (the native panic handler prints
//! it and exits with a failure).

use core::fmt;

/// Why an allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocFailure {
    /// Not enough free memory (or none contiguous enough).
    OutOfMemory,
    /// The request is larger than the largest block this allocator can ever
    /// hand out.
    TooLarge,
    /// The requested alignment is larger than any block this allocator can
    /// align to.
    AlignTooLarge,
}

/// An allocation that could not be satisfied: which allocator, what was
/// asked, and what it had free at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError {
    /// The allocator that failed (e.g. `"page allocator"`).
    pub allocator: &'static str,
    /// Bytes requested.
    pub size: usize,
    /// Alignment requested.
    pub align: usize,
    /// Why it failed.
    pub reason: AllocFailure,
    /// Bytes free in the allocator that ran out (the page allocator for the
    /// whole stack).
    pub free_bytes: usize,
    /// The largest block that was free, in bytes.
    pub largest_free: usize,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            AllocFailure::OutOfMemory => "out of memory",
            AllocFailure::TooLarge => "larger than the largest block it can allocate",
            AllocFailure::AlignTooLarge => "alignment larger than it can provide",
        };
        write!(
            f,
            "{}: cannot allocate {} bytes aligned to {}: {} ({} bytes free, largest free block {} bytes)",
            self.allocator, self.size, self.align, why, self.free_bytes, self.largest_free
        )
    }
}

impl core::error::Error for AllocError {}

/// What is wrong with a pointer given back to an allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeErrorKind {
    /// The block or object is already free.
    DoubleFree,
    /// The address is not memory this allocator manages.
    Foreign,
    /// The address is inside managed memory but not the start of a block or
    /// object this allocator handed out.
    NotAllocated,
    /// The block was allocated with another size (order or size class).
    WrongSize,
}

/// A bad free: a double free, a foreign pointer, or a size mismatch.
/// Detected always by the page allocator, and in debug builds by the slab
/// and general-purpose allocators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeError {
    /// The allocator that caught it.
    pub allocator: &'static str,
    /// The address freed.
    pub addr: usize,
    /// The size given with the free.
    pub size: usize,
    /// What is wrong.
    pub kind: FreeErrorKind,
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FreeErrorKind::DoubleFree => "double free: the memory is already free",
            FreeErrorKind::Foreign => "foreign pointer: not memory this allocator manages",
            FreeErrorKind::NotAllocated => "not the start of a block this allocator handed out",
            FreeErrorKind::WrongSize => "freed with a different size than it was allocated with",
        };
        write!(
            f,
            "{}: bad free of {:#x} ({} bytes): {}",
            self.allocator, self.addr, self.size, what
        )
    }
}

impl core::error::Error for FreeError {}

/// Writes one line to stderr from a stack buffer (truncated to 512 bytes),
/// without allocating.
#[cfg(not(target_os = "none"))]
fn emit(args: fmt::Arguments<'_>) {
    use fmt::Write;
    struct StackBuf {
        buf: [u8; 512],
        len: usize,
    }
    impl Write for StackBuf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let n = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut b = StackBuf {
        buf: [0; 512],
        len: 0,
    };
    let _ = b.write_fmt(args);
    let _ = b.write_str("\n");
    // SAFETY: writes `len` initialised bytes of our buffer to stderr.
    #[allow(unsafe_code)]
    unsafe {
        libc::write(2, b.buf.as_ptr().cast(), b.len)
    };
}

/// Prints an allocation failure without allocating: `ebbrt: <error>` on
/// stderr hosted, an error record of the `log` logger natively. (A
/// `GlobalAlloc` then returns null, and Rust's allocation error handler
/// stops the program.)
#[cold]
pub fn report_alloc_failure(e: &AllocError) {
    #[cfg(not(target_os = "none"))]
    emit(format_args!("ebbrt: {e}"));
    #[cfg(target_os = "none")]
    log::error!("{e}");
}

/// Stops the program on a bad free (caught by a debug build, or by the page
/// allocator): hosted, prints `ebbrt: fatal: <error>` on stderr and aborts;
/// natively, panics with that message.
#[cold]
pub fn bad_free(e: &FreeError) -> ! {
    #[cfg(not(target_os = "none"))]
    {
        emit(format_args!("ebbrt: fatal: {e}"));
        // SAFETY: aborting is always sound; unwinding out of an allocator
        // is not allowed, and the heap cannot be trusted any more.
        #[allow(unsafe_code)]
        unsafe {
            libc::abort()
        }
    }
    #[cfg(target_os = "none")]
    panic!("ebbrt: fatal: {e}")
}
