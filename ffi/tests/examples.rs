//! Runs the Python ctypes example and the Rust dlopen example against the
//! built `libmoss.so`.

mod common;

#[path = "../examples/rust_abi.rs"]
mod rust_abi;

use std::process::Command;

#[test]
fn python_two_nodes() {
    let lib = common::lib_dir().join("libmoss.so");
    let o = Command::new("python3")
        .arg(common::crate_dir().join("examples/python/two_nodes.py"))
        .env("MOSS_LIB", &lib)
        .output()
        .expect("run python3");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("\nOK\n"), "{out}");
}

/// The Rust side loads the cdylib with dlopen and calls it through
/// function pointers typed from moss.h; the Rust crate is not linked.
#[test]
fn rust_two_nodes_through_dlopen() {
    let lib = common::lib_dir().join("libmoss.so");
    rust_abi::run(lib.to_str().expect("UTF-8 path")).expect("rust_abi example");
}
