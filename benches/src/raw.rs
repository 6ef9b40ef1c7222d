//! The machine's own loopback UDP limits, measured with plain syscalls (no
//! Moss code): one sender thread, one receiver thread on 127.0.0.1, a fixed
//! duration, counting datagrams received.

use crate::sock::{bound_pair, set_gro, set_rcvtimeo, RawName};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Datagrams per `sendmmsg`/`recvmmsg` batch (the same as the backends get).
pub const BATCH: usize = 64;
/// Most segments per GSO message (kernel `UDP_MAX_SEGMENTS` is >= 64).
const GSO_SEGS: usize = 64;
/// Most payload bytes per GSO message.
const GSO_BYTES: usize = 65_000;
/// GRO receive buffer (one coalesced super-datagram).
const GRO_BUF: usize = 65_536;

/// How datagrams are handed to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `sendto` / `recvfrom`: one datagram per syscall.
    Single,
    /// `sendmmsg` / `recvmmsg` batches of [`BATCH`].
    Mmsg,
    /// `sendmmsg` of GSO messages (`UDP_SEGMENT`) / `recvmmsg` with `UDP_GRO`.
    GsoGro,
}

impl Mode {
    /// Label used in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Single => "1 datagram/syscall",
            Mode::Mmsg => "sendmmsg/recvmmsg x64",
            Mode::GsoGro => "GSO send + GRO recv",
        }
    }
}

/// Received datagrams per second over `dur` for `size`-byte payloads.
pub fn loopback_rate(mode: Mode, size: usize, dur: Duration) -> io::Result<f64> {
    let (tx, rx) = bound_pair()?;
    let to = rx.local_addr()?;
    set_rcvtimeo(&rx, Duration::from_millis(20))?;
    if mode == Mode::GsoGro {
        set_gro(&rx)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let receiver = thread::spawn(move || receive(mode, rx, &stop_rx));
    let start = Instant::now();
    let sent = send_until(mode, &tx, to, size, start + dur);
    let elapsed = start.elapsed();
    // Let the receiver drain what is queued, then stop it.
    thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let got = receiver
        .join()
        .map_err(|_| io::Error::other("receiver thread panicked"))??;
    sent?;
    Ok(got as f64 / elapsed.as_secs_f64())
}

fn send_until(
    mode: Mode,
    tx: &UdpSocket,
    to: SocketAddr,
    size: usize,
    end: Instant,
) -> io::Result<()> {
    send_bytes_until(mode, tx, to, &vec![0x5au8; size], end)
}

/// Sends `payload` to `to` over and over, batched as `mode` says, until
/// `end`.
pub fn send_bytes_until(
    mode: Mode,
    tx: &UdpSocket,
    to: SocketAddr,
    payload: &[u8],
    end: Instant,
) -> io::Result<()> {
    let size = payload.len();
    let mut name = RawName::new(to);
    let name_len = name.len();
    let name_ptr = name.ptr();
    // Per message: iovecs over the same payload, one per datagram.
    let per_msg = match mode {
        Mode::GsoGro => GSO_SEGS.min(GSO_BYTES / size.max(1)).max(1),
        _ => 1,
    };
    let msgs = BATCH.div_ceil(per_msg);
    let iov = vec![
        libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: size,
        };
        BATCH
    ];
    let mut cmsg = vec![[0u64; 8]; msgs];
    // SAFETY: mmsghdr is plain old data; all-zero is valid.
    let mut hdrs = vec![unsafe { std::mem::zeroed::<libc::mmsghdr>() }; msgs];
    let mut left = BATCH;
    for (i, h) in hdrs.iter_mut().enumerate() {
        let n = per_msg.min(left);
        left -= n;
        h.msg_hdr.msg_name = name_ptr;
        h.msg_hdr.msg_namelen = name_len;
        h.msg_hdr.msg_iov = iov[i * per_msg..].as_ptr() as *mut libc::iovec;
        h.msg_hdr.msg_iovlen = n as _;
        if mode == Mode::GsoGro && n > 1 {
            let len = crate::sock::write_segment_cmsg(&mut cmsg[i], size as u16);
            h.msg_hdr.msg_control = cmsg[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = len as _;
        }
    }
    let fd = tx.as_raw_fd();
    while Instant::now() < end {
        for _ in 0..16 {
            match mode {
                Mode::Single => {
                    for _ in 0..BATCH {
                        // SAFETY: payload and name are live for the call.
                        unsafe {
                            libc::sendto(
                                fd,
                                payload.as_ptr().cast(),
                                size,
                                0,
                                name_ptr.cast(),
                                name_len,
                            )
                        };
                    }
                }
                Mode::Mmsg | Mode::GsoGro => {
                    // SAFETY: headers point at live iovecs, payload, name
                    // and control buffers owned by this function.
                    let rc = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), msgs as u32, 0) };
                    if rc < 0 {
                        let e = io::Error::last_os_error();
                        if mode == Mode::GsoGro && e.kind() != io::ErrorKind::WouldBlock {
                            return Err(e);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Counts datagrams received on `rx`, batched as `mode` says (GRO
/// super-datagrams count as their segments), until `stop`.
pub fn receive(mode: Mode, rx: UdpSocket, stop: &AtomicBool) -> io::Result<u64> {
    let fd = rx.as_raw_fd();
    let buf_len = if mode == Mode::GsoGro { GRO_BUF } else { 2048 };
    let slots = if mode == Mode::Single { 1 } else { BATCH };
    let mut bufs = vec![vec![0u8; buf_len]; slots];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: buf_len,
        })
        .collect();
    let mut cmsg = vec![[0u64; 8]; slots];
    let mut names = vec![RawName::empty(); slots];
    // SAFETY: mmsghdr is plain old data; all-zero is valid.
    let mut hdrs = vec![unsafe { std::mem::zeroed::<libc::mmsghdr>() }; slots];
    let mut count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if mode == Mode::Single {
            // SAFETY: receives into a live buffer of its length.
            let rc = unsafe { libc::recv(fd, bufs[0].as_mut_ptr().cast(), buf_len, 0) };
            if rc >= 0 {
                count += 1;
            }
            continue;
        }
        for j in 0..slots {
            let h = &mut hdrs[j].msg_hdr;
            h.msg_name = names[j].ptr();
            h.msg_namelen = names[j].cap();
            h.msg_iov = &mut iov[j];
            h.msg_iovlen = 1;
            h.msg_control = cmsg[j].as_mut_ptr().cast();
            h.msg_controllen = 64;
            h.msg_flags = 0;
        }
        // SAFETY: headers point at live buffers owned by this function.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                slots as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc <= 0 {
            continue;
        }
        for h in &hdrs[..rc as usize] {
            let len = h.msg_len as usize;
            let seg = if mode == Mode::GsoGro {
                // SAFETY: msg_control points at our 64-byte buffer and the
                // kernel set msg_controllen to what it wrote.
                unsafe { crate::sock::gro_segment(&h.msg_hdr) }
            } else {
                None
            };
            count += match seg {
                Some(s) if s > 0 && s < len => len.div_ceil(s) as u64,
                _ => 1,
            };
        }
    }
    Ok(count)
}
