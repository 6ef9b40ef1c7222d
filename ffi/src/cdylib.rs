//! `libmoss.so` / `libmoss.a`: the C ABI of `moss_capi` linked as a C library.
pub use moss_capi::*;
