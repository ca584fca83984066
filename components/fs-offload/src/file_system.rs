//! The [`FileSystem`] distributed Ebb: file requests from any node, served
//! by the frontend.

use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use ebbrt_core::ebb::ids::FILE_SYSTEM;
use ebbrt_core::{IoBuf, IoBufChain, ebb};
use ebbrt_messenger::{Distributed, ErrorKind, MsgError, NodeId, Reply, Serve};
use serde::{Deserialize, Serialize};

use crate::{DirEntry, FileStat, FsError, FsReply, FsRequest, Handle};

/// The answer to an [`FsRequest`] on the wire (a read's bytes follow it as
/// bulk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsAnswer {
    /// The result.
    pub result: Result<FsReply, FsError>,
}

ebbrt_messenger::message!(
    FsRequest,
    "ebbrt_fs_offload::FsRequest",
    1,
    reply = FsAnswer
);
ebbrt_messenger::message!(FsAnswer, "ebbrt_fs_offload::FsAnswer", 1);

/// How long one file request may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The frontend's state: the served directory and a server per node.
#[derive(Default)]
pub struct FsRoot {
    #[cfg(feature = "server")]
    served: spin::Once<std::path::PathBuf>,
    #[cfg(feature = "server")]
    servers: spin::Mutex<alloc::collections::BTreeMap<NodeId, crate::server::FsServer>>,
}

/// File access for every node of the application, served by the frontend
/// from one directory (see the crate documentation).
#[ebb(per_core, id = FILE_SYSTEM, root = FsRoot, distributed(FsRequest))]
#[derive(Default)]
pub struct FileSystem;

fn root() -> &'static FsRoot {
    ebbrt_core::EbbRef::<FileSystem>::fixed().root().data()
}

impl Serve<FsRequest> for FileSystem {
    async fn serve(
        &'static self,
        from: NodeId,
        req: FsRequest,
        _bulk: IoBufChain,
    ) -> Result<Reply<FsAnswer>, ErrorKind> {
        let answer = serve(from, req).await;
        let bulk = answer
            .bulk
            .map(|b| IoBufChain::from(IoBuf::from_vec(b)))
            .unwrap_or_default();
        Ok(Reply {
            msg: FsAnswer {
                result: answer.result,
            },
            bulk,
        })
    }
}

struct Answer {
    result: Result<FsReply, FsError>,
    bulk: Option<Vec<u8>>,
}

#[cfg(feature = "server")]
async fn serve(from: NodeId, req: FsRequest) -> Answer {
    let root = root();
    let Some(dir) = root.served.get() else {
        return Answer {
            result: Err(FsError::Unavailable),
            bulk: None,
        };
    };
    let pending = {
        let mut servers = root.servers.lock();
        let server = match servers.get(&from) {
            Some(s) => s,
            None => {
                let made = crate::server::Sandbox::new(dir)
                    .and_then(crate::server::FsServer::start)
                    .map_err(|e| FsError::Io(format!("{e}")));
                match made {
                    Ok(s) => servers.entry(from).or_insert(s),
                    Err(e) => {
                        return Answer {
                            result: Err(e),
                            bulk: None,
                        };
                    }
                }
            }
        };
        server.request(req)
    };
    let r = pending.await;
    Answer {
        result: r.result,
        bulk: Some(r.bulk).filter(|b| !b.is_empty()),
    }
}

#[cfg(not(feature = "server"))]
async fn serve(_from: NodeId, _req: FsRequest) -> Answer {
    // Only a hosted frontend built with `server` serves files.
    let _ = root();
    Answer {
        result: Err(FsError::Unavailable),
        bulk: None,
    }
}

fn transport(e: MsgError) -> FsError {
    FsError::Transport(format!("{e}"))
}

async fn ask(req: &FsRequest) -> Result<(FsReply, IoBufChain), FsError> {
    let reply = FileSystem::on(NodeId::FRONTEND)
        .deadline(DEADLINE)
        .call_bulk(req, IoBufChain::new())
        .await
        .map_err(transport)?;
    Ok((reply.msg.result?, reply.bulk))
}

fn unexpected(r: &FsReply) -> FsError {
    FsError::Transport(format!("unexpected reply {r:?}"))
}

impl FileSystem {
    /// Serves requests from every node out of `dir` (on the frontend; no
    /// path escapes it). Only the first call counts.
    #[cfg(feature = "server")]
    pub fn serve_dir(dir: &std::path::Path) -> std::io::Result<()> {
        let dir = std::fs::canonicalize(dir)?;
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        root().served.call_once(|| dir);
        Ok(())
    }

    /// Opens a regular file for reading.
    pub async fn open(path: &str) -> Result<File, FsError> {
        let req = FsRequest::Open { path: path.into() };
        match ask(&req).await? {
            (FsReply::Opened { handle, size }, _) => Ok(File { handle, size }),
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// Describes a file or directory.
    pub async fn stat(path: &str) -> Result<FileStat, FsError> {
        match ask(&FsRequest::Stat { path: path.into() }).await? {
            (FsReply::Stat(s), _) => Ok(s),
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// Lists a directory: its entries sorted by name, and whether there
    /// were more than [`crate::MAX_ENTRIES`].
    pub async fn list(path: &str) -> Result<(Vec<DirEntry>, bool), FsError> {
        match ask(&FsRequest::List { path: path.into() }).await? {
            (FsReply::Entries { entries, truncated }, _) => Ok((entries, truncated)),
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// Reads a whole file (open, reads of [`crate::MAX_READ`], close): at
    /// most `limit` bytes, else [`FsError::Io`].
    pub async fn read_file(path: &str, limit: u64) -> Result<IoBufChain, FsError> {
        let f = FileSystem::open(path).await?;
        let r = f.read_to_end(limit).await;
        let closed = f.close().await;
        let data = r?;
        closed?;
        Ok(data)
    }
}

/// A file a node opened through the [`FileSystem`].
#[derive(Debug)]
pub struct File {
    handle: Handle,
    size: u64,
}

impl File {
    /// Its size when opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads up to `len` bytes (at most [`crate::MAX_READ`]) at `offset`:
    /// fewer at the end of the file, none past it.
    pub async fn read(&self, offset: u64, len: u32) -> Result<IoBufChain, FsError> {
        let req = FsRequest::Read {
            handle: self.handle,
            offset,
            len,
        };
        match ask(&req).await? {
            (FsReply::Data { len }, bulk) if bulk.len() == len as usize => Ok(bulk),
            (r, _) => Err(unexpected(&r)),
        }
    }

    /// Reads from the start to the end, at most `limit` bytes.
    pub async fn read_to_end(&self, limit: u64) -> Result<IoBufChain, FsError> {
        let mut out = IoBufChain::new();
        let mut offset = 0u64;
        loop {
            let chunk = self.read(offset, crate::MAX_READ).await?;
            if chunk.is_empty() {
                return Ok(out);
            }
            offset += chunk.len() as u64;
            if offset > limit {
                return Err(FsError::Io(format!("file larger than {limit} bytes")));
            }
            let mut chunk = chunk;
            while let Some(b) = chunk.pop_front() {
                out.push_back(b);
            }
        }
    }

    /// Closes it.
    pub async fn close(self) -> Result<(), FsError> {
        match ask(&FsRequest::Close {
            handle: self.handle,
        })
        .await?
        {
            (FsReply::Closed, _) => Ok(()),
            (r, _) => Err(unexpected(&r)),
        }
    }
}
