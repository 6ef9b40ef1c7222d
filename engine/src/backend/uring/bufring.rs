//! The provided buffer ring of the `uring` backend: an anonymous mapping
//! for the ring descriptors and one for the buffers, with the tail
//! published to the kernel.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// Anonymous memory mapping that holds the provided buffer ring and its
/// buffers.
pub(super) struct Mapping {
    pub(super) ptr: *mut u8,
    pub(super) len: usize,
}

impl Mapping {
    pub(super) fn new(len: usize) -> io::Result<Self> {
        // SAFETY: anonymous private mapping, no file; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `new`, once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The provided buffer ring: `entries` descriptors followed by the buffers.
pub(super) struct BufRing {
    pub(super) ring: Mapping,
    pub(super) bufs: Mapping,
    pub(super) entries: u16,
    buf_len: usize,
    /// Our copy of the tail (published with release ordering).
    tail: u16,
}

impl BufRing {
    pub(super) fn new(entries: u16, buf_len: usize) -> io::Result<Self> {
        let ring =
            Mapping::new(entries as usize * std::mem::size_of::<io_uring::types::BufRingEntry>())?;
        let bufs = Mapping::new(entries as usize * buf_len)?;
        Ok(Self {
            ring,
            bufs,
            entries,
            buf_len,
            tail: 0,
        })
    }

    /// Hands buffer `bid` back to the kernel (visible after `publish`).
    pub(super) fn push(&mut self, bid: u16) {
        let mask = self.entries - 1;
        let idx = (self.tail & mask) as usize;
        // SAFETY: `idx < entries`, so the entry lies in the ring mapping;
        // the kernel reads entries only up to the published tail, and this
        // one is beyond it until `publish`.
        unsafe {
            let entry = &mut *self
                .ring
                .ptr
                .cast::<io_uring::types::BufRingEntry>()
                .add(idx);
            entry.set_addr(self.bufs.ptr.add(bid as usize * self.buf_len) as u64);
            entry.set_len(self.buf_len as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes every pushed buffer to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: the tail is the u16 at byte offset 14 of the ring (the
        // `resv` field of entry 0, as in `struct io_uring_buf_ring`); the
        // mapping is page aligned so the atomic is aligned. The kernel reads
        // it with acquire ordering.
        let tail = unsafe { &*self.ring.ptr.add(14).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// The bytes of buffer `bid` (first `len`).
    pub(super) fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let len = len.min(self.buf_len);
        // SAFETY: `bid < entries` is checked by the caller; the kernel has
        // completed its write into this buffer (we hold its CQE) and will
        // not touch it until we push it back.
        unsafe { std::slice::from_raw_parts(self.bufs.ptr.add(bid as usize * self.buf_len), len) }
    }

    /// The mapping's address and layout, for views that must outlive a
    /// borrow of the ring ([`Views::get`]).
    pub(super) fn views(&self) -> Views {
        Views {
            base: self.bufs.ptr.cast_const(),
            buf_len: self.buf_len,
            entries: self.entries,
        }
    }

    /// Buffer `bid`, writable (for in-place processing by the caller).
    pub(super) fn buf_mut(&mut self, bid: u16) -> &mut [u8] {
        let bid = bid.min(self.entries - 1);
        // SAFETY: `bid < entries` (clamped); we hold this buffer's CQE, so
        // the kernel will not write it until we push it back, and `&mut
        // self` makes this the only view.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.bufs.ptr.add(bid as usize * self.buf_len),
                self.buf_len,
            )
        }
    }
}

impl crate::backend::Buffers<u16> for BufRing {
    fn bytes(&self, id: u16) -> &[u8] {
        self.buf(id.min(self.entries - 1), self.buf_len)
    }

    fn bytes_mut(&mut self, id: u16) -> &mut [u8] {
        self.buf_mut(id)
    }
}

/// Where a ring's buffers lie ([`BufRing::views`]).
#[derive(Clone, Copy)]
pub(super) struct Views {
    base: *const u8,
    buf_len: usize,
    entries: u16,
}

impl Views {
    /// Bytes `range` of buffer `bid` (both clamped to the mapping).
    ///
    /// # Safety
    /// The ring must outlive `'a`, the kernel must not write buffer `bid`
    /// during `'a` (its CQE is held and it is not pushed back), and
    /// nothing may write those bytes through the ring during `'a`.
    pub(super) unsafe fn get<'a>(&self, bid: u16, range: std::ops::Range<usize>) -> &'a [u8] {
        let bid = bid.min(self.entries.saturating_sub(1));
        let end = range.end.min(self.buf_len);
        let start = range.start.min(end);
        // SAFETY: the bytes lie inside buffer `bid` of the live mapping
        // (clamped above); the caller guarantees nothing writes them.
        unsafe {
            std::slice::from_raw_parts(
                self.base.add(bid as usize * self.buf_len + start),
                end - start,
            )
        }
    }
}
