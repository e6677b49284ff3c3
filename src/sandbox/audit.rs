//! The kernel as witness: Landlock's audit records (ABI 7, Linux 6.15) read over
//! `NETLINK_AUDIT`, and matched to the runner's own children.
//!
//! The kernel logs every Landlock denial of a domain as an `AUDIT_LANDLOCK_ACCESS` record
//! (`domain=… blockers=fs.read_file path="/etc/hostname" dev="vda" ino=611`), followed, the
//! first time a domain denies anything, by an `AUDIT_LANDLOCK_DOMAIN` record naming the pid
//! that created it (`domain=… status=allocated mode=enforcing pid=…`); see the kernel's
//! admin-guide/LSM/landlock. A process in the read-log multicast group
//! (`AUDIT_NLGRP_READLOG`, needs `CAP_AUDIT_READ`) receives a copy of every record while
//! kernel audit is enabled; it does not replace an audit daemon and changes nothing for one.
//!
//! What a run does ([`start`], [`AuditSession::finish`]):
//! - `auto` subscribes when audit is already enabled, `require` enables it with
//!   `AUDIT_SET` (and raises a small backlog limit) when it is not, and puts back the
//!   previous state when the session ends — on drop, and from the interrupt handler on a
//!   second signal ([`restore_from_signal_handler`]); only a SIGKILL of the runner leaves
//!   audit enabled. `require` runs take an exclusive lock (`/run/nexusmon-kernel-audit.lock`)
//!   so that one run never restores the state under another.
//! - Records are collected by a reader thread for the whole run. At a checkpoint
//!   ([`AuditSession::sync`]: per batch of scenarios written, and at the end) the runner
//!   writes its own numbered marker into the audit stream (`AUDIT_USER`) and waits for it
//!   to come back: the kernel delivers records in order, so every record of a child that
//!   has exited was delivered before the marker (or counted as lost).
//! - Loss is never silent: the kernel's `lost` counter before and after, and every
//!   overflow of the runner's socket (`ENOBUFS`), are reported.
//!
//! Attribution ([`attribute`], or [`Matcher`] batch by batch as results stream): a domain belongs to a child when its allocation record
//! names the child's pid (host PID namespace) at a time the child was alive (the pid
//! cannot be reused before the runner reaps it); its denial records then belong to that
//! child, whichever of its descendants was denied. Records of any other domain — other
//! programs, the preflight helpers, a probe's own nested domain — are counted, never
//! attributed. For an exec probe the runner restricts the child before `execve`, so it asks
//! the kernel to keep logging after it (`LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`,
//! [`exec_log_flags`]) while a session collects.
//!
//! The netlink framing and the status message come from `netlink-packet-audit` /
//! `netlink-packet-core` / `netlink-sys`; the record text (`key=value` fields, untrusted
//! strings hex-encoded) is the kernel's own format, parsed here because no crate knows
//! Landlock's fields.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use netlink_packet_audit::{AuditMessage, StatusMessage};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_AUDIT};

use crate::model::results::{ChildTrace, KernelAuditMode, KernelDenial};

/// `AUDIT_LANDLOCK_ACCESS`: one denied access.
pub const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
/// `AUDIT_LANDLOCK_DOMAIN`: a domain's allocation or deallocation.
pub const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;
/// `AUDIT_USER`: a user-space message (the runner's end-of-run marker).
const AUDIT_USER: u16 = 1005;
/// `AUDIT_STATUS_ENABLED` in `audit_status.mask`.
const STATUS_ENABLED: u32 = 0x1;
/// `AUDIT_STATUS_BACKLOG_LIMIT` in `audit_status.mask`.
const STATUS_BACKLOG_LIMIT: u32 = 0x10;
/// `AUDIT_NLGRP_READLOG`.
const READLOG_GROUP: u32 = 1;
/// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`.
pub const LOG_NEW_EXEC_ON: u32 = 1 << 1;
/// The backlog a `require` session raises the kernel's limit to, if it is lower.
const BACKLOG_FOR_RUN: u32 = 8192;
/// The most Landlock records held at once, waiting to be matched: by the reader between
/// checkpoints, by a [`Matcher`] until their child is written (beyond: counted as lost).
pub const MAX_RECORDS: usize = 250_000;
/// The lock `require` sessions hold.
const LOCK_PATH: &str = "/run/nexusmon-kernel-audit.lock";
/// How long the end-of-run marker may take to come back.
const SYNC_WAIT: Duration = Duration::from_secs(3);
/// The kernel's audit clock is coarse (a scheduler tick): slack around a child's life.
const CLOCK_SLACK_MS: u64 = 20;

// ---------------------------------------------------------------------------------------
// The kernel's audit status
// ---------------------------------------------------------------------------------------

/// The parts of `struct audit_status` the runner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// 0 disabled, 1 enabled, 2 enabled and locked.
    pub enabled: u32,
    /// The queue limit.
    pub backlog_limit: u32,
    /// Records lost since boot.
    pub lost: u32,
    /// Records waiting in the kernel's queue.
    pub backlog: u32,
}

/// A unicast `NETLINK_AUDIT` socket for requests to the kernel.
struct Control {
    sock: Socket,
    seq: u32,
}

impl Control {
    fn open() -> Result<Self, String> {
        let mut sock = Socket::new(NETLINK_AUDIT)
            .map_err(|e| format!("cannot open a NETLINK_AUDIT socket: {e}"))?;
        sock.bind_auto()
            .map_err(|e| format!("cannot bind a NETLINK_AUDIT socket: {e}"))?;
        set_timeout(sock.as_raw_fd(), Duration::from_secs(2));
        Ok(Self { sock, seq: 0 })
    }

    fn send(&mut self, msg: AuditMessage, flags: u16) -> Result<u32, String> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| format!("cannot send to the kernel's audit socket: {e}"))?;
        Ok(self.seq)
    }

    /// Replies to request `seq` until `want` takes one (or the kernel answers an error).
    fn reply<T>(
        &self,
        seq: u32,
        mut want: impl FnMut(&NetlinkPayload<AuditMessage>) -> Option<Result<T, String>>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 16 * 1024];
        while Instant::now() < deadline {
            // SAFETY: recv into a buffer we own, with its length.
            let n =
                unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("no answer from the kernel's audit socket: {e}"));
            };
            let mut at = 0;
            while at < n {
                let Ok(msg) = NetlinkMessage::<AuditMessage>::deserialize(&buf[at..n]) else {
                    break;
                };
                let len = msg.header.length as usize;
                if msg.header.sequence_number == seq
                    && let Some(r) = want(&msg.payload)
                {
                    return r;
                }
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
            }
        }
        Err("the kernel's audit socket did not answer within 2 s".into())
    }

    fn status(&mut self) -> Result<Status, String> {
        let seq = self.send(AuditMessage::GetStatus(None), NLM_F_REQUEST)?;
        self.reply(seq, |p| match p {
            NetlinkPayload::InnerMessage(AuditMessage::GetStatus(Some(s))) => Some(Ok(Status {
                enabled: s.enabled,
                backlog_limit: s.backlog_limit,
                lost: s.lost,
                backlog: s.backlog,
            })),
            NetlinkPayload::Error(e) => Some(Err(match e.code {
                Some(c) => format!(
                    "the kernel refused AUDIT_GET: {}",
                    std::io::Error::from_raw_os_error(-c.get())
                ),
                None => "the kernel acknowledged AUDIT_GET without a status".into(),
            })),
            _ => None,
        })
    }

    fn set(&mut self, enabled: u32, backlog_limit: u32) -> Result<(), String> {
        let seq = self.send(
            AuditMessage::SetStatus(status_message(enabled, backlog_limit)),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        self.reply(seq, |p| match p {
            NetlinkPayload::Error(e) => Some(match e.code {
                None => Ok(()),
                Some(c) => Err(format!(
                    "the kernel refused AUDIT_SET: {} (changing the audit state needs CAP_AUDIT_CONTROL)",
                    std::io::Error::from_raw_os_error(-c.get())
                )),
            }),
            _ => None,
        })
    }

    fn user_message(&mut self, text: &str) -> Result<(), String> {
        // The kernel overwrites the last byte with a NUL: send one.
        self.send(
            AuditMessage::Other((AUDIT_USER, format!("{text}\0"))),
            NLM_F_REQUEST,
        )
        .map(|_| ())
    }
}

fn status_message(enabled: u32, backlog_limit: u32) -> StatusMessage {
    let mut s = StatusMessage::new();
    s.mask = STATUS_ENABLED | STATUS_BACKLOG_LIMIT;
    s.enabled = enabled;
    s.backlog_limit = backlog_limit;
    s
}

fn set_timeout(fd: RawFd, d: Duration) {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(1),
        tv_usec: libc::suseconds_t::from(d.subsec_micros()),
    };
    // SAFETY: setsockopt with a pointer to a stack value and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            u32::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(16),
        );
    }
}

/// The kernel's audit status (for `doctor`-style checks and the tests).
pub fn status() -> Result<Status, String> {
    Control::open()?.status()
}

// ---------------------------------------------------------------------------------------
// Restoring from a signal handler
// ---------------------------------------------------------------------------------------

/// The socket the interrupt handler restores through (-1: nothing to restore).
static RESTORE_FD: AtomicI32 = AtomicI32::new(-1);
/// The `AUDIT_SET` message that puts the previous state back, prepared in advance.
static RESTORE_MSG: [AtomicU8; 64] = [const { AtomicU8::new(0) }; 64];
static RESTORE_LEN: AtomicU32 = AtomicU32::new(0);

fn arm_restore(fd: RawFd, prev: Status) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(AuditMessage::SetStatus(status_message(
            prev.enabled,
            prev.backlog_limit,
        ))),
    );
    packet.finalize();
    let len = packet.buffer_len().min(RESTORE_MSG.len());
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    for (slot, b) in RESTORE_MSG.iter().zip(&buf[..len]) {
        slot.store(*b, Ordering::SeqCst);
    }
    RESTORE_LEN.store(u32::try_from(len).unwrap_or(0), Ordering::SeqCst);
    RESTORE_FD.store(fd, Ordering::SeqCst);
}

fn disarm_restore() {
    RESTORE_FD.store(-1, Ordering::SeqCst);
}

/// Put back the kernel audit state a `require` session changed, from a signal handler
/// (async-signal-safe: atomics and one `sendto`). Does nothing when no session changed it.
pub fn restore_from_signal_handler() {
    let fd = RESTORE_FD.swap(-1, Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 64];
    let len = (RESTORE_LEN.load(Ordering::SeqCst) as usize).min(buf.len());
    for (b, slot) in buf.iter_mut().zip(&RESTORE_MSG) {
        *b = slot.load(Ordering::SeqCst);
    }
    // SAFETY: a zeroed sockaddr_nl is the kernel's address; sendto is async-signal-safe.
    unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = u16::try_from(libc::AF_NETLINK).unwrap_or(16);
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            len,
            0,
            (&raw const addr).cast(),
            u32::try_from(std::mem::size_of::<libc::sockaddr_nl>()).unwrap_or(12),
        );
    }
}

/// The flags an exec child passes to `landlock_restrict_self`: ask the kernel to keep
/// logging denials after `execve` while a session collects (0 otherwise).
pub fn exec_log_flags() -> u32 {
    EXEC_LOG_FLAGS.load(Ordering::Relaxed)
}

static EXEC_LOG_FLAGS: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------

/// One Landlock record, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `AUDIT_LANDLOCK_ACCESS` or `AUDIT_LANDLOCK_DOMAIN`.
    pub kind: u16,
    /// The event's time, milliseconds since the epoch.
    pub time_ms: u64,
    /// The event's serial number.
    pub serial: u64,
    /// The fields in order, strings decoded.
    pub fields: Vec<(String, String)>,
}

impl Record {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Fields whose unquoted value is a hex-encoded untrusted string (`audit_log_untrustedstring`).
const STRING_FIELDS: [&str; 5] = ["path", "comm", "exe", "name", "ocomm"];

/// Parse `audit(SECS.MILLIS:SERIAL): key=value …` (a record's text). `None` if the
/// header is not there.
pub fn parse_record(kind: u16, text: &str) -> Option<Record> {
    let rest = text.strip_prefix("audit(")?;
    let (stamp, body) = rest.split_once("): ")?;
    let (time, serial) = stamp.split_once(':')?;
    let (secs, millis) = time.split_once('.')?;
    let time_ms = secs
        .parse::<u64>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis.parse::<u64>().ok()?)?;
    let serial = serial.parse::<u64>().ok()?;
    let mut fields = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue;
        }
        let key = body.get(start..i)?.to_string();
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            let vstart = i + 1;
            let end = body
                .get(vstart..)?
                .find('"')
                .map_or(bytes.len(), |e| vstart + e);
            i = (end + 1).min(bytes.len());
            body.get(vstart..end)?.to_string()
        } else {
            let vstart = i;
            while i < bytes.len() && bytes[i] != b' ' {
                i += 1;
            }
            let raw = body.get(vstart..i)?;
            if STRING_FIELDS.contains(&key.as_str()) {
                hex_decode(raw).unwrap_or_else(|| raw.to_string())
            } else {
                raw.to_string()
            }
        };
        fields.push((key, value));
    }
    Some(Record {
        kind,
        time_ms,
        serial,
        fields,
    })
}

fn hex_decode(s: &str) -> Option<String> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// A denial record as a [`KernelDenial`] (`None` for other records).
pub fn denial_of(r: &Record) -> Option<KernelDenial> {
    if r.kind != AUDIT_LANDLOCK_ACCESS {
        return None;
    }
    let domain = r.get("domain")?.to_string();
    let blockers = r
        .get("blockers")?
        .split(',')
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect();
    let object = r
        .fields
        .iter()
        .filter(|(k, _)| k != "domain" && k != "blockers")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(KernelDenial {
        blockers,
        object,
        domain,
    })
}

// ---------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Shared {
    records: Vec<Record>,
    /// Landlock records beyond [`MAX_RECORDS`].
    dropped: u64,
    /// `ENOBUFS` on the socket.
    overflows: u64,
    /// The highest marker number that came back (markers are numbered from 1).
    synced: u64,
}

struct Reader {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    marker: String,
    /// The number of the last marker sent.
    sent: u64,
}

impl Reader {
    fn subscribe(marker: String) -> Result<Self, String> {
        let mut sock = Socket::new(NETLINK_AUDIT)
            .map_err(|e| format!("cannot open a NETLINK_AUDIT socket: {e}"))?;
        sock.bind(&SocketAddr::new(0, 0))
            .map_err(|e| format!("cannot bind a NETLINK_AUDIT socket: {e}"))?;
        sock.add_membership(READLOG_GROUP).map_err(|e| {
            format!(
                "cannot join the kernel's audit read-log group (AUDIT_NLGRP_READLOG needs CAP_AUDIT_READ): {e}"
            )
        })?;
        let fd = sock.as_raw_fd();
        let size: libc::c_int = 32 << 20;
        // SAFETY: setsockopt with a pointer to a stack int and its size.
        unsafe {
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                4,
            ) != 0
            {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&raw const size).cast(),
                    4,
                );
            }
        }
        set_timeout(fd, Duration::from_millis(50));
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2, m2) = (Arc::clone(&shared), Arc::clone(&stop), marker.clone());
        let thread = std::thread::Builder::new()
            .name("kernel-audit".into())
            .spawn(move || read_loop(&sock, &s2, &stop2, &m2))
            .map_err(|e| format!("cannot start the audit reader thread: {e}"))?;
        Ok(Self {
            shared,
            stop,
            thread: Some(thread),
            marker,
            sent: 0,
        })
    }

    /// The text of marker `n`: the session's own words, then `n=<n>;` (the reader parses
    /// the number back, so marker 1 is never taken for marker 10).
    fn marker_text(&self, n: u64) -> String {
        format!("{} n={n};", self.marker)
    }

    /// Wait until marker `n` came back (or `SYNC_WAIT` passed).
    fn wait_synced(&self, n: u64) -> bool {
        let (lock, cv) = &*self.shared;
        let deadline = Instant::now() + SYNC_WAIT;
        let Ok(mut g) = lock.lock() else {
            return false;
        };
        while g.synced < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match cv.wait_timeout(g, left) {
                Ok((ng, _)) => g = ng,
                Err(_) => return false,
            }
        }
        true
    }

    /// The records received so far, taken out of the reader (the counters stay).
    fn drain(&self) -> Vec<Record> {
        self.shared
            .0
            .lock()
            .map(|mut g| std::mem::take(&mut g.records))
            .unwrap_or_default()
    }

    fn stop(&mut self) -> Shared {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared
            .0
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(sock: &Socket, shared: &(Mutex<Shared>, Condvar), stop: &AtomicBool, marker: &str) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: recv into a buffer we own, with its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS)
                && let Ok(mut g) = shared.0.lock()
            {
                g.overflows += 1;
            }
            continue;
        };
        let Ok(msg) = NetlinkMessage::<AuditMessage>::deserialize(&buf[..n]) else {
            continue;
        };
        let (kind, text) = match &msg.payload {
            NetlinkPayload::InnerMessage(
                AuditMessage::Event((k, t)) | AuditMessage::Other((k, t)),
            ) => (*k, t),
            _ => continue,
        };
        let Ok(mut g) = shared.0.lock() else {
            return;
        };
        if kind == AUDIT_USER
            && let Some(n) = marker_number(text, marker)
        {
            g.synced = g.synced.max(n);
            shared.1.notify_all();
        } else if (kind == AUDIT_LANDLOCK_ACCESS || kind == AUDIT_LANDLOCK_DOMAIN)
            && let Some(r) = parse_record(kind, text)
        {
            if g.records.len() < MAX_RECORDS {
                g.records.push(r);
            } else {
                g.dropped += 1;
            }
        }
    }
}

/// The number of the session's marker in an `AUDIT_USER` record's text (`… <marker>
/// n=<n>; …`), if it is one.
fn marker_number(text: &str, marker: &str) -> Option<u64> {
    let (_, rest) = text.split_once(marker)?;
    let digits = rest.strip_prefix(" n=")?.split_once(';')?.0;
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------
// A run's session
// ---------------------------------------------------------------------------------------

/// What [`start`] found.
#[derive(Debug)]
pub enum AuditStart {
    /// `--kernel-audit off`.
    Off,
    /// Nothing can be collected, and why (`auto`).
    Unavailable(String),
    /// Collecting.
    Active(AuditSession),
}

/// A run's subscription to the kernel's Landlock records.
pub struct AuditSession {
    reader: Option<Reader>,
    control: Control,
    /// The state to put back (a `require` session that enabled audit).
    restore: Option<Status>,
    lost_before: u32,
    /// The `require` lock (`/run/nexusmon-kernel-audit.lock`), which also holds the restore
    /// record while this session has audit enabled.
    lock: Option<File>,
    /// What a previous session killed before restoring had left, and was put back before
    /// this one started ([`recover_stale`]).
    pub recovered: Option<String>,
}

impl std::fmt::Debug for AuditSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSession")
            .field("restore", &self.restore)
            .field("lost_before", &self.lost_before)
            .finish_non_exhaustive()
    }
}

/// What a session collected.
#[derive(Debug, Default)]
pub struct Harvest {
    /// Every Landlock record received, in arrival order.
    pub records: Vec<Record>,
    /// How much the kernel's lost counter rose.
    pub kernel_lost: u64,
    /// Socket overflows plus records beyond [`MAX_RECORDS`].
    pub socket_overflows: u64,
    /// The end-of-run marker came back.
    pub synced: bool,
    /// Why the marker could not be sent (`AUDIT_USER` needs `CAP_AUDIT_WRITE`).
    pub marker_error: Option<String>,
    /// Audit was still enabled at the end.
    pub still_enabled: bool,
    /// The session enabled audit and put the previous state back.
    pub restored: bool,
    /// A failure to restore, if any.
    pub restore_error: Option<String>,
}

impl AuditSession {
    /// True if this session enabled audit for the run.
    pub fn enabled_by_run(&self) -> bool {
        self.restore.is_some()
    }

    /// A checkpoint: write a new marker into the audit stream and wait (up to 3 s) for it
    /// to come back. The kernel delivers records in order, so every record queued before
    /// the marker — every record of a child that had exited — has then been received (or
    /// counted as lost). Returns the records received since the last checkpoint, taken
    /// out of the reader, and whether the marker came back (`Err`: it could not be sent).
    pub fn sync(&mut self) -> (Vec<Record>, Result<bool, String>) {
        let came_back = self.mark();
        let records = self.reader.as_ref().map(Reader::drain).unwrap_or_default();
        (records, came_back)
    }

    /// [`AuditSession::sync`] without taking the records: whether a marker can be written
    /// and comes back (`Err`: it could not be sent).
    pub fn mark(&mut self) -> Result<bool, String> {
        let Some(reader) = &mut self.reader else {
            return Ok(false);
        };
        reader.sent += 1;
        let n = reader.sent;
        self.control
            .user_message(&reader.marker_text(n))
            .map(|()| reader.wait_synced(n))
    }

    /// Wait for every record of the children that have exited, stop reading, put back
    /// the kernel's state. The harvest's records are those no checkpoint took.
    pub fn finish(mut self) -> Harvest {
        let mut h = Harvest::default();
        if self.reader.is_some() {
            match self.sync() {
                (records, Ok(synced)) => {
                    h.records = records;
                    h.synced = synced;
                }
                (records, Err(e)) => {
                    h.records = records;
                    h.marker_error = Some(e);
                }
            }
        }
        if let Ok(s) = self.control.status() {
            h.kernel_lost = u64::from(s.lost.wrapping_sub(self.lost_before));
            h.still_enabled = s.enabled != 0;
        }
        if let Some(mut reader) = self.reader.take() {
            let shared = reader.stop();
            h.records.extend(shared.records);
            h.socket_overflows = shared.overflows + shared.dropped;
        }
        match self.put_back() {
            Ok(restored) => h.restored = restored,
            Err(e) => h.restore_error = Some(e),
        }
        h
    }

    fn put_back(&mut self) -> Result<bool, String> {
        EXEC_LOG_FLAGS.store(0, Ordering::SeqCst);
        let Some(prev) = self.restore.take() else {
            return Ok(false);
        };
        disarm_restore();
        self.control.set(prev.enabled, prev.backlog_limit)?;
        if let Some(l) = &self.lock {
            let _ = l.set_len(0);
        }
        Ok(true)
    }
}

impl Drop for AuditSession {
    fn drop(&mut self) {
        drop(self.reader.take());
        let _ = self.put_back();
    }
}

/// The first steps of an `auto` start, taken ahead (on a thread of their own while the run
/// loads and lints its plan: each is a wait, not work — `AUDIT_GET`'s reply is sent by a
/// kernel thread the kernel starts for it, 0.1–4.5 ms measured here): the control socket
/// opened, a killed `require` session's settings put back when its lock is free, and the
/// status read. None of it changes the kernel's state but that recovery, which every `auto`
/// start makes anyway; what depends on the status (subscribing to the records) is left to
/// [`start_probed`] at the run's own point. `None` where `auto` opens nothing (no Landlock
/// ABI 7 on this kernel).
pub struct AutoProbe {
    control: Result<(Control, Status), String>,
    recovered: Option<String>,
}

impl std::fmt::Debug for AutoProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoProbe")
            .field("status", &self.control.as_ref().map(|(_, s)| s))
            .field("recovered", &self.recovered)
            .finish()
    }
}

/// Take an `auto` start's first steps now ([`AutoProbe`]).
pub fn probe_auto() -> Option<AutoProbe> {
    if !matches!(super::host::landlock_abi(), Ok(a) if a >= 7) {
        return None;
    }
    Some(match Control::open() {
        Ok(mut control) => {
            let recovered = recover_stale_if_free(&mut control);
            AutoProbe {
                control: control.status().map(|before| (control, before)),
                recovered,
            }
        }
        Err(e) => AutoProbe {
            control: Err(e),
            recovered: None,
        },
    })
}

/// Start collecting for a run under `mode` on a kernel of Landlock ABI `abi`. `Err` only
/// for `require` when collection is impossible (the message says why and what to do).
pub fn start(mode: KernelAuditMode, abi: Option<u8>) -> Result<AuditStart, String> {
    start_probed(mode, abi, None)
}

/// [`start`], continuing from `probed` (an `auto` start's first steps taken ahead, by
/// [`probe_auto`]) when `mode` is `auto` and the ABI allows audit: the same steps in the
/// same order, the same result.
pub fn start_probed(
    mode: KernelAuditMode,
    abi: Option<u8>,
    probed: Option<AutoProbe>,
) -> Result<AuditStart, String> {
    if mode == KernelAuditMode::Off {
        return Ok(AuditStart::Off);
    }
    let unavailable = |why: String| -> Result<AuditStart, String> {
        if mode == KernelAuditMode::Require {
            Err(why)
        } else {
            Ok(AuditStart::Unavailable(why))
        }
    };
    match abi {
        Some(a) if a >= 7 => {}
        Some(a) => {
            return unavailable(format!(
                "Landlock ABI {a} has no audit records (they came with ABI 7, Linux 6.15)"
            ));
        }
        None => return unavailable("Landlock is not available on this kernel".into()),
    }
    let lock = if mode == KernelAuditMode::Require {
        Some(take_lock()?)
    } else {
        None
    };
    let (mut control, recovered, before) = if let Some(p) = probed.filter(|_| lock.is_none()) {
        match p.control {
            Ok((control, before)) => (control, p.recovered, before),
            Err(e) => return unavailable(e),
        }
    } else {
        let mut control = match Control::open() {
            Ok(c) => c,
            Err(e) => return unavailable(e),
        };
        let recovered = match &lock {
            Some(l) => recover_stale(&mut control, l),
            None => recover_stale_if_free(&mut control),
        };
        let before = match control.status() {
            Ok(s) => s,
            Err(e) => return unavailable(e),
        };
        (control, recovered, before)
    };
    let mut restore = None;
    if before.enabled == 0 {
        if mode == KernelAuditMode::Auto {
            let mut why = String::from(
                "kernel audit is disabled (`--kernel-audit require` enables it for the run and restores it after)",
            );
            if let Some(r) = &recovered {
                why.push_str("; ");
                why.push_str(r);
            }
            return Ok(AuditStart::Unavailable(why));
        }
        let backlog = before.backlog_limit.max(BACKLOG_FOR_RUN);
        control.set(1, backlog)?;
        arm_restore(control.sock.as_raw_fd(), before);
        restore = Some(before);
        if let Some(l) = &lock {
            // A SIGKILL cannot be handled: the next session puts this back instead.
            write_restore_record(l, before, backlog);
        }
    }
    let marker = format!(
        "nexusmon kernel-audit sync {}-{}",
        std::process::id(),
        crate::util::time::now_rfc3339()
    );
    let reader = match Reader::subscribe(marker) {
        Ok(r) => r,
        Err(e) => {
            let mut s = AuditSession {
                reader: None,
                control,
                restore,
                lost_before: before.lost,
                lock,
                recovered,
            };
            // Put back what was changed before reporting.
            let _ = s.put_back();
            return unavailable(e);
        }
    };
    EXEC_LOG_FLAGS.store(LOG_NEW_EXEC_ON, Ordering::SeqCst);
    Ok(AuditStart::Active(AuditSession {
        reader: Some(reader),
        control,
        restore,
        lost_before: before.lost,
        lock,
        recovered,
    }))
}

/// First word of the restore record a `require` session keeps in its lock file while it
/// has audit enabled: `<magic> enabled=E backlog_limit=B set_enabled=1 set_backlog=S pid=P`.
/// The lock file is root's, in `/run` (gone at reboot, like the kernel's state it guards).
const RESTORE_MAGIC: &str = "nexusmon-kernel-audit-restore-v1";

fn write_restore_record(lock: &File, before: Status, set_backlog: u32) {
    use std::io::{Seek, Write};
    let line = format!(
        "{RESTORE_MAGIC} enabled={} backlog_limit={} set_enabled=1 set_backlog={set_backlog} pid={}\n",
        before.enabled,
        before.backlog_limit,
        std::process::id()
    );
    let mut f = lock;
    let _ = f.set_len(0);
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.write_all(line.as_bytes()).and_then(|()| f.sync_data());
}

/// A restore record, parsed: the state to put back, the state the dead session set, its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RestoreRecord {
    enabled: u32,
    backlog_limit: u32,
    set_enabled: u32,
    set_backlog: u32,
    pid: u32,
}

fn parse_restore_record(text: &str) -> Option<RestoreRecord> {
    let mut words = text.trim_end_matches('\n').split(' ');
    if words.next()? != RESTORE_MAGIC {
        return None;
    }
    let mut field = |name: &str| -> Option<u32> {
        words
            .next()?
            .strip_prefix(name)?
            .strip_prefix('=')?
            .parse()
            .ok()
    };
    let r = RestoreRecord {
        enabled: field("enabled")?,
        backlog_limit: field("backlog_limit")?,
        set_enabled: field("set_enabled")?,
        set_backlog: field("set_backlog")?,
        pid: field("pid")?,
    };
    // Only states a session can have found and put back: never 2 (enabled and locked
    // until reboot), never a text with more after it.
    (words.next().is_none() && r.enabled <= 1 && r.set_enabled == 1).then_some(r)
}

/// With the `require` lock held (so the session that wrote a record is gone): if the lock
/// file holds a restore record — its session was killed (SIGKILL, a crash) before putting
/// the audit state back — put that state back now, unless someone changed the state since
/// (then it is left as it is). Says what it did; clears the record either way.
fn recover_stale(control: &mut Control, lock: &File) -> Option<String> {
    use std::io::{Read, Seek};
    let mut text = String::new();
    let mut f = lock;
    f.seek(std::io::SeekFrom::Start(0)).ok()?;
    // A record is one short line; anything longer is not one of ours.
    f.take(256).read_to_string(&mut text).ok()?;
    if text.is_empty() {
        return None;
    }
    let _ = lock.set_len(0);
    let Some(r) = parse_restore_record(&text) else {
        return Some(format!(
            "ignored an unreadable restore record in {LOCK_PATH} (the audit state was left as it is)"
        ));
    };
    let now = control.status().ok()?;
    if (now.enabled, now.backlog_limit) != (r.set_enabled, r.set_backlog) {
        return Some(format!(
            "a runner (pid {}) killed before restoring the audit state left a record, but the state changed since (enabled {}, backlog limit {}): left as it is",
            r.pid, now.enabled, now.backlog_limit
        ));
    }
    Some(match control.set(r.enabled, r.backlog_limit) {
        Ok(()) => format!(
            "a runner (pid {}) killed before restoring the audit state had left it enabled: put back enabled {}, backlog limit {}",
            r.pid, r.enabled, r.backlog_limit
        ),
        Err(e) => format!(
            "a runner (pid {}) killed before restoring the audit state had left it enabled, and putting it back failed: {e}",
            r.pid
        ),
    })
}

/// [`recover_stale`] for a session that does not take the lock (`auto`): only when no
/// `require` session holds it (a live one is not stale) and the file exists.
fn recover_stale_if_free(control: &mut Control) -> Option<String> {
    let path = std::path::Path::new(LOCK_PATH);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .custom_flags_nofollow()
        .open(path)
        .ok()?;
    if !crate::util::fsx::try_lock_exclusive(&file, path).ok()? {
        return None;
    }
    let r = recover_stale(control, &file);
    crate::util::fsx::unlock(&file);
    r
}

fn take_lock() -> Result<File, String> {
    let path = std::path::Path::new(LOCK_PATH);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .custom_flags_nofollow()
        .open(path)
        .map_err(|e| format!("cannot open the kernel-audit lock {LOCK_PATH}: {e}"))?;
    crate::util::fsx::lock_exclusive(&file, path).map_err(|e| e.to_string())?;
    Ok(file)
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

// ---------------------------------------------------------------------------------------
// Attribution
// ---------------------------------------------------------------------------------------

/// One record attributed to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributed<K> {
    /// The child's key (the caller's).
    pub key: K,
    /// The child's pid.
    pub pid: u32,
    /// The record's serial and time.
    pub serial: u64,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// The denial.
    pub denial: KernelDenial,
}

/// Match denial records to children: a domain is a child's when its allocation record
/// names the child's pid while the child lived. Returns the attributed denials (in record
/// order) and how many denial records belong to no child.
pub fn attribute<K: Clone>(
    records: &[Record],
    children: &[(K, ChildTrace)],
) -> (Vec<Attributed<K>>, u64) {
    let mut by_pid: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (_, t)) in children.iter().enumerate() {
        if t.pid != 0 {
            by_pid.entry(t.pid).or_default().push(i);
        }
    }
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        if r.kind != AUDIT_LANDLOCK_DOMAIN || r.get("status") != Some("allocated") {
            continue;
        }
        let (Some(domain), Some(pid)) = (
            r.get("domain"),
            r.get("pid").and_then(|p| p.parse::<u32>().ok()),
        ) else {
            continue;
        };
        let found = by_pid.get(&pid).and_then(|ix| {
            ix.iter().copied().find(|i| {
                let t = &children[*i].1;
                r.time_ms + CLOCK_SLACK_MS >= t.started_ms
                    && r.time_ms <= t.ended_ms + CLOCK_SLACK_MS
            })
        });
        if let Some(i) = found {
            owner.insert(domain, i);
        }
    }
    let mut out = Vec::new();
    let mut unattributed = 0u64;
    for r in records {
        let Some(d) = denial_of(r) else {
            continue;
        };
        match owner.get(d.domain.as_str()) {
            Some(i) => {
                let (key, t) = &children[*i];
                out.push(Attributed {
                    key: key.clone(),
                    pid: t.pid,
                    serial: r.serial,
                    time_ms: r.time_ms,
                    denial: d,
                });
            }
            None => unattributed += 1,
        }
    }
    (out, unattributed)
}

/// [`attribute`] as records stream in (a run that writes its results as scenarios
/// finish): records are taken in with [`Matcher::absorb`] as checkpoints deliver them, a
/// batch of children whose every record has arrived is given its denials with
/// [`Matcher::claim`], and records no child still to come can own are counted with
/// [`Matcher::expire`]. Only records not yet claimed or counted are held.
///
/// Given every record of a child before the child is claimed (a checkpoint after it
/// ended), children claimed in the order [`attribute`] is given them, and a frontier no
/// later than the start of any child still to be claimed, the attributions and the count
/// of unattributed records are [`attribute`]'s.
#[derive(Debug, Default)]
pub struct Matcher {
    /// Domains with records not yet claimed or counted.
    domains: BTreeMap<String, PendingDomain>,
    /// The domains of `domains` with an allocation record, by the pid it names.
    by_pid: BTreeMap<u32, Vec<String>>,
    /// Records held in `domains`.
    held: usize,
    /// Records taken in so far (their order of arrival).
    arrived: u64,
    /// `AUDIT_LANDLOCK_ACCESS` records taken in.
    pub records: u64,
    /// Denial records that belong to no child.
    pub unattributed: u64,
    /// Landlock records not kept because [`MAX_RECORDS`] were held.
    pub dropped: u64,
}

/// What a domain's records say so far.
#[derive(Debug, Default)]
struct PendingDomain {
    /// Its allocation record: the pid it names and its time.
    alloc: Option<(u32, u64)>,
    /// Its denials: (arrival, serial, time, denial).
    denials: Vec<(u64, u64, u64, KernelDenial)>,
}

impl PendingDomain {
    /// The time of its earliest record: a child can own it only if it lived then.
    fn since_ms(&self) -> u64 {
        self.alloc.map_or_else(
            || self.denials.iter().map(|d| d.2).min().unwrap_or(0),
            |(_, t)| t,
        )
    }
}

impl Matcher {
    /// Take in records (in the order they arrived).
    pub fn absorb(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            let is_access = r.kind == AUDIT_LANDLOCK_ACCESS;
            let is_alloc = r.kind == AUDIT_LANDLOCK_DOMAIN && r.get("status") == Some("allocated");
            if !is_access && !is_alloc {
                continue;
            }
            if self.held >= MAX_RECORDS {
                self.dropped += 1;
                continue;
            }
            if is_access {
                self.records += 1;
                let Some(d) = denial_of(&r) else {
                    continue;
                };
                self.arrived += 1;
                self.held += 1;
                self.domains
                    .entry(d.domain.clone())
                    .or_default()
                    .denials
                    .push((self.arrived, r.serial, r.time_ms, d));
            } else if let (Some(domain), Some(pid)) = (
                r.get("domain"),
                r.get("pid").and_then(|p| p.parse::<u32>().ok()),
            ) {
                // A domain is allocated once: its first allocation record is the one.
                let entry = self.domains.entry(domain.to_string()).or_default();
                if entry.alloc.is_none() {
                    entry.alloc = Some((pid, r.time_ms));
                    self.held += 1;
                    self.by_pid.entry(pid).or_default().push(domain.to_string());
                }
            }
        }
    }

    /// Give `children` (every record of each has arrived) the denials of the domains
    /// they allocated, in the order the records arrived; those records are released.
    pub fn claim<K: Clone>(&mut self, children: &[(K, ChildTrace)]) -> Vec<Attributed<K>> {
        let mut owned: Vec<(String, usize)> = Vec::new();
        let mut pids: Vec<u32> = children.iter().map(|(_, t)| t.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        for pid in pids.into_iter().filter(|p| *p != 0) {
            let Some(domains) = self.by_pid.get_mut(&pid) else {
                continue;
            };
            domains.retain(|domain| {
                let Some((_, time_ms)) = self.domains.get(domain).and_then(|d| d.alloc) else {
                    return false;
                };
                let found = children.iter().position(|(_, t)| {
                    t.pid == pid
                        && time_ms + CLOCK_SLACK_MS >= t.started_ms
                        && time_ms <= t.ended_ms + CLOCK_SLACK_MS
                });
                match found {
                    Some(i) => {
                        owned.push((domain.clone(), i));
                        false
                    }
                    None => true,
                }
            });
            if domains.is_empty() {
                self.by_pid.remove(&pid);
            }
        }
        let mut out: Vec<(u64, Attributed<K>)> = Vec::new();
        for (domain, i) in owned {
            let Some(d) = self.domains.remove(&domain) else {
                continue;
            };
            self.held -= d.denials.len() + 1;
            let (key, t) = &children[i];
            out.extend(d.denials.into_iter().map(|(seq, serial, time_ms, denial)| {
                (
                    seq,
                    Attributed {
                        key: key.clone(),
                        pid: t.pid,
                        serial,
                        time_ms,
                        denial,
                    },
                )
            }));
        }
        out.sort_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, a)| a).collect()
    }

    /// Count as unattributed the records of every domain no child starting at or after
    /// `frontier_ms` can own (its earliest record is more than the clock's slack before
    /// it), and release them. `u64::MAX`: every record still held.
    pub fn expire(&mut self, frontier_ms: u64) {
        let gone: Vec<String> = self
            .domains
            .iter()
            .filter(|(_, d)| d.since_ms().saturating_add(CLOCK_SLACK_MS) < frontier_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for domain in gone {
            let Some(d) = self.domains.remove(&domain) else {
                continue;
            };
            self.held -= d.denials.len() + usize::from(d.alloc.is_some());
            self.unattributed += d.denials.len() as u64;
            if let Some((pid, _)) = d.alloc
                && let Some(list) = self.by_pid.get_mut(&pid)
            {
                list.retain(|x| *x != domain);
                if list.is_empty() {
                    self.by_pid.remove(&pid);
                }
            }
        }
    }

    /// Records held now (denials and allocation records not yet claimed or counted).
    pub fn held(&self) -> usize {
        self.held
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A counter for the tests' generated inputs.
#[cfg(test)]
static SEED: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0x9e37_79b9_7f4a_7c15);

#[cfg(test)]
mod tests {
    use super::*;

    fn next() -> u64 {
        let mut x = SEED.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        SEED.store(x, Ordering::Relaxed);
        x
    }

    #[test]
    fn records_parse_with_quoted_and_hex_encoded_strings() {
        let r = parse_record(
            AUDIT_LANDLOCK_ACCESS,
            "audit(1733456789.123:456): domain=1e4565bfc blockers=fs.read_file path=\"/etc/hostname\" dev=\"vda\" ino=611",
        )
        .unwrap();
        assert_eq!(r.time_ms, 1_733_456_789_123);
        assert_eq!(r.serial, 456);
        let d = denial_of(&r).unwrap();
        assert_eq!(d.blockers, vec!["fs.read_file"]);
        assert_eq!(d.domain, "1e4565bfc");
        assert_eq!(d.object["path"], "/etc/hostname");
        assert_eq!(d.object["ino"], "611");
        // A path with a space is hex-encoded by the kernel; an inode number is not a string.
        let r = parse_record(
            AUDIT_LANDLOCK_ACCESS,
            "audit(1.002:3): domain=a blockers=fs.make_reg,fs.refer path=2F746D702F6120620A dev=\"vda\" ino=1234",
        )
        .unwrap();
        let d = denial_of(&r).unwrap();
        assert_eq!(d.blockers, vec!["fs.make_reg", "fs.refer"]);
        assert_eq!(d.object["path"], "/tmp/a b\n");
        assert_eq!(d.object["ino"], "1234");
        let r = parse_record(
            AUDIT_LANDLOCK_ACCESS,
            "audit(1.002:3): domain=a blockers=net.connect_tcp daddr=127.0.0.1 dest=8080",
        )
        .unwrap();
        let d = denial_of(&r).unwrap();
        assert_eq!(d.object["daddr"], "127.0.0.1");
        assert_eq!(d.object["dest"], "8080");
        assert!(parse_record(AUDIT_LANDLOCK_ACCESS, "domain=a blockers=x").is_none());
    }

    #[test]
    fn generated_garbage_never_panics_and_stays_bounded() {
        let alphabet = b"audit(0123456789.:) =\"abcdefxyz,\\\n\x00\xff";
        for _ in 0..5000 {
            let len = (next() % 120) as usize;
            let mut bytes = b"audit(".to_vec();
            if next().is_multiple_of(2) {
                bytes.clear();
            }
            for _ in 0..len {
                bytes.push(alphabet[usize::try_from(next() % alphabet.len() as u64).unwrap()]);
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Some(r) = parse_record(AUDIT_LANDLOCK_ACCESS, &text) {
                assert!(r.fields.len() <= text.len());
                let _ = denial_of(&r);
            }
        }
    }

    #[test]
    fn restore_records_round_trip_and_generated_edits_never_yield_a_locking_state() {
        let ok = |e: u32, b: u32, sb: u32, pid: u32| {
            format!(
                "{RESTORE_MAGIC} enabled={e} backlog_limit={b} set_enabled=1 set_backlog={sb} pid={pid}\n"
            )
        };
        for _ in 0..500 {
            let (e, b, sb, pid) = (
                (next() % 2) as u32,
                (next() % 100_000) as u32,
                (next() % 100_000) as u32,
                (next() % 4_000_000) as u32,
            );
            let r = parse_restore_record(&ok(e, b, sb, pid)).expect("a written record parses");
            assert_eq!(
                r,
                RestoreRecord {
                    enabled: e,
                    backlog_limit: b,
                    set_enabled: 1,
                    set_backlog: sb,
                    pid,
                }
            );
        }
        // Edits of a valid record (byte flips, cuts, insertions): whatever parses puts back
        // only a state a session can have found (never 2, locked until reboot).
        let base = ok(0, 64, 8192, 42).into_bytes();
        let alphabet = b"0123456789=2 \nabz-";
        for _ in 0..5000 {
            let mut b = base.clone();
            for _ in 0..=(next() % 3) {
                let at = usize::try_from(next() % (b.len() as u64 + 1)).unwrap();
                let c = alphabet[usize::try_from(next() % alphabet.len() as u64).unwrap()];
                match next() % 3 {
                    0 if at < b.len() => b[at] = c,
                    1 => b.insert(at, c),
                    _ => b.truncate(at.max(1)),
                }
            }
            if let Some(r) = parse_restore_record(&String::from_utf8_lossy(&b)) {
                assert!(r.enabled <= 1 && r.set_enabled == 1, "{r:?}");
            }
        }
        assert!(
            parse_restore_record(&ok(0, 64, 8192, 1).replace("enabled=0", "enabled=2")).is_none()
        );
        assert!(
            parse_restore_record(&format!("{} extra", ok(0, 64, 8192, 1).trim_end())).is_none()
        );
        assert!(parse_restore_record("").is_none());
    }

    fn rec(kind: u16, time_ms: u64, serial: u64, text: &str) -> Record {
        parse_record(
            kind,
            &format!(
                "audit({}.{:03}:{serial}): {text}",
                time_ms / 1000,
                time_ms % 1000
            ),
        )
        .unwrap()
    }

    /// Generated interleavings of children and strangers: a record is attributed exactly
    /// when its domain was allocated by a child's pid while that child lived, and to that
    /// child.
    #[test]
    fn only_domains_allocated_by_a_live_child_are_attributed_to_it() {
        for round in 0..200u64 {
            let mut children = Vec::new();
            let mut records = Vec::new();
            let mut expect: Vec<(u64, Option<usize>)> = Vec::new();
            let mut serial = 0;
            let n = 1 + next() % 6;
            let mut t = 1_000_000 + round * 10_000;
            for c in 0..n {
                let pid = 100 + u32::try_from(next() % 4).unwrap();
                let start = t;
                let end = t + 50 + next() % 200;
                t = end + 100;
                children.push((
                    usize::try_from(c).unwrap(),
                    ChildTrace {
                        pid,
                        started_ms: start,
                        ended_ms: end,
                    },
                ));
            }
            for _ in 0..(next() % 30) {
                serial += 1;
                let stranger = next().is_multiple_of(3);
                let domain = format!("{:x}", next() & 0xffff_ffff);
                let (pid, when, owner) = if stranger {
                    // Another process: a pid no child has, or a child's pid long before it lived.
                    if next().is_multiple_of(2) {
                        (900 + u32::try_from(next() % 5).unwrap(), t / 2, None)
                    } else {
                        (children[0].1.pid, children[0].1.started_ms - 5_000, None)
                    }
                } else {
                    let c = usize::try_from(next() % n).unwrap();
                    let tr = children[c].1;
                    (
                        tr.pid,
                        tr.started_ms + (next() % (tr.ended_ms - tr.started_ms)),
                        Some(c),
                    )
                };
                records.push(rec(
                    AUDIT_LANDLOCK_ACCESS,
                    when,
                    serial,
                    &format!("domain={domain} blockers=fs.read_file path=\"/x\" dev=\"vda\" ino=1"),
                ));
                expect.push((serial, owner));
                records.push(rec(
                    AUDIT_LANDLOCK_DOMAIN,
                    when,
                    serial,
                    &format!("domain={domain} status=allocated mode=enforcing pid={pid} uid=0 exe=\"/x\" comm=\"x\""),
                ));
            }
            let (got, unattributed) = attribute(&records, &children);
            let want: Vec<(u64, usize)> = expect
                .iter()
                .filter_map(|(s, o)| o.map(|c| (*s, c)))
                .collect();
            let got_pairs: Vec<(u64, usize)> = got.iter().map(|a| (a.serial, a.key)).collect();
            // Two children may share a pid (reused): the one alive at the time is chosen.
            assert_eq!(got_pairs, want, "round {round}");
            assert_eq!(
                unattributed,
                expect.iter().filter(|(_, o)| o.is_none()).count() as u64
            );
        }
    }

    /// Generated runs whose children overlap and are claimed in batches, with records
    /// of strangers (other pids, or a child's pid when it did not live) and children that
    /// allocate several domains, every record arriving a little after it happened: the
    /// streamed matcher, claiming each batch once every record of its children arrived
    /// and expiring against the earliest start of a child still to be claimed, attributes
    /// exactly what [`attribute`] does at the end (same records, same children, the same
    /// order per child), counts the same unattributed records, and holds nothing a child
    /// still to come could not own.
    #[test]
    fn streamed_matching_attributes_what_matching_at_the_end_does() {
        for round in 0..300u64 {
            let n = 1 + usize::try_from(next() % 40).unwrap();
            let mut children: Vec<(usize, ChildTrace)> = Vec::new();
            let mut t = 10_000_000 + round * 1_000_000;
            for c in 0..n {
                let started_ms = t + next() % 30;
                let ended_ms = started_ms + 1 + next() % 120;
                t += next() % 40;
                // A pid from a small pool when no other child with it lived within twice
                // the slack (pids are reused, never by two children alive together).
                let free = |pid: u32| {
                    children.iter().all(|(_, o)| {
                        o.pid != pid
                            || o.ended_ms + 3 * CLOCK_SLACK_MS < started_ms
                            || ended_ms + 3 * CLOCK_SLACK_MS < o.started_ms
                    })
                };
                let pick = 100 + u32::try_from(next() % 6).unwrap();
                let pid = if free(pick) {
                    pick
                } else {
                    5000 + u32::try_from(c).unwrap()
                };
                children.push((
                    c,
                    ChildTrace {
                        pid,
                        started_ms,
                        ended_ms,
                    },
                ));
            }
            // (arrival, record): each domain's allocation record right after its first
            // denial, same time and serial.
            let mut records: Vec<(u64, Record)> = Vec::new();
            let mut serial = 0u64;
            let mut domain_no = 0u64;
            let mut domain = |records: &mut Vec<(u64, Record)>, pid: u32, from: u64, to: u64| {
                domain_no += 1;
                let name = format!("{:x}", 0xd000_0000 + round * 1000 + domain_no);
                let mut at = from;
                for k in 0..=(next() % 3) {
                    serial += 1;
                    let lag = next() % 6;
                    records.push((
                        at + lag,
                        rec(
                            AUDIT_LANDLOCK_ACCESS,
                            at,
                            serial,
                            &format!("domain={name} blockers=fs.read_file path=\"/x{k}\" dev=\"vda\" ino={serial}"),
                        ),
                    ));
                    if k == 0 {
                        records.push((
                            at + lag,
                            rec(
                                AUDIT_LANDLOCK_DOMAIN,
                                at,
                                serial,
                                &format!("domain={name} status=allocated mode=enforcing pid={pid} uid=0 exe=\"/x\" comm=\"x\""),
                            ),
                        ));
                    }
                    at = (at + next() % 10).min(to);
                }
            };
            for (_, c) in &children {
                for _ in 0..(next() % 3) {
                    let from = c.started_ms + next() % (c.ended_ms - c.started_ms + 1);
                    domain(&mut records, c.pid, from, c.ended_ms);
                }
            }
            let end = t + 500;
            for _ in 0..(next() % 12) {
                let when = 10_000_000
                    + round * 1_000_000
                    + next() % (end - 10_000_000 - round * 1_000_000);
                let pid = if next().is_multiple_of(2) {
                    900 + u32::try_from(next() % 3).unwrap()
                } else {
                    100 + u32::try_from(next() % 6).unwrap()
                };
                domain(&mut records, pid, when, when + 50);
            }
            records.sort_by_key(|(a, _)| *a);
            let whole: Vec<Record> = records.iter().map(|(_, r)| r.clone()).collect();
            let (want, want_unattributed) = attribute(&whole, &children);

            // Batches in order; each claimed at a checkpoint after its children ended.
            let mut m = Matcher::default();
            let mut got: Vec<Attributed<usize>> = Vec::new();
            let mut next_record = 0;
            let mut now = 0u64;
            let mut at = 0;
            while at < n {
                let size = 1 + usize::try_from(next() % 5).unwrap();
                let batch = &children[at..(at + size).min(n)];
                at += batch.len();
                let last_end = batch.iter().map(|(_, c)| c.ended_ms).max().unwrap_or(0);
                now = now.max(last_end + CLOCK_SLACK_MS + 10) + next() % 50;
                while next_record < records.len() && records[next_record].0 <= now {
                    m.absorb([records[next_record].1.clone()]);
                    next_record += 1;
                }
                got.extend(m.claim(batch));
                let frontier = children[at..]
                    .iter()
                    .map(|(_, c)| c.started_ms)
                    .fold(now, u64::min);
                m.expire(frontier);
                // Nothing held that a child still to come could not own.
                for d in m.domains.values() {
                    assert!(d.since_ms() + CLOCK_SLACK_MS >= frontier, "round {round}");
                }
            }
            m.absorb(records[next_record..].iter().map(|(_, r)| r.clone()));
            m.expire(u64::MAX);
            assert_eq!(m.held(), 0);
            assert!(m.domains.is_empty() && m.by_pid.is_empty());
            assert_eq!(m.unattributed, want_unattributed, "round {round}");
            assert_eq!(
                m.records,
                whole
                    .iter()
                    .filter(|r| r.kind == AUDIT_LANDLOCK_ACCESS)
                    .count() as u64
            );
            let per_child = |list: &[Attributed<usize>]| {
                let mut by: BTreeMap<usize, Vec<(u64, u32, u64, KernelDenial)>> = BTreeMap::new();
                for a in list {
                    by.entry(a.key).or_default().push((
                        a.serial,
                        a.pid,
                        a.time_ms,
                        a.denial.clone(),
                    ));
                }
                by
            };
            assert_eq!(per_child(&got), per_child(&want), "round {round}");
        }
    }
}
