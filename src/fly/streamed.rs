//! A 2xx response body handed to a decoder chunk by chunk as it arrives, for listings whose
//! body is large (the org's app listing: every app of the org in one response).
//!
//! # Guarantees
//! The body is never collected: each chunk is fed to the [`Sink`] and dropped, so what the
//! exchange holds is one chunk plus what the sink keeps. A retried attempt resets the sink
//! before its first chunk.

use std::sync::{Mutex, PoisonError};

use super::error::{Classify, FlyError};

/// Where a 2xx body goes as it arrives, instead of being held whole.
pub(crate) trait Sink: Send {
    /// A new attempt's body begins: forget what an earlier attempt fed.
    fn reset(&mut self);
    fn feed(&mut self, chunk: &[u8]) -> Result<(), serde_json::Error>;
    /// The body ended.
    fn finish(&mut self) -> Result<(), serde_json::Error>;
}

/// A sink shared by the attempts of one request, and what it decodes (for errors).
pub(crate) struct Streamed<'s> {
    sink: Mutex<&'s mut dyn Sink>,
    what: &'static str,
}

impl<'s> Streamed<'s> {
    pub fn new(sink: &'s mut dyn Sink, what: &'static str) -> Self {
        Self { sink: Mutex::new(sink), what }
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Sink) -> T) -> T {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut **sink)
    }

    /// Feeds `resp`'s body (a `status` response) to the sink chunk by chunk.
    pub async fn read(
        &self,
        mut resp: reqwest::Response,
        status: u16,
        request_id: Option<&str>,
        how: Classify,
        token: &str,
    ) -> Result<(), FlyError> {
        let id = || request_id.map(str::to_owned);
        let decode = |e: serde_json::Error| FlyError::decode(status, id(), self.what, &e);
        self.with(|s| s.reset());
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => self.with(|s| s.feed(&chunk)).map_err(decode)?,
                Ok(None) => break,
                Err(e) => {
                    let err = FlyError::from_transport(&e, how, token);
                    return Err(err.with_response(status, id()));
                }
            }
        }
        self.with(|s| s.finish()).map_err(decode)
    }
}
