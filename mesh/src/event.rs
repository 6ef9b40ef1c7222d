//! What the node tells its driver and application.

use crate::path::Path;
use crossbeam_queue::ArrayQueue;
use moss_crypto::PeerId;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A pub/sub message delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic it was published on (shared with the subscription: cloning
    /// it does not allocate).
    pub topic: Arc<str>,
    /// Peer id of the publisher.
    pub from: PeerId,
    /// Application bytes, in a pooled buffer.
    pub data: Payload,
    /// BLAKE2s message id.
    pub id: [u8; 32],
    /// Links the message travelled to reach us (1 = straight from the origin).
    pub hops: u8,
}

impl Message {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The application bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// Buffers kept for reuse per pool.
const POOL_BUFFERS: usize = 64;
/// Buffers with more capacity than this are freed, not pooled.
const POOL_MAX_CAPACITY: usize = 64 * 1024;
/// Least capacity of a fresh pooled buffer.
const POOL_MIN_CAPACITY: usize = 256;

/// Lock-free, so the node thread taking buffers and application threads
/// returning them never wait on each other.
type Shelf = Arc<ArrayQueue<Vec<u8>>>;

/// A node's free list of payload buffers: a delivered [`Payload`] goes
/// back to it when the application drops it, so delivering a message in
/// steady state allocates nothing.
#[derive(Debug, Clone)]
pub(crate) struct PayloadPool(Shelf);

impl Default for PayloadPool {
    fn default() -> Self {
        Self(Arc::new(ArrayQueue::new(POOL_BUFFERS)))
    }
}

impl PayloadPool {
    /// A payload holding a copy of `data`, in a recycled buffer when one
    /// is free.
    pub(crate) fn copy_of(&self, data: &[u8]) -> Payload {
        let mut buf = self
            .0
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(data.len().max(POOL_MIN_CAPACITY)));
        buf.clear();
        buf.extend_from_slice(data);
        Payload {
            buf,
            pool: Some(self.0.clone()),
        }
    }
}

/// Message bytes: derefs to `[u8]`; its buffer returns to the node's pool
/// when dropped. [`Payload::into_vec`] takes the bytes without copying.
#[derive(Default)]
pub struct Payload {
    buf: Vec<u8>,
    pool: Option<Shelf>,
}

impl Payload {
    /// The bytes as a vector (no copy; the buffer leaves the pool).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.pool = None;
        std::mem::take(&mut self.buf)
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let cap = self.buf.capacity();
        if cap == 0 || cap > POOL_MAX_CAPACITY {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        // A full pool frees the buffer.
        let _ = pool.push(buf);
    }
}

impl Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::borrow::Borrow<[u8]> for Payload {
    fn borrow(&self) -> &[u8] {
        &self.buf
    }
}

impl Clone for Payload {
    /// A copy in a buffer of the same pool.
    fn clone(&self) -> Self {
        match &self.pool {
            Some(p) => PayloadPool(p.clone()).copy_of(&self.buf),
            None => Payload::from(self.buf.clone()),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.buf, f)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(buf: Vec<u8>) -> Self {
        Self { buf, pool: None }
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Self::from(b.to_vec())
    }
}

impl From<Payload> for Vec<u8> {
    fn from(p: Payload) -> Self {
        p.into_vec()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.buf == other.buf
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.buf == other
    }
}

impl PartialEq<&[u8]> for Payload {
    fn eq(&self, other: &&[u8]) -> bool {
        self.buf == *other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        &self.buf == other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Payload {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.buf == other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Payload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.buf == *other
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Nothing was received for the idle timeout.
    Timeout,
    /// The peer sent a close frame.
    Closed,
    /// We are shutting down.
    Shutdown,
}

impl DisconnectReason {
    /// Snake-case name for JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Something the application or driver should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A session with a new peer is established.
    PeerConnected {
        /// The peer's authenticated identity.
        peer: PeerId,
        /// Its path (compares equal to a `SocketAddr` for UDP).
        addr: Path,
    },
    /// The last session with a peer ended.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// Its last path.
        addr: Path,
        /// Why.
        reason: DisconnectReason,
    },
    /// A dial we started did not produce a session.
    ConnectFailed {
        /// Where we dialled.
        addr: Path,
        /// What went wrong.
        reason: String,
    },
    /// A message on a subscribed topic.
    Message(Message),
    /// This node became a supernode (C ABI event 3).
    SupernodePromoted,
    /// This node stopped being a supernode (C ABI event 4).
    SupernodeRevoked {
        /// The condition that failed.
        reason: String,
    },
    /// A relayed session moved to a direct path (C ABI event 7).
    RelayMigrated {
        /// The peer.
        peer: PeerId,
        /// The relay path it left.
        from: Path,
        /// The direct path it took.
        to: Path,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_buffers_return_to_the_pool() {
        let pool = PayloadPool::default();
        let a = pool.copy_of(b"hello");
        assert_eq!(a, b"hello");
        let ptr = a.as_ptr();
        drop(a);
        let b = pool.copy_of(b"again");
        assert_eq!(b.as_ptr(), ptr, "the same buffer, reused");
        assert_eq!(&*b, b"again");
        let c = b.clone();
        assert_eq!(c, b);
        let v = c.into_vec();
        assert_eq!(v, b"again".to_vec());
        assert_eq!(pool.0.len(), 0);
        drop(b);
        assert_eq!(pool.0.len(), 1);
    }
}
