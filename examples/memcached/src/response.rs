//! Where a [`Session`](crate::Session) writes its replies: a [`Sink`].
//!
//! The server writes into a [`Response`], which keeps the protocol's own
//! bytes (status lines, headers) in one buffer and a stored value as the
//! store's [`IoBuf`] itself (a clone: a reference count, no byte copied).
//! [`Response::take`] then hands the connection an [`IoBufChain`] of
//! views of the text and the values, in order, for
//! `TcpStream::write_chain`: a GET hit's value reaches the network
//! stack without an application-level copy. A `Vec<u8>` is a sink too
//! (it copies values in); tests and the fuzzer compare its bytes.

use alloc::vec::Vec;

use ebbrt::{IoBuf, IoBufChain};

/// What replies are written into.
pub trait Sink {
    /// Appends protocol bytes.
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// Appends a stored value (a [`Response`] keeps the buffer itself).
    fn value(&mut self, value: &IoBuf);
    /// The protocol bytes written so far, to append to in place (values
    /// go through [`Sink::value`] only).
    fn text(&mut self) -> &mut Vec<u8>;
    /// The number of bytes written, values included.
    fn len(&self) -> usize;
    /// Whether nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Sink for Vec<u8> {
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }

    fn value(&mut self, value: &IoBuf) {
        Vec::extend_from_slice(self, value);
    }

    fn text(&mut self) -> &mut Vec<u8> {
        self
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// Replies as protocol text with stored values kept by reference.
#[derive(Default)]
pub struct Response {
    text: Vec<u8>,
    /// Each value, with the length of the text written before it.
    values: Vec<(usize, IoBuf)>,
    values_len: usize,
}

impl Response {
    /// An empty response.
    pub const fn new() -> Response {
        Response {
            text: Vec::new(),
            values: Vec::new(),
            values_len: 0,
        }
    }

    /// Everything written, as a chain of views (the text is moved into one
    /// buffer, not copied, and sliced around the values); the response is
    /// left empty.
    pub fn take(&mut self) -> IoBufChain {
        let text = IoBuf::from_vec(core::mem::take(&mut self.text));
        self.values_len = 0;
        let mut chain = IoBufChain::new();
        let mut at = 0;
        for (pos, value) in self.values.drain(..) {
            chain.push_back(text.slice(at..pos));
            chain.push_back(value);
            at = pos;
        }
        chain.push_back(text.slice(at..));
        chain
    }

    /// A copy of everything written, in order (for tests and logs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        let mut at = 0;
        for (pos, value) in &self.values {
            v.extend_from_slice(&self.text[at..*pos]);
            v.extend_from_slice(value);
            at = *pos;
        }
        v.extend_from_slice(&self.text[at..]);
        v
    }
}

impl Sink for Response {
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
    }

    fn value(&mut self, value: &IoBuf) {
        if !value.is_empty() {
            self.values_len += value.len();
            self.values.push((self.text.len(), value.clone()));
        }
    }

    fn text(&mut self) -> &mut Vec<u8> {
        &mut self.text
    }

    fn len(&self) -> usize {
        self.text.len() + self.values_len
    }
}
