//! The frontend's side: a sandbox over one directory, and a server that
//! runs it on a thread of its own.
//!
//! Containment: a request's path is resolved lexically first
//! ([`components`](crate::components): `..` may not climb above the root),
//! then the result is canonicalized (every symbolic link followed) and must
//! still lie inside the canonical root, else [`FsError::Escape`]. A file is
//! opened by its canonical path. What this does not defend against is
//! someone on the host swapping a directory for a symbolic link between
//! that check and the open: the host's own users are trusted; the nodes
//! are not.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::UNIX_EPOCH;

use futures_channel::oneshot;

use crate::{
    DirEntry, FileKind, FileStat, FsError, FsReply, FsRequest, FsResponse, Handle, MAX_ENTRIES,
    MAX_READ, components,
};

/// The most files open at once in one sandbox.
pub const MAX_OPEN: usize = 1024;

/// Serves [`FsRequest`]s from one directory.
#[derive(Debug)]
pub struct Sandbox {
    root: PathBuf,
    files: HashMap<u32, File>,
    next: u32,
    max_open: usize,
}

impl Sandbox {
    /// A sandbox over `root`, which must be a directory.
    pub fn new(root: &Path) -> io::Result<Sandbox> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Sandbox {
            root,
            files: HashMap::new(),
            next: 1,
            max_open: MAX_OPEN,
        })
    }

    /// The same with at most `n` files open at once.
    pub fn with_max_open(mut self, n: usize) -> Sandbox {
        self.max_open = n;
        self
    }

    /// The served directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many files are open.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// The canonical host path of a request's `path`, inside the root.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, FsError> {
        let mut p = self.root.clone();
        p.extend(components(path)?);
        let real = p.canonicalize().map_err(io_error)?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(FsError::Escape)
        }
    }

    /// Answers one request.
    pub fn serve(&mut self, req: FsRequest) -> FsResponse {
        let mut bulk = Vec::new();
        let result = match req {
            FsRequest::Open { path } => self.open(&path),
            FsRequest::Read {
                handle,
                offset,
                len,
            } => self.read(handle, offset, len).map(|data| {
                let len = data.len() as u32;
                bulk = data;
                FsReply::Data { len }
            }),
            FsRequest::Stat { path } => self.stat(&path),
            FsRequest::List { path } => self.list(&path),
            FsRequest::Close { handle } => match self.files.remove(&handle.0) {
                Some(_) => Ok(FsReply::Closed),
                None => Err(FsError::BadHandle),
            },
        };
        FsResponse { result, bulk }
    }

    fn open(&mut self, path: &str) -> Result<FsReply, FsError> {
        if components(path)?.is_empty() {
            return Err(FsError::IsADirectory);
        }
        if self.files.len() >= self.max_open {
            return Err(FsError::TooManyOpen);
        }
        let real = self.resolve(path)?;
        let meta = std::fs::metadata(&real).map_err(io_error)?;
        if meta.is_dir() {
            return Err(FsError::IsADirectory);
        }
        let file = File::open(&real).map_err(io_error)?;
        // Never 0, and never a handle still open (after 2^32 opens).
        while self.next == 0 || self.files.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let h = self.next;
        self.next = self.next.wrapping_add(1);
        self.files.insert(h, file);
        Ok(FsReply::Opened {
            handle: Handle(h),
            size: meta.len(),
        })
    }

    fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
        let file = self.files.get(&handle.0).ok_or(FsError::BadHandle)?;
        // No file reaches past i64::MAX (pread refuses such offsets).
        let end = i64::MAX as u64;
        if offset >= end {
            return Ok(Vec::new());
        }
        let want = (len.min(MAX_READ) as u64).min(end - offset) as usize;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..], offset.saturating_add(got as u64)) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    fn stat(&self, path: &str) -> Result<FsReply, FsError> {
        let real = self.resolve(path)?;
        let meta = std::fs::metadata(&real).map_err(io_error)?;
        Ok(FsReply::Stat(FileStat {
            kind: kind(&meta),
            size: if meta.is_dir() { 0 } else { meta.len() },
            modified: meta
                .modified()
                .ok()
                .and_then(|t| match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_secs()).ok(),
                    Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
                }),
            readonly: meta.permissions().readonly(),
        }))
    }

    fn list(&self, path: &str) -> Result<FsReply, FsError> {
        let real = self.resolve(path)?;
        if !real.is_dir() {
            return Err(FsError::NotADirectory);
        }
        let mut entries = Vec::new();
        let mut truncated = false;
        for e in std::fs::read_dir(&real).map_err(io_error)? {
            let e = e.map_err(io_error)?;
            if entries.len() == MAX_ENTRIES {
                truncated = true;
                break;
            }
            let Ok(name) = e.file_name().into_string() else {
                continue; // not UTF-8: not nameable in a request either
            };
            // Follow a link only when it stays inside.
            let inside = e
                .path()
                .canonicalize()
                .ok()
                .filter(|p| p.starts_with(&self.root));
            let (kind, size) = match inside.and_then(|p| std::fs::metadata(p).ok()) {
                Some(m) if m.is_dir() => (FileKind::Directory, 0),
                Some(m) => (kind(&m), m.len()),
                None => (FileKind::Other, 0),
            };
            entries.push(DirEntry { name, kind, size });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(FsReply::Entries { entries, truncated })
    }
}

fn kind(m: &std::fs::Metadata) -> FileKind {
    if m.is_file() {
        FileKind::File
    } else if m.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other
    }
}

/// A host error as the node sees it.
fn io_error(e: io::Error) -> FsError {
    match e.kind() {
        io::ErrorKind::NotFound => FsError::NotFound,
        io::ErrorKind::PermissionDenied => FsError::PermissionDenied,
        io::ErrorKind::NotADirectory => FsError::NotADirectory,
        io::ErrorKind::IsADirectory => FsError::IsADirectory,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => FsError::InvalidPath,
        _ => FsError::Io(e.to_string()),
    }
}

type Job = (FsRequest, oneshot::Sender<FsResponse>);

/// A [`Sandbox`] on a thread of its own: [`FsServer::request`] returns a
/// future, so an event loop awaits the disk instead of blocking on it.
/// Dropping the server ends the thread once it has answered what it was
/// asked.
#[derive(Debug)]
pub struct FsServer {
    jobs: mpsc::Sender<Job>,
}

impl FsServer {
    /// Starts a server over `sandbox`.
    pub fn start(sandbox: Sandbox) -> io::Result<FsServer> {
        let (jobs, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("ebbrt-fs-offload".into())
            .spawn(move || {
                let mut sandbox = sandbox;
                for (req, reply) in rx {
                    // The asker may have given up (its deadline passed).
                    let _ = reply.send(sandbox.serve(req));
                }
            })?;
        Ok(FsServer { jobs })
    }

    /// Asks the server; the future resolves to its answer
    /// ([`FsError::Unavailable`] if its thread is gone).
    pub fn request(&self, req: FsRequest) -> impl Future<Output = FsResponse> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.jobs.send((req, tx)).is_ok();
        async move {
            if !sent {
                return FsResponse::error(FsError::Unavailable);
            }
            rx.await
                .unwrap_or_else(|_| FsResponse::error(FsError::Unavailable))
        }
    }
}
