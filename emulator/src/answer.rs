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
    /// A `Retry-After` header (Chatbase v2's own 429).
    pub(crate) retry_after: Option<u64>,
}

impl Answer {
    /// A 200 with this JSON body.
    pub(crate) fn ok(body: impl Into<Bytes>) -> Self {
        Answer {
            status: StatusCode::OK,
            body: body.into(),
            retry_after: None,
        }
    }

    /// The vendor's error body shape: Chatbase and Chatzuri document `{"message": …}`,
    /// Chatling wraps every answer in `{"status": "error", "message": …}`, Chatbase v2
    /// answers `{"error": {"code": …, "message": …}}` with the code its docs give the
    /// status.
    pub(crate) fn error(vendor: Vendor, status: StatusCode, message: &str) -> Self {
        Answer {
            status,
            body: error_body(vendor, status, message),
            retry_after: None,
        }
    }

    /// Chatbase v2's error envelope with an explicit code and field-level `details`
    /// (omitted when empty).
    pub(crate) fn coded(
        status: StatusCode,
        code: &str,
        message: &str,
        details: &[(&str, String)],
    ) -> Self {
        Answer {
            status,
            body: coded_body(code, message, details),
            retry_after: None,
        }
    }

    /// The answer as an HTTP response with a known length.
    pub(crate) fn into_response(self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        builder.insert_header((header::CONTENT_TYPE, JSON));
        if let Some(secs) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        builder.body(self.body)
    }
}

/// Serializes the vendor's error body for `message`.
/// Written by hand (not through `serde_json::Value`, whose maps sort keys) so the bytes
/// read exactly like the vendors' documented examples.
pub(crate) fn error_body(vendor: Vendor, status: StatusCode, message: &str) -> Bytes {
    let quoted = serde_json::Value::from(message).to_string();
    match vendor {
        Vendor::Chatbase | Vendor::Chatzuri => format!(r#"{{"message":{quoted}}}"#).into(),
        Vendor::Chatling => format!(r#"{{"status":"error","message":{quoted}}}"#).into(),
        Vendor::ChatbaseV2 => coded_body(v2_code(status), message, &[]),
    }
}

/// The code Chatbase v2's docs give each status in their examples (its error page has
/// no status table; the OpenAPI examples pair them so).
pub(crate) fn v2_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "VALIDATION_INVALID_BODY",
        401 => "AUTH_MISSING_API_KEY",
        403 => "SUBSCRIPTION_API_RESTRICTED_PLAN",
        404 => "RESOURCE_NOT_FOUND",
        429 => "RATE_LIMIT_TOO_MANY_REQUESTS",
        503 => "SERVICE_UNDER_MAINTENANCE",
        _ => "INTERNAL_SERVER_ERROR",
    }
}

/// `{"error":{"code":…,"message":…,"details":{…}}}`, keys in the documented order.
fn coded_body(code: &str, message: &str, details: &[(&str, String)]) -> Bytes {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    let details = if details.is_empty() {
        String::new()
    } else {
        let fields: Vec<String> = details
            .iter()
            .map(|(k, v)| format!("{}:{}", text(k), text(v)))
            .collect();
        format!(r#","details":{{{}}}"#, fields.join(","))
    };
    format!(
        r#"{{"error":{{"code":{},"message":{}{details}}}}}"#,
        text(code),
        text(message)
    )
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
        let unauthorized = StatusCode::UNAUTHORIZED;
        assert_eq!(
            error_body(Vendor::Chatbase, unauthorized, "Unauthorized"),
            Bytes::from_static(br#"{"message":"Unauthorized"}"#)
        );
        assert_eq!(
            error_body(Vendor::Chatling, unauthorized, "Unauthorized"),
            Bytes::from_static(br#"{"status":"error","message":"Unauthorized"}"#)
        );
        assert_eq!(
            error_body(Vendor::ChatbaseV2, unauthorized, "Authentication required"),
            Bytes::from_static(
                br#"{"error":{"code":"AUTH_MISSING_API_KEY","message":"Authentication required"}}"#
            )
        );
        assert_eq!(
            Answer::coded(
                StatusCode::BAD_REQUEST,
                "VALIDATION_INVALID_BODY",
                "Invalid request",
                &[("limit", "Number must be at most 20".to_owned())]
            )
            .body,
            Bytes::from_static(
                br#"{"error":{"code":"VALIDATION_INVALID_BODY","message":"Invalid request","details":{"limit":"Number must be at most 20"}}}"#
            )
        );
    }

    #[test]
    fn join_json_puts_commas_only_between_items() {
        let items = [Bytes::from_static(b"1"), Bytes::from_static(b"{}")];
        assert_eq!(join_json("[", &items, "]"), Bytes::from_static(b"[1,{}]"));
        assert_eq!(join_json("[", &[], "]"), Bytes::from_static(b"[]"));
    }
}
