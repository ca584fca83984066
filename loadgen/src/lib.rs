//! An open-loop load generator for memcached, hosted on Linux.
//!
//! What it is for: measuring a memcached server (ours, native or hosted, or
//! memcached itself) the way the EbbRT paper did with mutilate. Requests
//! leave at times drawn in advance from a Poisson process, whatever the
//! server answers, and each latency is measured from the time the request
//! was *meant* to leave, so a slow server cannot slow the client down and
//! hide its own tail (no coordinated omission).
//!
//! What it owns: the workload ([`dist`], [`schedule`]: Facebook's "ETC" key
//! and value sizes, the get/set mix, uniform or zipf key popularity), the
//! self-verifying values ([`payload`]) and which versions a key may still
//! hold after acknowledged writes ([`verify`]), the three wire protocols
//! ([`proto`]: ASCII, binary, meta), the event loop that drives many
//! connections from few threads ([`engine`]), the search for the highest
//! load that meets a p99 SLA ([`search`]) and the report ([`report`]).
//!
//! What it must not do: send traffic anywhere but loopback or a private
//! network (a network namespace's tap); [`target`] refuses every other
//! address.

#![forbid(unsafe_code)]

pub mod cli;
pub mod dist;
pub mod engine;
pub mod payload;
pub mod proto;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod search;
pub mod target;
pub mod verify;
