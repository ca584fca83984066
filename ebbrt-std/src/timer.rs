//! A one-shot `timerfd` per core, so that an idle core wakes at its next
//! timer deadline with nanosecond resolution (an `epoll` timeout is rounded
//! up to whole milliseconds).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) struct TimerFd {
    fd: OwnedFd,
    /// The deadline (platform nanoseconds) the timer is armed for.
    armed: Cell<Option<u64>>,
}

impl TimerFd {
    pub(crate) fn new() -> io::Result<TimerFd> {
        // SAFETY: plain system call; no pointers.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TimerFd {
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: Cell::new(None),
        })
    }

    /// Arms the timer to expire after `after`, on behalf of `deadline`. A
    /// timer already armed for that deadline is left alone.
    pub(crate) fn arm(&self, deadline: u64, after: Duration) -> io::Result<()> {
        if self.armed.get() == Some(deadline) {
            return Ok(());
        }
        // A zero `it_value` would disarm the timer.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed.set(Some(deadline));
        Ok(())
    }

    /// Consumes an expiry (after the reactor saw the timer readable).
    pub(crate) fn expired(&self) {
        self.armed.set(None);
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `buf`. A spurious event reads
        // nothing (EAGAIN), which is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
