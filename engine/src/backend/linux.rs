//! Linux pieces shared by the `mmsg` and `uring` backends: socket addresses
//! in C form, the eventfd waker, UDP GSO run planning, `UDP_GRO` control
//! messages and splitting of coalesced receive buffers.

use super::{Message, OutDatagram, Wakeup, MAX_RECV_DATAGRAM};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Most segments the kernel accepts in one GSO send (`UDP_MAX_SEGMENTS` is
/// 64 on older kernels, 128 on newer ones; we stay within both).
pub(crate) const MAX_GSO_SEGMENTS: usize = 64;

/// Most payload bytes in one GSO super-datagram (IPv4 UDP limit, 65 507,
/// rounded down so IPv6 and options fit too).
pub(crate) const MAX_GSO_BYTES: usize = 65_000;

/// Largest payload a GRO-enabled socket can hand over in one receive: the
/// whole coalesced super-datagram (at most one IP packet, 64 KiB).
pub(crate) const GRO_BUF: usize = 65_536;

/// Room for one `UDP_SEGMENT` / `UDP_GRO` control message (and a spare one).
pub(crate) const CMSG_BUF: usize = 64;

/// A callback over received datagrams that also learns where each lies:
/// the buffer (`B`: an index or a ring buffer id) and the byte range in it.
pub(crate) type PieceFn<'a, B> =
    &'a mut dyn FnMut(SocketAddr, B, std::ops::Range<usize>, &mut [u8]);

/// A socket address in the C layout, ready for `msg_name`.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    /// Storage large enough for IPv4 and IPv6.
    pub storage: libc::sockaddr_storage,
    /// Meaningful length of `storage`.
    pub len: libc::socklen_t,
}

impl RawAddr {
    /// An all-zero address of full capacity (for receiving into).
    pub fn empty() -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let storage = unsafe { mem::zeroed::<libc::sockaddr_storage>() };
        Self {
            storage,
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// Encodes a std address.
    pub fn from_std(addr: SocketAddr) -> Self {
        let mut raw = Self::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned
                // for sockaddr_in; we write one value at its start.
                unsafe {
                    std::ptr::write(
                        (&mut raw.storage as *mut libc::sockaddr_storage)
                            .cast::<libc::sockaddr_in>(),
                        sin,
                    )
                };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned
                // for sockaddr_in6; we write one value at its start.
                unsafe {
                    std::ptr::write(
                        (&mut raw.storage as *mut libc::sockaddr_storage)
                            .cast::<libc::sockaddr_in6>(),
                        sin6,
                    )
                };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }
}

/// Decodes a C socket address of `len` meaningful bytes (as filled in by the
/// kernel); `None` for families other than IPv4/IPv6 or short lengths.
pub(crate) fn decode_addr(bytes: &[u8]) -> Option<SocketAddr> {
    if bytes.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]) as libc::c_int;
    if family == libc::AF_INET && bytes.len() >= mem::size_of::<libc::sockaddr_in>() {
        let port = u16::from_be_bytes([bytes[2], bytes[3]]);
        let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
        Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
    } else if family == libc::AF_INET6 && bytes.len() >= mem::size_of::<libc::sockaddr_in6>() {
        let port = u16::from_be_bytes([bytes[2], bytes[3]]);
        let flow = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&bytes[8..24]);
        let scope = u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(octets),
            port,
            flow,
            scope,
        )))
    } else {
        None
    }
}

/// Views the first `len` bytes of a kernel-filled address as a byte slice.
pub(crate) fn addr_bytes(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> &[u8] {
    let len = (len as usize).min(mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `storage` is a live, initialised sockaddr_storage and `len` is
    // clamped to its size.
    unsafe { std::slice::from_raw_parts((storage as *const libc::sockaddr_storage).cast(), len) }
}

/// An eventfd used to interrupt a blocked `wait`.
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    /// Creates a non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with constant flags; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Resets the counter (non-blocking; a zero counter is not an error).
    pub fn drain(&self) {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a local u64 from our own eventfd.
        let _ = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                mem::size_of::<u64>(),
            )
        };
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Wakeup for EventFd {
    fn wake(&self) {
        let v = 1u64;
        // SAFETY: writes 8 bytes from a local u64 to our own eventfd. A
        // failure (counter saturated) means a wake is already pending.
        let _ = unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&v as *const u64).cast(),
                mem::size_of::<u64>(),
            )
        };
    }
}

/// Blocks until `sock` is readable, `event` fires, or `timeout` passes.
/// Drains the eventfd when it fired.
pub(crate) fn poll_two(sock: RawFd, event: &EventFd, timeout: Option<Duration>) -> io::Result<()> {
    let mut fds = [
        libc::pollfd {
            fd: sock,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: event.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a live array of two pollfd, `ts_ptr` is null or points
    // to a live timespec, the signal mask is null (unchanged).
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(e)
        };
    }
    if fds[1].revents != 0 {
        event.drain();
    }
    Ok(())
}

/// Sets an integer socket option.
pub(crate) fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Asks whether the kernel knows `UDP_SEGMENT` on this socket (the GSO
/// probe). `Err` carries the kernel's reason.
pub(crate) fn probe_gso(fd: RawFd) -> io::Result<()> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a live c_int and its size for the kernel to fill.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Turns on `UDP_GRO` (the GRO probe). `Err` carries the kernel's reason.
/// Probes the offloads a backend asked for and returns `(gso, gro)`: each
/// one refused by the kernel is off, with the reason logged under `backend`.
pub(crate) fn probe_offloads(
    fd: RawFd,
    want_gso: bool,
    want_gro: bool,
    backend: &str,
) -> (bool, bool) {
    let gso = want_gso
        && match probe_gso(fd) {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(reason = %e, "{backend}: UDP GSO unavailable, one datagram per send");
                false
            }
        };
    let gro = want_gro
        && match enable_gro(fd) {
            Ok(()) => true,
            Err(e) => {
                tracing::info!(reason = %e, "{backend}: UDP GRO unavailable, one datagram per receive");
                false
            }
        };
    (gso, gro)
}

pub(crate) fn enable_gro(fd: RawFd) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// How the kernel turned down a GSO message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GsoRefusal {
    /// `EMSGSIZE`: segment plus headers exceed the route's MTU; smaller
    /// segments can still be coalesced.
    TooBig,
    /// `EINVAL`/`ENOPROTOOPT`/`EIO`: the kernel or device refuses GSO.
    Refused,
}

/// Classifies a send error of a message that carried `UDP_SEGMENT`.
pub(crate) fn gso_refusal(e: &io::Error) -> Option<GsoRefusal> {
    match e.raw_os_error() {
        Some(libc::EMSGSIZE) => Some(GsoRefusal::TooBig),
        Some(libc::EINVAL) | Some(libc::ENOPROTOOPT) | Some(libc::EIO) => Some(GsoRefusal::Refused),
        _ => None,
    }
}

/// The largest segment size still coalesced after a refusal of a run of
/// `seg`-byte segments was confirmed (the same datagrams then went out one
/// by one): below `seg` for [`GsoRefusal::TooBig`], 0 (GSO off) otherwise.
pub(crate) fn after_refusal(max_seg: usize, kind: GsoRefusal, seg: usize) -> usize {
    match kind {
        GsoRefusal::TooBig => max_seg.min(seg.saturating_sub(1)),
        GsoRefusal::Refused => 0,
    }
}

/// True for send errors that concern one datagram or destination only; the
/// datagram is dropped (counted as handled) and the batch goes on.
pub(crate) fn is_per_datagram_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::ECONNRESET)
            | Some(libc::ENETUNREACH)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::EHOSTDOWN)
            | Some(libc::ENETDOWN)
            | Some(libc::EADDRNOTAVAIL)
            | Some(libc::EACCES)
            | Some(libc::EPERM)
            | Some(libc::EMSGSIZE)
            | Some(libc::EAFNOSUPPORT)
    )
}

/// True for send errors that drop the datagrams of the message that failed
/// and let the rest of the batch go on: [`is_per_datagram_error`], or
/// `EINVAL` for this message (its address, size or control data).
pub(crate) fn drops_datagram(e: &io::Error) -> bool {
    is_per_datagram_error(e) || e.raw_os_error() == Some(libc::EINVAL)
}

/// What a failed send of one message (a [`Run`]) means for its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunFailure {
    /// The kernel refused a GSO message: its datagrams are to be resent
    /// one per message, which tells whether GSO was at fault.
    Gso(GsoRefusal),
    /// The run's datagrams are dropped (counted) and the batch goes on.
    Dropped,
    /// The socket is full or failed: the batch stops at this run.
    Stop,
}

/// Classifies the send error `e` of a message carrying `count` datagrams
/// (more than one: a GSO message).
pub(crate) fn run_failure(e: &io::Error, count: usize) -> RunFailure {
    if count > 1 {
        if let Some(kind) = gso_refusal(e) {
            return RunFailure::Gso(kind);
        }
    }
    if drops_datagram(e) {
        RunFailure::Dropped
    } else {
        RunFailure::Stop
    }
}

/// A run of consecutive datagrams sent as one message: same destination,
/// `seg` bytes each except possibly a shorter last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// Index of the first datagram in the batch.
    pub start: usize,
    /// Number of datagrams in the run.
    pub count: usize,
    /// Segment size (the length of the first datagram).
    pub seg: usize,
}

/// Splits `out` into runs; only segments of at most `max_seg` bytes are
/// coalesced (0: every run has one datagram).
pub(crate) fn plan_runs(out: &[OutDatagram<'_>], max_seg: usize, runs: &mut Vec<Run>) {
    runs.clear();
    let mut i = 0;
    while i < out.len() {
        let seg = out[i].bytes.len();
        let mut count = 1;
        let mut total = seg;
        // Zero-length and oversized segments never coalesce.
        if seg > 0 && seg <= max_seg {
            while i + count < out.len() && count < MAX_GSO_SEGMENTS {
                let next = &out[i + count];
                let len = next.bytes.len();
                if next.to != out[i].to || len == 0 || len > seg || total + len > MAX_GSO_BYTES {
                    break;
                }
                count += 1;
                total += len;
                if len < seg {
                    // A shorter datagram can only close a run.
                    break;
                }
            }
        }
        runs.push(Run {
            start: i,
            count,
            seg,
        });
        i += count;
    }
}

/// Appends iovecs over the bytes of `run` to `iov`, one per datagram
/// except that datagrams lying back to back in memory (pieces of one GRO
/// receive buffer being forwarded) share one; returns how many it pushed.
pub(crate) fn push_iovecs(iov: &mut Vec<libc::iovec>, run: &[OutDatagram<'_>]) -> usize {
    let first = iov.len();
    for d in run {
        let base = d.bytes.as_ptr();
        if iov.len() > first {
            if let Some(last) = iov.last_mut() {
                if (last.iov_base as *const u8).wrapping_add(last.iov_len) == base {
                    last.iov_len += d.bytes.len();
                    continue;
                }
            }
        }
        iov.push(libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: d.bytes.len(),
        });
    }
    iov.len() - first
}

/// Writes one `UDP_SEGMENT` control message into `buf`; returns its length.
pub(crate) fn write_segment_cmsg(buf: &mut [u64; CMSG_BUF / 8], seg: u16) -> usize {
    // SAFETY: CMSG_* only compute sizes from constants.
    let (space, len) = unsafe {
        (
            libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize,
            libc::CMSG_LEN(mem::size_of::<u16>() as u32) as usize,
        )
    };
    let hdr = libc::cmsghdr {
        cmsg_len: len as _,
        cmsg_level: libc::SOL_UDP,
        cmsg_type: libc::UDP_SEGMENT,
    };
    let hdr_size = mem::size_of::<libc::cmsghdr>();
    // SAFETY: `buf` is 8-byte aligned and CMSG_BUF bytes long, which holds a
    // cmsghdr plus a u16 (`space` <= CMSG_BUF, checked by the assert below in
    // tests); we write the header at offset 0 and the data right after it,
    // the place CMSG_DATA points to for a header at offset 0.
    unsafe {
        let base = buf.as_mut_ptr().cast::<u8>();
        std::ptr::write(base.cast::<libc::cmsghdr>(), hdr);
        std::ptr::write_unaligned(base.add(hdr_size).cast::<u16>(), seg);
    }
    space
}

/// Finds the `UDP_GRO` segment size in a received control buffer. Total
/// parser: any byte string yields a value or `None`.
pub(crate) fn gro_segment(control: &[u8]) -> Option<usize> {
    let hdr = mem::size_of::<libc::cmsghdr>();
    let align = mem::size_of::<usize>();
    let mut off = 0usize;
    loop {
        let at = |from: usize, n: usize| -> Option<&[u8]> {
            control.get(off.checked_add(from)?..off.checked_add(from)?.checked_add(n)?)
        };
        let word = mem::size_of::<usize>();
        let mut lb = [0u8; mem::size_of::<usize>()];
        lb.copy_from_slice(at(0, word)?);
        let cmsg_len = usize::from_ne_bytes(lb);
        let lvl = at(word, 4)?;
        let typ = at(word + 4, 4)?;
        let level = i32::from_ne_bytes([lvl[0], lvl[1], lvl[2], lvl[3]]);
        let kind = i32::from_ne_bytes([typ[0], typ[1], typ[2], typ[3]]);
        if cmsg_len < hdr {
            return None;
        }
        if level == libc::SOL_UDP && kind == libc::UDP_GRO {
            let data = at(hdr, cmsg_len - hdr)?;
            // The kernel reports an int; accept a u16 too.
            let seg = match data.len() {
                n if n >= 4 => {
                    i32::from_ne_bytes([data[0], data[1], data[2], data[3]]).max(0) as usize
                }
                n if n >= 2 => u16::from_ne_bytes([data[0], data[1]]) as usize,
                _ => return None,
            };
            return if seg == 0 { None } else { Some(seg) };
        }
        let step = cmsg_len.checked_add(align - 1)? / align * align;
        off = off.checked_add(step)?;
    }
}

/// Where the datagrams of one received buffer lie: `len` bytes, split into
/// `seg`-sized pieces (the last may be shorter). `seg == 0` means one piece.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments {
    /// Total payload bytes.
    pub len: usize,
    /// Segment size reported by `UDP_GRO` (0 when not coalesced).
    pub seg: usize,
}

impl Segments {
    /// Datagrams left from `off` (a piece boundary) on.
    pub fn left(&self, off: usize) -> usize {
        if off >= self.len {
            return usize::from(off == 0 && self.len == 0);
        }
        if self.seg == 0 {
            1
        } else {
            (self.len - off).div_ceil(self.seg)
        }
    }

    /// Pushes the datagrams of this buffer from `off` on as one
    /// [`Message`] of buffer `buf` (payload at `base` in it) from `from`;
    /// datagrams longer than [`MAX_RECV_DATAGRAM`] are left out. Returns
    /// how many were left out.
    pub fn push_message<B>(
        &self,
        msgs: &mut Vec<Message<B>>,
        from: SocketAddr,
        buf: B,
        base: usize,
        off: usize,
    ) -> usize {
        let left = self.left(off);
        if left == 0 {
            return 0;
        }
        let piece = if self.seg == 0 { self.len } else { self.seg };
        if piece <= MAX_RECV_DATAGRAM {
            msgs.push(Message {
                from,
                buf,
                range: base + off..base + self.len,
                seg: self.seg,
            });
            return 0;
        }
        // Every full segment is too large; a shorter last one may fit.
        let tail = if self.seg == 0 {
            0
        } else {
            (self.len - off) % self.seg
        };
        if tail > 0 && tail <= MAX_RECV_DATAGRAM {
            msgs.push(Message {
                from,
                buf,
                range: base + self.len - tail..base + self.len,
                seg: 0,
            });
            return left - 1;
        }
        left
    }

    /// The byte range of the piece starting at `off`, or `None` at the end.
    pub fn piece(&self, off: usize) -> Option<std::ops::Range<usize>> {
        if off >= self.len && !(off == 0 && self.len == 0) {
            return None;
        }
        let end = if self.seg == 0 {
            self.len
        } else {
            (off + self.seg).min(self.len)
        };
        Some(off..end)
    }
}

/// Raises `SO_RCVBUF`/`SO_SNDBUF` towards `bytes` (best effort; the kernel
/// caps at `net.core.{r,w}mem_max`).
pub(crate) fn grow_buffers(fd: RawFd, bytes: usize) {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v);
    let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, v);
}

/// Turns `UDP_GRO` off again (best effort), for a socket handed on to a
/// backend that does not split coalesced datagrams.
pub(crate) fn disable_gro(fd: RawFd) {
    let _ = setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_roundtrip() {
        for a in ["127.0.0.1:4242", "[::1]:9", "[fe80::1%3]:77"] {
            let a: SocketAddr = a.parse().unwrap();
            let raw = RawAddr::from_std(a);
            assert_eq!(decode_addr(addr_bytes(&raw.storage, raw.len)), Some(a));
        }
        assert_eq!(decode_addr(&[]), None);
        assert_eq!(decode_addr(&[0xff; 40]), None);
    }

    #[test]
    fn cmsg_fits_and_parses_back() {
        let mut buf = [0u64; CMSG_BUF / 8];
        let n = write_segment_cmsg(&mut buf, 1200);
        assert!(n <= CMSG_BUF);
        // Rewrite the type to UDP_GRO with an int payload and parse it.
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut gro = bytes.clone();
        let t = mem::size_of::<usize>() + 4;
        gro[t..t + 4].copy_from_slice(&libc::UDP_GRO.to_ne_bytes());
        assert_eq!(gro_segment(&gro[..n]), Some(1200));
        assert_eq!(gro_segment(&bytes[..n]), None);
        assert_eq!(gro_segment(&[]), None);
        assert_eq!(gro_segment(&[0xff; 64]), None);
        for len in 0..64 {
            for fill in [0u8, 1, 0x10, 0x7f, 0xff] {
                let _ = gro_segment(&vec![fill; len]);
            }
        }
    }

    #[test]
    fn runs_coalesce_only_same_dest_and_size() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let big = [0u8; 1200];
        let small = [0u8; 100];
        let d = |to, bytes| OutDatagram { to, bytes };
        let out = [
            d(a, &big[..]),
            d(a, &big[..]),
            d(a, &small[..]),
            d(a, &big[..]),
            d(b, &big[..]),
            d(b, &[][..]),
            d(b, &small[..]),
        ];
        let mut runs = Vec::new();
        plan_runs(&out, MAX_RECV_DATAGRAM, &mut runs);
        let got: Vec<(usize, usize)> = runs.iter().map(|r| (r.start, r.count)).collect();
        assert_eq!(got, vec![(0, 3), (3, 1), (4, 1), (5, 1), (6, 1)]);
        plan_runs(&out, 0, &mut runs);
        assert_eq!(runs.len(), out.len());
        // Segments above the limit go one by one; smaller ones still coalesce.
        plan_runs(&out, 1199, &mut runs);
        let got: Vec<(usize, usize)> = runs.iter().map(|r| (r.start, r.count)).collect();
        assert_eq!(
            got,
            vec![(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)]
        );
        assert_eq!(
            after_refusal(MAX_RECV_DATAGRAM, GsoRefusal::TooBig, 1400),
            1399
        );
        assert_eq!(after_refusal(1000, GsoRefusal::TooBig, 1400), 1000);
        assert_eq!(
            after_refusal(MAX_RECV_DATAGRAM, GsoRefusal::Refused, 1400),
            0
        );
        let many: Vec<_> = (0..200).map(|_| d(a, &big[..])).collect();
        plan_runs(&many, MAX_RECV_DATAGRAM, &mut runs);
        assert!(runs.iter().all(|r| r.count * r.seg <= MAX_GSO_BYTES));
        assert_eq!(runs.iter().map(|r| r.count).sum::<usize>(), 200);
    }

    #[test]
    fn segments_split() {
        let s = Segments {
            len: 2500,
            seg: 1000,
        };
        assert_eq!(s.piece(0), Some(0..1000));
        assert_eq!(s.piece(2000), Some(2000..2500));
        assert_eq!(s.piece(2500), None);
        let one = Segments { len: 0, seg: 0 };
        assert_eq!(one.piece(0), Some(0..0));
    }
}
