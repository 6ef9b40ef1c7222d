//! The sans-IO signaling hub: rooms of peers, joins, leaves and envelope
//! routing under the server's limits. It owns no socket and no clock: the
//! caller passes the time in and delivers the [`Send`]s it returns.

use crate::close::Reject;
use crate::envelope;
use crate::limits::Limits;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// A connection handle the hub hands out on join.
pub type ConnId = u64;

pub use moss_signal_envelope::bounds::{valid_name, MAX_ID, MAX_ROOM};

/// One text message for one or more connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The JSON text.
    pub text: String,
    /// Recipients.
    pub to: Vec<ConnId>,
}

/// What a successful join produced.
#[derive(Debug)]
pub struct Joined {
    /// The new connection's handle.
    pub conn: ConnId,
    /// The `peers` list for the newcomer and the `join` broadcast.
    pub sends: Vec<Send>,
}

/// Counters of the hub since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful joins.
    pub joins: u64,
    /// Envelopes accepted from clients.
    pub envelopes_in: u64,
    /// Envelope copies handed out for delivery.
    pub deliveries: u64,
    /// Directed envelopes whose recipient is not in the room.
    pub unroutable: u64,
    /// Connections refused or closed, by [`Reject::index`].
    pub rejected: [u64; Reject::ALL.len()],
}

struct Peer {
    room: String,
    id: String,
    tokens: f64,
    refilled: Instant,
}

/// The rooms and their peers.
pub struct Hub {
    limits: Limits,
    rooms: HashMap<String, BTreeMap<String, ConnId>>,
    peers: HashMap<ConnId, Peer>,
    next: ConnId,
    counters: Counters,
}

impl Hub {
    /// An empty hub enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            rooms: HashMap::new(),
            peers: HashMap::new(),
            next: 1,
            counters: Counters::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Rooms with at least one peer.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Joined peers over all rooms.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Counters since the hub started.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts a refused or closed connection.
    pub fn count_reject(&mut self, r: Reject) {
        self.counters.rejected[r.index()] += 1;
    }

    /// Adds peer `id` to `room`. On success the newcomer gets the ids already
    /// present and they get a `join`. A refusal is counted.
    pub fn join(&mut self, now: Instant, room: &str, id: &str) -> Result<Joined, Reject> {
        let r = self.try_join(now, room, id);
        if let Err(e) = r {
            self.count_reject(e);
        }
        r
    }

    fn try_join(&mut self, now: Instant, room: &str, id: &str) -> Result<Joined, Reject> {
        if !valid_name(room, MAX_ROOM) {
            return Err(Reject::BadRoom);
        }
        if !valid_name(id, MAX_ID) {
            return Err(Reject::BadId);
        }
        if self.peers.len() >= self.limits.max_peers {
            return Err(Reject::ServerFull);
        }
        match self.rooms.get(room) {
            None if self.rooms.len() >= self.limits.max_rooms => return Err(Reject::TooManyRooms),
            Some(r) if r.contains_key(id) => return Err(Reject::DuplicateId),
            Some(r) if r.len() >= self.limits.max_room_peers => return Err(Reject::RoomFull),
            _ => {}
        }
        let conn = self.next;
        self.next += 1;
        let members = self.rooms.entry(room.to_string()).or_default();
        let sends = vec![
            Send {
                text: envelope::peers(members.keys().map(String::as_str)),
                to: vec![conn],
            },
            Send {
                text: envelope::presence("join", id),
                to: members.values().copied().collect(),
            },
        ];
        members.insert(id.to_string(), conn);
        self.peers.insert(
            conn,
            Peer {
                room: room.to_string(),
                id: id.to_string(),
                tokens: self.limits.burst,
                refilled: now,
            },
        );
        self.counters.joins += 1;
        Ok(Joined {
            conn,
            sends: self.counted(sends),
        })
    }

    /// Removes `conn`; the rest of its room gets a `leave`. Unknown handles
    /// yield nothing.
    pub fn leave(&mut self, conn: ConnId) -> Vec<Send> {
        let Some(peer) = self.peers.remove(&conn) else {
            return Vec::new();
        };
        let Some(members) = self.rooms.get_mut(&peer.room) else {
            return Vec::new();
        };
        members.remove(&peer.id);
        if members.is_empty() {
            self.rooms.remove(&peer.room);
            return Vec::new();
        }
        let sends = vec![Send {
            text: envelope::presence("leave", &peer.id),
            to: members.values().copied().collect(),
        }];
        self.counted(sends)
    }

    /// Routes one text message from `conn`: stamps `from` and addresses it to
    /// `to`, or to the rest of the room when `to` is absent or empty. An
    /// error means the connection must be closed with that cause (counted).
    pub fn route(&mut self, now: Instant, conn: ConnId, text: &str) -> Result<Vec<Send>, Reject> {
        let r = self.try_route(now, conn, text);
        if let Err(e) = r {
            self.count_reject(e);
        }
        r
    }

    fn try_route(&mut self, now: Instant, conn: ConnId, text: &str) -> Result<Vec<Send>, Reject> {
        let (rate, burst, max) = (
            self.limits.rate,
            self.limits.burst,
            self.limits.max_envelope,
        );
        let Some(peer) = self.peers.get_mut(&conn) else {
            return Ok(Vec::new());
        };
        if text.len() > max {
            return Err(Reject::Oversize);
        }
        let elapsed = now.saturating_duration_since(peer.refilled).as_secs_f64();
        peer.tokens = (peer.tokens + elapsed * rate).min(burst);
        peer.refilled = now;
        if peer.tokens < 1.0 {
            return Err(Reject::RateLimited);
        }
        peer.tokens -= 1.0;
        let env = envelope::decode(text).map_err(|_| Reject::Malformed)?;
        self.counters.envelopes_in += 1;
        let Some(members) = self.rooms.get(&peer.room) else {
            return Ok(Vec::new());
        };
        let to: Vec<ConnId> = match env.to.as_deref().filter(|t| !t.is_empty()) {
            None => members.values().copied().filter(|c| *c != conn).collect(),
            // Addressed to a peer not in the room, or to the sender itself.
            Some(t) => match members.get(t).filter(|c| **c != conn) {
                Some(c) => vec![*c],
                None => {
                    self.counters.unroutable += 1;
                    return Ok(Vec::new());
                }
            },
        };
        let text = envelope::forward(&env, &peer.id);
        Ok(self.counted(vec![Send { text, to }]))
    }

    fn counted(&mut self, sends: Vec<Send>) -> Vec<Send> {
        let sends: Vec<Send> = sends.into_iter().filter(|s| !s.to.is_empty()).collect();
        self.counters.deliveries += sends.iter().map(|s| s.to.len() as u64).sum::<u64>();
        sends
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hub(limits: Limits) -> (Hub, Instant) {
        (Hub::new(limits), Instant::now())
    }

    #[test]
    fn join_route_leave() {
        let (mut h, t) = hub(Limits::default());
        let a = h.join(t, "room", "a").unwrap();
        assert_eq!(
            a.sends,
            vec![Send {
                text: r#"{"type":"peers","peers":[]}"#.into(),
                to: vec![a.conn]
            }]
        );
        let b = h.join(t, "room", "b").unwrap();
        assert_eq!(b.sends[0].text, r#"{"type":"peers","peers":["a"]}"#);
        assert_eq!(
            b.sends[1],
            Send {
                text: r#"{"type":"join","from":"b"}"#.into(),
                to: vec![a.conn]
            }
        );
        let c = h.join(t, "room", "c").unwrap();
        let other = h.join(t, "elsewhere", "a").unwrap();

        let s = h
            .route(t, a.conn, r#"{"type":"offer","to":"c","data":1}"#)
            .unwrap();
        assert_eq!(
            s,
            vec![Send {
                text: r#"{"type":"offer","from":"a","to":"c","data":1}"#.into(),
                to: vec![c.conn]
            }]
        );
        let mut s = h.route(t, a.conn, r#"{"type":"hi"}"#).unwrap();
        s[0].to.sort();
        assert_eq!(s[0].to, vec![b.conn, c.conn]);
        assert!(h
            .route(t, a.conn, r#"{"type":"offer","to":"zed"}"#)
            .unwrap()
            .is_empty());
        assert_eq!(h.counters().unroutable, 1);

        let mut s = h.leave(a.conn);
        s[0].to.sort();
        assert_eq!(
            s,
            vec![Send {
                text: r#"{"type":"leave","from":"a"}"#.into(),
                to: vec![b.conn, c.conn]
            }]
        );
        assert!(h.leave(a.conn).is_empty());
        assert_eq!(h.rooms(), 2);
        assert!(h.leave(other.conn).is_empty());
        assert_eq!((h.rooms(), h.peers()), (1, 2));
    }

    #[test]
    fn every_join_bound() {
        let limits = Limits {
            max_rooms: 2,
            max_room_peers: 2,
            max_peers: 4,
            ..Limits::default()
        };
        let (mut h, t) = hub(limits);
        assert_eq!(h.join(t, "", "a").unwrap_err(), Reject::BadRoom);
        assert_eq!(h.join(t, "r/../x", "a").unwrap_err(), Reject::BadRoom);
        assert_eq!(
            h.join(t, &"r".repeat(MAX_ROOM + 1), "a").unwrap_err(),
            Reject::BadRoom
        );
        assert_eq!(h.join(t, "r", "").unwrap_err(), Reject::BadId);
        assert_eq!(h.join(t, "r", "<b>").unwrap_err(), Reject::BadId);
        assert_eq!(
            h.join(t, "r", &"i".repeat(MAX_ID + 1)).unwrap_err(),
            Reject::BadId
        );
        h.join(t, &"r".repeat(MAX_ROOM), &"i".repeat(MAX_ID))
            .unwrap();
        h.join(t, "r", "a").unwrap();
        assert_eq!(h.join(t, "r", "a").unwrap_err(), Reject::DuplicateId);
        assert_eq!(h.join(t, "third", "a").unwrap_err(), Reject::TooManyRooms);
        h.join(t, "r", "b").unwrap();
        assert_eq!(h.join(t, "r", "c").unwrap_err(), Reject::RoomFull);
        h.join(t, &"r".repeat(MAX_ROOM), "z").unwrap();
        assert_eq!(
            h.join(t, &"r".repeat(MAX_ROOM), "y").unwrap_err(),
            Reject::ServerFull
        );
        assert_eq!(h.counters().rejected[Reject::BadRoom.index()], 3);
        assert_eq!(h.counters().joins, 4);
    }

    #[test]
    fn envelope_bounds_and_rate() {
        let limits = Limits {
            max_envelope: 64,
            rate: 1.0,
            burst: 3.0,
            ..Limits::default()
        };
        let (mut h, t) = hub(limits);
        let a = h.join(t, "r", "a").unwrap().conn;
        let big = format!(r#"{{"type":"x","data":"{}"}}"#, "y".repeat(64));
        assert_eq!(h.route(t, a, &big).unwrap_err(), Reject::Oversize);
        assert_eq!(h.route(t, a, "not json").unwrap_err(), Reject::Malformed);
        assert_eq!(
            h.route(t, a, r#"{"type":"leave"}"#).unwrap_err(),
            Reject::Malformed
        );
        // The three above took no token except the two malformed ones.
        assert!(h.route(t, a, r#"{"type":"x"}"#).is_ok());
        assert_eq!(
            h.route(t, a, r#"{"type":"x"}"#).unwrap_err(),
            Reject::RateLimited
        );
        // One second refills one token.
        let later = t + Duration::from_secs(1);
        assert!(h.route(later, a, r#"{"type":"x"}"#).is_ok());
        assert_eq!(
            h.route(later, a, r#"{"type":"x"}"#).unwrap_err(),
            Reject::RateLimited
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Join(u8, u8),
            Leave(u8),
            Route(u8, String),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..4, 0u8..6).prop_map(|(r, i)| Op::Join(r, i)),
                (0u8..16).prop_map(Op::Leave),
                (
                    0u8..16,
                    prop_oneof![
                        any::<String>(),
                        "[a-f]{1,3}"
                            .prop_map(|to| format!(r#"{{"type":"t","to":"{to}","data":[1]}}"#)),
                        Just(r#"{"type":"t"}"#.to_string()),
                    ]
                )
                    .prop_map(|(c, t)| Op::Route(c, t)),
            ]
        }

        proptest! {
            /// Any sequence of joins, leaves and arbitrary text: no panic,
            /// the bounds hold, every send goes to a live peer other than
            /// its source, and every text sent is JSON with a stamped `from`.
            #[test]
            fn bounds_and_addressing_hold(ops in proptest::collection::vec(op(), 1..80)) {
                let limits = Limits { max_rooms: 3, max_room_peers: 3, max_peers: 5, max_envelope: 128, ..Limits::default() };
                let (mut h, t) = hub(limits);
                let mut conns: Vec<ConnId> = Vec::new();
                for op in ops {
                    let (sends, from) = match op {
                        Op::Join(r, i) => match h.join(t, &format!("r{r}"), &format!("{}", (b'a' + i) as char)) {
                            Ok(j) => { conns.push(j.conn); (j.sends, None) }
                            Err(_) => (Vec::new(), None),
                        },
                        Op::Leave(c) => match conns.get(c as usize).copied() {
                            Some(conn) => { conns.retain(|x| *x != conn); (h.leave(conn), Some(conn)) }
                            None => (Vec::new(), None),
                        },
                        Op::Route(c, text) => match conns.get(c as usize).copied() {
                            Some(conn) => (h.route(t, conn, &text).unwrap_or_default(), Some(conn)),
                            None => (Vec::new(), None),
                        },
                    };
                    prop_assert!(h.rooms() <= 3 && h.peers() <= 5);
                    prop_assert_eq!(h.peers(), conns.len());
                    for s in sends {
                        let v: serde_json::Value = serde_json::from_str(&s.text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert!(v["type"].is_string());
                        for to in &s.to {
                            prop_assert!(conns.contains(to));
                            prop_assert!(Some(*to) != from);
                        }
                    }
                }
            }
        }
    }
}
