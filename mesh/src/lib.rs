//! The sans-IO Moss node (being written).
