//! The `uring` backend (Linux io_uring).
//!
//! Receive: one multishot `RecvMsgMulti` draws buffers from a provided
//! buffer ring (`IORING_REGISTER_PBUF_RING`); every completion names the
//! buffer holding `io_uring_recvmsg_out`, the sender address, the `UDP_GRO`
//! control message and the payload (several datagrams when GRO coalesced
//! them). `recv_with`, the driver's path, hands each datagram to the caller
//! in place inside the ring buffer: no copy. Only `recv_batch`, whose
//! [`RecvBatch`] owns its slots, copies each datagram once into a slot. The
//! buffer goes back to the ring once every datagram in it has been handed
//! over.
//! The multishot request is re-armed whenever the kernel ends it (no
//! `IORING_CQE_F_MORE`, e.g. `ENOBUFS` while all buffers are out).
//!
//! Send: one `SendMsg` per run of datagrams (UDP GSO `UDP_SEGMENT` when the
//! run has several), all pushed and submitted with one `io_uring_enter`.
//! `MSG_DONTWAIT` makes each send complete inline (or fail with `EAGAIN`), so
//! the call waits for its completions without blocking and the caller's
//! slices are never referenced after it returns. The entries are not linked,
//! so when the socket buffer fills, a message after the first `EAGAIN` may
//! still have gone out; the returned count is the prefix before that
//! `EAGAIN` (the trait's contract), so such a datagram is counted as not
//! accepted although it was sent.
//!
//! Wake-up: a multishot `PollAdd` on an eventfd; `wait` blocks in
//! `io_uring_enter` until any completion (datagram, wake) or the timeout.

use super::linux::{
    after_refusal, decode_addr, gro_segment, plan_runs, probe_offloads, push_iovecs, run_failure,
    write_segment_cmsg, EventFd, PieceFn, RawAddr, Run, RunFailure, Segments, CMSG_BUF, GRO_BUF,
};
use super::{
    forward_messages, send_each, Backend, BackendError, Forward, Message, OutDatagram, Passed,
    Received, RecvBatch, SendDrops, Wakeup, FORWARD_CHUNK, MAX_RECV_DATAGRAM,
};
use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, IoUring, Probe};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

mod bufring;
#[cfg(test)]
mod tests;

use bufring::{BufRing, Mapping};

const NAME: &str = "uring";
/// `user_data` of the multishot receive.
const RECV_TAG: u64 = 1 << 62;
/// `user_data` of the multishot eventfd poll.
const WAKE_TAG: u64 = 1 << 61;
/// `user_data` of cancellations issued on drop.
const CANCEL_TAG: u64 = 1 << 60;
/// Submission queue entries.
const SQ_ENTRIES: u32 = 256;
/// Completion queue entries (room for every buffer plus a send chunk).
const CQ_ENTRIES: u32 = 2048;
/// Most sends pushed before one submit (leaves SQ room for re-arms).
const SEND_CHUNK: usize = 192;
/// Provided buffers without GRO (each holds one datagram).
const RING_ENTRIES_PLAIN: u16 = 512;
/// Provided buffers with GRO (each holds a 64 KiB super-datagram).
const RING_ENTRIES_GRO: u16 = 128;
/// Buffer group id of our ring.
const BGID: u16 = 0;
/// `sizeof(struct io_uring_recvmsg_out)`.
const RECVMSG_OUT: usize = 16;
/// Name area reserved in each buffer.
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_storage>();

/// Which offloads to try; each is still probed and may be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringOptions {
    /// Try UDP GSO on send.
    pub gso: bool,
    /// Try UDP GRO on receive (needs 64 KiB ring buffers).
    pub gro: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        Self {
            gso: true,
            gro: true,
        }
    }
}

/// Counters of the `uring` backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UringStats {
    /// Datagrams dropped on receive: larger than [`MAX_RECV_DATAGRAM`] or
    /// truncated by the kernel.
    pub oversized: u64,
    /// Completions dropped because the sender address was not IP or the
    /// buffer could not be parsed.
    pub bad_buffer: u64,
    /// Times the multishot receive was armed (1 + re-arms).
    pub recv_arms: u64,
    /// Completions that ended the multishot receive with `ENOBUFS`.
    pub enobufs: u64,
    /// Messages sent with a `UDP_SEGMENT` control message.
    pub gso_sends: u64,
    /// Received buffers that held more than one GRO segment.
    pub gro_coalesced: u64,
    /// Datagrams copied from ring buffers into batch slots.
    pub copies: u64,
    /// Bytes copied from ring buffers into batch slots.
    pub copied_bytes: u64,
}

/// A completion copied out of the CQ, waiting to be turned into datagrams.
#[derive(Clone, Copy)]
struct Completion {
    result: i32,
    flags: u32,
}

/// A ring buffer partly split into batch slots.
#[derive(Clone, Copy)]
struct Held {
    bid: u16,
    from: SocketAddr,
    payload: usize,
    segs: Segments,
    off: usize,
}

/// io_uring backend with a provided buffer ring.
pub struct UringBackend {
    // Dropped first: the ring (after cancellation in `Drop`), then memory.
    ring: IoUring,
    bufs: BufRing,
    socket: UdpSocket,
    event: Arc<EventFd>,
    recv_msg: Box<libc::msghdr>,
    recv_armed: bool,
    wake_armed: bool,
    bufs_out: usize,
    stash: VecDeque<Completion>,
    held: Option<Held>,
    /// Largest segment coalesced with GSO; 0 = GSO off.
    gso_max_seg: usize,
    gro: bool,
    stats: UringStats,
    drops: SendDrops,
    /// Set when `io_uring_enter` failed with sends in flight: nothing is
    /// submitted again (entries may reference a caller's slices).
    poisoned: bool,
    // Send scratch, alive until every send completion is reaped.
    runs: Vec<Run>,
    send_hdrs: Vec<libc::msghdr>,
    send_iov: Vec<libc::iovec>,
    /// iovecs per run (fewer than datagrams when they lie back to back).
    send_iov_counts: Vec<usize>,
    send_addrs: Vec<RawAddr>,
    send_cmsg: Vec<[u64; CMSG_BUF / 8]>,
    send_res: Vec<Option<i32>>,
    /// Runs of datagrams of ring buffers to forward.
    passed: Vec<Passed<u16>>,
    /// The messages of a forwarding receive, gathered before their
    /// datagrams are handed over.
    msgs: Vec<Message<u16>>,
    /// The ring buffers a forwarding receive used up, handed back once its
    /// forwards went out.
    used: Vec<u16>,
}

// SAFETY: the ring, the mappings and the scratch pointers are owned by the
// backend and used only through `&mut self`; no pointer refers to
// thread-local data, so the backend may move to another thread.
unsafe impl Send for UringBackend {}

fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable {
        backend: NAME,
        reason: reason.into(),
    }
}

/// Checks `kernel.io_uring_disabled`; `Err` names the reason.
fn check_sysctl() -> Result<(), BackendError> {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(s) if s.trim() == "2" => Err(unavailable(
            "io_uring is disabled by sysctl kernel.io_uring_disabled=2",
        )),
        // 1 = only privileged or io_uring_group members: setup tells.
        _ => Ok(()),
    }
}

/// Kernel major.minor from `uname`, if it parses.
fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut u = unsafe { std::mem::zeroed::<libc::utsname>() };
    // SAFETY: passes a live utsname to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let rel: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let rel = String::from_utf8_lossy(&rel);
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

impl UringBackend {
    /// Binds `addr` and starts the backend with default options.
    pub fn bind(addr: SocketAddr) -> Result<Self, BackendError> {
        let socket = UdpSocket::bind(addr).map_err(|source| BackendError::Bind { addr, source })?;
        Self::new(socket, UringOptions::default())
    }

    /// Starts the backend on a bound socket. Fails with
    /// [`BackendError::Unavailable`] and the reason when io_uring is
    /// disabled, restricted, too old or missing an opcode.
    pub fn new(socket: UdpSocket, opts: UringOptions) -> Result<Self, BackendError> {
        check_sysctl()?;
        if let Some((maj, min)) = kernel_version() {
            if (maj, min) < (6, 0) {
                return Err(unavailable(format!(
                    "kernel {maj}.{min} lacks multishot recvmsg (needs 6.0)"
                )));
            }
        }
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM) => unavailable(format!(
                    "io_uring_setup refused with EPERM (sysctl kernel.io_uring_disabled, seccomp or container policy): {e}"
                )),
                Some(libc::ENOSYS) => unavailable("kernel built without io_uring (ENOSYS)"),
                _ => unavailable(format!("io_uring_setup failed: {e}")),
            })?;
        if !ring.params().is_feature_ext_arg() {
            return Err(unavailable("kernel lacks IORING_FEAT_EXT_ARG (needs 5.11)"));
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unavailable(format!("IORING_REGISTER_PROBE failed: {e}")))?;
        for (code, op) in [
            (opcode::RecvMsg::CODE, "RECVMSG"),
            (opcode::SendMsg::CODE, "SENDMSG"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(unavailable(format!("opcode IORING_OP_{op} not supported")));
            }
        }
        socket
            .set_nonblocking(true)
            .map_err(|source| BackendError::Io {
                backend: NAME,
                source,
            })?;
        let fd = socket.as_raw_fd();
        let (gso, gro) = probe_offloads(fd, opts.gso, opts.gro, "uring");
        let ctl = if gro { CMSG_BUF } else { 0 };
        let payload = if gro { GRO_BUF } else { MAX_RECV_DATAGRAM + 1 };
        let buf_len = (RECVMSG_OUT + NAME_LEN + ctl + payload).next_multiple_of(64);
        let entries = if gro {
            RING_ENTRIES_GRO
        } else {
            RING_ENTRIES_PLAIN
        };
        let mut bufs = BufRing::new(entries, buf_len)
            .map_err(|e| unavailable(format!("mapping the buffer ring failed: {e}")))?;
        // SAFETY: the ring mapping holds `entries` descriptors, is page
        // aligned and lives in `self.bufs`, which outlives the ring's use
        // of it: Drop cancels the receive and unregisters first.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.ring.ptr as u64, entries, BGID, 0)
        }
        .map_err(|e| unavailable(format!("IORING_REGISTER_PBUF_RING failed: {e}")))?;
        for bid in 0..entries {
            bufs.push(bid);
        }
        bufs.publish();
        // SAFETY: msghdr is plain old data; all-zero is valid. Only the
        // name and control lengths matter for a multishot recvmsg.
        let mut recv_msg = Box::new(unsafe { std::mem::zeroed::<libc::msghdr>() });
        recv_msg.msg_namelen = NAME_LEN as libc::socklen_t;
        recv_msg.msg_controllen = ctl as _;
        let event = Arc::new(EventFd::new().map_err(|source| BackendError::Io {
            backend: NAME,
            source,
        })?);
        let mut me = Self {
            ring,
            bufs,
            socket,
            event,
            recv_msg,
            recv_armed: false,
            wake_armed: false,
            bufs_out: 0,
            stash: VecDeque::with_capacity(entries as usize),
            held: None,
            gso_max_seg: if gso { MAX_RECV_DATAGRAM } else { 0 },
            gro,
            stats: UringStats::default(),
            drops: SendDrops::default(),
            poisoned: false,
            runs: Vec::new(),
            send_hdrs: Vec::new(),
            send_iov: Vec::new(),
            send_iov_counts: Vec::new(),
            send_addrs: Vec::new(),
            send_cmsg: Vec::new(),
            send_res: Vec::new(),
            passed: Vec::with_capacity(FORWARD_CHUNK),
            msgs: Vec::with_capacity(FORWARD_CHUNK),
            used: Vec::with_capacity(FORWARD_CHUNK),
        };
        me.arm();
        me.ring
            .submit()
            .map_err(|e| unavailable(format!("first submit failed: {e}")))?;
        // A kernel without multishot recvmsg fails the request at once.
        me.reap();
        if let Some(c) = me.stash.front() {
            if c.result == -libc::EINVAL {
                return Err(unavailable("multishot recvmsg refused with EINVAL"));
            }
        }
        Ok(me)
    }

    /// Whether sends currently use UDP GSO.
    pub fn gso_enabled(&self) -> bool {
        self.gso_max_seg > 0
    }

    /// Largest datagram size still coalesced with GSO (lowered when a route's
    /// MTU turns a run down with `EMSGSIZE`; 0 when GSO is off).
    pub fn gso_max_segment(&self) -> usize {
        self.gso_max_seg
    }

    /// Whether receives use UDP GRO.
    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    /// Drop, copy and re-arm counters since start.
    pub fn stats(&self) -> UringStats {
        self.stats
    }

    /// Pushes the multishot receive and the eventfd poll when not armed.
    fn arm(&mut self) {
        if !self.recv_armed && self.bufs_out < self.bufs.entries as usize {
            let e = opcode::RecvMsgMulti::new(Fd(self.socket.as_raw_fd()), &*self.recv_msg, BGID)
                .build()
                .user_data(RECV_TAG);
            // SAFETY: `recv_msg` is boxed and lives as long as the ring.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                self.recv_armed = true;
                self.stats.recv_arms += 1;
            }
        }
        if !self.wake_armed {
            let e = opcode::PollAdd::new(Fd(self.event.as_raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(WAKE_TAG);
            // SAFETY: the eventfd lives as long as the ring.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                self.wake_armed = true;
            }
        }
    }

    /// Moves every completion out of the CQ: receives to the stash, send
    /// results into `send_res`, wake-ups drained. Returns whether a wake-up
    /// was seen.
    fn reap(&mut self) -> bool {
        let mut woke = false;
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let more = cqueue::more(cqe.flags());
            if ud == RECV_TAG {
                if cqueue::buffer_select(cqe.flags()).is_some() {
                    self.bufs_out += 1;
                }
                if !more {
                    self.recv_armed = false;
                }
                self.stash.push_back(Completion {
                    result: cqe.result(),
                    flags: cqe.flags(),
                });
            } else if ud == WAKE_TAG {
                woke = true;
                self.event.drain();
                if !more {
                    self.wake_armed = false;
                }
            } else if ud & CANCEL_TAG != 0 {
                // Cancellation results carry nothing we need.
            } else if let Some(slot) = self.send_res.get_mut(ud as usize) {
                *slot = Some(cqe.result());
            }
        }
        woke
    }

    /// Hands datagrams of the held buffer to `f` (at most `max` in total,
    /// counting the `n` already handed over); recycles the buffer when it
    /// is used up. Returns the new count.
    fn drain_held(&mut self, max: usize, mut n: usize, f: PieceFn<'_, u16>) -> usize {
        while let Some(mut h) = self.held {
            match h.segs.piece(h.off) {
                Some(range) => {
                    if n >= max {
                        break;
                    }
                    h.off = range.end.max(h.off + 1);
                    self.held = Some(h);
                    if range.len() > MAX_RECV_DATAGRAM {
                        self.stats.oversized += 1;
                        continue;
                    }
                    let buf = self.bufs.buf_mut(h.bid);
                    let at = h.payload + range.start..h.payload + range.end;
                    f(h.from, h.bid, at.clone(), &mut buf[at]);
                    n += 1;
                }
                None => {
                    self.recycle(h.bid);
                    self.held = None;
                }
            }
        }
        n
    }

    /// The receive loop shared by `recv_batch` and `recv_with`.
    fn recv_each(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        let got = self.recv_each_at(max, &mut |from, _, _, d| f(from, d));
        self.finish_recv(got)
    }

    /// [`Self::recv_each`] up to handing the used-up buffers back, telling
    /// `f` also which ring buffer and byte range each datagram is. Returns
    /// the count and the error that stopped it; the caller ends with
    /// [`Self::finish_recv`].
    fn recv_each_at(
        &mut self,
        max: usize,
        f: PieceFn<'_, u16>,
    ) -> io::Result<(usize, Option<io::Error>)> {
        self.check_poisoned()?;
        if max == 0 {
            return Ok((0, None));
        }
        let mut n = self.drain_held(max, 0, f);
        self.reap();
        let mut err = None;
        while n < max && self.held.is_none() {
            let Some(c) = self.stash.pop_front() else {
                break;
            };
            if let Err(e) = self.take(c) {
                err = Some(e);
                break;
            }
            n = self.drain_held(max, n, f);
        }
        Ok((n, err))
    }

    /// Hands the buffers used up by a receive back to the kernel and
    /// re-arms; the result of the receive.
    fn finish_recv(&mut self, got: io::Result<(usize, Option<io::Error>)>) -> io::Result<usize> {
        let (n, err) = got?;
        self.bufs.publish();
        let flushed = self.flush();
        match (n, err, flushed) {
            (0, Some(e), _) => Err(e),
            (0, None, Err(e)) => Err(e),
            _ => Ok(n),
        }
    }

    /// The held buffer and stashed completions as [`Message`]s for
    /// [`Backend::recv_forward_batch`], at most `max` buffers; the buffers
    /// go to `used` (the caller hands them back after its sends). Returns
    /// the error that stopped it, if one did.
    fn gather(
        &mut self,
        max: usize,
        msgs: &mut Vec<Message<u16>>,
        used: &mut Vec<u16>,
    ) -> io::Result<Option<io::Error>> {
        self.check_poisoned()?;
        self.reap();
        loop {
            if let Some(h) = self.held.take() {
                let left_out = h.segs.push_message(msgs, h.from, h.bid, h.payload, h.off);
                self.stats.oversized += left_out as u64;
                used.push(h.bid);
            }
            if used.len() >= max {
                return Ok(None);
            }
            let Some(c) = self.stash.pop_front() else {
                return Ok(None);
            };
            if let Err(e) = self.take(c) {
                return Ok(Some(e));
            }
        }
    }

    /// Sends runs of datagrams out of the ring buffers (which the kernel
    /// cannot reuse until [`Self::finish_recv`] publishes them), datagram
    /// by datagram through [`Backend::send_batch`]: it gathers a run lying
    /// back to back into one iovec and one GSO message again.
    fn send_passed(&mut self, passed: &[Passed<u16>]) {
        let ring = self.bufs.views();
        let bytes = |p: &Passed<u16>| {
            // SAFETY: `p.range` lies inside buffer `p.buf` of the mapping
            // (it came from `gather`), which lives as long as `self`; the
            // buffer is withheld from the kernel until `finish_recv`, and
            // nothing writes it before these views die at the end of this
            // function.
            unsafe { ring.get(p.buf, p.range.clone()) }
        };
        send_each(passed, bytes, |views| {
            if let Err(e) = self.send_batch(views) {
                tracing::trace!(error = %e, "uring: forward send failed");
            }
        });
    }

    fn recycle(&mut self, bid: u16) {
        self.bufs.push(bid);
        self.bufs_out = self.bufs_out.saturating_sub(1);
    }

    /// Turns one receive completion into a held buffer (or a drop/error).
    fn take(&mut self, c: Completion) -> io::Result<()> {
        let bid = cqueue::buffer_select(c.flags);
        if c.result < 0 {
            if let Some(bid) = bid {
                self.recycle(bid);
            }
            return match -c.result {
                libc::ENOBUFS => {
                    self.stats.enobufs += 1;
                    Ok(())
                }
                libc::EINTR | libc::EAGAIN | libc::ECANCELED => Ok(()),
                libc::ECONNREFUSED | libc::ECONNRESET => Ok(()),
                e => Err(io::Error::from_raw_os_error(e)),
            };
        }
        let Some(bid) = bid.filter(|b| *b < self.bufs.entries) else {
            self.stats.bad_buffer += 1;
            return Ok(());
        };
        let buf = self.bufs.buf(bid, c.result as usize);
        let parsed = io_uring::types::RecvMsgOut::parse(buf, &self.recv_msg)
            .ok()
            .and_then(|m| {
                if m.is_payload_truncated() {
                    return Some(Err(()));
                }
                let from = decode_addr(m.name_data())?;
                let seg = if self.gro {
                    gro_segment(m.control_data()).unwrap_or(0)
                } else {
                    0
                };
                let len = m.payload_data().len();
                Some(Ok((from, len, seg)))
            });
        match parsed {
            Some(Ok((from, len, seg))) => {
                let seg = if seg >= len { 0 } else { seg };
                if seg != 0 {
                    self.stats.gro_coalesced += 1;
                }
                // `msg_controllen` is usize on glibc, socklen_t on musl.
                #[allow(clippy::unnecessary_cast)]
                let ctl = self.recv_msg.msg_controllen as usize;
                self.held = Some(Held {
                    bid,
                    from,
                    payload: RECVMSG_OUT + NAME_LEN + ctl,
                    segs: Segments { len, seg },
                    off: 0,
                });
            }
            Some(Err(())) => {
                self.stats.oversized += 1;
                self.recycle(bid);
            }
            None => {
                self.stats.bad_buffer += 1;
                self.recycle(bid);
            }
        }
        Ok(())
    }

    /// Submits pending SQEs (re-arms) if any.
    fn flush(&mut self) -> io::Result<()> {
        self.arm();
        if !self.ring.submission().is_empty() {
            loop {
                match self.ring.submit() {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        // CQ overflow backlog: reap, then retry.
                        self.reap();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Builds `msghdr`s for `runs` over `out`.
    fn build_send(&mut self, out: &[OutDatagram<'_>]) {
        self.send_iov.clear();
        self.send_addrs.clear();
        self.send_cmsg.clear();
        self.send_hdrs.clear();
        self.send_iov_counts.clear();
        for r in &self.runs {
            self.send_iov_counts.push(push_iovecs(
                &mut self.send_iov,
                &out[r.start..r.start + r.count],
            ));
            self.send_addrs.push(RawAddr::from_std(out[r.start].to));
            self.send_cmsg.push([0u64; CMSG_BUF / 8]);
        }
        let mut iov_at = 0;
        for i in 0..self.runs.len() {
            let r = self.runs[i];
            let iovs = self.send_iov_counts[i];
            // SAFETY: msghdr is plain old data; all-zero is a valid value.
            let mut h = unsafe { std::mem::zeroed::<libc::msghdr>() };
            h.msg_name = (&mut self.send_addrs[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.send_addrs[i].len;
            h.msg_iov = &mut self.send_iov[iov_at];
            h.msg_iovlen = iovs as _;
            if r.count > 1 {
                let len = write_segment_cmsg(&mut self.send_cmsg[i], r.seg as u16);
                h.msg_control = self.send_cmsg[i].as_mut_ptr().cast();
                h.msg_controllen = len as _;
            }
            iov_at += iovs;
            self.send_hdrs.push(h);
        }
    }

    /// Submits sends for `send_hdrs[from..to]` and waits for all their
    /// completions (they complete inline thanks to `MSG_DONTWAIT`).
    fn submit_sends(&mut self, from: usize, to: usize) -> io::Result<usize> {
        // Start from an empty SQ so a chunk always fits.
        self.flush()?;
        let fd = self.socket.as_raw_fd();
        let mut pushed = from;
        for i in from..to {
            self.send_res[i] = None;
            let e = opcode::SendMsg::new(Fd(fd), &self.send_hdrs[i])
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .user_data(i as u64);
            // SAFETY: the msghdr, its iovecs (over the caller's slices),
            // name and control buffers stay alive and unmoved until this
            // function has reaped the completion of every pushed entry; if
            // the ring fails instead, the backend is poisoned and never
            // submits again, so no entry outlives the caller's slices.
            if unsafe { self.ring.submission().push(&e) }.is_err() {
                break;
            }
            pushed = i + 1;
        }
        loop {
            let want = self.send_res[from..pushed]
                .iter()
                .filter(|r| r.is_none())
                .count();
            if want == 0 {
                return Ok(pushed);
            }
            match self.ring.submit_and_wait(want) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                    ) => {}
                Err(e) => {
                    self.poisoned = true;
                    tracing::error!(reason = %e, "uring: io_uring_enter failed with sends in flight; backend stopped");
                    return Err(e);
                }
            }
            self.reap();
        }
    }

    fn check_poisoned(&self) -> io::Result<()> {
        if self.poisoned {
            Err(io::Error::other(
                "uring backend stopped after a failed io_uring_enter",
            ))
        } else {
            Ok(())
        }
    }
}

impl Backend for UringBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        let cap = batch
            .bufs
            .len()
            .min(batch.lens.len())
            .min(batch.addrs.len());
        batch.filled = 0;
        let RecvBatch {
            bufs, lens, addrs, ..
        } = batch;
        let mut k = 0;
        let mut bytes = 0u64;
        // The one copy the owned slots force: ring buffer -> slot.
        let n = self.recv_each(cap, &mut |from, data| {
            bufs[k][..data.len()].copy_from_slice(data);
            lens[k] = data.len();
            addrs[k] = from;
            bytes += data.len() as u64;
            k += 1;
        })?;
        self.stats.copies += n as u64;
        self.stats.copied_bytes += bytes;
        batch.filled = n;
        Ok(n)
    }

    /// Zero-copy: `f` sees a mutable view into the ring buffer each
    /// datagram arrived in; a buffer goes back to the ring once `f` has seen
    /// all its datagrams, and datagrams beyond the slot count of `batch`
    /// stay queued for the next call.
    fn recv_with(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        batch.filled = 0;
        self.recv_each(batch.bufs.len(), f)
    }

    /// Zero-copy forwarding: datagrams `f` sends on go out of the ring
    /// buffer they arrived in, before the buffers this call used up are
    /// handed back to the kernel. One call takes the completed buffers (at
    /// most as many as `batch` has slots, and a quarter of the ring) and
    /// hands `f` every datagram in them; a run to one destination coalesced
    /// on receive leaves as one GSO message over one contiguous iovec.
    fn recv_forward_batch(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn Forward,
    ) -> io::Result<Received> {
        batch.filled = 0;
        // At most a quarter of the ring held at once: the kernel keeps
        // receiving into the rest meanwhile.
        let max = batch.bufs.len().min(self.bufs.entries as usize / 4).max(1);
        let (mut msgs, mut used) = (
            std::mem::take(&mut self.msgs),
            std::mem::take(&mut self.used),
        );
        msgs.clear();
        used.clear();
        let stopped = self.gather(max, &mut msgs, &mut used);
        let mut passed = std::mem::take(&mut self.passed);
        passed.clear();
        let r = forward_messages(&mut self.bufs, &msgs, f, self.gso_max_seg, &mut passed);
        self.send_passed(&passed);
        for &bid in &used {
            self.recycle(bid);
        }
        self.passed = passed;
        self.msgs = msgs;
        self.used = used;
        let datagrams = self.finish_recv(stopped.map(|e| (r.datagrams, e)))?;
        Ok(Received {
            datagrams,
            forwarded: r.forwarded,
        })
    }

    fn send_batch(&mut self, out: &[OutDatagram<'_>]) -> io::Result<usize> {
        if let Err(e) = self.check_poisoned() {
            self.drops.failed += out.len() as u64;
            return Err(e);
        }
        if out.is_empty() {
            return Ok(0);
        }
        let mut runs = std::mem::take(&mut self.runs);
        plan_runs(out, self.gso_max_seg, &mut runs);
        self.runs = runs;
        self.build_send(out);
        self.send_res.clear();
        self.send_res.resize(self.runs.len(), None);
        let mut at = 0;
        while at < self.runs.len() {
            let to = (at + SEND_CHUNK).min(self.runs.len());
            let pushed = match self.submit_sends(at, to) {
                Ok(p) => p,
                Err(e) => {
                    // The ring failed: nothing after the reaped sends went.
                    let lost: usize = self
                        .runs
                        .iter()
                        .zip(&self.send_res)
                        .filter(|(_, r)| !matches!(r, Some(res) if *res >= 0))
                        .map(|(run, _)| run.count)
                        .sum();
                    self.drops.failed += lost as u64;
                    return Err(e);
                }
            };
            // Stop early when the socket is full.
            if pushed < to || self.send_res[at..pushed].contains(&Some(-libc::EAGAIN)) {
                break;
            }
            at = to;
        }
        // Every run is counted by its own result (the entries are not
        // linked: one after an EAGAIN may still have gone out). The value
        // returned is the prefix before the first run that did not go out
        // for want of room or by a socket error (the trait's contract).
        let mut sent = 0;
        let mut prefix = true;
        let mut first_err: Option<io::Error> = None;
        let mut refused = Vec::new();
        for (i, r) in self.runs.iter().enumerate() {
            match self.send_res[i] {
                Some(res) if res >= 0 => {
                    if prefix {
                        sent += r.count;
                    }
                    if r.count > 1 {
                        self.stats.gso_sends += 1;
                    }
                }
                Some(res) => {
                    let e = io::Error::from_raw_os_error(-res);
                    match run_failure(&e, r.count) {
                        RunFailure::Gso(kind) => {
                            refused.push((*r, kind));
                            if prefix {
                                sent += r.count;
                            }
                        }
                        RunFailure::Dropped => {
                            self.drops.count(&e, r.count);
                            if prefix {
                                sent += r.count;
                            }
                        }
                        RunFailure::Stop => {
                            self.drops.count(&e, r.count);
                            prefix = false;
                            first_err.get_or_insert(e);
                        }
                    }
                }
                None => {
                    // Never submitted: the socket was full.
                    self.drops.would_block += r.count as u64;
                    prefix = false;
                }
            }
        }
        if sent == 0 && refused.is_empty() {
            if let Some(e) = first_err.filter(|e| e.kind() != io::ErrorKind::WouldBlock) {
                return Err(e);
            }
        }
        if !refused.is_empty() {
            // Resend refused GSO runs one datagram per message; if that
            // works, GSO (or this segment size) was the problem.
            let mut singles = Vec::new();
            for (r, _) in &refused {
                singles.extend(out[r.start..r.start + r.count].iter().copied());
            }
            let was = self.gso_max_seg;
            self.gso_max_seg = 0;
            let ok = self.send_batch(&singles).unwrap_or(0);
            self.gso_max_seg = was;
            if ok > 0 {
                let mut limit = was;
                for (r, kind) in &refused {
                    limit = after_refusal(limit, *kind, r.seg);
                }
                self.gso_max_seg = limit;
                tracing::warn!(
                    max_seg = limit,
                    "uring: kernel refused a UDP GSO send but took the datagrams one by one; GSO limited (0 = off)"
                );
            }
            // Datagrams of refused runs that still did not go out.
            sent = sent.saturating_sub(singles.len() - ok.min(singles.len()));
        }
        Ok(sent)
    }

    fn send_drops(&self) -> SendDrops {
        self.drops
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.check_poisoned()?;
        if self.held.is_some() || !self.stash.is_empty() {
            return Ok(());
        }
        if self.reap() || !self.stash.is_empty() {
            return Ok(());
        }
        self.arm();
        let res = match timeout {
            Some(t) => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match res {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        self.reap();
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Wakeup> {
        self.event.clone()
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // Cancel the multishot requests and wait (bounded) until the kernel
        // has finished with them, so no completion writes into the buffer
        // mapping after it is unmapped.
        for (n, ud) in [RECV_TAG, WAKE_TAG].into_iter().enumerate() {
            let e = opcode::AsyncCancel::new(ud)
                .build()
                .user_data(CANCEL_TAG | n as u64);
            // SAFETY: a cancel entry references no memory.
            let _ = unsafe { self.ring.submission().push(&e) };
        }
        let ts = Timespec::from(Duration::from_millis(50));
        for _ in 0..20 {
            let args = SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap();
            if !self.recv_armed && !self.wake_armed {
                break;
            }
        }
        if self.recv_armed {
            // The kernel may still own the receive: leak the buffers rather
            // than unmap memory it could write to.
            tracing::warn!("uring: multishot receive not cancelled in time; leaking its buffers");
            let bufs = std::mem::replace(
                &mut self.bufs.bufs,
                Mapping {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
            );
            std::mem::forget(bufs);
        } else {
            let _ = self.ring.submitter().unregister_buf_ring(BGID);
        }
    }
}

// The provided-buffer ring layout assumes 16-byte descriptors.
const _: () = assert!(std::mem::size_of::<io_uring::types::BufRingEntry>() == 16);
