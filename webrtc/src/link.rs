//! One browser (or native) peer: a str0m [`Rtc`] with one negotiated
//! DataChannel (SCTP stream 0, unordered, no retransmits), the node
//! channel id it carries, and what the link is waiting for.

use crate::{Candidates, Output};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc};

/// The DataChannel every Moss link negotiates out of band, as the browser
/// peer creates it: `{negotiated: true, id: 0, ordered: false, maxRetransmits: 0}`.
fn channel_config() -> ChannelConfig {
    ChannelConfig {
        label: "moss".into(),
        ordered: false,
        reliability: Reliability::MaxRetransmits { retransmits: 0 },
        negotiated: Some(0),
        protocol: String::new(),
    }
}

/// Why a link could not be set up from an SDP.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The SDP did not parse.
    #[error("bad sdp: {0}")]
    Sdp(String),
    /// str0m refused the offer, answer or a candidate.
    #[error("webrtc: {0}")]
    Rtc(String),
}

/// One peer link.
pub(crate) struct Link {
    /// The remote peer id.
    pub remote: String,
    /// The node channel id (`Path::Channel`) this link carries.
    pub channel: u64,
    /// True when we made the offer (we dial the node session).
    pub offerer: bool,
    /// True once the DataChannel opened.
    pub open: bool,
    /// True once the link is dead and must be removed.
    pub dead: bool,
    /// When the link was made (a link not open in time is given up).
    pub created: Instant,
    /// The next time str0m wants.
    pub timeout: Instant,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    cid: Option<ChannelId>,
}

impl Link {
    fn new(
        now: Instant,
        remote: String,
        channel: u64,
        candidates: &Candidates,
    ) -> Result<Self, LinkError> {
        let mut rtc = Rtc::builder().build(now);
        let rtc_err = |e: str0m::error::IceError| LinkError::Rtc(e.to_string());
        for a in &candidates.host {
            rtc.add_local_candidate(Candidate::host(*a, "udp").map_err(rtc_err)?);
        }
        // A reflexive address equal to its base (no NAT between us and the
        // STUN server) is redundant: str0m keeps the host candidate.
        for (addr, base) in &candidates.reflexive {
            let c = Candidate::server_reflexive(*addr, *base, "udp").map_err(rtc_err)?;
            rtc.add_local_candidate(c);
        }
        Ok(Self {
            remote,
            channel,
            offerer: false,
            open: false,
            dead: false,
            created: now,
            timeout: now,
            rtc,
            pending: None,
            cid: None,
        })
    }

    /// A link that offers: returns it and the offer's SDP.
    pub fn offer(
        now: Instant,
        remote: String,
        channel: u64,
        candidates: &Candidates,
        out: &mut VecDeque<Output>,
    ) -> Result<(Self, String), LinkError> {
        let mut link = Self::new(now, remote, channel, candidates)?;
        link.offerer = true;
        let mut api = link.rtc.sdp_api();
        api.add_channel_with_config(channel_config());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| LinkError::Rtc("nothing to offer".into()))?;
        link.pending = Some(pending);
        link.drain(out);
        Ok((link, offer.to_sdp_string()))
    }

    /// A link that answers `sdp`: returns it and the answer's SDP.
    pub fn answer(
        now: Instant,
        remote: String,
        channel: u64,
        candidates: &Candidates,
        sdp: &str,
        out: &mut VecDeque<Output>,
    ) -> Result<(Self, String), LinkError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| LinkError::Sdp(e.to_string()))?;
        let mut link = Self::new(now, remote, channel, candidates)?;
        let answer = link
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| LinkError::Rtc(e.to_string()))?;
        link.drain(out);
        link.rtc.direct_api().create_data_channel(channel_config());
        link.drain(out);
        Ok((link, answer.to_sdp_string()))
    }

    /// The remote answered our offer.
    pub fn accept(&mut self, sdp: &str, out: &mut VecDeque<Output>) -> Result<(), LinkError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| LinkError::Rtc("no offer pending".into()))?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| LinkError::Sdp(e.to_string()))?;
        let r = self.rtc.sdp_api().accept_answer(pending, answer);
        self.drain(out);
        r.map_err(|e| LinkError::Rtc(e.to_string()))
    }

    /// True if the datagram from `source` to `destination` belongs to this link.
    pub fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        match Receive::new(Protocol::Udp, source, destination, bytes) {
            Ok(r) => self.rtc.accepts(&Input::Receive(now, r)),
            Err(_) => false,
        }
    }

    /// Feeds one UDP datagram.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
        out: &mut VecDeque<Output>,
    ) {
        let Ok(r) = Receive::new(Protocol::Udp, source, destination, bytes) else {
            return;
        };
        if self.rtc.handle_input(Input::Receive(now, r)).is_err() {
            self.dead = true;
        }
        self.drain(out);
    }

    /// Runs str0m's timers.
    pub fn tick(&mut self, now: Instant, out: &mut VecDeque<Output>) {
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.dead = true;
        }
        self.drain(out);
    }

    /// Sends one datagram on the DataChannel; false if it cannot take it now.
    pub fn send(&mut self, bytes: &[u8], out: &mut VecDeque<Output>) -> bool {
        let Some(cid) = self.cid.filter(|_| self.open) else {
            return false;
        };
        let sent = match self.rtc.channel(cid) {
            Some(mut ch) => ch.write(true, bytes).unwrap_or(false),
            None => false,
        };
        self.drain(out);
        sent
    }

    /// Closes the link: SCTP shutdown and DTLS close_notify go out at
    /// once, so the peer sees its channel close now rather than when its
    /// ICE consent runs out.
    pub fn close(&mut self, out: &mut VecDeque<Output>) {
        if self.rtc.close().is_err() {
            self.rtc.disconnect();
        }
        self.drain(out);
        self.dead = true;
    }

    /// Drains str0m until it names its next timeout (its one rule: every
    /// change is followed by a full drain).
    fn drain(&mut self, out: &mut VecDeque<Output>) {
        loop {
            match self.rtc.poll_output() {
                Ok(str0m::Output::Timeout(t)) => {
                    self.timeout = t;
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => out.push_back(Output::Transmit {
                    from: t.source,
                    to: t.destination,
                    bytes: t.contents.to_vec(),
                }),
                Ok(str0m::Output::Event(e)) => self.event(e, out),
                Err(e) => {
                    tracing::debug!(remote = %self.remote, error = %e, "webrtc link failed");
                    self.dead = true;
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            self.dead = true;
        }
    }

    fn event(&mut self, e: Event, out: &mut VecDeque<Output>) {
        match e {
            Event::ChannelOpen(cid, _) => {
                self.cid = Some(cid);
                if !self.open {
                    self.open = true;
                    out.push_back(Output::Opened {
                        channel: self.channel,
                        offerer: self.offerer,
                    });
                }
            }
            Event::ChannelData(d) if Some(d.id) == self.cid => {
                if d.binary {
                    out.push_back(Output::Datagram {
                        channel: self.channel,
                        bytes: d.data,
                    });
                } else {
                    out.push_back(Output::Junk {
                        channel: self.channel,
                    });
                }
            }
            Event::ChannelClose(cid) if Some(cid) == self.cid => self.dead = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.dead = true,
            _ => {}
        }
    }
}
