//! One `moss-signal` server: a thread per server that joins the room over
//! a WebSocket (`/signal?room=…&id=…`), hands every text message to the
//! WebRTC thread, sends what it queues, and reconnects with back-off
//! (1 s doubling to 30 s) until the node stops. Signaling is a few
//! envelopes per link, so blocking I/O with a short read timeout is enough.

use super::WebrtcCounters;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::ErrorKind;
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

/// `ws://host:port[/path]` to the join URL and the `host:port` to dial.
fn join_url(base: &str, room: &str, id: &str) -> Option<(String, String)> {
    let rest = base.strip_prefix("ws://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || path.contains('?') {
        return None;
    }
    let path = path.trim_end_matches('/');
    let path = if path.ends_with("/signal") {
        path.to_string()
    } else {
        format!("{path}/signal")
    };
    Some((
        format!("ws://{authority}{path}?room={room}&id={id}"),
        authority.to_string(),
    ))
}

impl Client {
    /// Starts the client of server number `server` at `url`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        server: usize,
        url: &str,
        room: &str,
        id: &str,
        inbound: Sender<(usize, String)>,
        wake: Arc<mio::Waker>,
        stop: Arc<AtomicBool>,
        counters: Arc<WebrtcCounters>,
    ) -> std::io::Result<Self> {
        let (out, rx) = bounded(256);
        let target = join_url(url, room, id);
        let url = url.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("moss-signal-{server}"))
            .spawn(move || {
                let Some((join, authority)) = target else {
                    tracing::warn!(%url, "webrtc: signal URL not understood");
                    return;
                };
                let mut retry = MIN_RETRY;
                while !stop.load(Ordering::SeqCst) {
                    match connect(&join, &authority) {
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
                        Err(e) => tracing::debug!(%url, error = %e, "webrtc: signal connect failed"),
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

fn connect(join: &str, authority: &str) -> Result<WebSocket<TcpStream>, String> {
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client::client(join, stream).map_err(|e| e.to_string())?;
    ws.get_ref()
        .set_read_timeout(Some(READ_TICK))
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Runs one connection until it closes or the node stops; the close code
/// the server sent, if any.
fn serve(
    mut ws: WebSocket<TcpStream>,
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
