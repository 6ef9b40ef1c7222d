//! Helpers shared by the integration tests: finding the built `libmoss.so`
//! (and building it when it is older than its sources).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The directory holding `libmoss.so` and `libmoss.a` of this build, made
/// current first.
///
/// `cargo test -p moss-ffi` does not build them (an integration test links
/// no cdylib or staticlib), so the ones in `target/<profile>` may come
/// from older sources. When either is missing or older than a file it may
/// be built from ([`stale`]), this runs `cargo build -p moss-ffi`, which
/// brings them up to date (or finds, by its own finer rules, that they
/// are).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let Some(why) = stale(&profile) else {
        return profile;
    };
    eprintln!("libmoss is not current ({why}): cargo build -p moss-ffi");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "moss-ffi"])
        .current_dir(crate_dir())
        .status()
        .expect("run cargo build -p moss-ffi");
    assert!(status.success(), "cargo build -p moss-ffi failed");
    profile
}

/// Why `libmoss.so` or `libmoss.a` in `profile` is not current: missing,
/// or older than a file of the packages it is built from (`moss-ffi` and
/// its path dependencies, as `cargo metadata` lists them: their library
/// and build-script directories and manifests). `None` when current.
pub fn stale(profile: &Path) -> Option<String> {
    let mut built = None;
    for name in ["libmoss.so", "libmoss.a"] {
        let Some(t) = modified(&profile.join(name)) else {
            return Some(format!("no {name} in {}", profile.display()));
        };
        built = Some(built.map_or(t, |b: SystemTime| b.min(t)));
    }
    let built = built?;
    let newer = library_sources()
        .into_iter()
        .filter_map(|f| modified(&f).map(|t| (t, f)))
        .filter(|(t, _)| *t > built)
        .max_by_key(|(t, _)| *t)?;
    Some(format!("{} changed after it was built", newer.1.display()))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The files `libmoss` is built from: for `moss-ffi` and every workspace
/// package it reaches through normal path dependencies, the manifest and
/// everything below the directories of its library and build script.
fn library_sources() -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(crate_dir())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let by_dir = |dir: &str| {
        packages.iter().find(|p| {
            Path::new(p["manifest_path"].as_str().unwrap_or_default()).parent()
                == Some(Path::new(dir))
        })
    };
    let mut todo = vec![crate_dir().to_string_lossy().into_owned()];
    let mut seen = Vec::new();
    let mut files = Vec::new();
    while let Some(dir) = todo.pop() {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        let Some(p) = by_dir(&dir) else { continue };
        files.push(PathBuf::from(
            p["manifest_path"].as_str().unwrap_or_default(),
        ));
        for t in p["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = t["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str())
                .collect();
            let lib = kinds
                .iter()
                .any(|k| k.ends_with("lib") || *k == "custom-build");
            if let (true, Some(src)) = (lib, t["src_path"].as_str()) {
                if let Some(d) = Path::new(src).parent() {
                    walk(d, &mut files);
                }
            }
        }
        for d in p["dependencies"].as_array().into_iter().flatten() {
            if let (None, Some(path)) = (d["kind"].as_str(), d["path"].as_str()) {
                todo.push(path.to_string());
            }
        }
    }
    files
}

/// Every file below `dir`.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, files);
        } else {
            files.push(p);
        }
    }
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

/// Reports that a test cannot run on this machine (a tool or a privilege
/// it needs is missing): prints `SKIP: reason`, and panics when `CI=true`
/// (CI must run it).
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "SKIP refused under CI=true: {reason}"
    );
    eprintln!("SKIP: {reason}");
}
