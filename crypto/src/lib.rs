//! Moss cryptography: identities, Noise sessions, key derivation, transport cipher and the scramble codec.

pub mod derive;
pub mod identity;
pub mod msgid;
pub mod noise;
pub mod replay;
pub mod scramble;
pub mod transport;

pub use derive::MeshKeys;
pub use identity::{Identity, IdentityError, PeerId};
pub use noise::{Handshake, HandshakeError, HandshakeOutcome, LocalStatic, Role};
pub use replay::ReplayWindow;
pub use scramble::Scrambler;
pub use transport::{OpenError, TransportCipher};
