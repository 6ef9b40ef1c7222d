//! Moss cryptography (being written).
