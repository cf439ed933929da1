//! Upstream requests and responses as plain data: the adapter describes the call,
//! the server makes it. Keeping I/O out of adapters makes every mapping testable
//! with fixture bytes and no sockets.

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// The HTTP methods vendors' read APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A query-string read (all current dialects).
    Get,
    /// A JSON-body read (Chatzuri's legacy dialect). Still an idempotent read.
    Post,
}

/// One call to a vendor, relative to the provider's base URL. It carries no
/// credentials: the server adds the provider's bearer key when it sends it, so an
/// adapter can never leak one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// The method.
    pub method: Method,
    /// Path below the base URL, starting with `/`, every dynamic segment already
    /// percent-encoded.
    pub path: String,
    /// Query parameters, unencoded.
    pub query: Vec<(&'static str, String)>,
    /// A JSON body, already serialized.
    pub json_body: Option<Vec<u8>>,
}

impl UpstreamRequest {
    /// A GET with query parameters.
    pub fn get(path: String, query: Vec<(&'static str, String)>) -> Self {
        Self {
            method: Method::Get,
            path,
            query,
            json_body: None,
        }
    }
}

/// A vendor's answer, fully read, with the moment it arrived (time is an input, so
/// adapters stay deterministic).
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Bytes,
    /// When the answer arrived.
    pub received_at: DateTime<Utc>,
}
