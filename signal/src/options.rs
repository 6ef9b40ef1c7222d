//! Command-line options of `moss-signal`: `-addr` as the original takes it,
//! plus one flag per limit.

use crate::flags::{self, FlagError, Kind, Spec};
use crate::limits::{LimitError, Limits};
use crate::serve::HttpLimits;
use std::net::SocketAddr;
use std::time::Duration;

/// Every flag `moss-signal` takes.
pub const SPECS: &[Spec] = &[
    Spec {
        name: "addr",
        kind: Kind::Value,
        help: "listen address host:port (default \"127.0.0.1:8788\"; \":PORT\" = all interfaces)",
    },
    Spec {
        name: "demo",
        kind: Kind::Value,
        help: "also serve the browser demo's files from this directory (wasm/peer: demo/, js/, pkg/); / goes to /demo/",
    },
    Spec {
        name: "max-rooms",
        kind: Kind::Value,
        help: "most rooms at once (default 1024)",
    },
    Spec {
        name: "max-room-peers",
        kind: Kind::Value,
        help: "most peers in one room (default 64)",
    },
    Spec {
        name: "max-peers",
        kind: Kind::Value,
        help: "most peers over all rooms (default 4096)",
    },
    Spec {
        name: "max-envelope",
        kind: Kind::Value,
        help: "largest envelope in bytes (default 16384)",
    },
    Spec {
        name: "rate",
        kind: Kind::Value,
        help: "envelopes per second per connection, on average (default 20)",
    },
    Spec {
        name: "burst",
        kind: Kind::Value,
        help: "envelopes per connection in one burst (default 40)",
    },
    Spec {
        name: "queue",
        kind: Kind::Value,
        help: "outbound queue per peer; overflow is dropped and counted (default 64)",
    },
    Spec {
        name: "idle-sec",
        kind: Kind::Value,
        help: "close a connection silent this long, pongs included (default 60)",
    },
    Spec {
        name: "max-conns",
        kind: Kind::Value,
        help: "most HTTP connections at once; an upgraded WebSocket leaves this count and is bounded by -max-peers (default 8192)",
    },
    Spec {
        name: "header-timeout-sec",
        kind: Kind::Value,
        help: "longest wait for a request head, also the keep-alive idle timeout (default 10)",
    },
];

/// Why options were rejected.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A flag problem.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// A limit is not positive.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen address.
    pub addr: SocketAddr,
    /// Hub and connection limits.
    pub limits: Limits,
    /// HTTP server limits.
    pub http: HttpLimits,
    /// The browser demo's directory (`-demo`), if served.
    pub demo: Option<std::path::PathBuf>,
}

fn parse_addr(v: &str) -> Result<SocketAddr, FlagError> {
    let full = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    full.parse().map_err(|_| FlagError::BadValue {
        flag: "addr".into(),
        value: v.into(),
        reason: "want host:port or :port".into(),
    })
}

impl Options {
    /// Builds options from command-line arguments (without the program name).
    pub fn from_args(args: &[String]) -> Result<Self, OptionsError> {
        let p = flags::parse(SPECS, args)?;
        let d = Limits::default();
        let limits = Limits {
            max_rooms: p.parse("max-rooms", d.max_rooms)?,
            max_room_peers: p.parse("max-room-peers", d.max_room_peers)?,
            max_peers: p.parse("max-peers", d.max_peers)?,
            max_envelope: p.parse("max-envelope", d.max_envelope)?,
            rate: p.parse("rate", d.rate)?,
            burst: p.parse("burst", d.burst)?,
            queue: p.parse("queue", d.queue)?,
            idle: Duration::from_secs(p.parse("idle-sec", d.idle.as_secs())?),
        };
        limits.validate()?;
        let http = HttpLimits {
            max_connections: p.parse("max-conns", 8192usize)?,
            header_timeout: Duration::from_secs(p.parse("header-timeout-sec", 10u64)?),
        };
        if http.max_connections == 0 {
            return Err(LimitError("max-conns").into());
        }
        if http.header_timeout.is_zero() {
            return Err(LimitError("header-timeout-sec").into());
        }
        Ok(Self {
            addr: parse_addr(p.get("addr").unwrap_or("127.0.0.1:8788"))?,
            limits,
            http,
            demo: p.get("demo").map(std::path::PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Result<Options, OptionsError> {
        Options::from_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn go_and_gnu_addr_and_defaults() {
        assert_eq!(
            opts("-addr 127.0.0.1:9000").unwrap().addr,
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            opts("--addr=:9001").unwrap().addr,
            "0.0.0.0:9001".parse().unwrap()
        );
        let d = opts("").unwrap();
        assert_eq!(d.addr, "127.0.0.1:8788".parse().unwrap());
        assert_eq!(d.limits, Limits::default());
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            ("-addr nope", "-addr"),
            ("-rate 0", "rate"),
            ("-rate NaN", "rate"),
            ("-burst x", "-burst"),
            ("-max-rooms 0", "max-rooms"),
            ("-queue -1", "-queue"),
            ("-max-conns 0", "max-conns"),
            ("-bogus 1", "-bogus"),
        ] {
            let e = opts(args).unwrap_err().to_string();
            assert!(e.contains(flag), "{args}: {e}");
        }
    }
}
