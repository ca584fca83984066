//! Attribute macros of EbbRT (being written).
