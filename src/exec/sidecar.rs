//! The runner's long-lived helper processes (the zygote of PID-namespace inits, the fork
//! servers of builtin probes): messages with descriptors attached over their Unix sockets,
//! and how each is stopped.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sandbox::apply::errno;

/// Room for the descriptors of one launch (stdout, stderr, cgroup, pidfd).
const MAX_FDS: usize = 4;

#[repr(C, align(8))]
struct Control([u8; 128]);

/// Send `data` with `fds` attached (`SCM_RIGHTS`).
pub(super) fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> bool {
    send_some_with_fds(sock, data, fds) == Some(data.len())
}

/// Send the start of `data` (as much as the socket takes at once, at least one byte)
/// with `fds` attached to it; how many bytes went (`None`: nothing did).
pub(super) fn send_some_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> Option<usize> {
    send_some_with_fds_flagged(sock, data, fds, 0)
}

/// [`send_some_with_fds`] with `sendmsg` flags added to `MSG_NOSIGNAL` (an exec child
/// passes `MSG_DONTWAIT`). Allocates nothing and touches only its stack and the caller's
/// buffers, so a `CLONE_VM` child may call it.
pub(super) fn send_some_with_fds_flagged(
    sock: RawFd,
    data: &[u8],
    fds: &[RawFd],
    flags: libc::c_int,
) -> Option<usize> {
    if fds.len() > MAX_FDS || data.is_empty() {
        return None;
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut control = Control([0; 128]);
    // SAFETY: sendmsg of our own buffers; CMSG_* are pointer arithmetic on them.
    unsafe {
        let bytes = u32::try_from(std::mem::size_of_val(fds)).unwrap_or(0);
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return None;
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as usize;
        let slots = libc::CMSG_DATA(cmsg);
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(
                slots.add(i * std::mem::size_of::<RawFd>()).cast::<RawFd>(),
                *fd,
            );
        }
        let n = loop {
            let n = libc::sendmsg(sock, &raw const msg, libc::MSG_NOSIGNAL | flags);
            if n >= 0 || errno() != libc::EINTR {
                break n;
            }
        };
        usize::try_from(n).ok().filter(|n| *n > 0)
    }
}

/// Receive up to `buf.len()` bytes and the descriptors attached (close-on-exec).
pub(super) fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> (usize, Vec<OwnedFd>) {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Control([0; 128]);
    let mut fds = Vec::new();
    // SAFETY: recvmsg into our own buffers; CMSG_* walk the control buffer it filled.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        let n = loop {
            let n = libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || errno() != libc::EINTR {
                break n;
            }
        };
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(
                        data.add(i * std::mem::size_of::<RawFd>()).cast::<RawFd>(),
                    );
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
        (usize::try_from(n).unwrap_or(0), fds)
    }
}

/// Stop a helper: shut its socket down (which ends it), give it two seconds to exit,
/// polling every `poll`, then kill and reap it.
pub(super) fn stop(sock: &Mutex<UnixStream>, child: &Mutex<Option<Child>>, poll: Duration) {
    if let Ok(s) = sock.lock() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    if let Ok(mut c) = child.lock()
        && let Some(mut c) = c.take()
    {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(poll);
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
