//! Helpers shared by the integration tests: finding the built `libmoss.so`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The directory holding `libmoss.so` and `libmoss.a` of this build.
///
/// `cargo test -p moss-ffi` builds the library target with all its crate
/// types, so the cdylib sits next to the test binary (`target/<profile>/deps`)
/// and in `target/<profile>`. If it is missing (a test binary run by hand
/// after `cargo clean`), this runs `cargo build -p moss-ffi` once.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    let profile = deps.parent().expect("profile dir").to_path_buf();
    for dir in [&profile, &deps] {
        if dir.join("libmoss.so").exists() && dir.join("libmoss.a").exists() {
            return dir.clone();
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "moss-ffi"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build -p moss-ffi");
    assert!(status.success(), "cargo build -p moss-ffi failed");
    assert!(
        profile.join("libmoss.so").exists(),
        "no libmoss.so in {}",
        profile.display()
    );
    profile
}

/// `ffi/` of the source tree.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory for build products of one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Compiles `examples/c/<src>` with `cc` against `include/moss.h`, linking
/// the cdylib (`static_lib` false) or `libmoss.a` (true).
pub fn compile_c(src: &str, out_name: &str, static_lib: bool) -> PathBuf {
    let lib = lib_dir();
    let out = scratch("c").join(out_name);
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("examples/c").join(src))
        .arg("-o")
        .arg(&out);
    if static_lib {
        cmd.arg(lib.join("libmoss.a"))
            .args(["-lpthread", "-ldl", "-lm", "-lrt"]);
    } else {
        cmd.arg("-L").arg(&lib).arg("-lmoss");
    }
    let o = cmd.output().expect("run cc");
    assert!(
        o.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}
