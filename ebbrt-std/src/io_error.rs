//! From Linux errors (`std::io::Error`) to the runtime-neutral
//! `ebbrt_core::io::Error`, keeping the errno.

use ebbrt_core::io::{Error, ErrorKind};

/// The kind of an errno.
pub(crate) fn kind_of_errno(errno: i32) -> ErrorKind {
    match errno {
        libc::ECONNREFUSED => ErrorKind::ConnectionRefused,
        libc::ECONNRESET => ErrorKind::ConnectionReset,
        libc::ECONNABORTED => ErrorKind::ConnectionAborted,
        libc::ENOTCONN => ErrorKind::NotConnected,
        libc::EADDRINUSE => ErrorKind::AddrInUse,
        libc::EADDRNOTAVAIL => ErrorKind::AddrNotAvailable,
        libc::EPIPE => ErrorKind::BrokenPipe,
        libc::EINVAL | libc::EISCONN | libc::EDESTADDRREQ | libc::EMSGSIZE => {
            ErrorKind::InvalidInput
        }
        libc::ETIMEDOUT => ErrorKind::TimedOut,
        // Descriptors are a pool like memory: running out of them is not
        // the caller's mistake, and waiting (or closing some) helps.
        libc::ENOMEM | libc::ENOBUFS | libc::EMFILE | libc::ENFILE => ErrorKind::OutOfMemory,
        libc::EOPNOTSUPP | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT | libc::ENOSYS => {
            ErrorKind::Unsupported
        }
        libc::EACCES | libc::EPERM => ErrorKind::PermissionDenied,
        libc::ENOENT | libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN | libc::ENODEV => {
            ErrorKind::NotFound
        }
        _ => ErrorKind::Other,
    }
}

/// Whether `e` says the process or the system ran out of descriptors or
/// socket memory: worth waiting for, not the caller's mistake.
pub(crate) fn exhausts(e: &Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Converts a `std::io::Error`. OS errors keep their number; the few
/// errors std makes up itself (no errno) keep their kind and a fixed
/// explanation.
pub(crate) fn from_std(e: std::io::Error) -> Error {
    if let Some(errno) = e.raw_os_error() {
        return Error::from_os(kind_of_errno(errno), errno);
    }
    use std::io::ErrorKind as S;
    let (kind, msg) = match e.kind() {
        S::InvalidInput => (ErrorKind::InvalidInput, "invalid argument"),
        S::InvalidData => (ErrorKind::InvalidData, "invalid data"),
        S::UnexpectedEof => (ErrorKind::UnexpectedEof, "unexpected end of stream"),
        S::WriteZero => (ErrorKind::Other, "a write accepted no bytes"),
        S::TimedOut => (ErrorKind::TimedOut, "timed out"),
        S::OutOfMemory => (ErrorKind::OutOfMemory, "out of memory"),
        S::Unsupported => (ErrorKind::Unsupported, "unsupported"),
        S::NotFound => (ErrorKind::NotFound, "not found"),
        S::PermissionDenied => (ErrorKind::PermissionDenied, "permission denied"),
        _ => (ErrorKind::Other, "I/O error"),
    };
    Error::new(kind, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_keep_their_number_and_get_their_kind() {
        let cases = [
            (libc::ECONNREFUSED, ErrorKind::ConnectionRefused),
            (libc::ECONNRESET, ErrorKind::ConnectionReset),
            (libc::EADDRINUSE, ErrorKind::AddrInUse),
            (libc::EADDRNOTAVAIL, ErrorKind::AddrNotAvailable),
            (libc::EPIPE, ErrorKind::BrokenPipe),
            (libc::ENOTCONN, ErrorKind::NotConnected),
            (libc::ETIMEDOUT, ErrorKind::TimedOut),
            (libc::EACCES, ErrorKind::PermissionDenied),
            (libc::ENETUNREACH, ErrorKind::NotFound),
            (libc::EAFNOSUPPORT, ErrorKind::Unsupported),
            (libc::EMFILE, ErrorKind::OutOfMemory),
            (libc::ENFILE, ErrorKind::OutOfMemory),
            (libc::ENOBUFS, ErrorKind::OutOfMemory),
            (libc::EBADF, ErrorKind::Other),
        ];
        for (errno, kind) in cases {
            let e = from_std(std::io::Error::from_raw_os_error(errno));
            assert_eq!((e.kind(), e.raw_os_error()), (kind, Some(errno)));
            assert_eq!(exhausts(&e), kind == ErrorKind::OutOfMemory, "{errno}");
        }
    }

    #[test]
    fn made_up_errors_keep_their_kind() {
        let e = from_std(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad addr",
        ));
        assert_eq!(
            (e.kind(), e.raw_os_error()),
            (ErrorKind::InvalidInput, None)
        );
        let e = from_std(std::io::Error::other("x"));
        assert_eq!(e.kind(), ErrorKind::Other);
        assert!(e.to_string().contains("I/O error"));
    }
}
