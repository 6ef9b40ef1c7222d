//! The relay data plane's receive-and-forward step shared by the
//! backends: datagrams reach a [`Forward`] a chunk at a time (all of a
//! chunk, then each), and the ones it routes leave unchanged from the
//! buffer they arrived in, one `send_batch` per chunk.

use super::{Backend, OutDatagram, RecvBatch};
use std::io;
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::ops::Range;

/// What one [`Backend::recv_forward`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Datagrams handed to the callback.
    pub datagrams: usize,
    /// Of those, the ones the callback sent on unchanged.
    pub forwarded: usize,
}

/// Most datagrams [`Backend::recv_forward`] forwards per `send_batch`, and
/// the most a [`Forward::chunk`] holds.
pub const FORWARD_CHUNK: usize = 64;

/// The relay data plane's side of [`Backend::recv_forward_batch`]: the
/// datagrams of a receive reach it a chunk at a time, first all together
/// (batch work, such as unmasking every head in one lane-wise pass), then
/// one by one.
pub trait Forward {
    /// Sees the datagrams of the next chunk (at most [`FORWARD_CHUNK`]), in
    /// the order [`Forward::datagram`] then gets them.
    fn chunk(&mut self, datagrams: &[&[u8]]);

    /// Datagram `i` of the last chunk, unchanged since [`Forward::chunk`]
    /// saw it, from `from`: returns where to send it on unchanged (as this
    /// call leaves it), if anywhere.
    fn datagram(&mut self, i: usize, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr>;
}

/// A per-datagram callback as a [`Forward`] with no batch work.
pub(super) struct EachDatagram<'a>(
    pub(super) &'a mut dyn FnMut(SocketAddr, &mut [u8]) -> Option<SocketAddr>,
);

impl Forward for EachDatagram<'_> {
    fn chunk(&mut self, _: &[&[u8]]) {}

    fn datagram(&mut self, _: usize, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr> {
        (self.0)(from, bytes)
    }
}

/// Where one received datagram lies in a backend's own buffers: sender,
/// buffer id, byte range.
#[cfg(target_os = "linux")]
pub(crate) type Piece<B> = (SocketAddr, B, Range<usize>);

/// A backend's own receive buffers, by id.
#[cfg(target_os = "linux")]
pub(crate) trait Buffers<B> {
    /// Buffer `id`.
    fn bytes(&self, id: B) -> &[u8];
    /// Buffer `id`, writable.
    fn bytes_mut(&mut self, id: B) -> &mut [u8];
}

#[cfg(target_os = "linux")]
impl Buffers<usize> for Vec<Vec<u8>> {
    fn bytes(&self, id: usize) -> &[u8] {
        self.get(id).map_or(&[], |b| &b[..])
    }

    fn bytes_mut(&mut self, id: usize) -> &mut [u8] {
        self.get_mut(id).map_or(&mut [], |b| &mut b[..])
    }
}

/// Hands the datagrams at `pieces` of `bufs` to `f` a chunk at a time and
/// queues in `fwd` (buffer, range, destination) the ones it routes; returns
/// how many it routed. The caller sends `fwd` before the buffers are
/// reused.
#[cfg(target_os = "linux")]
pub(crate) fn forward_pieces<B: Copy>(
    bufs: &mut impl Buffers<B>,
    pieces: &[Piece<B>],
    f: &mut dyn Forward,
    fwd: &mut Vec<(B, Range<usize>, SocketAddr)>,
) -> usize {
    let mut forwarded = 0;
    for chunk in pieces.chunks(FORWARD_CHUNK) {
        let mut views: [&[u8]; FORWARD_CHUNK] = [&[]; FORWARD_CHUNK];
        for (v, (_, id, range)) in views.iter_mut().zip(chunk) {
            *v = bufs.bytes(*id).get(range.clone()).unwrap_or(&[]);
        }
        f.chunk(&views[..chunk.len()]);
        for (i, (from, id, range)) in chunk.iter().enumerate() {
            let Some(d) = bufs.bytes_mut(*id).get_mut(range.clone()) else {
                continue;
            };
            if let Some(to) = f.datagram(i, *from, d) {
                fwd.push((*id, range.clone(), to));
                forwarded += 1;
            }
        }
    }
    forwarded
}

/// Placeholder destination of an unused send view.
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

/// Hands the first `n` slots of `batch` to `f` and sends on, straight from
/// the slots, the datagrams it returns a destination for (the tail of
/// [`Backend::recv_forward`] for backends that received into `batch`).
pub(crate) fn forward_slots<B: Backend + ?Sized>(
    b: &mut B,
    batch: &mut RecvBatch,
    n: usize,
    f: &mut dyn Forward,
) -> io::Result<Received> {
    let n = n
        .min(batch.bufs.len())
        .min(batch.lens.len())
        .min(batch.addrs.len());
    let mut fwd = [(UNSPECIFIED, 0usize); FORWARD_CHUNK];
    let mut forwarded = 0;
    for start in (0..n).step_by(FORWARD_CHUNK) {
        let end = n.min(start + FORWARD_CHUNK);
        let mut views: [&[u8]; FORWARD_CHUNK] = [&[]; FORWARD_CHUNK];
        for (v, i) in views.iter_mut().zip(start..end) {
            *v = &batch.bufs[i][..batch.lens[i]];
        }
        f.chunk(&views[..end - start]);
        let mut k = 0;
        for i in start..end {
            let len = batch.lens[i];
            if let Some(to) = f.datagram(i - start, batch.addrs[i], &mut batch.bufs[i][..len]) {
                fwd[k] = (to, i);
                k += 1;
            }
        }
        forwarded += k;
        send_slots(b, batch, &fwd[..k]);
    }
    Ok(Received {
        datagrams: n,
        forwarded,
    })
}

/// Sends the slots of `batch` named in `fwd` (destination, slot) in one
/// `send_batch`; losses are counted by the backend.
fn send_slots<B: Backend + ?Sized>(b: &mut B, batch: &RecvBatch, fwd: &[(SocketAddr, usize)]) {
    if fwd.is_empty() {
        return;
    }
    let mut views = [OutDatagram {
        to: UNSPECIFIED,
        bytes: &[],
    }; FORWARD_CHUNK];
    for (v, &(to, i)) in views.iter_mut().zip(fwd) {
        *v = OutDatagram {
            to,
            bytes: &batch.bufs[i][..batch.lens[i]],
        };
    }
    if let Err(e) = b.send_batch(&views[..fwd.len()]) {
        tracing::trace!(error = %e, "forward send failed");
    }
}
