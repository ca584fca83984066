//! # ebbrt-fs-offload
//!
//! File access for native nodes, offloaded to the hosted frontend: the
//! original EbbRT's idea (a native library OS has no file system; it ships
//! file operations to the Linux process beside it), without its defects.
//!
//! - [`FsRequest`] / [`FsReply`] / [`FsError`]: what travels, as serde types
//!   (the messenger carries them as postcard payloads; the bytes a read
//!   returns travel after the payload as bulk, not inside it). Every failure
//!   is an [`FsError`] value — not found, permission, a path that would
//!   escape the served directory, a bad handle — never a crash of either
//!   side.
//! - [`server`] (feature `server`, hosted): [`server::Sandbox`] serves the
//!   requests from one directory that the application names, and no path
//!   escapes it (`..` above the root, absolute paths resolved inside it,
//!   symbolic links leading out); [`server::FsServer`] runs a sandbox on a
//!   thread of its own, so the frontend's event loop awaits a reply instead
//!   of blocking on the disk.
//!
//! - [`FileSystem`]: the distributed Ebb that carries them. On any node,
//!   [`FileSystem::open`], [`File::read`], [`FileSystem::stat`],
//!   [`FileSystem::list`], [`File::close`] (and [`FileSystem::read_file`])
//!   are requests to the frontend's representative over the messenger; the
//!   frontend serves them once the application named a directory
//!   ([`FileSystem::serve_dir`], feature `server`), from a [`server::FsServer`]
//!   of each asking node's own (its handles are its own), so its event
//!   loop never blocks on the disk. Read bytes travel as the reply's bulk.
//!
//! Files are read-only: a node opens, reads, stats, lists and closes.
#![cfg_attr(not(feature = "server"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "server")]
pub mod server;

pub mod file_system;

pub use file_system::{File, FileSystem, FsAnswer, FsRoot};

/// The most bytes one [`FsRequest::Read`] returns (a larger `len` is cut
/// to this).
pub const MAX_READ: u32 = 1 << 20;
/// The most entries one [`FsRequest::List`] returns; a directory with more
/// answers the first ones with `truncated` set.
pub const MAX_ENTRIES: usize = 4096;
/// The longest path a request may name, in bytes.
pub const MAX_PATH: usize = 4096;

/// A handle to a file a node opened; valid until it closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handle(pub u32);

/// What a node asks of the frontend. Paths are relative to the served
/// directory, `/`-separated (a leading `/` names that directory too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsRequest {
    /// Opens a regular file for reading.
    Open {
        /// Its path.
        path: String,
    },
    /// Reads up to `len` bytes (at most [`MAX_READ`]) at `offset`.
    Read {
        /// An open file.
        handle: Handle,
        /// Where to start.
        offset: u64,
        /// How many bytes at most.
        len: u32,
    },
    /// Describes a file or directory.
    Stat {
        /// Its path.
        path: String,
    },
    /// Lists a directory.
    List {
        /// Its path (`""` or `"."`: the served directory).
        path: String,
    },
    /// Closes an open file.
    Close {
        /// The file.
        handle: Handle,
    },
}

/// What kind of thing a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// Anything else (a device, a socket, ...).
    Other,
}

/// The answer to [`FsRequest::Stat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Its kind.
    pub kind: FileKind,
    /// Its size in bytes.
    pub size: u64,
    /// When it last changed, in seconds since the Unix epoch, if known.
    pub modified: Option<i64>,
    /// Whether its permissions forbid writing.
    pub readonly: bool,
}

/// One entry of [`FsReply::Entries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// Its name in the directory.
    pub name: String,
    /// Its kind (symbolic links are reported as what they lead to when
    /// that is inside the served directory, else as [`FileKind::Other`]).
    pub kind: FileKind,
    /// Its size in bytes (0 for a directory).
    pub size: u64,
}

/// A successful answer. The bytes of a read are not in it: they follow the
/// payload as bulk, `len` of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsReply {
    /// The file is open.
    Opened {
        /// Its handle.
        handle: Handle,
        /// Its size when opened.
        size: u64,
    },
    /// A read's result: `len` bytes follow (fewer than asked at the end of
    /// the file; 0 at or past it).
    Data {
        /// How many bytes follow.
        len: u32,
    },
    /// A stat's result.
    Stat(FileStat),
    /// A listing, sorted by name.
    Entries {
        /// The entries.
        entries: Vec<DirEntry>,
        /// Whether there were more than [`MAX_ENTRIES`].
        truncated: bool,
    },
    /// The file is closed.
    Closed,
}

/// Why a request failed. Every failure is one of these; none ends a node
/// or the frontend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsError {
    /// Nothing at that path.
    NotFound,
    /// The host refused access.
    PermissionDenied,
    /// The path leads outside the served directory (`..` above it, or a
    /// symbolic link out of it).
    Escape,
    /// The path is not valid: empty where a file is needed, too long, or
    /// holding a NUL byte.
    InvalidPath,
    /// A directory where a file is needed.
    IsADirectory,
    /// A file where a directory is needed.
    NotADirectory,
    /// The handle is not (or no longer) open.
    BadHandle,
    /// The node has too many files open.
    TooManyOpen,
    /// The frontend's file server is gone, or the frontend serves no
    /// directory.
    Unavailable,
    /// The request or its reply did not get through (the messenger's
    /// error: the frontend unreachable, a deadline, ...).
    Transport(String),
    /// Any other failure of the host, with its message.
    Io(String),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::NotFound => f.write_str("no such file or directory"),
            FsError::PermissionDenied => f.write_str("permission denied"),
            FsError::Escape => f.write_str("the path leads outside the served directory"),
            FsError::InvalidPath => f.write_str("invalid path"),
            FsError::IsADirectory => f.write_str("is a directory"),
            FsError::NotADirectory => f.write_str("not a directory"),
            FsError::BadHandle => f.write_str("no such open file"),
            FsError::TooManyOpen => f.write_str("too many open files"),
            FsError::Unavailable => f.write_str("the file server is not running"),
            FsError::Transport(m) => write!(f, "file request not delivered: {m}"),
            FsError::Io(m) => write!(f, "I/O error: {m}"),
        }
    }
}

impl core::error::Error for FsError {}

/// The reply to one request: a result, and the bytes of a successful read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsResponse {
    /// The answer.
    pub result: Result<FsReply, FsError>,
    /// The bytes of a [`FsReply::Data`] (empty otherwise).
    pub bulk: Vec<u8>,
}

impl FsResponse {
    /// A failure.
    pub fn error(e: FsError) -> FsResponse {
        FsResponse {
            result: Err(e),
            bulk: Vec::new(),
        }
    }
}

/// The components of a request's path inside the served directory, with
/// `.` and empty components dropped and `..` applied; [`FsError::Escape`]
/// when `..` would climb above the served directory, and
/// [`FsError::InvalidPath`] for a NUL byte or a path over [`MAX_PATH`].
pub fn components(path: &str) -> Result<Vec<&str>, FsError> {
    if path.len() > MAX_PATH || path.contains('\0') {
        return Err(FsError::InvalidPath);
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(FsError::Escape);
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(components("a/b/c").unwrap(), ["a", "b", "c"]);
        assert_eq!(components("/a//./b/").unwrap(), ["a", "b"]);
        assert_eq!(components("a/../b").unwrap(), ["b"]);
        assert!(components("").unwrap().is_empty());
        assert!(components("/").unwrap().is_empty());
        assert_eq!(components(".."), Err(FsError::Escape));
        assert_eq!(components("a/../../etc/passwd"), Err(FsError::Escape));
        assert_eq!(components("/../x"), Err(FsError::Escape));
        assert_eq!(components("a\0b"), Err(FsError::InvalidPath));
        assert_eq!(
            components(&"a/".repeat(MAX_PATH)),
            Err(FsError::InvalidPath)
        );
    }

    #[test]
    fn messages_round_trip_through_postcard() {
        let requests = vec![
            FsRequest::Open {
                path: "data/x.txt".to_string(),
            },
            FsRequest::Read {
                handle: Handle(7),
                offset: 1 << 40,
                len: MAX_READ,
            },
            FsRequest::Stat {
                path: String::new(),
            },
            FsRequest::List {
                path: ".".to_string(),
            },
            FsRequest::Close { handle: Handle(7) },
        ];
        for r in requests {
            let bytes = postcard::to_allocvec(&r).unwrap();
            assert_eq!(postcard::from_bytes::<FsRequest>(&bytes).unwrap(), r);
        }
        let replies: Vec<Result<FsReply, FsError>> = vec![
            Ok(FsReply::Entries {
                entries: vec![DirEntry {
                    name: "a".to_string(),
                    kind: FileKind::File,
                    size: 3,
                }],
                truncated: false,
            }),
            Ok(FsReply::Stat(FileStat {
                kind: FileKind::Directory,
                size: 0,
                modified: Some(-5),
                readonly: true,
            })),
            Err(FsError::Io("disk on fire".to_string())),
            Err(FsError::Escape),
        ];
        for r in replies {
            let bytes = postcard::to_allocvec(&r).unwrap();
            assert_eq!(
                postcard::from_bytes::<Result<FsReply, FsError>>(&bytes).unwrap(),
                r
            );
        }
        // Garbage is an error, not a panic.
        assert!(postcard::from_bytes::<FsRequest>(&[9, 9, 9]).is_err());
    }
}
