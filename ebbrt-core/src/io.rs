//! I/O errors shared by both runtimes, so that the network API has the same
//! signatures hosted and native.

use core::fmt;

/// The kind of an I/O error (a subset of `std::io::ErrorKind` that a
/// library OS can produce).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer refused the connection.
    ConnectionRefused,
    /// The peer reset the connection.
    ConnectionReset,
    /// The connection was aborted (locally).
    ConnectionAborted,
    /// The socket is not connected.
    NotConnected,
    /// The address is in use.
    AddrInUse,
    /// The address does not belong to this node.
    AddrNotAvailable,
    /// Writing to a connection whose peer has closed its read half.
    BrokenPipe,
    /// An argument was invalid.
    InvalidInput,
    /// Data was malformed.
    InvalidData,
    /// An operation timed out.
    TimedOut,
    /// The stream ended before the operation completed.
    UnexpectedEof,
    /// Memory (or a buffer pool) is exhausted.
    OutOfMemory,
    /// The operation is not supported by this runtime or device.
    Unsupported,
    /// Permission denied.
    PermissionDenied,
    /// Not found (no route, no such device, ...).
    NotFound,
    /// Anything else.
    Other,
}

/// An I/O error: a kind, an optional static explanation, and the OS error
/// number when a hosted system call produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    msg: Option<&'static str>,
    os: Option<i32>,
}

impl Error {
    /// An error of `kind` explained by `msg`.
    pub const fn new(kind: ErrorKind, msg: &'static str) -> Self {
        Error {
            kind,
            msg: Some(msg),
            os: None,
        }
    }
    /// An error from an OS error number (hosted).
    pub const fn from_os(kind: ErrorKind, errno: i32) -> Self {
        Error {
            kind,
            msg: None,
            os: Some(errno),
        }
    }
    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The OS error number, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.os
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind,
            msg: None,
            os: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(m) = self.msg {
            write!(f, ": {m}")?;
        }
        if let Some(e) = self.os {
            write!(f, " (os error {e})")?;
        }
        Ok(())
    }
}

impl core::error::Error for Error {}

/// The result of an I/O operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Writes all of `buf` through `write`, which writes a prefix of what it is
/// given and returns how many bytes it took: the `write_all` of both
/// runtimes' streams. A write that takes no bytes is an error (the peer
/// will take no more), not a busy loop.
pub async fn write_all<'a, F, Fut>(mut buf: &'a [u8], mut write: F) -> Result<()>
where
    F: FnMut(&'a [u8]) -> Fut,
    Fut: core::future::Future<Output = Result<usize>>,
{
    while !buf.is_empty() {
        match write(buf).await? {
            0 => {
                return Err(Error::new(
                    ErrorKind::Other,
                    "the connection accepted no bytes",
                ));
            }
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    fn ready<T>(f: impl core::future::Future<Output = T>) -> T {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            core::task::Poll::Ready(v) => v,
            core::task::Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn write_all_writes_everything_in_pieces_and_stops_at_zero() {
        let out = RefCell::new(Vec::new());
        let chunks = |b: &[u8]| {
            let n = b.len().min(3);
            out.borrow_mut().extend_from_slice(&b[..n]);
            async move { Ok(n) }
        };
        ready(write_all(b"hello, world", chunks)).unwrap();
        assert_eq!(out.borrow().as_slice(), b"hello, world");

        let mut calls = 0;
        let e = ready(write_all(b"abc", |_| {
            calls += 1;
            async { Ok(0) }
        }))
        .unwrap_err();
        assert_eq!((e.kind(), calls), (ErrorKind::Other, 1));
        let e = ready(write_all(b"abc", |_| async {
            Err(Error::from(ErrorKind::BrokenPipe))
        }))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    }
}
