//! Moss: the embeddable peer-to-peer mesh runtime (I/O engine and public Rust API).

pub mod backend;
