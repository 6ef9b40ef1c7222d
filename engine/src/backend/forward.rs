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

/// One received message in a backend's own buffers: its sender, the
/// buffer, the payload's byte range in it, and the `UDP_GRO` segment size
/// (0: the message is one datagram; otherwise it is a super-datagram of
/// `seg`-byte datagrams, the last one possibly shorter).
#[cfg(target_os = "linux")]
#[derive(Debug, Clone)]
pub(crate) struct Message<B> {
    /// The sender.
    pub from: SocketAddr,
    /// The buffer it lies in.
    pub buf: B,
    /// Its payload's bytes in the buffer.
    pub range: Range<usize>,
    /// Its segment size (0: one datagram).
    pub seg: usize,
}

/// Datagrams to send on as one message, straight from the buffer they
/// arrived in: back to back in `range` of buffer `buf`, `seg` bytes each
/// but the last (which may be shorter), all to `to`. More than one
/// datagram only when they are segments of one received message that all
/// go to `to` (GRO passthrough: they leave as one GSO message, segment
/// size unchanged).
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passed<B> {
    /// The buffer.
    pub buf: B,
    /// The datagrams' bytes in it.
    pub range: Range<usize>,
    /// Their size (the last may be shorter).
    pub seg: usize,
    /// Where they go.
    pub to: SocketAddr,
}

#[cfg(target_os = "linux")]
impl<B> Passed<B> {
    /// Datagrams in the run.
    pub fn count(&self) -> usize {
        if self.seg == 0 {
            1
        } else {
            self.range.len().div_ceil(self.seg).max(1)
        }
    }
}

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

/// Hands every datagram of `msgs` (super-datagrams split by their segment
/// size) to `f` a chunk at a time and queues in `out` the ones it routes,
/// in order. A datagram that follows the previous routed one in the same
/// buffer, back to back, to the same destination, with the run's segment
/// size (or shorter, which closes the run), extends that run instead of
/// starting one, while the run stays within the kernel's GSO limits and
/// its segment size within `max_seg` (0: no runs). So a super-datagram
/// whose datagrams all go one way leaves as it came, one GSO message; a
/// mixed one leaves as one message per stretch. Every datagram still
/// gets its own verdict. The caller sends `out` before the buffers are
/// reused.
#[cfg(target_os = "linux")]
pub(crate) fn forward_messages<B: Copy + PartialEq>(
    bufs: &mut impl Buffers<B>,
    msgs: &[Message<B>],
    f: &mut dyn Forward,
    max_seg: usize,
    out: &mut Vec<Passed<B>>,
) -> Received {
    // (message, start, end) of each datagram of the chunk being gathered.
    let mut chunk = [(0usize, 0usize, 0usize); FORWARD_CHUNK];
    let mut k = 0;
    let mut got = Received::default();
    for (i, m) in msgs.iter().enumerate() {
        let mut at = m.range.start;
        loop {
            let end = if m.seg == 0 {
                m.range.end
            } else {
                (at + m.seg).min(m.range.end)
            };
            chunk[k] = (i, at, end);
            k += 1;
            at = end;
            if k == FORWARD_CHUNK {
                work_chunk(bufs, msgs, &chunk[..k], f, max_seg, out, &mut got);
                k = 0;
            }
            if at >= m.range.end {
                break;
            }
        }
    }
    work_chunk(bufs, msgs, &chunk[..k], f, max_seg, out, &mut got);
    got
}

/// One chunk of [`forward_messages`]: `f` sees it whole, then each
/// datagram; the routed ones join `out`.
#[cfg(target_os = "linux")]
fn work_chunk<B: Copy + PartialEq>(
    bufs: &mut impl Buffers<B>,
    msgs: &[Message<B>],
    chunk: &[(usize, usize, usize)],
    f: &mut dyn Forward,
    max_seg: usize,
    out: &mut Vec<Passed<B>>,
    got: &mut Received,
) {
    if chunk.is_empty() {
        return;
    }
    let mut views: [&[u8]; FORWARD_CHUNK] = [&[]; FORWARD_CHUNK];
    for (v, &(m, start, end)) in views.iter_mut().zip(chunk) {
        *v = bufs.bytes(msgs[m].buf).get(start..end).unwrap_or(&[]);
    }
    f.chunk(&views[..chunk.len()]);
    got.datagrams += chunk.len();
    for (i, &(m, start, end)) in chunk.iter().enumerate() {
        let Message { from, buf, .. } = msgs[m];
        let Some(d) = bufs.bytes_mut(buf).get_mut(start..end) else {
            continue;
        };
        if let Some(to) = f.datagram(i, from, d) {
            got.forwarded += 1;
            pass(out, buf, start..end, to, max_seg);
        }
    }
}

/// Queues one routed datagram at `range` of buffer `buf` for `to` in
/// `out`: it extends the last run when it may ([`forward_messages`]).
#[cfg(target_os = "linux")]
fn pass<B: Copy + PartialEq>(
    out: &mut Vec<Passed<B>>,
    buf: B,
    range: Range<usize>,
    to: SocketAddr,
    max_seg: usize,
) {
    use super::linux::{MAX_GSO_BYTES, MAX_GSO_SEGMENTS};
    let len = range.len();
    if let Some(p) = out.last_mut() {
        let held = p.range.len();
        let extends = p.buf == buf
            && p.range.end == range.start
            && p.to == to
            && p.seg > 0
            && p.seg <= max_seg
            && len > 0
            && len <= p.seg
            && held % p.seg == 0
            && held / p.seg < MAX_GSO_SEGMENTS
            && held + len <= MAX_GSO_BYTES;
        if extends {
            p.range.end = range.end;
            return;
        }
    }
    out.push(Passed {
        buf,
        range,
        seg: len,
        to,
    });
}

/// Sends the runs of `passed` datagram by datagram through `send` (at
/// most [`FORWARD_CHUNK`] per call; `bytes` gives a run's bytes), for a
/// backend without a send of its own for runs or after such a send
/// failed: the backend's `send_batch` plans and counts them as always.
#[cfg(target_os = "linux")]
pub(crate) fn send_each<'a, B>(
    passed: &[Passed<B>],
    bytes: impl Fn(&Passed<B>) -> &'a [u8],
    mut send: impl FnMut(&[OutDatagram<'a>]),
) {
    let mut views = [OutDatagram {
        to: UNSPECIFIED,
        bytes: &[],
    }; FORWARD_CHUNK];
    let mut k = 0;
    for p in passed {
        let all = bytes(p);
        let seg = if p.seg == 0 { all.len().max(1) } else { p.seg };
        let mut at = 0;
        loop {
            let end = (at + seg).min(all.len());
            views[k] = OutDatagram {
                to: p.to,
                bytes: &all[at..end],
            };
            k += 1;
            if k == FORWARD_CHUNK {
                send(&views[..k]);
                k = 0;
            }
            at = end;
            if at >= all.len() {
                break;
            }
        }
    }
    if k > 0 {
        send(&views[..k]);
    }
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
