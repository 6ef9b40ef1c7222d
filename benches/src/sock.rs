//! Small socket helpers for the raw measurements (plain libc, no Moss code).

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Socket buffers asked for on every benchmark socket, raw and ours alike
/// (the same value `moss::backend::open` uses).
pub const SOCKET_BUFFER: usize = moss::backend::SOCKET_BUFFER;

fn setsockopt<T>(s: &UdpSocket, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live `T` and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A loopback UDP socket with [`SOCKET_BUFFER`]-sized buffers.
pub fn loopback_socket() -> io::Result<UdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let v = SOCKET_BUFFER as libc::c_int;
    setsockopt(&s, libc::SOL_SOCKET, libc::SO_RCVBUF, &v)?;
    setsockopt(&s, libc::SOL_SOCKET, libc::SO_SNDBUF, &v)?;
    Ok(s)
}

/// Two loopback sockets (sender, receiver).
pub fn bound_pair() -> io::Result<(UdpSocket, UdpSocket)> {
    Ok((loopback_socket()?, loopback_socket()?))
}

/// Makes blocking receives return after `t`.
pub fn set_rcvtimeo(s: &UdpSocket, t: Duration) -> io::Result<()> {
    s.set_read_timeout(Some(t))
}

/// Enables `UDP_GRO`.
pub fn set_gro(s: &UdpSocket) -> io::Result<()> {
    setsockopt(s, libc::SOL_UDP, libc::UDP_GRO, &(1 as libc::c_int))
}

/// A socket address in C form.
#[derive(Clone, Copy)]
pub struct RawName {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawName {
    /// Room for any address, for receiving.
    pub fn empty() -> Self {
        Self {
            // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// Encodes an IPv4 address (the benchmarks run on 127.0.0.1).
    pub fn new(addr: SocketAddr) -> Self {
        let mut n = Self::empty();
        if let SocketAddr::V4(a) = addr {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in.
            unsafe {
                std::ptr::write(
                    (&mut n.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>(),
                    sin,
                )
            };
            n.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        n
    }

    /// Pointer for `msg_name` (the kernel reads or writes it).
    pub fn ptr(&mut self) -> *mut libc::c_void {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    /// Meaningful length.
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Capacity for receiving.
    pub fn cap(&self) -> libc::socklen_t {
        mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t
    }
}

/// Writes a `UDP_SEGMENT` control message; returns its length.
pub fn write_segment_cmsg(buf: &mut [u64; 8], seg: u16) -> usize {
    // SAFETY: a zeroed msghdr whose control buffer is our 64-byte `buf`; the
    // CMSG_* macros stay within it (one cmsghdr + u16 needs 24 bytes).
    unsafe {
        let mut m: libc::msghdr = mem::zeroed();
        m.msg_control = buf.as_mut_ptr().cast();
        m.msg_controllen = 64;
        let c = libc::CMSG_FIRSTHDR(&m);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
        libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize
    }
}

/// The `UDP_GRO` segment size in a received message, if any.
///
/// # Safety
/// `m.msg_control` must point at a buffer of at least `m.msg_controllen`
/// bytes filled by the kernel.
pub unsafe fn gro_segment(m: &libc::msghdr) -> Option<usize> {
    // SAFETY: the caller guarantees the control buffer; CMSG_NXTHDR stops
    // at msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    None
}
