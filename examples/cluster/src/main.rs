//! cluster: one application over a hosted frontend and two native nodes.
//!
//! Run it with `cargo ebbrt run cluster --hosted`: the tool builds the
//! hosted frontend and the native image (the frontend links the node
//! allocator, so the tool builds its nodes too and names the image in
//! `EBBRT_NODE_IMAGE`). The frontend then
//!
//! 1. boots two native nodes under QEMU (user networking) with the node
//!    allocator, each told its node id, id space, the frontend's endpoint,
//!    the clock and the allocation's secret on its command line, and prints
//!    `node N connected` as each one's messenger connects (authenticated
//!    with the secret, admitted because the allocator knows it);
//! 2. spans the distributed Ebb [`shared::Kv`], a key-value store sharded
//!    over the three, writes keys from the frontend and has each node write
//!    and read back keys of its own (node to node, node to frontend), each
//!    node publishing an id from its own id space in the global id map;
//! 3. has node 1 read a file through the file-system offload (and be
//!    refused a path that escapes the served directory);
//! 4. times small round trips frontend → node and node → node;
//! 5. kills node 2's QEMU, reports it, and finishes with the rest;
//!
//! and exits 0 only if every check passed. The same image, booted by the
//! allocator, is a node: it finds its bootstrap on its command line.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

mod shared;

#[cfg(not(target_os = "none"))]
mod frontend;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::sync::atomic::Ordering;
use core::time::Duration;

use ebbrt_messenger::bootstrap::Bootstrap;

/// The port a node's messenger listens on.
pub const NODE_PORT: u16 = 7070;

#[ebbrt::main]
async fn main() -> i32 {
    match Bootstrap::from_boot_args() {
        Ok(boot) => node(boot).await,
        #[cfg(not(target_os = "none"))]
        Err(_) => frontend::run().await,
        #[cfg(target_os = "none")]
        Err(e) => {
            ebbrt::println!(
                "cluster: a native node is booted by the frontend (`cargo ebbrt run cluster \
                 --hosted`), which gives it its bootstrap: {e}"
            );
            2
        }
    }
}

/// A node: joins the application, serves its Ebbs until told to stop.
async fn node(boot: Bootstrap) -> i32 {
    let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), NODE_PORT);
    if let Err(e) = ebbrt_global_id_map::join(&boot, Some(listen)) {
        ebbrt::println!("cluster node {}: {e}", boot.node);
        return 3;
    }
    // The first call opens the connection to the frontend (which reports
    // the node connected); retried while the frontend is not listening yet.
    let mut tries = 0;
    loop {
        match ebbrt_global_id_map::GlobalIdMap::get("cluster.file").await {
            Ok(_) => break,
            Err(e) if tries < 30 => {
                tries += 1;
                ebbrt::println!("cluster node {}: frontend not reached yet: {e}", boot.node);
                ebbrt::exec::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                ebbrt::println!("cluster node {}: cannot reach the frontend: {e}", boot.node);
                return 4;
            }
        }
    }
    ebbrt::println!("cluster node {}: joined", boot.node);
    loop {
        let code = shared::STOP.load(Ordering::Relaxed);
        if code != i32::MIN {
            // Let the answer to the stop request leave first.
            ebbrt::exec::sleep(Duration::from_millis(200)).await;
            ebbrt::println!("cluster node {}: stopping with status {code}", boot.node);
            return code;
        }
        ebbrt::exec::sleep(Duration::from_millis(50)).await;
    }
}
