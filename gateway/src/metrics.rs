//! `/metrics` in the Prometheus text exposition format.

use crate::meshes::Served;
use moss::DropReason;
use std::fmt::Write;
use std::sync::Arc;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the counters of every served mesh.
pub fn render(meshes: &[(String, Arc<Served>)]) -> String {
    let stats: Vec<(String, moss::NodeStats)> = meshes
        .iter()
        .filter_map(|(id, s)| s.node.stats().ok().map(|st| (escape(id), st)))
        .collect();
    let mut out = String::new();
    type Get = fn(&moss::NodeStats) -> u64;
    let series: [(&str, &str, &str, Get); 15] = [
        ("moss_peers", "gauge", "Established peer sessions.", |s| {
            s.peer_count as u64
        }),
        (
            "moss_sessions",
            "gauge",
            "Session slots including handshakes in flight.",
            |s| s.sessions as u64,
        ),
        (
            "moss_uptime_seconds",
            "gauge",
            "Seconds since the node started.",
            |s| s.uptime_sec,
        ),
        (
            "moss_datagrams_in_total",
            "counter",
            "Datagrams received.",
            |s| s.counters.datagrams_in,
        ),
        (
            "moss_datagrams_out_total",
            "counter",
            "Datagrams sent.",
            |s| s.counters.datagrams_out,
        ),
        ("moss_bytes_in_total", "counter", "Bytes received.", |s| {
            s.counters.bytes_in
        }),
        ("moss_bytes_out_total", "counter", "Bytes sent.", |s| {
            s.counters.bytes_out
        }),
        (
            "moss_handshakes_initiated_total",
            "counter",
            "Handshakes started by this node.",
            |s| s.counters.handshakes_initiated,
        ),
        (
            "moss_handshakes_completed_total",
            "counter",
            "Handshakes that produced a session.",
            |s| s.counters.handshakes_completed,
        ),
        (
            "moss_handshakes_failed_total",
            "counter",
            "Handshakes that failed or timed out.",
            |s| s.counters.handshakes_failed,
        ),
        (
            "moss_messages_published_total",
            "counter",
            "Messages published by this node.",
            |s| s.counters.messages_published,
        ),
        (
            "moss_messages_delivered_total",
            "counter",
            "Messages delivered to local subscribers.",
            |s| s.counters.messages_delivered,
        ),
        (
            "moss_messages_forwarded_total",
            "counter",
            "Message copies forwarded to peers.",
            |s| s.counters.messages_forwarded,
        ),
        (
            "moss_messages_duplicate_total",
            "counter",
            "Duplicate message copies suppressed.",
            |s| s.counters.messages_duplicate,
        ),
        (
            "moss_send_dropped_total",
            "counter",
            "Datagrams the kernel refused to queue.",
            |s| s.send_dropped,
        ),
    ];
    for (name, kind, help, get) in series {
        family(&mut out, name, kind, help);
        for (id, st) in &stats {
            let _ = writeln!(
                out,
                "{name}{{mesh=\"{id}\",backend=\"{}\"}} {}",
                st.backend,
                get(st)
            );
        }
    }
    family(
        &mut out,
        "moss_drops_total",
        "counter",
        "Inputs dropped, by reason.",
    );
    for (id, st) in &stats {
        for r in DropReason::ALL {
            let _ = writeln!(
                out,
                "moss_drops_total{{mesh=\"{id}\",reason=\"{}\"}} {}",
                r.as_str(),
                st.counters.drops.get(r)
            );
        }
    }
    nat(&mut out, &stats);
    out
}

/// The NAT class (one series per mesh, value 1) and the NAT counters by
/// event (the fields of `moss_mesh::nat::NatStats`).
fn nat(out: &mut String, stats: &[(String, moss::NodeStats)]) {
    family(
        out,
        "moss_nat_type",
        "gauge",
        "The NAT class the node concluded (value 1).",
    );
    for (id, st) in stats {
        let _ = writeln!(
            out,
            "moss_nat_type{{mesh=\"{id}\",type=\"{}\"}} 1",
            st.nat_type
        );
    }
    family(
        out,
        "moss_nat_events_total",
        "counter",
        "NAT traversal events: observations, binding and probe frames, by outcome.",
    );
    for (id, st) in stats {
        let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&st.counters.nat) else {
            continue;
        };
        for (event, v) in m {
            let _ = writeln!(
                out,
                "moss_nat_events_total{{mesh=\"{id}\",event=\"{event}\"}} {}",
                v.as_u64().unwrap_or(0)
            );
        }
    }
}
