//! Builds `examples/c/two_nodes.c` with `cc` against `include/moss.h` and
//! runs it: against `libmoss.so`, against `libmoss.a`, and under valgrind.
//! Its event callback prints events 3 (supernode promoted) and 4 (revoked,
//! naming the condition) as they reach it. Event 7 (relay migrated) is not
//! checked here: two nodes on one loopback never relay (every path is
//! direct at once, and the C ABI cannot cut one); `c_relay_events.rs`
//! checks it with `relay_events.c`, whose direct path this test cuts and
//! heals from outside.

mod common;

use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run the example");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "example failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        o.status
    );
    stdout + &stderr
}

/// The supernode events the callback printed, in order: 3 before 4, and
/// 4's detail names the failed condition.
fn assert_supernode_events(out: &str) {
    let promoted = out.find("event 3 (supernode promoted) {}");
    let revoked = out.find("event 4 (supernode revoked) {\"reason\":");
    assert!(
        matches!((promoted, revoked), (Some(p), Some(r)) if p < r),
        "events 3 then 4 printed:\n{out}"
    );
}

#[test]
fn c_two_nodes_with_the_shared_library() {
    let exe = common::compile_c("two_nodes.c", "two_nodes_shared", false);
    let out = run(Command::new(&exe).env("LD_LIBRARY_PATH", common::lib_dir()));
    assert!(out.contains("\nOK\n"), "{out}");
    assert_supernode_events(&out);
}

#[test]
fn c_two_nodes_with_the_static_library() {
    let exe = common::compile_c("two_nodes.c", "two_nodes_static", true);
    // No LD_LIBRARY_PATH: the static build must not need libmoss.so.
    let out = run(Command::new(&exe).env_remove("LD_LIBRARY_PATH"));
    assert!(out.contains("\nOK\n"), "{out}");
}

/// valgrind: no invalid reads/writes, no use of uninitialised memory, no
/// definite leaks. Leak errors are limited to the "definite" kind because
/// "possibly lost" reports name process-lifetime statics that are never
/// freed by design (std's handle of the main thread, created by a
/// thread-local of crossbeam-channel). The engine runs its `mmsg` backend
/// here: valgrind does not model the memory the kernel writes into io_uring
/// rings, so the `uring` backend cannot be checked under it.
#[test]
fn c_two_nodes_under_valgrind() {
    let exe = common::compile_c("two_nodes.c", "two_nodes_valgrind", false);
    let out = run(Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--track-origins=yes",
        ])
        .arg(&exe)
        .env("LD_LIBRARY_PATH", common::lib_dir())
        .env("MOSS_BACKEND", "mmsg"));
    assert!(out.contains("\nOK\n"), "{out}");
    assert!(
        out.contains("definitely lost: 0 bytes") || out.contains("All heap blocks were freed"),
        "{out}"
    );
    assert!(out.contains("ERROR SUMMARY: 0 errors"), "{out}");
}
