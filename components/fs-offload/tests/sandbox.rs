//! The frontend's sandbox over a real directory: what it serves, and every
//! way out of it refused as a value.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use ebbrt_fs_offload::server::{FsServer, Sandbox};
use ebbrt_fs_offload::{FileKind, FsError, FsReply, FsRequest, FsResponse, Handle, MAX_READ};

/// A served directory and a file beside it (outside), removed at the end.
struct Tree {
    base: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let base = std::env::temp_dir().join(format!("ebbrt-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello, offload").unwrap();
        std::fs::write(root.join("sub/b.txt"), vec![7u8; 3000]).unwrap();
        std::fs::write(base.join("secret.txt"), b"outside").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
        std::os::unix::fs::symlink("sub/b.txt", root.join("in")).unwrap();
        Tree { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn open(s: &mut Sandbox, path: &str) -> Result<(Handle, u64), FsError> {
    match s.serve(FsRequest::Open { path: path.into() }).result? {
        FsReply::Opened { handle, size } => Ok((handle, size)),
        other => panic!("open answered {other:?}"),
    }
}

fn read(s: &mut Sandbox, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
    let r = s.serve(FsRequest::Read {
        handle,
        offset,
        len,
    });
    match r.result? {
        FsReply::Data { len } => {
            assert_eq!(len as usize, r.bulk.len());
            Ok(r.bulk)
        }
        other => panic!("read answered {other:?}"),
    }
}

#[test]
fn files_are_opened_read_and_closed() {
    let t = Tree::new("read");
    let mut s = Sandbox::new(&t.root()).unwrap();
    let (h, size) = open(&mut s, "a.txt").unwrap();
    assert_eq!(size, 14);
    assert_eq!(read(&mut s, h, 0, 5).unwrap(), b"hello");
    assert_eq!(read(&mut s, h, 7, 100).unwrap(), b"offload");
    assert_eq!(read(&mut s, h, 14, 10).unwrap(), b"");
    assert_eq!(read(&mut s, h, u64::MAX, 10).unwrap(), b"");
    // An absolute path names the served directory.
    let (h2, _) = open(&mut s, "/sub/./b.txt").unwrap();
    assert_ne!(h, h2);
    assert_eq!(read(&mut s, h2, 0, u32::MAX).unwrap(), vec![7u8; 3000]);
    const { assert!(3000 < MAX_READ) };
    // A link that stays inside is followed.
    let (h3, size) = open(&mut s, "in").unwrap();
    assert_eq!(size, 3000);
    assert_eq!(s.open_files(), 3);
    for h in [h, h2, h3] {
        assert_eq!(
            s.serve(FsRequest::Close { handle: h }).result,
            Ok(FsReply::Closed)
        );
    }
    assert_eq!(s.open_files(), 0);
    assert_eq!(read(&mut s, h, 0, 1), Err(FsError::BadHandle));
    assert_eq!(
        s.serve(FsRequest::Close { handle: h }).result,
        Err(FsError::BadHandle)
    );
}

#[test]
fn every_way_out_is_refused() {
    let t = Tree::new("escape");
    let mut s = Sandbox::new(&t.root()).unwrap();
    for path in [
        "../secret.txt",
        "sub/../../secret.txt",
        "/../secret.txt",
        "out",
        "up/secret.txt",
    ] {
        assert_eq!(open(&mut s, path), Err(FsError::Escape), "open {path}");
        assert_eq!(
            s.serve(FsRequest::Stat { path: path.into() }).result,
            Err(FsError::Escape),
            "stat {path}"
        );
    }
    assert_eq!(
        s.serve(FsRequest::List { path: "up".into() }).result,
        Err(FsError::Escape)
    );
    assert_eq!(open(&mut s, "a\0b"), Err(FsError::InvalidPath));
    assert_eq!(s.open_files(), 0);
}

#[test]
fn failures_are_values() {
    let t = Tree::new("errors");
    let mut s = Sandbox::new(&t.root()).unwrap().with_max_open(2);
    assert_eq!(open(&mut s, "nope.txt"), Err(FsError::NotFound));
    assert_eq!(open(&mut s, "sub"), Err(FsError::IsADirectory));
    assert_eq!(open(&mut s, ""), Err(FsError::IsADirectory));
    assert_eq!(
        s.serve(FsRequest::List {
            path: "a.txt".into()
        })
        .result,
        Err(FsError::NotADirectory)
    );
    assert_eq!(
        s.serve(FsRequest::Stat {
            path: "sub/none".into()
        })
        .result,
        Err(FsError::NotFound)
    );
    open(&mut s, "a.txt").unwrap();
    open(&mut s, "a.txt").unwrap();
    assert_eq!(open(&mut s, "a.txt"), Err(FsError::TooManyOpen));
    assert!(Sandbox::new(&t.root().join("a.txt")).is_err());
    assert!(Sandbox::new(Path::new("/nonexistent-ebbrt-dir")).is_err());
}

#[test]
fn stat_and_list() {
    let t = Tree::new("list");
    let mut s = Sandbox::new(&t.root()).unwrap();
    let FsReply::Stat(st) = s
        .serve(FsRequest::Stat {
            path: "sub/b.txt".into(),
        })
        .result
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((st.kind, st.size), (FileKind::File, 3000));
    assert!(st.modified.is_some_and(|m| m > 1_600_000_000));
    let FsReply::Entries { entries, truncated } = s
        .serve(FsRequest::List { path: ".".into() })
        .result
        .unwrap()
    else {
        panic!()
    };
    assert!(!truncated);
    let got: Vec<(&str, FileKind, u64)> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("a.txt", FileKind::File, 14),
            ("in", FileKind::File, 3000),
            // Links out are not followed, not even to say what they are.
            ("out", FileKind::Other, 0),
            ("sub", FileKind::Directory, 0),
            ("up", FileKind::Other, 0),
        ]
    );
}

/// Wakes the test thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn the_server_answers_from_its_own_thread() {
    let t = Tree::new("server");
    let server = FsServer::start(Sandbox::new(&t.root()).unwrap()).unwrap();
    let opened = block_on(server.request(FsRequest::Open {
        path: "a.txt".into(),
    }));
    let Ok(FsReply::Opened { handle, .. }) = opened.result else {
        panic!("{opened:?}")
    };
    // Many requests in flight at once, answered in order.
    let pending: Vec<_> = (0..14)
        .map(|i| {
            server.request(FsRequest::Read {
                handle,
                offset: i,
                len: 1,
            })
        })
        .collect();
    let bytes: Vec<u8> = pending.into_iter().flat_map(|f| block_on(f).bulk).collect();
    assert_eq!(bytes, b"hello, offload");
    let r: FsResponse = block_on(server.request(FsRequest::Open {
        path: "../secret.txt".into(),
    }));
    assert_eq!(r.result, Err(FsError::Escape));
}
