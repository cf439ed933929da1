//! A computed vendor answer (status + JSON bytes), kept as data so that faults such as
//! `Truncated` or `SlowBody` can re-send the very bytes a normal answer would carry.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use bytes::Bytes;

use super::Vendor;

/// The JSON content type every emulated vendor answers with.
pub(crate) const JSON: &str = "application/json";

/// A complete, not yet sent, vendor answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Answer {
    /// A 200 with this JSON body.
    pub(crate) fn ok(body: impl Into<Bytes>) -> Self {
        Answer {
            status: StatusCode::OK,
            body: body.into(),
        }
    }

    /// The vendor's error body shape: Chatbase and Chatzuri document `{"message": …}`,
    /// Chatling wraps every answer in `{"status": "error", "message": …}`.
    pub(crate) fn error(vendor: Vendor, status: StatusCode, message: &str) -> Self {
        Answer {
            status,
            body: error_body(vendor, message),
        }
    }

    /// The answer as an HTTP response with a known length.
    pub(crate) fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((header::CONTENT_TYPE, JSON))
            .body(self.body)
    }
}

/// Serializes the vendor's error body for `message`.
/// Written by hand (not through `serde_json::Value`, whose maps sort keys) so the bytes
/// read exactly like the vendors' documented examples.
pub(crate) fn error_body(vendor: Vendor, message: &str) -> Bytes {
    let message = serde_json::Value::from(message).to_string();
    match vendor {
        Vendor::Chatbase | Vendor::Chatzuri => format!(r#"{{"message":{message}}}"#),
        Vendor::Chatling => format!(r#"{{"status":"error","message":{message}}}"#),
    }
    .into()
}

/// Joins already-serialized JSON values with commas, between `open` and `close`, so a
/// page is assembled from per-conversation bytes without re-serializing anything.
pub(crate) fn join_json<'a>(
    open: &str,
    items: impl IntoIterator<Item = &'a Bytes>,
    close: &str,
) -> Bytes {
    let mut out = Vec::with_capacity(open.len() + close.len() + 1024);
    out.extend_from_slice(open.as_bytes());
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(close.as_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_follow_each_vendors_shape() {
        assert_eq!(
            error_body(Vendor::Chatbase, "Unauthorized"),
            Bytes::from_static(br#"{"message":"Unauthorized"}"#)
        );
        assert_eq!(
            error_body(Vendor::Chatling, "Unauthorized"),
            Bytes::from_static(br#"{"status":"error","message":"Unauthorized"}"#)
        );
    }

    #[test]
    fn join_json_puts_commas_only_between_items() {
        let items = [Bytes::from_static(b"1"), Bytes::from_static(b"{}")];
        assert_eq!(join_json("[", &items, "]"), Bytes::from_static(b"[1,{}]"));
        assert_eq!(join_json("[", &[], "]"), Bytes::from_static(b"[]"));
    }
}
