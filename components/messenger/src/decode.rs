//! The incremental frame decoder: bytes go in as they arrive, split
//! anywhere, and whole frames come out, their payload and bulk bytes as
//! views of the received buffers (copied only where a payload spans two
//! received buffers, since postcard decodes from one slice).

use core::fmt;

use ebbrt_core::iobuf::{IoBuf, IoBufChain};

use crate::frame::{ErrorKind, HEADER_LEN, Header};

/// The largest payload and bulk a receiver accepts. A frame over them is
/// refused before any of its bytes are buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest payload, in bytes.
    pub max_payload: u32,
    /// The largest bulk, in bytes.
    pub max_bulk: u32,
}

impl Default for Limits {
    /// 1 MiB of payload, 64 MiB of bulk.
    fn default() -> Limits {
        Limits {
            max_payload: 1 << 20,
            max_bulk: 64 << 20,
        }
    }
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its header.
    pub header: Header,
    /// The postcard payload (`header.payload_len` bytes).
    pub payload: IoBuf,
    /// The bulk bytes (`header.bulk_len` bytes), views of what was received.
    pub bulk: IoBufChain,
}

/// Why the decoder stopped. The stream cannot be resynchronised after one
/// (the decoder keeps returning it): answer with an error frame and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// What was wrong.
    pub kind: ErrorKind,
    /// The header, when it parsed (a frame too large, a stream that ended
    /// inside the frame).
    pub header: Option<Header>,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.header {
            Some(h) => write!(
                f,
                "{} (tag {:#018x}, payload {} B, bulk {} B)",
                self.kind, h.tag, h.payload_len, h.bulk_len
            ),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// Reassembles frames from a byte stream. See the module documentation.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    limits: Limits,
    buffered: IoBufChain,
    /// The header of the frame being received, once parsed and checked.
    header: Option<Header>,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that enforces `limits`.
    pub fn new(limits: Limits) -> FrameDecoder {
        FrameDecoder {
            limits,
            ..FrameDecoder::default()
        }
    }

    /// The same decoder (and what it buffered) with other limits: a
    /// connection's handshake runs under small ones.
    pub fn with_limits(mut self, limits: Limits) -> FrameDecoder {
        self.limits = limits;
        self
    }

    /// Appends received bytes (no copy).
    pub fn push(&mut self, buf: IoBuf) {
        self.buffered.push_back(buf);
    }

    /// Appends received bytes from a chain (no copy).
    pub fn push_chain(&mut self, chain: IoBufChain) {
        for b in chain {
            self.buffered.push_back(b);
        }
    }

    /// Appends a copy of `bytes`.
    pub fn push_slice(&mut self, bytes: &[u8]) {
        self.buffered.push_back(IoBuf::copy_from_slice(bytes));
    }

    /// Bytes received but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buffered.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the
    /// error that stopped the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let header = match self.header {
            Some(h) => h,
            None => {
                let Some(raw) = self.buffered.prefix(HEADER_LEN) else {
                    return Ok(None);
                };
                let raw: &[u8; HEADER_LEN] =
                    raw[..].try_into().expect("prefix has HEADER_LEN bytes");
                let h = match Header::parse(raw) {
                    Ok(h) => h,
                    Err(kind) => return Err(self.fail(kind, None)),
                };
                if h.payload_len > self.limits.max_payload || h.bulk_len > self.limits.max_bulk {
                    return Err(self.fail(ErrorKind::TooLarge, Some(h)));
                }
                self.buffered.advance(HEADER_LEN);
                self.header = Some(h);
                h
            }
        };
        let body = header.payload_len as usize + header.bulk_len as usize;
        if self.buffered.len() < body {
            return Ok(None);
        }
        self.header = None;
        let payload = self
            .buffered
            .split_to(header.payload_len as usize)
            .into_contiguous();
        let bulk = self.buffered.split_to(header.bulk_len as usize);
        Ok(Some(Frame {
            header,
            payload,
            bulk,
        }))
    }

    /// The stream ended: an error if it ended inside a frame.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.header.is_some() || !self.buffered.is_empty() {
            return Err(self.fail(ErrorKind::Truncated, self.header));
        }
        Ok(())
    }

    fn fail(&mut self, kind: ErrorKind, header: Option<Header>) -> FrameError {
        let e = FrameError { kind, header };
        self.failed = Some(e);
        // What was buffered will never be read.
        self.buffered = IoBufChain::new();
        e
    }
}
