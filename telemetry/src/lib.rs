//! Moss telemetry (being written).
