//! Moss cryptography: identities, Noise sessions, key derivation, transport cipher and the scramble codec.
//!
//! Two identities of one mesh run the three Noise XX messages, learn each
//! other's peer id, and exchange a sealed datagram body:
//!
//! ```
//! use moss_crypto::{Handshake, Identity, MeshKeys, Role, TransportCipher};
//!
//! let keys = MeshKeys::derive("local", None);
//! let (a, b) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
//! let mut init = Handshake::new(Role::Initiator, &a, &keys.prologue, [3; 32])?;
//! let mut resp = Handshake::new(Role::Responder, &b, &keys.prologue, [4; 32])?;
//! let mut buf = [0u8; 1024];
//! let n = init.write(&[], &mut buf)?;
//! resp.read(&buf[..n])?;
//! let n = resp.write(b"extra", &mut buf)?;
//! assert_eq!(init.read(&buf[..n])?, b"extra");
//! let n = init.write(&[], &mut buf)?;
//! resp.read(&buf[..n])?;
//! let (i, r) = (init.finish()?, resp.finish()?);
//! assert_eq!((i.remote, r.remote), (b.public_key(), a.public_key()));
//!
//! let mut tx = TransportCipher::new(&i.send_key, &i.recv_key);
//! let mut rx = TransportCipher::new(&r.send_key, &r.recv_key);
//! let head = [4u8; 16];
//! let mut body = *b"frames";
//! let mut tag = [0u8; 16];
//! let counter = tx.seal(&head, &mut body, &mut tag)?;
//! let mut wire = [&body[..], &tag[..]].concat();
//! let n = rx.open(counter, &head, &mut wire)?;
//! assert_eq!(&wire[..n], b"frames");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod derive;
pub mod identity;
mod lanes;
pub mod msgid;
pub mod noise;
pub mod replay;
pub mod scramble;
pub mod transport;
pub mod verify;

pub use derive::MeshKeys;
pub use identity::{Identity, IdentityError, PeerId};
pub use noise::{Handshake, HandshakeError, HandshakeOutcome, LocalStatic, Pattern, Role};
pub use replay::ReplayWindow;
pub use scramble::Scrambler;
pub use transport::{OpenError, TransportCipher};
pub use verify::BatchVerifier;
