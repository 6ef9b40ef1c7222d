//! `/metrics` of a signal server in the Prometheus text exposition format.

use crate::close::Reject;
use crate::hub::Counters;
use crate::limits::Limits;
use std::fmt::Write;

/// What `/metrics` shows, read under the server's lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Open WebSocket connections (joined or not yet closed).
    pub connections: usize,
    /// Rooms with a peer.
    pub rooms: usize,
    /// Joined peers.
    pub peers: usize,
    /// Hub counters.
    pub counters: Counters,
    /// Envelope copies dropped because a peer's outbound queue was full.
    pub queue_dropped: u64,
    /// The limits in force.
    pub limits: Limits,
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
    );
}

/// Renders `s`. Labels are fixed identifiers, never client input.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let c = &s.counters;
    one(
        &mut out,
        "moss_signal_connections",
        "gauge",
        "Open WebSocket connections.",
        s.connections,
    );
    one(
        &mut out,
        "moss_signal_rooms",
        "gauge",
        "Rooms with at least one peer.",
        s.rooms,
    );
    one(
        &mut out,
        "moss_signal_peers",
        "gauge",
        "Peers joined to a room.",
        s.peers,
    );
    one(
        &mut out,
        "moss_signal_joins_total",
        "counter",
        "Successful joins.",
        c.joins,
    );
    one(
        &mut out,
        "moss_signal_envelopes_in_total",
        "counter",
        "Envelopes accepted from clients.",
        c.envelopes_in,
    );
    one(
        &mut out,
        "moss_signal_deliveries_total",
        "counter",
        "Envelope copies queued to peers.",
        c.deliveries,
    );
    one(
        &mut out,
        "moss_signal_unroutable_total",
        "counter",
        "Directed envelopes whose recipient is not in the room.",
        c.unroutable,
    );
    one(
        &mut out,
        "moss_signal_queue_dropped_total",
        "counter",
        "Envelope copies dropped on a full outbound queue.",
        s.queue_dropped,
    );
    let _ = writeln!(out, "# HELP moss_signal_closed_total Connections refused or closed by the server, by reason.\n# TYPE moss_signal_closed_total counter");
    for r in Reject::ALL {
        let _ = writeln!(
            out,
            "moss_signal_closed_total{{reason=\"{}\",code=\"{}\"}} {}",
            r.label(),
            r.code(),
            c.rejected[r.index()]
        );
    }
    let l = &s.limits;
    let _ = writeln!(
        out,
        "# HELP moss_signal_limit A configured bound.\n# TYPE moss_signal_limit gauge"
    );
    for (name, v) in [
        ("max_rooms", l.max_rooms as f64),
        ("max_room_peers", l.max_room_peers as f64),
        ("max_peers", l.max_peers as f64),
        ("max_envelope_bytes", l.max_envelope as f64),
        ("rate_per_sec", l.rate),
        ("burst", l.burst),
        ("queue", l.queue as f64),
        ("idle_sec", l.idle.as_secs_f64()),
    ] {
        let _ = writeln!(out, "moss_signal_limit{{name=\"{name}\"}} {v}");
    }
    out
}
