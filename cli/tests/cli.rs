//! The `moss` binary end to end on loopback: a chat between two processes,
//! and each documented exit code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const OFFLINE: [&str; 3] = ["--no-trackers", "--no-dht", "--no-lan"];

fn moss() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moss"));
    c.env("RUST_LOG", "info").env_remove("MOSS_IDENTITY");
    c
}

/// Kills the child if a test fails midway.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `moss sub` on an ephemeral port and returns it with its port,
/// read from its "node started" log line.
fn subscriber(extra: &[&str]) -> (Reaped, u16, BufReader<std::process::ChildStderr>) {
    let mut child = moss()
        .args(["sub", "chat", "--mesh", "cli-test", "--listen-port", "0"])
        .args(OFFLINE)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let child = Reaped(child);
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "sub exited early");
        if let Some(rest) = line.split("listen=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    (child, port, err)
}

#[test]
fn a_chat_between_two_processes_delivers_the_message() {
    let (mut sub, port, _err) = subscriber(&["--count", "2", "--json", "--timeout", "30"]);
    let out = moss()
        .args(["pub", "chat", "--mesh", "cli-test", "--static"])
        .arg(format!("127.0.0.1:{port}"))
        .args(OFFLINE)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            use std::io::Write;
            p.stdin
                .take()
                .unwrap()
                .write_all(b"first line\nsecond line\n")?;
            p.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = sub.0.stdout.take().unwrap();
    let lines: Vec<serde_json::Value> = BufReader::new(stdout)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(sub.0.wait().unwrap().success());
    let mut texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    texts.sort_unstable();
    assert_eq!(texts, ["first line", "second line"]);
    for l in &lines {
        assert_eq!(l["topic"], "chat");
        assert_eq!(l["from"].as_str().unwrap().len(), 64);
        assert_eq!(l["id"].as_str().unwrap().len(), 64);
    }
}

#[test]
fn exit_codes_mean_what_the_help_says() {
    let code = |c: &mut Command| c.output().unwrap().status.code();
    // 2: a bad flag value.
    assert_eq!(
        code(moss().args(["pub", "chat", "x", "--listen-port", "nope"])),
        Some(2)
    );
    assert_eq!(
        code(moss().args(["sub", "chat", "--backend", "dpdk"])),
        Some(2)
    );
    // 3: nobody to publish to.
    let mut pub_alone = moss();
    pub_alone
        .args(["pub", "chat", "x", "--mesh", "cli-test", "--wait", "0.3"])
        .args(OFFLINE);
    assert_eq!(code(&mut pub_alone), Some(3));
    // 4: sub timed out before --count.
    let mut sub_alone = moss();
    sub_alone
        .args([
            "sub",
            "chat",
            "--mesh",
            "cli-test",
            "--count",
            "1",
            "--timeout",
            "0.3",
        ])
        .args(OFFLINE);
    assert_eq!(code(&mut sub_alone), Some(4));
    // 1: the port is taken.
    let taken = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut clash = moss();
    clash
        .args([
            "sub",
            "chat",
            "--listen-port",
            &port,
            "--backend",
            "portable",
        ])
        .args(OFFLINE);
    assert_eq!(code(&mut clash), Some(1));
}

#[test]
fn id_creates_once_then_shows_the_same_peer_id() {
    let path = std::env::temp_dir().join(format!("moss-cli-test-{}.key", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let run = || {
        moss()
            .arg("id")
            .arg("--identity")
            .arg(&path)
            .output()
            .unwrap()
    };
    let a = run();
    let b = run();
    assert!(a.status.success() && b.status.success());
    assert!(String::from_utf8_lossy(&a.stderr).contains("created"));
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(String::from_utf8_lossy(&a.stdout).trim().len(), 64);
    // The node uses it: `info` reports the same peer id.
    let info = moss()
        .args(["info", "--wait", "0", "--json", "--identity"])
        .arg(&path)
        .args(OFFLINE)
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        doc["mesh"]["public_key"].as_str().unwrap(),
        String::from_utf8_lossy(&a.stdout).trim()
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn sigterm_stops_sub_cleanly() {
    let (mut sub, _port, mut err) = subscriber(&[]);
    // Signals are caught from the "subscribed" line on.
    let mut line = String::new();
    while !line.contains("subscribed") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "sub exited early");
    }
    let pid = sub.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = sub.0.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success(), "{status:?} {rest}");
    assert!(rest.contains("node shutting down"), "{rest}");
}
