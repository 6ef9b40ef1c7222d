//! The `mmsg` backend (Linux): `recvmmsg`/`sendmmsg` on a non-blocking UDP
//! socket, a whole batch per syscall, with UDP GSO on send and GRO on
//! receive when the kernel allows them.
//!
//! Send: consecutive datagrams to the same destination with equal size (the
//! last of a run may be shorter) go out as one message carrying a
//! `UDP_SEGMENT` control message; the payload is gathered from the caller's
//! slices with one iovec per datagram, so nothing is copied in user space.
//! A GSO message the kernel refuses is resent one datagram per message: on
//! `EMSGSIZE` (segment above the route MTU) only larger segments stop being
//! coalesced; on `EINVAL`/`ENOPROTOOPT`/`EIO` GSO is turned off.
//!
//! Receive without GRO: `recvmmsg` writes straight into the batch slots (no
//! copy). With GRO the kernel may hand over a coalesced super-datagram of up
//! to 64 KiB, larger than a slot, so messages land in 64 KiB scratch buffers
//! and are split by the `UDP_GRO` segment size into slots (one copy per
//! datagram; [`Backend::recv_with`] hands out views of the scratch buffer
//! instead, with no copy). Segments that do not fit in the caller's batch stay pending
//! and are returned first by the next call; nothing is dropped or truncated
//! silently (datagrams larger than [`MAX_RECV_DATAGRAM`] are dropped and counted
//! in [`MmsgStats::oversized`]).

use super::linux::{
    addr_bytes, after_refusal, decode_addr, gro_segment, plan_runs, poll_two, probe_offloads,
    push_iovecs, run_failure, write_segment_cmsg, EventFd, GsoRefusal, PieceFn, RawAddr, Run,
    RunFailure, Segments, CMSG_BUF, GRO_BUF,
};
use super::{
    forward_messages, forward_slots, send_each, Backend, Forward, Message, OutDatagram, Passed,
    Received, RecvBatch, SendDrops, Wakeup, MAX_RECV_DATAGRAM,
};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

/// Most messages handed to one `sendmmsg` (the kernel's `UIO_MAXIOV`).
const MAX_MSGS_PER_CALL: usize = 1024;

/// Most 64 KiB GRO scratch buffers (one per message of a `recvmmsg`).
const MAX_GRO_BUFS: usize = 64;

/// Which offloads to try; each is still probed and may be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    /// Try UDP GSO (`UDP_SEGMENT`) on send.
    pub gso: bool,
    /// Try UDP GRO (`UDP_GRO`) on receive.
    pub gro: bool,
}

impl Default for Offload {
    fn default() -> Self {
        Self {
            gso: true,
            gro: true,
        }
    }
}

/// Counters of the `mmsg` backend (drop reasons and offload use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmsgStats {
    /// Datagrams dropped on receive because they exceed [`MAX_RECV_DATAGRAM`] or
    /// the kernel truncated them.
    pub oversized: u64,
    /// Datagrams dropped on receive because the sender address was not IP.
    pub bad_addr: u64,
    /// Messages sent with a `UDP_SEGMENT` control message.
    pub gso_sends: u64,
    /// Received messages that carried more than one GRO segment.
    pub gro_coalesced: u64,
    /// Datagrams copied from a scratch buffer into a `RecvBatch` slot.
    pub copies: u64,
}

/// One received message waiting (in a GRO scratch buffer) to be split.
#[derive(Clone, Copy)]
struct Held {
    from: Option<SocketAddr>,
    segs: Segments,
}

/// `recvmmsg`/`sendmmsg` backend.
pub struct MmsgBackend {
    socket: UdpSocket,
    event: Arc<EventFd>,
    /// Largest segment coalesced with GSO; 0 = GSO off.
    gso_max_seg: usize,
    gro: bool,
    stats: MmsgStats,
    drops: SendDrops,
    /// Runs of datagrams of the GRO scratch buffers to forward, sent
    /// before the buffers are reused.
    passed: Vec<Passed<usize>>,
    /// The held messages of a forwarding receive, gathered before their
    /// datagrams are handed over.
    msgs: Vec<Message<usize>>,
    // Send scratch, rebuilt on every call.
    runs: Vec<Run>,
    send_hdrs: Vec<libc::mmsghdr>,
    send_iov: Vec<libc::iovec>,
    /// iovecs per run (fewer than datagrams when they lie back to back).
    send_iov_counts: Vec<usize>,
    send_addrs: Vec<RawAddr>,
    send_cmsg: Vec<[u64; CMSG_BUF / 8]>,
    // Receive scratch, rebuilt on every call.
    recv_hdrs: Vec<libc::mmsghdr>,
    recv_iov: Vec<libc::iovec>,
    recv_addrs: Vec<RawAddr>,
    recv_cmsg: Vec<[u64; CMSG_BUF / 8]>,
    gro_bufs: Vec<Vec<u8>>,
    held: Vec<Held>,
    /// Next held message to split and the offset inside it.
    held_msg: usize,
    held_off: usize,
}

// SAFETY: the raw pointers inside the scratch `mmsghdr`/`iovec` vectors are
// written immediately before each syscall from data borrowed for that call
// only, and never read afterwards; moving the backend to another thread
// carries no reference to thread-local or borrowed state.
unsafe impl Send for MmsgBackend {}

impl MmsgBackend {
    /// Binds `addr` and probes GSO and GRO.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::new(UdpSocket::bind(addr)?, Offload::default())
    }

    /// Wraps an already bound socket (made non-blocking here) and probes the
    /// offloads asked for in `want`; a refused one is disabled with a logged
    /// reason.
    pub fn new(socket: UdpSocket, want: Offload) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let (gso, gro) = probe_offloads(fd, want.gso, want.gro, "mmsg");
        Ok(Self {
            socket,
            event: Arc::new(EventFd::new()?),
            gso_max_seg: if gso { MAX_RECV_DATAGRAM } else { 0 },
            gro,
            stats: MmsgStats::default(),
            drops: SendDrops::default(),
            passed: Vec::with_capacity(MAX_GRO_BUFS),
            msgs: Vec::with_capacity(MAX_GRO_BUFS),
            runs: Vec::new(),
            send_hdrs: Vec::new(),
            send_iov: Vec::new(),
            send_iov_counts: Vec::new(),
            send_addrs: Vec::new(),
            send_cmsg: Vec::new(),
            recv_hdrs: Vec::new(),
            recv_iov: Vec::new(),
            recv_addrs: Vec::new(),
            recv_cmsg: Vec::new(),
            gro_bufs: Vec::new(),
            held: Vec::new(),
            held_msg: 0,
            held_off: 0,
        })
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

    /// Drop and offload counters since start.
    pub fn stats(&self) -> MmsgStats {
        self.stats
    }

    fn has_held(&self) -> bool {
        self.held_msg < self.held.len()
    }

    /// Hands held datagrams to `f` (at most `max` in total, counting the
    /// `n` already handed over); returns the new count.
    fn drain_held(
        &mut self,
        max: usize,
        n: usize,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]),
    ) -> usize {
        self.drain_held_at(max, n, &mut |from, _, _, d| f(from, d))
    }

    /// [`Self::drain_held`], telling `f` also which scratch buffer and
    /// byte range each datagram is.
    fn drain_held_at(&mut self, max: usize, mut n: usize, f: PieceFn<'_, usize>) -> usize {
        while n < max && self.held_msg < self.held.len() {
            let h = self.held[self.held_msg];
            let Some(range) = h.segs.piece(self.held_off) else {
                self.held_msg += 1;
                self.held_off = 0;
                continue;
            };
            self.held_off = range.end.max(self.held_off + 1);
            let len = range.len();
            let Some(from) = h.from else {
                self.stats.bad_addr += 1;
                continue;
            };
            if len > MAX_RECV_DATAGRAM {
                self.stats.oversized += 1;
                tracing::trace!(len, "mmsg: dropped datagram larger than MAX_RECV_DATAGRAM");
                continue;
            }
            f(
                from,
                self.held_msg,
                range.clone(),
                &mut self.gro_bufs[self.held_msg][range],
            );
            n += 1;
        }
        n
    }

    /// The rest of every held message, for [`Backend::recv_forward_batch`]:
    /// its datagrams are handed to `f` a chunk at a time and the ones it
    /// routes sent on ([`Self::send_passed`]) before the scratch buffers
    /// can be reused; counted into `got`.
    fn forward_held(&mut self, f: &mut dyn Forward, got: &mut Received) {
        let mut msgs = std::mem::take(&mut self.msgs);
        msgs.clear();
        while self.held_msg < self.held.len() {
            let (j, off) = (self.held_msg, self.held_off);
            let h = self.held[j];
            self.held_msg += 1;
            self.held_off = 0;
            match h.from {
                Some(from) => {
                    self.stats.oversized += h.segs.push_message(&mut msgs, from, j, 0, off) as u64;
                }
                None => self.stats.bad_addr += h.segs.left(off) as u64,
            }
        }
        let mut passed = std::mem::take(&mut self.passed);
        passed.clear();
        let r = forward_messages(&mut self.gro_bufs, &msgs, f, self.gso_max_seg, &mut passed);
        got.datagrams += r.datagrams;
        got.forwarded += r.forwarded;
        self.send_passed(&passed);
        self.passed = passed;
        self.msgs = msgs;
    }

    /// Sends runs of datagrams out of the scratch buffers: a run of more
    /// than one datagram as one GSO message over one iovec, as it arrived
    /// (segment size unchanged), all in one `sendmmsg` where the socket
    /// takes them. What a GSO send is refused for, or what a failing
    /// socket does not take, goes through [`Backend::send_batch`] datagram
    /// by datagram, which retries without GSO and counts the losses.
    fn send_passed(&mut self, passed: &[Passed<usize>]) {
        let bufs = std::mem::take(&mut self.gro_bufs);
        let bytes = |p: &Passed<usize>| {
            bufs.get(p.buf)
                .and_then(|b| b.get(p.range.clone()))
                .unwrap_or(&[])
        };
        self.send_iov.clear();
        self.send_addrs.clear();
        self.send_cmsg.clear();
        self.send_hdrs.clear();
        for p in passed {
            let b = bytes(p);
            self.send_iov.push(libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            });
            self.send_addrs.push(RawAddr::from_std(p.to));
            self.send_cmsg.push([0u64; CMSG_BUF / 8]);
        }
        for (i, p) in passed.iter().enumerate() {
            // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
            let mut h = unsafe { std::mem::zeroed::<libc::mmsghdr>() };
            h.msg_hdr.msg_name =
                (&mut self.send_addrs[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = self.send_addrs[i].len;
            h.msg_hdr.msg_iov = &mut self.send_iov[i];
            h.msg_hdr.msg_iovlen = 1;
            if p.count() > 1 {
                let len = write_segment_cmsg(&mut self.send_cmsg[i], p.seg as u16);
                h.msg_hdr.msg_control = self.send_cmsg[i].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = len as _;
            }
            self.send_hdrs.push(h);
        }
        let mut r = 0;
        while r < passed.len() {
            let k = (passed.len() - r).min(MAX_MSGS_PER_CALL);
            // SAFETY: send_hdrs[r..r + k] point at iovecs over `bufs` (alive
            // and unmoved until the end of this function), names and control
            // buffers owned by `self` and not moved since they were built.
            let rc = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    self.send_hdrs.as_mut_ptr().add(r),
                    k as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc > 0 {
                let done = rc as usize;
                self.stats.gso_sends +=
                    passed[r..r + done].iter().filter(|p| p.count() > 1).count() as u64;
                r += done;
                continue;
            }
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The rest goes datagram by datagram, planned and counted as
            // every send is.
            send_each(&passed[r..], bytes, |views| {
                if let Err(e) = self.send_batch(views) {
                    tracing::trace!(error = %e, "mmsg: forward send failed");
                }
            });
            break;
        }
        self.gro_bufs = bufs;
    }

    /// Receives through the 64 KiB scratch buffers and hands each datagram
    /// to `f` in place (GRO super-datagrams split by segment size).
    fn recv_scratch(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        let mut n = self.drain_held(max, 0, f);
        if n < max && !self.has_held() {
            match self.recv_gro(max - n) {
                Ok(()) => n = self.drain_held(max, n, f),
                Err(e) if n == 0 => return Err(e),
                Err(_) => {}
            }
        }
        Ok(n)
    }

    /// One `recvmmsg` into the GRO scratch buffers; fills `held`.
    fn recv_gro(&mut self, want: usize) -> io::Result<()> {
        let k = want.min(MAX_GRO_BUFS);
        while self.gro_bufs.len() < k {
            self.gro_bufs.push(vec![0u8; GRO_BUF]);
        }
        self.prepare_recv(k);
        for j in 0..k {
            self.recv_iov[j] = libc::iovec {
                iov_base: self.gro_bufs[j].as_mut_ptr().cast(),
                iov_len: GRO_BUF,
            };
        }
        let got = self.recvmmsg(k)?;
        self.held.clear();
        self.held_msg = 0;
        self.held_off = 0;
        for j in 0..got {
            let hdr = &self.recv_hdrs[j];
            if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.stats.oversized += 1;
                continue;
            }
            let len = hdr.msg_len as usize;
            let from = decode_addr(addr_bytes(
                &self.recv_addrs[j].storage,
                hdr.msg_hdr.msg_namelen,
            ));
            // `msg_controllen` is usize on glibc, socklen_t on musl.
            #[allow(clippy::unnecessary_cast)]
            let ctl_len = (hdr.msg_hdr.msg_controllen as usize).min(CMSG_BUF);
            let seg = gro_segment(cmsg_bytes(&self.recv_cmsg[j], ctl_len)).unwrap_or(0);
            let seg = if seg >= len { 0 } else { seg };
            if seg != 0 {
                self.stats.gro_coalesced += 1;
            }
            // Keep `gro_bufs[i]` paired with `held[i]`: close gaps left by
            // dropped messages by moving buffers, not bytes.
            let w = self.held.len();
            if w != j {
                self.gro_bufs.swap(w, j);
            }
            self.held.push(Held {
                from,
                segs: Segments { len, seg },
            });
        }
        Ok(())
    }

    /// Sizes the receive scratch for `k` messages and points names and
    /// control buffers; iovecs are set by the caller.
    fn prepare_recv(&mut self, k: usize) {
        let zero_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        self.recv_iov.resize(k, zero_iov);
        self.recv_addrs.resize(k, RawAddr::empty());
        self.recv_cmsg.resize(k, [0u64; CMSG_BUF / 8]);
        // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
        let zero_hdr = unsafe { std::mem::zeroed::<libc::mmsghdr>() };
        self.recv_hdrs.resize(k, zero_hdr);
    }

    /// Runs `recvmmsg` over the first `k` prepared entries; returns how many
    /// messages arrived (0 when none are ready).
    fn recvmmsg(&mut self, k: usize) -> io::Result<usize> {
        let gro = self.gro;
        for j in 0..k {
            let h = &mut self.recv_hdrs[j];
            h.msg_len = 0;
            h.msg_hdr.msg_name =
                (&mut self.recv_addrs[j].storage as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.recv_iov[j];
            h.msg_hdr.msg_iovlen = 1;
            if gro {
                h.msg_hdr.msg_control = self.recv_cmsg[j].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = CMSG_BUF as _;
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            h.msg_hdr.msg_flags = 0;
        }
        loop {
            // SAFETY: the first `k` headers point at live names, iovecs and
            // control buffers owned by `self` (iovecs at caller buffers that
            // outlive this call); the kernel writes at most their lengths.
            let rc = unsafe {
                libc::recvmmsg(
                    self.socket.as_raw_fd(),
                    self.recv_hdrs.as_mut_ptr(),
                    k as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                // A queued ICMP error says nothing about the socket; the
                // next call reads the datagrams behind it.
                io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => continue,
                _ => return Err(e),
            }
        }
    }

    /// Receives straight into the batch slots (no GRO).
    fn recv_direct(&mut self, batch: &mut RecvBatch, cap: usize) -> io::Result<usize> {
        self.prepare_recv(cap);
        for j in 0..cap {
            self.recv_iov[j] = libc::iovec {
                iov_base: batch.bufs[j].as_mut_ptr().cast(),
                iov_len: MAX_RECV_DATAGRAM,
            };
        }
        let got = self.recvmmsg(cap)?;
        let mut n = 0;
        for j in 0..got {
            let hdr = &self.recv_hdrs[j];
            if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.stats.oversized += 1;
                tracing::trace!("mmsg: dropped datagram larger than MAX_RECV_DATAGRAM");
                continue;
            }
            let Some(from) = decode_addr(addr_bytes(
                &self.recv_addrs[j].storage,
                hdr.msg_hdr.msg_namelen,
            )) else {
                self.stats.bad_addr += 1;
                continue;
            };
            let len = hdr.msg_len as usize;
            if n != j {
                // Close the gap left by a dropped one: move the buffer, not
                // the bytes.
                batch.bufs.swap(n, j);
            }
            batch.lens[n] = len;
            batch.addrs[n] = from;
            n += 1;
        }
        Ok(n)
    }

    /// Builds one `mmsghdr` per run of `runs[from..]` over `out`.
    fn build_send(&mut self, out: &[OutDatagram<'_>], from: usize) {
        let runs = &self.runs[from..];
        self.send_iov.clear();
        self.send_addrs.clear();
        self.send_cmsg.clear();
        self.send_hdrs.clear();
        self.send_iov_counts.clear();
        for r in runs {
            self.send_iov_counts.push(push_iovecs(
                &mut self.send_iov,
                &out[r.start..r.start + r.count],
            ));
            self.send_addrs.push(RawAddr::from_std(out[r.start].to));
            self.send_cmsg.push([0u64; CMSG_BUF / 8]);
        }
        let mut iov_at = 0;
        for (i, r) in runs.iter().enumerate() {
            let iovs = self.send_iov_counts[i];
            // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
            let mut h = unsafe { std::mem::zeroed::<libc::mmsghdr>() };
            h.msg_hdr.msg_name =
                (&mut self.send_addrs[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = self.send_addrs[i].len;
            h.msg_hdr.msg_iov = &mut self.send_iov[iov_at];
            h.msg_hdr.msg_iovlen = iovs as _;
            if r.count > 1 {
                let len = write_segment_cmsg(&mut self.send_cmsg[i], r.seg as u16);
                h.msg_hdr.msg_control = self.send_cmsg[i].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = len as _;
            }
            iov_at += iovs;
            self.send_hdrs.push(h);
        }
    }
}

/// The first `len` bytes of an aligned control buffer.
fn cmsg_bytes(buf: &[u64; CMSG_BUF / 8], len: usize) -> &[u8] {
    // SAFETY: a [u64; N] is 8*N initialised bytes; `len` is clamped to that.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len.min(CMSG_BUF)) }
}

impl Backend for MmsgBackend {
    fn name(&self) -> &'static str {
        "mmsg"
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
        if cap == 0 {
            return Ok(0);
        }
        // Without GRO (and nothing queued by `recv_with`) the kernel writes
        // straight into the slots; otherwise each datagram is copied once
        // from the scratch buffer it arrived in.
        let n = if self.gro || self.has_held() {
            let RecvBatch {
                bufs, lens, addrs, ..
            } = batch;
            let mut k = 0;
            let n = self.recv_scratch(cap, &mut |from, data| {
                bufs[k][..data.len()].copy_from_slice(data);
                lens[k] = data.len();
                addrs[k] = from;
                k += 1;
            })?;
            self.stats.copies += n as u64;
            n
        } else {
            self.recv_direct(batch, cap)?
        };
        batch.filled = n;
        Ok(n)
    }

    /// Zero-copy: with GRO (or datagrams queued from an earlier call) `f`
    /// sees mutable views into the scratch buffer each datagram arrived in,
    /// super-datagrams split by segment size; without GRO the kernel writes
    /// straight into the slots of `batch` and `f` sees those.
    fn recv_with(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        let cap = batch
            .bufs
            .len()
            .min(batch.lens.len())
            .min(batch.addrs.len());
        batch.filled = 0;
        if cap == 0 {
            return Ok(0);
        }
        if self.gro || self.has_held() {
            return self.recv_scratch(cap, f);
        }
        let n = self.recv_direct(batch, cap)?;
        for i in 0..n {
            let len = batch.lens[i];
            f(batch.addrs[i], &mut batch.bufs[i][..len]);
        }
        Ok(n)
    }

    fn send_batch(&mut self, out: &[OutDatagram<'_>]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut runs = std::mem::take(&mut self.runs);
        plan_runs(out, self.gso_max_seg, &mut runs);
        self.runs = runs;
        self.build_send(out, 0);
        // `base` is the index in `runs` that send_hdrs[0] corresponds to.
        let mut base = 0;
        let mut r = 0;
        let mut sent = 0usize;
        // Set after a GSO message was refused and the rest was re-planned
        // without GSO: the next single send tells whether GSO was at fault.
        let mut gso_suspect: Option<(GsoRefusal, usize)> = None;
        // The error that ended the batch early, if one did.
        let mut stop: Option<io::Error> = None;
        while r < self.runs.len() {
            let k = (self.runs.len() - r).min(MAX_MSGS_PER_CALL);
            // SAFETY: send_hdrs[r - base ..] point at iovecs over the
            // caller's slices (alive for this call), names and control
            // buffers owned by `self` and not moved since build_send.
            let rc = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    self.send_hdrs.as_mut_ptr().add(r - base),
                    k as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc > 0 {
                let done = rc as usize;
                for run in &self.runs[r..r + done] {
                    sent += run.count;
                    if run.count > 1 {
                        self.stats.gso_sends += 1;
                    }
                }
                if let Some((kind, seg)) = gso_suspect.take() {
                    self.gso_max_seg = after_refusal(self.gso_max_seg, kind, seg);
                    tracing::warn!(
                        ?kind,
                        seg,
                        max_seg = self.gso_max_seg,
                        "mmsg: kernel refused a UDP GSO send but took the same datagrams one by one; GSO limited (0 = off)"
                    );
                }
                r += done;
                continue;
            }
            let e = io::Error::last_os_error();
            let run = self.runs[r];
            match e.kind() {
                io::ErrorKind::WouldBlock => {
                    stop = Some(e);
                    break;
                }
                io::ErrorKind::Interrupted => continue,
                _ => {}
            }
            match run_failure(&e, run.count) {
                RunFailure::Gso(kind) => {
                    // Re-plan everything from this run on without GSO and try
                    // again; whether GSO is to blame is decided by the next send.
                    let start = run.start;
                    let mut tail = Vec::new();
                    plan_runs(&out[start..], 0, &mut tail);
                    self.runs.truncate(r);
                    self.runs.extend(tail.into_iter().map(|t| Run {
                        start: t.start + start,
                        ..t
                    }));
                    self.build_send(out, r);
                    base = r;
                    gso_suspect = Some((kind, run.seg));
                    tracing::trace!(reason = %e, "mmsg: GSO send refused, retrying without GSO");
                }
                RunFailure::Dropped => {
                    // This datagram (or destination) is the problem, not GSO.
                    gso_suspect = None;
                    self.drops.count(&e, run.count);
                    tracing::trace!(to = %out[run.start].to, reason = %e, "mmsg: datagram dropped on send");
                    sent += run.count;
                    r += 1;
                }
                RunFailure::Stop => {
                    stop = Some(e);
                    break;
                }
            }
        }
        // Whatever did not go out is counted under the error that stopped
        // the batch (a full buffer, or a failure of the socket).
        let lost = out.len() - sent.min(out.len());
        if let Some(e) = stop {
            if lost > 0 {
                self.drops.count(&e, lost);
            }
            if sent == 0 && e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(sent)
    }

    fn send_drops(&self) -> SendDrops {
        self.drops
    }

    /// Zero-copy forwarding: datagrams `f` sends on go out of the GRO
    /// scratch buffer they arrived in (or the slot of `batch`), before the
    /// buffer is reused. With GRO one call takes up to one `recvmmsg` of
    /// messages (as many as `batch` has slots) and hands `f` every
    /// datagram of them; the datagrams of a super-datagram that all go to
    /// one destination leave as it came, one GSO message of the same
    /// segment size (GRO passthrough), and every run of them to one
    /// destination otherwise.
    fn recv_forward_batch(
        &mut self,
        batch: &mut RecvBatch,
        f: &mut dyn Forward,
    ) -> io::Result<Received> {
        let cap = batch
            .bufs
            .len()
            .min(batch.lens.len())
            .min(batch.addrs.len());
        batch.filled = 0;
        if cap == 0 {
            return Ok(Received::default());
        }
        if !(self.gro || self.has_held()) {
            let n = self.recv_direct(batch, cap)?;
            batch.filled = n;
            return forward_slots(self, batch, n, f);
        }
        let mut got = Received::default();
        // What an earlier `recv_batch` or `recv_with` left held goes first.
        self.forward_held(f, &mut got);
        if got.datagrams < cap {
            // The scratch buffers' forwards went out: they may be reused.
            match self.recv_gro(cap) {
                Ok(()) => self.forward_held(f, &mut got),
                Err(e) if got.datagrams == 0 => return Err(e),
                Err(_) => {}
            }
        }
        Ok(got)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.has_held() {
            return Ok(());
        }
        poll_two(self.socket.as_raw_fd(), &self.event, timeout)
    }

    fn waker(&self) -> Arc<dyn Wakeup> {
        self.event.clone()
    }
}

#[cfg(test)]
mod tests;
