//! The C ABI of Moss: `libmoss.so` / `libmoss.a` with the generated `moss.h`.
//!
//! Every exported function is in [`api`]; result codes are in [`codes`].
//! Handles live in a global table ([`handles`]); each started node has one
//! dispatch thread that calls the host ([`callbacks`]).

pub mod api;
pub mod callbacks;
pub mod codes;
pub mod handles;
pub mod keystore;
pub mod strings;

pub use api::*;
pub use callbacks::{
    MossEventCallback, MossKeyStoreLoadCallback, MossKeyStoreSaveCallback, MossMessageCallback,
    MossScoringCallback,
};
pub use codes::*;
