//! The hosted runtime (being written).
