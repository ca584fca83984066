//! The global id map in one hosted instance: this process is the frontend
//! (node 0, whose node messenger holds the map), and a second, detached
//! messenger plays another node reaching it over loopback.

use std::net::SocketAddr;
use std::time::Duration;

use ebbrt::{IoBufChain, StaticEbb};
use ebbrt_global_id_map::{Get, GlobalIdMap, MAX_NAME, MAX_VALUE, Set, Value, node_key};
use ebbrt_messenger::{Config, ErrorKind, Messenger, MsgError, NodeId};

const SECRET: &[u8] = b"map test secret";

/// The frontend's messenger (started by the first test that needs it).
fn frontend() -> SocketAddr {
    let m = Messenger::node_messenger();
    if m.get().node().is_err() {
        let mut c = Config::new(NodeId::FRONTEND, SECRET);
        c.listen = Some("127.0.0.1:0".parse().unwrap());
        Messenger::start(c).expect("the frontend's messenger starts");
        ebbrt::ebb::ids::ID_ALLOCATOR_REF.use_space(0).ok();
    }
    m.get().local_addr().expect("it listens")
}

#[ebbrt::test]
async fn set_get_and_versions_on_the_frontend() -> Result<(), String> {
    frontend();
    let e = |e: MsgError| e.to_string();
    assert_eq!(GlobalIdMap::get("absent").await.map_err(e)?, None);
    let v1 = GlobalIdMap::set("a", Value::Bytes(b"one".to_vec()))
        .await
        .map_err(e)?;
    let v2 = GlobalIdMap::set("a", Value::Bytes(b"two".to_vec()))
        .await
        .map_err(e)?;
    assert!(v2 > v1, "versions grow: {v1} then {v2}");
    let got = GlobalIdMap::get("a").await.map_err(e)?.ok_or("a is set")?;
    assert_eq!((got.version, got.value.bytes()), (v2, Some(&b"two"[..])));
    // Too long a name or value is refused, not stored.
    let long = "n".repeat(MAX_NAME + 1);
    assert_eq!(
        GlobalIdMap::set(&long, Value::Ebb(1)).await,
        Err(MsgError::TooLarge)
    );
    let big = Value::Bytes(vec![0; MAX_VALUE + 1]);
    assert_eq!(GlobalIdMap::set("big", big).await, Err(MsgError::TooLarge));
    assert_eq!(GlobalIdMap::get("big").await.map_err(e)?, None);
    // An id from this node's space, published.
    let id = GlobalIdMap::publish_new_id("made-here")
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        ebbrt::ebb::ids::space(0).unwrap().contains(&id.raw()),
        "{id:?}"
    );
    let seen = GlobalIdMap::get("made-here")
        .await
        .map_err(e)?
        .ok_or("published")?;
    assert_eq!(seen.value.ebb_id(), Some(id));
    Ok(())
}

#[ebbrt::test]
async fn a_watch_wakes_on_the_set() -> Result<(), String> {
    frontend();
    let before = GlobalIdMap::get("w").await.map_err(|e| e.to_string())?;
    let after = before.map_or(0, |e| e.version);
    let watcher =
        ebbrt::spawn_local(
            async move { GlobalIdMap::watch("w", after, Duration::from_secs(10)).await },
        );
    ebbrt::exec::sleep(Duration::from_millis(50)).await;
    let v = GlobalIdMap::set("w", Value::Ebb(2000))
        .await
        .map_err(|e| e.to_string())?;
    let got = watcher.await.map_err(|e| e.to_string())?;
    assert_eq!(got.version, v);
    assert_eq!(got.value.ebb_id().map(|i| i.raw()), Some(2000));
    // Nothing newer: the watch ends at its deadline.
    let r = GlobalIdMap::watch("w", v, Duration::from_millis(100)).await;
    assert_eq!(r, Err(MsgError::Deadline));
    Ok(())
}

#[ebbrt::test]
async fn another_node_reaches_the_map_over_the_messenger() -> Result<(), String> {
    let addr = frontend();
    let node =
        Messenger::start_detached(Config::new(NodeId(5), SECRET)).map_err(|e| e.to_string())?;
    node.add_peer(NodeId::FRONTEND, addr);
    let id = <GlobalIdMap as StaticEbb>::ID;
    let deadline = Duration::from_secs(10);
    let set = Set {
        name: node_key(NodeId(5)),
        value: Value::Bytes(b"10.0.2.2:4000".to_vec()),
    };
    let stored = node
        .request(NodeId::FRONTEND, id, &set, IoBufChain::new(), deadline)
        .await
        .map_err(|e| e.to_string())?;
    let get = Get {
        name: node_key(NodeId(5)),
    };
    let found = node
        .request(NodeId::FRONTEND, id, &get, IoBufChain::new(), deadline)
        .await
        .map_err(|e| e.to_string())?;
    let entry = found.msg.entry.ok_or("set over the network")?;
    assert_eq!(entry.version, stored.msg.version);
    assert_eq!(entry.value.bytes(), Some(&b"10.0.2.2:4000"[..]));
    // The frontend sees it locally too.
    let local = GlobalIdMap::get("ebbrt.node/5")
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(local.map(|e| e.version), Some(entry.version));
    // A name over the limit is answered with an error frame.
    let long = Get {
        name: "x".repeat(MAX_NAME + 1),
    };
    let r = node
        .request(NodeId::FRONTEND, id, &long, IoBufChain::new(), deadline)
        .await;
    assert_eq!(r.err(), Some(MsgError::Remote(ErrorKind::TooLarge)));
    Ok(())
}

ebbrt::test_main!();
