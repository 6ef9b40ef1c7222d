//! The WebRTC side when the `webrtc` feature is off: a node whose config
//! enables `webrtc` fails to start with [`WebrtcError::NotBuilt`], naming
//! the feature, instead of silently running without DataChannel peers.

use super::{WebrtcCounters, WebrtcError};
use crate::backend::Wakeup;
use moss_mesh::{Node as Core, Transmit};
use std::sync::Arc;
use std::time::Duration;

/// No bridge can exist in this build.
pub(crate) enum Bridge {}

/// Always fails: this build has no WebRTC support.
pub(crate) fn start(
    _cfg: &moss_mesh::config::WebrtcConfig,
    _id: String,
    _room: String,
    _engine: Arc<dyn Wakeup>,
) -> Result<Bridge, WebrtcError> {
    Err(WebrtcError::NotBuilt)
}

impl Bridge {
    /// Unreachable: no bridge exists.
    pub fn counters(&self) -> Arc<WebrtcCounters> {
        match *self {}
    }

    /// Unreachable: no bridge exists.
    pub fn receive(&mut self, _core: &mut Core, _now: Duration) -> bool {
        match *self {}
    }

    /// Unreachable: no bridge exists.
    pub fn send(&mut self, _out: &mut Vec<Transmit>) {
        match *self {}
    }
}
