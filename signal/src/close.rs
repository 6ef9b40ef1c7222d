//! Why the server refuses or closes a connection, and the WebSocket close
//! code and reason it sends for each cause.

/// A cause for closing a connection. Each maps to one close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// `room` is missing or breaks the room rule.
    #[error("bad room: want 1-128 bytes of A-Z a-z 0-9 . _ ~ -")]
    BadRoom,
    /// `id` is missing or breaks the id rule.
    #[error("bad id: want 1-64 bytes of A-Z a-z 0-9 . _ ~ -")]
    BadId,
    /// Another connection in the room already has this id.
    #[error("duplicate id in room")]
    DuplicateId,
    /// The server holds its maximum number of rooms.
    #[error("too many rooms")]
    TooManyRooms,
    /// The room holds its maximum number of peers.
    #[error("room full")]
    RoomFull,
    /// The server holds its maximum number of peers.
    #[error("server full")]
    ServerFull,
    /// The envelope is not a JSON object with a string `type`, or uses a
    /// type reserved for the server.
    #[error("malformed envelope")]
    Malformed,
    /// The message is larger than the envelope limit.
    #[error("envelope too big")]
    Oversize,
    /// The connection sent faster than its rate limit allows.
    #[error("rate limit exceeded")]
    RateLimited,
    /// A binary message (envelopes are text).
    #[error("binary messages are not accepted")]
    Binary,
    /// No message or pong within the idle timeout.
    #[error("idle timeout")]
    Idle,
    /// A WebSocket protocol error (bad framing, bad UTF-8).
    #[error("protocol error")]
    Protocol,
}

impl Reject {
    /// Every cause, in a fixed order (for counters).
    pub const ALL: [Reject; 12] = [
        Reject::BadRoom,
        Reject::BadId,
        Reject::DuplicateId,
        Reject::TooManyRooms,
        Reject::RoomFull,
        Reject::ServerFull,
        Reject::Malformed,
        Reject::Oversize,
        Reject::RateLimited,
        Reject::Binary,
        Reject::Idle,
        Reject::Protocol,
    ];

    /// The WebSocket close code: standard codes where one fits (RFC 6455
    /// section 7.4.1), 4xxx application codes named after HTTP statuses otherwise.
    pub fn code(self) -> u16 {
        match self {
            Reject::BadRoom | Reject::BadId => 4400,
            Reject::DuplicateId => 4409,
            Reject::RateLimited => 4429,
            Reject::TooManyRooms | Reject::RoomFull | Reject::ServerFull => 1013,
            Reject::Malformed => 1007,
            Reject::Oversize => 1009,
            Reject::Binary => 1003,
            Reject::Idle => 1001,
            Reject::Protocol => 1002,
        }
    }

    /// A short stable label (metrics, logs).
    pub fn label(self) -> &'static str {
        match self {
            Reject::BadRoom => "bad_room",
            Reject::BadId => "bad_id",
            Reject::DuplicateId => "duplicate_id",
            Reject::TooManyRooms => "too_many_rooms",
            Reject::RoomFull => "room_full",
            Reject::ServerFull => "server_full",
            Reject::Malformed => "malformed",
            Reject::Oversize => "oversize",
            Reject::RateLimited => "rate_limited",
            Reject::Binary => "binary",
            Reject::Idle => "idle",
            Reject::Protocol => "protocol",
        }
    }

    /// Position in [`Reject::ALL`].
    pub fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_a_close_frame_and_labels_are_unique() {
        let mut labels: Vec<_> = Reject::ALL.iter().map(|r| r.label()).collect();
        for r in Reject::ALL {
            // RFC 6455: the reason is at most 123 bytes.
            assert!(r.to_string().len() <= 123);
            assert_eq!(Reject::ALL[r.index()], r);
        }
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Reject::ALL.len());
    }
}
