//! One `moss-signal` server: a thread per server that joins the room over
//! a WebSocket (`/signal?room=…&id=…`, `ws://` or `wss://` over OpenSSL),
//! hands every text message to the WebRTC thread, sends what it queues,
//! and reconnects with back-off (1 s doubling to 30 s) until the node
//! stops. Signaling is a few envelopes per link, so blocking I/O with a
//! short read timeout is enough.

use super::{WebrtcCounters, WebrtcError};
use crossbeam_channel::{bounded, Receiver, Sender};
use openssl::ssl::{SslConnector, SslMethod, SslStream};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often a connected client looks at its outbound queue.
const READ_TICK: Duration = Duration::from_millis(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Close codes after which retrying cannot help (bad room or id).
const FATAL: u16 = 4400;

/// A signal server's client thread; the WebRTC thread sends through it.
pub(crate) struct Client {
    out: Sender<String>,
    _thread: JoinHandle<()>,
}

/// Where and how to join one server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The join URL (`…/signal?room=…&id=…`).
    join: String,
    /// `host:port` to dial.
    authority: String,
    /// The host name the certificate must carry (`wss://` only).
    host: String,
    /// `wss://`.
    tls: bool,
}

/// `ws[s]://host[:port][/path]` to the join target (port 80 or 443 when
/// absent).
fn target(base: &str, room: &str, id: &str) -> Option<Target> {
    let (tls, rest) = match base.strip_prefix("wss://") {
        Some(r) => (true, r),
        None => (false, base.strip_prefix("ws://")?),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || path.contains('?') {
        return None;
    }
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, has_port) = match authority.strip_prefix('[') {
        Some(r) => {
            let end = r.find(']')?;
            (&r[..end], r[end + 1..].starts_with(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, _)) => (h, true),
            None => (authority, false),
        },
    };
    if host.is_empty() {
        return None;
    }
    let dial = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let path = path.trim_end_matches('/');
    let path = if path.ends_with("/signal") {
        path.to_string()
    } else {
        format!("{path}/signal")
    };
    let scheme = if tls { "wss" } else { "ws" };
    Some(Target {
        join: format!("{scheme}://{authority}{path}?room={room}&id={id}"),
        authority: dial,
        host: host.to_string(),
        tls,
    })
}

/// The TLS settings of `wss://` servers: the system's CA certificates and
/// those of `ca_file` (config `webrtc.signal_ca`) if given.
pub(crate) fn tls(ca_file: &str) -> Result<SslConnector, WebrtcError> {
    let bad = |reason: String| WebrtcError::SignalCa {
        path: ca_file.to_string(),
        reason,
    };
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| bad(e.to_string()))?;
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
        let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in the file".into()));
        }
        for c in certs {
            b.cert_store_mut()
                .add_cert(c)
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(b.build())
}

/// A signal connection's byte stream: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Client {
    /// Starts the client of server number `server` at `url`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        server: usize,
        url: &str,
        room: &str,
        id: &str,
        tls: SslConnector,
        inbound: Sender<(usize, String)>,
        wake: Arc<mio::Waker>,
        stop: Arc<AtomicBool>,
        counters: Arc<WebrtcCounters>,
    ) -> std::io::Result<Self> {
        let (out, rx) = bounded(256);
        let target = target(url, room, id);
        let url = url.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("moss-signal-{server}"))
            .spawn(move || {
                let Some(target) = target else {
                    tracing::warn!(%url, "webrtc: signal URL not understood");
                    return;
                };
                let mut retry = MIN_RETRY;
                while !stop.load(Ordering::SeqCst) {
                    match connect(&target, &tls) {
                        Ok(ws) => {
                            retry = MIN_RETRY;
                            counters.signal_connected.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%url, "webrtc: joined signal room");
                            let code = serve(ws, server, &rx, &inbound, &wake, &stop);
                            counters.signal_connected.fetch_sub(1, Ordering::Relaxed);
                            if code == Some(FATAL) {
                                tracing::warn!(%url, "webrtc: signal server refused the room or id");
                                return;
                            }
                        }
                        Err(e) => {
                            counters.signal_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%url, error = %e, "webrtc: signal connect failed");
                        }
                    }
                    // Back off in small steps so a stop is seen quickly.
                    let mut slept = Duration::ZERO;
                    while slept < retry && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                        slept += Duration::from_millis(50);
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                }
            })?;
        Ok(Self {
            out,
            _thread: thread,
        })
    }

    /// Queues `text` for the server; false if the queue is full.
    pub fn send(&self, text: String) -> bool {
        self.out.try_send(text).is_ok()
    }
}

fn connect(t: &Target, tls: &SslConnector) -> Result<WebSocket<Stream>, String> {
    let mut last = String::from("no address");
    let mut tcp = None;
    for addr in t.authority.to_socket_addrs().map_err(|e| e.to_string())? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream = if t.tls {
        let s = tls.connect(&t.host, tcp).map_err(|e| format!("tls: {e}"))?;
        Stream::Tls(Box::new(s))
    } else {
        Stream::Plain(tcp)
    };
    let (ws, _) =
        tungstenite::client::client(t.join.as_str(), stream).map_err(|e| e.to_string())?;
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(READ_TICK))
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Runs one connection until it closes or the node stops; the close code
/// the server sent, if any.
fn serve(
    mut ws: WebSocket<Stream>,
    server: usize,
    out: &Receiver<String>,
    inbound: &Sender<(usize, String)>,
    wake: &mio::Waker,
    stop: &AtomicBool,
) -> Option<u16> {
    while !stop.load(Ordering::SeqCst) {
        while let Ok(text) = out.try_recv() {
            if ws.send(Message::text(text)).is_err() {
                return None;
            }
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                if inbound.try_send((server, t.as_str().to_string())).is_ok() {
                    let _ = wake.wake();
                }
            }
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                // Pongs the read queued go out with the next flush.
                let _ = ws.flush();
            }
            Err(_) => return None,
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_urls_become_join_targets() {
        let t = target("ws://127.0.0.1:8788", "r", "i").unwrap();
        assert_eq!(t.join, "ws://127.0.0.1:8788/signal?room=r&id=i");
        assert_eq!((t.authority.as_str(), t.tls), ("127.0.0.1:8788", false));
        let t = target("wss://signal.example/base/", "r", "i").unwrap();
        assert_eq!(t.join, "wss://signal.example/base/signal?room=r&id=i");
        assert_eq!(t.authority, "signal.example:443");
        assert_eq!((t.host.as_str(), t.tls), ("signal.example", true));
        let t = target("wss://[::1]:9443/signal", "r", "i").unwrap();
        assert_eq!(t.join, "wss://[::1]:9443/signal?room=r&id=i");
        assert_eq!(
            (t.authority.as_str(), t.host.as_str()),
            ("[::1]:9443", "::1")
        );
        assert_eq!(target("ws://h", "r", "i").unwrap().authority, "h:80");
        for bad in [
            "http://h",
            "ws://",
            "ws:///x",
            "ws://h/x?y",
            "wss://[::1",
            "ws://:80",
        ] {
            assert_eq!(target(bad, "r", "i"), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_ca_file_names_the_field_and_file() {
        let e = tls("/nonexistent/ca.pem").err().unwrap().to_string();
        assert!(
            e.contains("webrtc.signal_ca") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        assert!(tls("").is_ok());
    }
}
