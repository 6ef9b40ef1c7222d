//! Moss discovery (being written).
