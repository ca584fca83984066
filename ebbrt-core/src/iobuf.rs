//! Byte buffers for I/O, shared by both runtimes: [`IoBuf`] (one
//! reference-counted, sliceable, contiguous view), [`IoBufChain`] (a
//! sequence of them, like a stream's received data or a message built from
//! pieces) and [`Cursor`] (a reader across a chain's buffers).
//!
//! The network APIs hand received data to the application as an [`IoBuf`]
//! (`TcpStream::read_buf`, `UdpSocket::recv_buf`), the same type on the
//! hosted and the native runtime. Slicing, splitting and cloning never copy
//! bytes: every view shares one allocation, freed when the last view goes.
//! A view is `Send`, so a buffer filled on one core can be handed to
//! another (through `spawn_on`) without a copy.
//!
//! Why a type of our own rather than the `bytes` crate: the needs are
//! small (a shared immutable view, splitting, a chain, a cursor that parses
//! across buffer boundaries without panicking on short input), this is
//! safe code with no dependency in a crate that must stay small, and it
//! leaves room for what a library OS wants next (buffers that go back to a
//! driver's ring when dropped) without a foreign type's constraints.
//! Converting to `bytes::Bytes` where an ecosystem crate wants one is a
//! `Vec` move ([`IoBuf::into_vec`], no copy when the view is unique).
//!
//! ```
//! use ebbrt_core::iobuf::{IoBuf, IoBufChain};
//!
//! let mut b = IoBuf::from(b"GET /index.html".to_vec());
//! let verb = b.split_to(3); // shares the allocation: no copy
//! assert_eq!(verb, b"GET"[..]);
//! b.advance(1);
//! assert_eq!(b, b"/index.html"[..]);
//!
//! let mut chain = IoBufChain::new();
//! chain.push_back(IoBuf::from(&b"\x00\x01\x02"[..]));
//! chain.push_back(IoBuf::from(&b"\x03rest"[..]));
//! let mut c = chain.cursor();
//! assert_eq!(c.read_u32_be(), Some(0x0001_0203)); // across two buffers
//! assert_eq!(c.remaining(), 4);
//! assert_eq!(c.read_u64_be(), None); // too short: None, never a panic
//! ```

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::{Bound, Deref, RangeBounds};

/// A contiguous, immutable view of bytes in a reference-counted allocation.
///
/// Cloning, [`slice`](Self::slice), [`split_to`](Self::split_to) and
/// [`split_off`](Self::split_off) make new views of the same allocation
/// (no byte is copied); the allocation is freed when its last view is
/// dropped. The empty buffer allocates nothing. Dereferences to `[u8]`;
/// compares, orders and hashes by content.
#[derive(Clone, Default)]
pub struct IoBuf {
    store: Option<Arc<Vec<u8>>>,
    start: usize,
    end: usize,
}

fn bounds(range: impl RangeBounds<usize>, len: usize) -> Option<(usize, usize)> {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1)?,
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    (lo <= hi && hi <= len).then_some((lo, hi))
}

impl IoBuf {
    /// The empty buffer (no allocation).
    pub const fn new() -> IoBuf {
        IoBuf {
            store: None,
            start: 0,
            end: 0,
        }
    }

    /// A buffer owning `bytes` (no copy: the vector becomes the allocation).
    pub fn from_vec(bytes: Vec<u8>) -> IoBuf {
        if bytes.is_empty() {
            return IoBuf::new();
        }
        let end = bytes.len();
        IoBuf {
            store: Some(Arc::new(bytes)),
            start: 0,
            end,
        }
    }

    /// A buffer holding a copy of `bytes`.
    pub fn copy_from_slice(bytes: &[u8]) -> IoBuf {
        IoBuf::from_vec(bytes.to_vec())
    }

    /// The number of bytes in the view.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The bytes of the view.
    pub fn as_slice(&self) -> &[u8] {
        match &self.store {
            Some(v) => &v[self.start..self.end],
            None => &[],
        }
    }

    /// A new view of `range` (relative to this view) of the same
    /// allocation; `None` if the range is not within the view.
    pub fn get(&self, range: impl RangeBounds<usize>) -> Option<IoBuf> {
        let (lo, hi) = bounds(range, self.len())?;
        if lo == hi {
            return Some(IoBuf::new());
        }
        Some(IoBuf {
            store: self.store.clone(),
            start: self.start + lo,
            end: self.start + hi,
        })
    }

    /// A new view of `range` (relative to this view) of the same allocation.
    ///
    /// # Panics
    /// If the range is not within the view, as slicing a `[u8]` would; use
    /// [`get`](Self::get) for ranges that come from input.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> IoBuf {
        let len = self.len();
        let (lo, hi) = (range.start_bound().cloned(), range.end_bound().cloned());
        self.get((lo, hi))
            .unwrap_or_else(|| panic!("IoBuf::slice: {lo:?}..{hi:?} is out of 0..{len}"))
    }

    /// Drops the first `n` bytes from the view (all of them if `n` is
    /// larger).
    pub fn advance(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.is_empty() {
            *self = IoBuf::new();
        }
    }

    /// Shortens the view to its first `len` bytes (no effect if it is
    /// shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
        if self.is_empty() {
            *self = IoBuf::new();
        }
    }

    /// Splits the view in two at `at`: returns the first `at` bytes and
    /// keeps the rest. No copy.
    ///
    /// # Panics
    /// If `at` is greater than the length.
    pub fn split_to(&mut self, at: usize) -> IoBuf {
        assert!(
            at <= self.len(),
            "IoBuf::split_to: {at} is beyond the length {}",
            self.len()
        );
        let head = self.slice(..at);
        self.advance(at);
        head
    }

    /// Splits the view in two at `at`: returns the bytes from `at` on and
    /// keeps the first `at`. No copy.
    ///
    /// # Panics
    /// If `at` is greater than the length.
    pub fn split_off(&mut self, at: usize) -> IoBuf {
        assert!(
            at <= self.len(),
            "IoBuf::split_off: {at} is beyond the length {}",
            self.len()
        );
        let tail = self.slice(at..);
        self.truncate(at);
        tail
    }

    /// Whether this is the only view of its allocation (an empty buffer
    /// counts as unique).
    pub fn is_unique(&self) -> bool {
        match &self.store {
            Some(v) => Arc::strong_count(v) == 1 && Arc::weak_count(v) == 0,
            None => true,
        }
    }

    /// The view's bytes, writable, if this is the only view of its
    /// allocation (`None` otherwise: other views must not see a change).
    pub fn get_mut(&mut self) -> Option<&mut [u8]> {
        let (start, end) = (self.start, self.end);
        match &mut self.store {
            Some(v) => Arc::get_mut(v).map(|v| &mut v[start..end]),
            None => Some(&mut []),
        }
    }

    /// The view's bytes as a vector: the allocation itself when this is its
    /// only view (bytes before the view are removed in place), else a copy.
    pub fn into_vec(self) -> Vec<u8> {
        let (start, end) = (self.start, self.end);
        let Some(store) = self.store else {
            return Vec::new();
        };
        match Arc::try_unwrap(store) {
            Ok(mut v) => {
                v.truncate(end);
                v.drain(..start);
                v
            }
            Err(shared) => shared[start..end].to_vec(),
        }
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for IoBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for IoBuf {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for IoBuf {
    fn from(v: Vec<u8>) -> IoBuf {
        IoBuf::from_vec(v)
    }
}

impl From<&[u8]> for IoBuf {
    fn from(s: &[u8]) -> IoBuf {
        IoBuf::copy_from_slice(s)
    }
}

impl From<&str> for IoBuf {
    fn from(s: &str) -> IoBuf {
        IoBuf::copy_from_slice(s.as_bytes())
    }
}

impl From<String> for IoBuf {
    fn from(s: String) -> IoBuf {
        IoBuf::from_vec(s.into_bytes())
    }
}

impl From<IoBuf> for Vec<u8> {
    fn from(b: IoBuf) -> Vec<u8> {
        b.into_vec()
    }
}

impl PartialEq for IoBuf {
    fn eq(&self, other: &IoBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IoBuf {}

impl PartialEq<[u8]> for IoBuf {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for IoBuf {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for IoBuf {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialOrd for IoBuf {
    fn partial_cmp(&self, other: &IoBuf) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IoBuf {
    fn cmp(&self, other: &IoBuf) -> core::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for IoBuf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

/// Bytes shown by `Debug` before the rest is elided.
const DEBUG_BYTES: usize = 64;

fn debug_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("b\"")?;
    for &b in bytes.iter().take(DEBUG_BYTES) {
        for c in core::ascii::escape_default(b) {
            f.write_fmt(format_args!("{}", c as char))?;
        }
    }
    f.write_str("\"")?;
    if bytes.len() > DEBUG_BYTES {
        write!(f, "...")?;
    }
    Ok(())
}

impl fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IoBuf({} bytes: ", self.len())?;
        debug_bytes(f, self.as_slice())?;
        f.write_str(")")
    }
}

/// A sequence of [`IoBuf`]s read or written as one run of bytes: the data
/// of several reads, or a message assembled from a header and a body
/// without copying either.
///
/// Empty buffers are never kept. Equality is by content, whatever the
/// split into buffers.
#[derive(Clone, Default)]
pub struct IoBufChain {
    bufs: VecDeque<IoBuf>,
    len: usize,
}

impl IoBufChain {
    /// An empty chain.
    pub const fn new() -> IoBufChain {
        IoBufChain {
            bufs: VecDeque::new(),
            len: 0,
        }
    }

    /// The number of bytes in all the buffers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chain holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of buffers.
    pub fn buffer_count(&self) -> usize {
        self.bufs.len()
    }

    /// Appends a buffer (an empty one is dropped).
    pub fn push_back(&mut self, buf: IoBuf) {
        if !buf.is_empty() {
            self.len += buf.len();
            self.bufs.push_back(buf);
        }
    }

    /// Prepends a buffer (an empty one is dropped): a header in front of a
    /// body, say.
    pub fn push_front(&mut self, buf: IoBuf) {
        if !buf.is_empty() {
            self.len += buf.len();
            self.bufs.push_front(buf);
        }
    }

    /// Removes and returns the first buffer.
    pub fn pop_front(&mut self) -> Option<IoBuf> {
        let b = self.bufs.pop_front()?;
        self.len -= b.len();
        Some(b)
    }

    /// The first buffer.
    pub fn front(&self) -> Option<&IoBuf> {
        self.bufs.front()
    }

    /// The buffers, in order.
    pub fn buffers(&self) -> impl Iterator<Item = &IoBuf> {
        self.bufs.iter()
    }

    /// Drops the first `n` bytes (all of them if `n` is larger).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                self.len -= n;
                return;
            }
            n -= front.len();
            self.pop_front();
        }
    }

    /// Splits the chain at `at` (clamped to the length): returns the first
    /// `at` bytes as a chain and keeps the rest. A buffer that straddles
    /// `at` is split into two views; no byte is copied.
    pub fn split_to(&mut self, at: usize) -> IoBufChain {
        let mut head = IoBufChain::new();
        let mut want = at.min(self.len);
        while want > 0 {
            let Some(front) = self.bufs.front_mut() else {
                break;
            };
            if want < front.len() {
                let part = front.split_to(want);
                self.len -= want;
                head.push_back(part);
                break;
            }
            want -= front.len();
            if let Some(b) = self.pop_front() {
                head.push_back(b);
            }
        }
        head
    }

    /// The first `n` bytes as one contiguous buffer: a view of the first
    /// buffer when it holds them (no copy), else a copy of the bytes from
    /// the buffers they span. `None` if the chain is shorter than `n`.
    /// The chain is unchanged.
    pub fn prefix(&self, n: usize) -> Option<IoBuf> {
        if n > self.len {
            return None;
        }
        match self.bufs.front() {
            _ if n == 0 => Some(IoBuf::new()),
            Some(f) if f.len() >= n => Some(f.slice(..n)),
            _ => {
                let mut v = alloc::vec![0u8; n];
                self.cursor().copy_to_slice(&mut v)?;
                Some(IoBuf::from_vec(v))
            }
        }
    }

    /// The whole chain as one buffer: the only buffer itself (no copy), or
    /// a copy of all of them.
    pub fn into_contiguous(mut self) -> IoBuf {
        if self.bufs.len() <= 1 {
            return self.bufs.pop_front().unwrap_or_default();
        }
        IoBuf::from_vec(self.to_vec())
    }

    /// A copy of all the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for b in &self.bufs {
            v.extend_from_slice(b);
        }
        v
    }

    /// A reader from the start of the chain.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            bufs: &self.bufs,
            index: 0,
            offset: 0,
            remaining: self.len,
        }
    }
}

impl From<IoBuf> for IoBufChain {
    fn from(b: IoBuf) -> IoBufChain {
        let mut c = IoBufChain::new();
        c.push_back(b);
        c
    }
}

impl Extend<IoBuf> for IoBufChain {
    fn extend<I: IntoIterator<Item = IoBuf>>(&mut self, iter: I) {
        for b in iter {
            self.push_back(b);
        }
    }
}

impl FromIterator<IoBuf> for IoBufChain {
    fn from_iter<I: IntoIterator<Item = IoBuf>>(iter: I) -> IoBufChain {
        let mut c = IoBufChain::new();
        c.extend(iter);
        c
    }
}

impl IntoIterator for IoBufChain {
    type Item = IoBuf;
    type IntoIter = alloc::collections::vec_deque::IntoIter<IoBuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.bufs.into_iter()
    }
}

impl PartialEq for IoBufChain {
    fn eq(&self, other: &IoBufChain) -> bool {
        if self.len != other.len {
            return false;
        }
        let (mut a, mut b) = (self.cursor(), other.cursor());
        while a.remaining() > 0 {
            let (x, y) = (a.chunk(), b.chunk());
            let n = x.len().min(y.len());
            if x[..n] != y[..n] {
                return false;
            }
            a.advance(n);
            b.advance(n);
        }
        true
    }
}

impl Eq for IoBufChain {}

impl PartialEq<[u8]> for IoBufChain {
    fn eq(&self, other: &[u8]) -> bool {
        if self.len != other.len() {
            return false;
        }
        let mut at = 0;
        self.bufs.iter().all(|b| {
            let same = other[at..at + b.len()] == b[..];
            at += b.len();
            same
        })
    }
}

impl fmt::Debug for IoBufChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IoBufChain({} bytes in {} buffers: ",
            self.len,
            self.bufs.len()
        )?;
        let head = self
            .prefix(self.len.min(DEBUG_BYTES + 1))
            .unwrap_or_default();
        debug_bytes(f, &head)?;
        f.write_str(")")
    }
}

/// A reader over an [`IoBufChain`]: reads bytes, big- and little-endian
/// integers and runs of bytes across buffer boundaries. A read that needs
/// more bytes than remain returns `None` (or `false`) and leaves the
/// cursor where it was, so parsers of untrusted input never panic.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    bufs: &'a VecDeque<IoBuf>,
    index: usize,
    offset: usize,
    remaining: usize,
}

macro_rules! read_int {
    ($(#[$doc:meta] $name:ident: $t:ty, $conv:ident;)*) => {$(
        #[$doc]
        pub fn $name(&mut self) -> Option<$t> {
            let mut b = [0u8; core::mem::size_of::<$t>()];
            self.copy_to_slice(&mut b)?;
            Some(<$t>::$conv(b))
        }
    )*};
}

impl<'a> Cursor<'a> {
    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The unread bytes of the current buffer (empty at the end).
    pub fn chunk(&self) -> &'a [u8] {
        match self.bufs.get(self.index) {
            Some(b) => &b.as_slice()[self.offset..],
            None => &[],
        }
    }

    /// Skips `n` bytes; `false` (and no move) if fewer remain.
    pub fn advance(&mut self, mut n: usize) -> bool {
        if n > self.remaining {
            return false;
        }
        self.remaining -= n;
        while n > 0 {
            let left = self.bufs[self.index].len() - self.offset;
            if n < left {
                self.offset += n;
                return true;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
        }
        // The cursor stands at the start of the next buffer (or past the
        // end): buffers of a chain are never empty.
        true
    }

    /// Copies the next `dst.len()` bytes into `dst` without moving;
    /// `false` if fewer remain.
    pub fn peek_slice(&self, dst: &mut [u8]) -> bool {
        self.clone().copy_to_slice(dst).is_some()
    }

    /// Reads the next `dst.len()` bytes into `dst`; `None` (and no move)
    /// if fewer remain.
    pub fn copy_to_slice(&mut self, dst: &mut [u8]) -> Option<()> {
        if dst.len() > self.remaining {
            return None;
        }
        let mut at = 0;
        while at < dst.len() {
            let c = self.chunk();
            let n = c.len().min(dst.len() - at);
            dst[at..at + n].copy_from_slice(&c[..n]);
            at += n;
            self.advance(n);
        }
        Some(())
    }

    /// Reads the next `n` bytes as a chain of views (no copy); `None` (and
    /// no move) if fewer remain.
    pub fn read_chain(&mut self, n: usize) -> Option<IoBufChain> {
        if n > self.remaining {
            return None;
        }
        let mut out = IoBufChain::new();
        let mut left = n;
        while left > 0 {
            let b = &self.bufs[self.index];
            let take = (b.len() - self.offset).min(left);
            out.push_back(b.slice(self.offset..self.offset + take));
            left -= take;
            self.advance(take);
        }
        Some(out)
    }

    /// The offset, from the cursor, of the first occurrence of `byte`.
    pub fn find(&self, byte: u8) -> Option<usize> {
        let mut c = self.clone();
        let mut base = 0;
        while c.remaining > 0 {
            let chunk = c.chunk();
            if let Some(i) = chunk.iter().position(|&b| b == byte) {
                return Some(base + i);
            }
            base += chunk.len();
            c.advance(chunk.len());
        }
        None
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Option<u8> {
        let b = *self.chunk().first()?;
        self.advance(1);
        Some(b)
    }

    read_int! {
        /// Reads a big-endian `u16`.
        read_u16_be: u16, from_be_bytes;
        /// Reads a big-endian `u32`.
        read_u32_be: u32, from_be_bytes;
        /// Reads a big-endian `u64`.
        read_u64_be: u64, from_be_bytes;
        /// Reads a little-endian `u16`.
        read_u16_le: u16, from_le_bytes;
        /// Reads a little-endian `u32`.
        read_u32_le: u32, from_le_bytes;
        /// Reads a little-endian `u64`.
        read_u64_le: u64, from_le_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;
    use std::collections::hash_map::DefaultHasher;

    fn chain(parts: &[&[u8]]) -> IoBufChain {
        parts.iter().map(|p| IoBuf::from(*p)).collect()
    }

    #[test]
    fn views_share_one_allocation() {
        let v = vec![1u8, 2, 3, 4, 5, 6];
        let ptr = v.as_ptr();
        let mut b = IoBuf::from(v);
        assert_eq!(b.as_ptr(), ptr, "from a Vec: no copy");
        let head = b.split_to(2);
        assert_eq!(head, [1u8, 2][..]);
        assert_eq!(b, [3u8, 4, 5, 6][..]);
        assert_eq!(b.as_ptr(), ptr.wrapping_add(2));
        assert!(!b.is_unique());
        let tail = b.split_off(3);
        assert_eq!(
            (b.as_slice(), tail.as_slice()),
            (&[3u8, 4, 5][..], &[6u8][..])
        );
        let s = b.slice(1..=1);
        assert_eq!(s, [4u8][..]);
        assert_eq!(b.get(2..4), None);
        assert_eq!(b.get(3..3), Some(IoBuf::new()));
        drop((head, tail, s));
        assert!(b.is_unique());
    }

    #[test]
    fn advance_truncate_and_empty_views() {
        let mut b = IoBuf::from("hello world");
        b.advance(6);
        assert_eq!(b, b"world"[..]);
        b.truncate(3);
        assert_eq!(b, b"wor"[..]);
        b.truncate(10);
        assert_eq!(b.len(), 3);
        b.advance(100);
        assert!(b.is_empty());
        // An emptied view lets go of the allocation.
        assert!(b.store.is_none());
        assert!(IoBuf::from(Vec::new()).store.is_none());
        assert_eq!(IoBuf::new().as_slice(), &[] as &[u8]);
    }

    #[test]
    #[should_panic(expected = "out of 0..3")]
    fn slicing_beyond_the_view_panics_like_a_slice() {
        let b = IoBuf::from(&b"abc"[..]);
        let _ = b.slice(1..4);
    }

    #[test]
    #[should_panic(expected = "beyond the length")]
    fn splitting_beyond_the_view_panics() {
        let mut b = IoBuf::from(&b"abc"[..]);
        let _ = b.split_to(4);
    }

    #[test]
    fn writes_only_through_a_unique_view() {
        let mut b = IoBuf::from(vec![0u8; 4]);
        b.get_mut().unwrap()[0] = 9;
        let other = b.clone();
        assert!(b.get_mut().is_none(), "another view would see the write");
        drop(other);
        b.advance(1);
        b.get_mut().unwrap()[0] = 7;
        assert_eq!(b, [7u8, 0, 0][..]);
    }

    #[test]
    fn into_vec_reuses_a_unique_allocation_and_copies_a_shared_one() {
        let v = vec![1u8, 2, 3, 4];
        let ptr = v.as_ptr();
        let b = IoBuf::from(v);
        let back = b.into_vec();
        assert_eq!(back.as_ptr(), ptr);
        let mut b = IoBuf::from(back);
        b.advance(1);
        b.truncate(2);
        assert_eq!(b.clone().into_vec(), [2, 3]);
        let v = b.into_vec();
        assert_eq!((v.as_slice(), v.as_ptr()), (&[2u8, 3][..], ptr));
        assert_eq!(Vec::from(IoBuf::new()), Vec::<u8>::new());
    }

    #[test]
    fn equality_order_and_hash_follow_the_content() {
        let a = IoBuf::from("abc");
        let mut b = IoBuf::from("xabc");
        b.advance(1);
        assert_eq!(a, b);
        assert!(IoBuf::from("abd") > a);
        let h = |x: &IoBuf| {
            let mut s = DefaultHasher::new();
            x.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&a), h(&b));
        let dbg = format!("{:?}", IoBuf::from(&b"a\n\xff"[..]));
        assert_eq!(dbg, "IoBuf(3 bytes: b\"a\\n\\xff\")");
        let long = format!("{:?}", IoBuf::from(vec![b'z'; 100]));
        assert!(long.ends_with("zzz\"...)"), "{long}");
    }

    #[test]
    fn buffers_cross_threads() {
        let b = IoBuf::from(vec![5u8; 1000]);
        let view = b.slice(10..20);
        let t = std::thread::spawn(move || view.iter().map(|&x| x as u32).sum::<u32>());
        assert_eq!(t.join().unwrap(), 50);
        assert!(b.is_unique());
    }

    #[test]
    fn chains_count_split_and_compare_by_content() {
        let mut c = chain(&[b"ab", b"", b"cde", b"f"]);
        assert_eq!((c.len(), c.buffer_count()), (6, 3));
        assert_eq!(c, chain(&[b"abcdef"]));
        assert_ne!(c, chain(&[b"abcdeg"]));
        assert_eq!(c, b"abcdef"[..]);
        let head = c.split_to(3);
        assert_eq!(head, b"abc"[..]);
        assert_eq!(head.buffer_count(), 2);
        assert_eq!(c, b"def"[..]);
        c.push_front(IoBuf::from("xy"));
        assert_eq!(c.to_vec(), b"xydef");
        c.advance(3);
        assert_eq!(c, b"ef"[..]);
        assert_eq!(c.split_to(100), b"ef"[..]);
        assert!(c.is_empty());
        c.advance(5);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn prefix_and_contiguous_copy_only_when_they_must() {
        let first = IoBuf::from("hello ");
        let ptr = first.as_ptr();
        let c: IoBufChain = [first, IoBuf::from("world")].into_iter().collect();
        let p = c.prefix(4).unwrap();
        assert_eq!((p.as_slice(), p.as_ptr()), (&b"hell"[..], ptr));
        assert_eq!(c.prefix(8).unwrap(), b"hello wo"[..]);
        assert_eq!(c.prefix(12), None);
        assert_eq!(c.prefix(0), Some(IoBuf::new()));
        assert_eq!(c.clone().into_contiguous(), b"hello world"[..]);
        let one = IoBufChain::from(IoBuf::from_vec(vec![1, 2]));
        let ptr = one.front().unwrap().as_ptr();
        assert_eq!(one.into_contiguous().as_ptr(), ptr);
        assert_eq!(IoBufChain::new().into_contiguous(), IoBuf::new());
        let dbg = format!("{c:?}");
        assert_eq!(dbg, "IoBufChain(11 bytes in 2 buffers: b\"hello world\")");
    }

    #[test]
    fn cursor_reads_across_buffers_and_refuses_short_input() {
        let c = chain(&[
            &[0x12],
            &[0x34, 0x56, 0x78, 0x9a],
            &[0xbc, 0xde, 0xf0, 1, 2, 3],
        ]);
        let mut r = c.cursor();
        assert_eq!(r.read_u16_be(), Some(0x1234));
        assert_eq!(r.read_u32_le(), Some(0xbc9a_7856));
        assert_eq!(r.remaining(), 5);
        assert_eq!(r.chunk(), &[0xde, 0xf0, 1, 2, 3]);
        let before = r.clone();
        assert_eq!(r.read_u64_be(), None);
        assert_eq!(
            r.remaining(),
            before.remaining(),
            "a short read does not move"
        );
        assert_eq!(r.read_u8(), Some(0xde));
        assert_eq!(r.find(2), Some(2));
        assert_eq!(r.find(0x99), None);
        let mut two = [0u8; 2];
        assert!(r.peek_slice(&mut two));
        assert_eq!(two, [0xf0, 1]);
        assert!(!r.advance(5));
        assert!(r.advance(4));
        assert_eq!(r.read_u8(), None);
        assert_eq!(r.chunk(), &[] as &[u8]);

        let mut r = c.cursor();
        assert_eq!(r.read_u64_be(), Some(0x1234_5678_9abc_def0));
        assert_eq!(r.read_u16_le(), Some(0x0201));
        let mut r = c.cursor();
        assert_eq!(r.read_u32_be(), Some(0x1234_5678));
        assert_eq!(r.read_u16_le(), Some(0xbc9a));
        assert_eq!(r.read_u32_le(), Some(0x0201_f0de));
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn cursor_hands_out_views_without_copying() {
        let a = IoBuf::from("line one\r\nline");
        let pa = a.as_ptr();
        let c: IoBufChain = [a, IoBuf::from(" two\r\n")].into_iter().collect();
        let mut r = c.cursor();
        let eol = r.find(b'\n').unwrap();
        let line = r.read_chain(eol + 1).unwrap();
        assert_eq!(line, b"line one\r\n"[..]);
        assert_eq!(line.front().unwrap().as_ptr(), pa);
        let rest = r.read_chain(r.remaining()).unwrap();
        assert_eq!((rest.len(), rest.buffer_count()), (10, 2));
        assert_eq!(rest, b"line two\r\n"[..]);
        assert!(r.read_chain(1).is_none());
    }

    #[test]
    fn cursor_never_panics_on_arbitrary_chains_and_reads() {
        // A small deterministic fuzz: random chains, random operations.
        let mut x = 0x9e37_79b9_u32;
        let mut rnd = |n: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n.max(1)
        };
        for _ in 0..if cfg!(miri) { 40 } else { 300 } {
            let parts: Vec<Vec<u8>> = (0..rnd(5))
                .map(|_| (0..rnd(6)).map(|i| i as u8).collect())
                .collect();
            let c: IoBufChain = parts.iter().map(|p| IoBuf::from(p.clone())).collect();
            let flat: Vec<u8> = parts.concat();
            let mut r = c.cursor();
            let mut pos = 0;
            for _ in 0..10 {
                match rnd(5) {
                    0 => {
                        let got = r.read_u8();
                        assert_eq!(got, flat.get(pos).copied());
                        pos += got.is_some() as usize;
                    }
                    1 => {
                        let got = r.read_u32_be();
                        if pos + 4 <= flat.len() {
                            let want = u32::from_be_bytes(flat[pos..pos + 4].try_into().unwrap());
                            assert_eq!(got, Some(want));
                            pos += 4;
                        } else {
                            assert_eq!(got, None);
                        }
                    }
                    2 => {
                        let n = rnd(4) as usize;
                        let ok = r.advance(n);
                        assert_eq!(ok, pos + n <= flat.len());
                        pos += if ok { n } else { 0 };
                    }
                    3 => {
                        let n = rnd(4) as usize;
                        match r.read_chain(n) {
                            Some(ch) => {
                                assert_eq!(ch, flat[pos..pos + n]);
                                pos += n;
                            }
                            None => assert!(pos + n > flat.len()),
                        }
                    }
                    _ => assert_eq!(r.chunk().first(), flat.get(pos)),
                }
                assert_eq!(r.remaining(), flat.len() - pos);
            }
        }
    }
}
