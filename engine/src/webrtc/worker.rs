//! The WebRTC thread: one mio poll over the ICE sockets and a waker (the
//! engine and the signal clients ring it), one sans-IO endpoint, and the
//! moves between them: UDP in and out, signal text in and out, channel
//! datagrams to and from the engine.

use super::bridge::{FromRtc, ToRtc};
use super::gather::{Gather, Gathered};
use super::signal::Client;
use super::WebrtcCounters;
use crate::backend::Wakeup;
use crossbeam_channel::{Receiver, Sender};
use moss_webrtc::{Endpoint, Output};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The waker's token (sockets take 0..n).
pub(crate) const WAKE: mio::Token = mio::Token(usize::MAX);

/// Longest sleep when no link wants a timer.
const IDLE: Duration = Duration::from_secs(1);

/// Node datagrams moved to DataChannels per loop turn.
const SENDS_PER_TURN: usize = 1024;

pub(crate) struct Worker {
    pub poll: mio::Poll,
    pub sockets: Vec<(mio::net::UdpSocket, SocketAddr)>,
    pub gather: Gather,
    pub endpoint: Endpoint,
    pub clients: Vec<Client>,
    pub signal_rx: Receiver<(usize, String)>,
    pub from_engine: Receiver<ToRtc>,
    pub to_engine: Sender<FromRtc>,
    pub engine: Arc<dyn Wakeup>,
    pub counters: Arc<WebrtcCounters>,
    pub stop: Arc<AtomicBool>,
    pub waker: Arc<mio::Waker>,
}

impl Worker {
    pub fn run(mut self) {
        let mut events = mio::Events::with_capacity(64);
        let mut buf = vec![0u8; 2048];
        // Links wait for the reflexive candidates (each SDP goes out
        // once, with the candidates known then); the first STUN requests
        // go out before the first wait.
        let now = Instant::now();
        if self.gather.busy() {
            self.endpoint.hold_links(true, now);
        }
        self.stun(now);
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let wait = [self.endpoint.poll_timeout(), self.gather.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map_or(IDLE, |t| t.saturating_duration_since(now).min(IDLE));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "webrtc: poll failed");
                    return;
                }
            }
            let now = Instant::now();
            // Every socket is drained each turn (mio is edge-triggered).
            for i in 0..self.sockets.len() {
                loop {
                    let (sock, local) = &self.sockets[i];
                    let local = *local;
                    match sock.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if !self.gather.handle(now, i, from, &buf[..n]) {
                                self.endpoint.handle_receive(now, from, local, &buf[..n]);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::trace!(error = %e, "webrtc: recv failed");
                            break;
                        }
                    }
                }
            }
            while let Ok((server, text)) = self.signal_rx.try_recv() {
                self.endpoint.handle_signal(now, server, &text);
            }
            for _ in 0..SENDS_PER_TURN {
                let Ok(m) = self.from_engine.try_recv() else {
                    break;
                };
                self.engine_item(m);
                // Sends produce SCTP packets: move them out as they come
                // so the output queue stays short.
                self.flush();
            }
            if !self.from_engine.is_empty() {
                // More queued than one turn takes: come back at once.
                let _ = self.waker.wake();
            }
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
            }
            self.stun(now);
            self.flush();
            self.publish_stats();
        }
        // The node's last transmits (its close frames) go out first.
        while let Ok(m) = self.from_engine.try_recv() {
            self.engine_item(m);
            self.flush();
        }
        self.endpoint.close_all();
        self.flush();
    }

    /// Runs the STUN bindings: requests out, reflexive addresses into the
    /// endpoint (links made from now on offer them); once every binding
    /// has ended, the links held back meanwhile are made.
    fn stun(&mut self, now: Instant) {
        if !self.gather.busy() {
            if self.endpoint.holding() {
                self.endpoint.hold_links(false, now);
            }
            return;
        }
        if self.gather.poll_timeout().is_some_and(|t| t <= now) {
            self.gather.handle_timeout(now);
        }
        while let Some((i, to, bytes)) = self.gather.poll_transmit(now) {
            if let Some((s, _)) = self.sockets.get(i) {
                if let Err(e) = s.send_to(&bytes, to) {
                    tracing::debug!(%to, error = %e, "webrtc: STUN send failed");
                }
            }
        }
        while let Some(g) = self.gather.poll() {
            match g {
                Gathered::Mapped { socket, addr } => {
                    let Some(&(_, base)) = self.sockets.get(socket) else {
                        continue;
                    };
                    self.counters.stun_mapped.fetch_add(1, Ordering::Relaxed);
                    if self.endpoint.add_reflexive(addr, base) {
                        tracing::info!(%addr, %base, "webrtc: server-reflexive candidate");
                    }
                }
                Gathered::Failed { .. } => {
                    self.counters.stun_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !self.gather.busy() {
            self.endpoint.hold_links(false, now);
        }
    }

    /// One item from the engine: a datagram to send, or a link to close.
    fn engine_item(&mut self, m: ToRtc) {
        match m {
            ToRtc::Datagram { channel, bytes } => {
                if self.endpoint.send(channel, &bytes) {
                    self.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            ToRtc::Close { channel } => {
                self.endpoint.close_channel(channel);
            }
        }
    }

    /// Carries out everything the endpoint queued.
    fn flush(&mut self) {
        let mut woke = false;
        while let Some(o) = self.endpoint.poll_output() {
            match o {
                Output::Transmit { from, to, bytes } => {
                    if let Some((s, _)) = self.sockets.iter().find(|(_, a)| *a == from) {
                        if let Err(e) = s.send_to(&bytes, to) {
                            tracing::trace!(%to, error = %e, "webrtc: send failed");
                        }
                    }
                }
                Output::Signal { server, text } => {
                    if let Some(c) = self.clients.get(server) {
                        let _ = c.send(text);
                    }
                }
                Output::Opened { channel, offerer } => {
                    woke |= self.to_engine(FromRtc::Opened { channel, offerer });
                }
                Output::Datagram { channel, bytes } => {
                    self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    woke |= self.to_engine(FromRtc::Datagram { channel, bytes });
                }
                Output::Junk { .. } => {}
                Output::Closed { channel } => {
                    woke |= self.to_engine(FromRtc::Closed { channel });
                }
            }
        }
        if woke {
            self.engine.wake();
        }
    }

    fn to_engine(&self, m: FromRtc) -> bool {
        if self.to_engine.try_send(m).is_err() {
            self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn publish_stats(&self) {
        let s = self.endpoint.stats();
        let c = &self.counters;
        c.links_opened.store(s.links_opened, Ordering::Relaxed);
        c.links_failed.store(s.links_failed, Ordering::Relaxed);
        c.links_open.store(s.links_open, Ordering::Relaxed);
        c.links_refused.store(s.links_refused, Ordering::Relaxed);
        c.links_retried.store(s.links_retried, Ordering::Relaxed);
        c.signal_junk.store(s.signal_junk, Ordering::Relaxed);
        c.udp_unmatched.store(s.udp_unmatched, Ordering::Relaxed);
        c.text_dropped.store(s.text_dropped, Ordering::Relaxed);
    }
}
