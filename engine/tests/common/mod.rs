//! Helpers shared by the engine's loopback tests: offline nodes on
//! 127.0.0.1, the backends this machine has, bounded waits.

#![allow(dead_code)]

use moss::backend::BackendKind;
use moss::{Config, Node};
use std::time::{Duration, Instant};

/// An offline config (no trackers, LAN beacons or DHT) on `backend`;
/// `shards` overrides `engine.shards` when given.
pub fn cfg(backend: &str, shards: Option<u32>) -> Config {
    let mut c =
        Config::from_json(r#"{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false}"#)
            .unwrap();
    c.engine.backend = backend.into();
    if let Some(n) = shards {
        c.engine.shards = n;
    }
    c
}

/// A started node of mesh `mesh` on an ephemeral 127.0.0.1 port.
pub fn node(mesh: &str, backend: &str, shards: Option<u32>) -> Node {
    Node::builder(mesh)
        .config(cfg(backend, shards))
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap()
}

/// The backends this machine can run, by name ([`backend_kinds`]).
pub fn backends() -> Vec<&'static str> {
    backend_kinds()
        .into_iter()
        .map(BackendKind::as_str)
        .collect()
}

/// Every backend that starts on this machine: `portable`, and on Linux
/// `mmsg` and `uring` (one the kernel refuses is a visible skip, and a
/// failure under `CI=true`).
pub fn backend_kinds() -> Vec<BackendKind> {
    let mut out = vec![BackendKind::Portable];
    if cfg!(target_os = "linux") {
        for k in [BackendKind::Mmsg, BackendKind::Uring] {
            match moss::backend::open(k, "127.0.0.1:0".parse().unwrap()) {
                Ok(_) => out.push(k),
                Err(e) => skip(&format!("backend {} unavailable here: {e}", k.as_str())),
            }
        }
    }
    out
}

/// Sets the `SOL_SOCKET` option `opt` (an int: a buffer size) on `fd`;
/// the kernel may grant another value, which the caller reads back.
#[cfg(target_os = "linux")]
pub fn set_socket_int(fd: std::os::fd::RawFd, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: passes a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Polls `cond` every 10 ms for at most 10 s.
pub fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Reports that a test cannot run its real component on this machine:
/// prints `SKIP: reason`, and panics when `CI=true` (CI must run it).
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "SKIP refused under CI=true: {reason}"
    );
    eprintln!("SKIP: {reason}");
}

/// Runs `f` on a thread inside a fresh network namespace whose loopback is
/// up with the given MTU (tests of MTU-dependent GSO behaviour). `None`
/// when namespaces cannot be created here (no CAP_SYS_ADMIN; a visible
/// skip, a failure under `CI=true`); panics in `f` propagate.
#[cfg(target_os = "linux")]
pub fn with_loopback_mtu<R: Send + 'static>(
    mtu: i32,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let handle = std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            skip(&format!(
                "no network namespace: {}",
                std::io::Error::last_os_error()
            ));
            return None;
        }
        // SAFETY: plain socket/ioctl/close on a socket we own, with a live,
        // zero-initialised ifreq naming "lo".
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *s as libc::c_char;
            }
            assert_eq!(
                libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr),
                0,
                "SIOCGIFFLAGS"
            );
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            assert_eq!(libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr), 0, "SIOCSIFFLAGS");
            ifr.ifr_ifru.ifru_mtu = mtu;
            assert_eq!(libc::ioctl(fd, libc::SIOCSIFMTU, &ifr), 0, "SIOCSIFMTU");
            libc::close(fd);
        }
        Some(f())
    });
    match handle.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}
