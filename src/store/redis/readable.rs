//! Waiting for sockets to be readable, to the millisecond, with poll(2).
//!
//! A socket's own read timeout (`SO_RCVTIMEO`, what redis-rs sets) counts in
//! kernel ticks: on a 250 Hz kernel a read with a 1 ms timeout was measured
//! to block 8 ms, and one with 5 ms, 12 ms. A worker waiting for a message
//! that way looked late at its deadlines and at the keys it was told
//! about; poll(2) wakes within a millisecond, for any of several
//! subscribers (one per cluster master) at once.

use std::io;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_short};
use std::time::Duration;

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
type Nfds = std::os::raw::c_ulong;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
type Nfds = std::os::raw::c_uint;

const POLLIN: c_short = 0x001;
const POLLERR: c_short = 0x008;
const POLLHUP: c_short = 0x010;

unsafe extern "C" {
    fn poll(fds: *mut PollFd, nfds: Nfds, timeout: c_int) -> c_int;
}

/// Waits until one of `fds` can be read (data, or its end or error to
/// read), or `timeout` passes (rounded up to a whole millisecond, so that a
/// wait never ends early); returns, per fd, whether it can be read. An
/// interrupted wait returns with none readable.
pub(crate) fn readable(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut polled: Vec<PollFd> = fds
        .iter()
        .map(|&fd| PollFd {
            fd,
            events: POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_micros().div_ceil(1000).min(c_int::MAX as u128) as c_int;
    // SAFETY: `polled` is a live, exclusively borrowed array of `len`
    // pollfd structs (same layout as the C struct); poll(2) writes only
    // their `revents` and keeps no pointer after returning.
    let n = unsafe { poll(polled.as_mut_ptr(), polled.len() as Nfds, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(polled
        .iter()
        .map(|p| p.revents & (POLLIN | POLLERR | POLLHUP) != 0)
        .collect())
}

#[cfg(test)]
mod tests;
