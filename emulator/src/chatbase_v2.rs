//! Chatbase API v2's export endpoint, `GET /agents/{agentId}/conversations/export`
//! (`vendor-docs/chatbase-v2-export-conversations.md`): the one v2 endpoint that covers
//! conversations from every source, and so the one chatgate reads. Its other paths
//! (the list, get and messages endpoints, which see API-created conversations only)
//! answer 404 `RESOURCE_NOT_FOUND`.
//!
//! - `limit`: 1–20, default 20 (the export's own bound, not the 1–100 of the
//!   Pagination page); anything else is 400 `VALIDATION_INVALID_BODY` with
//!   `details.limit`.
//! - `cursor`: opaque base64 of `{"t": createdAt, "id": …}`, the shape of the documented
//!   example cursor, read as a keyset: the page continues after that conversation (or,
//!   if it is gone, at the first older one), so a conversation arriving at the head
//!   never shifts the pages after a cursor. A cursor that does not decode is a 400.
//! - `startDate` / `endDate`: `YYYY-MM-DD` (the start, resp. the end, of that UTC day)
//!   or an RFC 3339 date-time; an inverted window is 400
//!   `VALIDATION_INVALID_DATE_RANGE`.
//! - `source`: comma-separated labels, compared case-insensitively; a null or empty
//!   source counts as `Unspecified`.
//! - `conversationId`: only that conversation, whatever its source.
//! - `include`: `messages` (default) or `summary`, which leaves `messages` out.
//!
//! Parameters are checked before the agent is looked up (an unknown agent is 404
//! `AGENT_NOT_FOUND`). Answers are `{"data": […], "pagination": {"cursor", "hasMore",
//! "total"}}`, newest first, `total` counting every match of the filters.

use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use super::answer::{join_json, Answer};
use super::params::{first, query_pairs, strict_date};
use super::state::EmulatorState;
use super::store::{unix_instant, StoredConv};
use super::Vendor;

/// The export's largest and default `limit`.
const MAX_LIMIT: usize = 20;

/// 429 as documented: the envelope and `Retry-After` in whole seconds.
pub(crate) fn rate_limited(retry_after: u64) -> Answer {
    Answer {
        retry_after: Some(retry_after),
        ..Answer::coded(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_TOO_MANY_REQUESTS",
            "Too many requests, please try again later",
            &[],
        )
    }
}

/// 401: no `Authorization` header (the documented example), or a key that is not
/// the emulator's.
pub(crate) fn unauthorized(has_header: bool) -> Answer {
    if has_header {
        Answer::coded(
            StatusCode::UNAUTHORIZED,
            "AUTH_INVALID_API_KEY",
            "The API key is not valid.",
            &[],
        )
    } else {
        Answer::coded(
            StatusCode::UNAUTHORIZED,
            "AUTH_MISSING_API_KEY",
            "Authentication required",
            &[],
        )
    }
}

/// Answers a Chatbase v2 request whose bearer key was already accepted. `sub_path` is
/// the path below `/chatbase/api/v2`.
pub(crate) fn answer(
    state: &EmulatorState,
    method: &Method,
    sub_path: &str,
    query: &str,
) -> Answer {
    let segments: Vec<String> = sub_path
        .strip_prefix('/')
        .unwrap_or(sub_path)
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let agent = match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["agents", agent, "conversations", "export"] if !agent.is_empty() => agent.to_string(),
        _ => {
            return Answer::coded(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                "The requested item could not be found",
                &[],
            )
        }
    };
    if method != Method::GET {
        return Answer::coded(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
            &[],
        );
    }
    match ExportParams::parse(query) {
        Ok(params) => export(state, &agent, &params),
        Err(answer) => answer,
    }
}

/// A validated export request.
#[derive(Debug, PartialEq)]
struct ExportParams {
    limit: usize,
    /// Where the page starts: after this keyset position.
    after: Option<Keyset>,
    /// Inclusive bounds on `createdAt`.
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    /// Lowercased labels; `None` = every source.
    sources: Option<Vec<String>>,
    conversation_id: Option<String>,
    summary: bool,
}

/// A cursor's content: the last conversation of the page it follows.
#[derive(Debug, Clone, PartialEq)]
struct Keyset {
    t: f64,
    id: String,
}

impl ExportParams {
    /// Every parameter, with every problem reported at once in `details`.
    fn parse(query: &str) -> Result<Self, Answer> {
        let pairs = query_pairs(query);
        let mut details: Vec<(&str, String)> = Vec::new();
        let limit = match first(&pairs, "limit") {
            None => MAX_LIMIT,
            Some(v) => match v.parse::<usize>() {
                Ok(n @ 1..=MAX_LIMIT) if v.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    details.push((
                        "limit",
                        format!("Expected an integer from 1 to {MAX_LIMIT}, got {v:?}"),
                    ));
                    MAX_LIMIT
                }
            },
        };
        let after = match first(&pairs, "cursor") {
            None => None,
            Some(c) => match decode_cursor(c) {
                Some(k) => Some(k),
                None => {
                    details.push(("cursor", "Invalid cursor".to_owned()));
                    None
                }
            },
        };
        let mut instant = |name: &'static str, end: bool| -> Option<DateTime<Utc>> {
            let v = first(&pairs, name)?;
            let parsed = match strict_date(v) {
                Some(day) if end => {
                    day_start(day).map(|t| t + Duration::days(1) - Duration::nanoseconds(1))
                }
                Some(day) => day_start(day),
                None => DateTime::parse_from_rfc3339(v)
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
            };
            if parsed.is_none() {
                details.push((
                    name,
                    format!("Expected YYYY-MM-DD or an ISO 8601 date-time, got {v:?}"),
                ));
            }
            parsed
        };
        let start = instant("startDate", false);
        let end = instant("endDate", true);
        let summary = match first(&pairs, "include") {
            None | Some("messages") => false,
            Some("summary") => true,
            Some(v) => {
                details.push((
                    "include",
                    format!("Expected \"summary\" or \"messages\", got {v:?}"),
                ));
                false
            }
        };
        if !details.is_empty() {
            return Err(Answer::coded(
                StatusCode::BAD_REQUEST,
                "VALIDATION_INVALID_BODY",
                "Invalid request",
                &details,
            ));
        }
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(Answer::coded(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_INVALID_DATE_RANGE",
                    "startDate must not be after endDate",
                    &[],
                ));
            }
        }
        let sources: Vec<String> = first(&pairs, "source")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(ExportParams {
            limit,
            after,
            start,
            end,
            sources: (!sources.is_empty()).then_some(sources),
            conversation_id: first(&pairs, "conversationId").map(str::to_owned),
            summary,
        })
    }

    fn matches(&self, c: &StoredConv) -> bool {
        if let Some(id) = &self.conversation_id {
            if c.value["id"].as_str() != Some(id.as_str()) {
                return false;
            }
        }
        if let Some(sources) = &self.sources {
            if !sources.contains(&c.source_key) {
                return false;
            }
        }
        if self.start.is_some() || self.end.is_some() {
            let Some(t) = c.created else {
                return false;
            };
            if self.start.is_some_and(|s| t < s) || self.end.is_some_and(|e| t > e) {
                return false;
            }
        }
        true
    }
}

fn day_start(day: NaiveDate) -> Option<DateTime<Utc>> {
    day.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

fn export(state: &EmulatorState, agent: &str, p: &ExportParams) -> Answer {
    let Some(data) = state.bot(Vendor::ChatbaseV2, agent) else {
        return Answer::coded(
            StatusCode::NOT_FOUND,
            "AGENT_NOT_FOUND",
            "Agent not found",
            &[],
        );
    };
    let stream: Vec<&StoredConv> = data.convs.iter().filter(|c| p.matches(c)).collect();
    let from = match &p.after {
        None => 0,
        Some(k) => match stream
            .iter()
            .position(|c| c.value["id"].as_str() == Some(&k.id))
        {
            Some(at) => at + 1,
            // Gone since: carry on at the first conversation older than it.
            None => {
                let t = unix_instant(&json!(k.t));
                stream
                    .iter()
                    .position(|c| match (c.created, t) {
                        (Some(created), Some(t)) => created < t,
                        _ => true,
                    })
                    .unwrap_or(stream.len())
            }
        },
    };
    let page = &stream[from.min(stream.len())..(from + p.limit).min(stream.len())];
    let has_more = from + p.limit < stream.len();
    let cursor = match (has_more, page.last()) {
        (true, Some(last)) => Value::from(encode_cursor(last)),
        _ => Value::Null,
    };
    let summaries: Vec<Bytes>;
    let items: Vec<&Bytes> = if p.summary {
        summaries = page
            .iter()
            .map(|c| {
                let mut v = c.value.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("messages");
                }
                Bytes::from(v.to_string())
            })
            .collect();
        summaries.iter().collect()
    } else {
        page.iter().map(|c| &c.json).collect()
    };
    let close = format!(
        r#"],"pagination":{{"cursor":{cursor},"hasMore":{has_more},"total":{}}}}}"#,
        stream.len()
    );
    Answer::ok(join_json(r#"{"data":["#, items, &close))
}

fn encode_cursor(c: &StoredConv) -> String {
    let t = c.value.get("createdAt").cloned().unwrap_or(Value::Null);
    let id = c.value.get("id").cloned().unwrap_or(Value::Null);
    base64_encode(json!({"t": t, "id": id}).to_string().as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<Keyset> {
    let value: Value = serde_json::from_slice(&base64_decode(cursor)?).ok()?;
    Some(Keyset {
        t: value.get("t")?.as_f64()?,
        id: value.get("id")?.as_str()?.to_owned(),
    })
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, like the documented cursor.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The inverse of [`base64_encode`]; `None` for anything that is not its output.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in &quad[..4 - pad] {
            let v = BASE64.iter().position(|c| *c == b)?;
            n = (n << 6) | v as u32;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{call, call_json, spawn, Call};
    use crate::{Fault, FaultKind, CHATBASE_V2_BOT, CHATBASE_V2_KEY};
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

    fn export_call(query: &str) -> Call {
        Call::get(
            Vendor::ChatbaseV2,
            &format!("/agents/{CHATBASE_V2_BOT}/conversations/export?{query}"),
        )
        .key(CHATBASE_V2_KEY)
    }

    fn ids(body: &Value) -> Vec<String> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn all_ids(all: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
        all.iter()
            .filter(|c| keep(c))
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn encoded(text: &str) -> String {
        utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
    }

    /// Every page from the first, following cursors.
    async fn walk(server: &crate::EmulatorServer, query: &str) -> (Vec<String>, usize) {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut calls = 0;
        loop {
            let q = match &cursor {
                None => query.to_owned(),
                Some(c) => format!("{query}&cursor={}", encoded(c)),
            };
            let (status, body) = call_json(server, export_call(&q)).await;
            assert_eq!(status, 200, "{body}");
            calls += 1;
            seen.extend(ids(&body));
            let pagination = &body["pagination"];
            if pagination["hasMore"] != true {
                assert!(pagination["cursor"].is_null());
                return (seen, calls);
            }
            cursor = pagination["cursor"].as_str().map(str::to_owned);
        }
    }

    #[test]
    fn base64_round_trips_like_the_documented_cursor() {
        let documented = "eyJ0IjoiMjAyNC0wMS0xNVQxMDozMDowMC4wMDBaIiwiaWQiOiJhYmMxMjMifQ==";
        let decoded = base64_decode(documented).expect("the documented cursor decodes");
        assert_eq!(
            decoded,
            br#"{"t":"2024-01-15T10:30:00.000Z","id":"abc123"}"#.to_vec()
        );
        assert_eq!(base64_encode(&decoded), documented);
        for text in ["", "a", "ab", "abc", "abcd", "\u{ff}\u{fe}"] {
            let enc = base64_encode(text.as_bytes());
            if !text.is_empty() {
                assert_eq!(base64_decode(&enc), Some(text.as_bytes().to_vec()));
            }
        }
        for bad in ["", "abc", "a===", "ab=c", "ab==ab==", "!!!!"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn parameters_are_checked_together() {
        let err = |q: &str| match ExportParams::parse(q) {
            Err(a) => (
                a.status.as_u16(),
                serde_json::from_slice::<Value>(&a.body).ok(),
            ),
            Ok(p) => panic!("{q} parsed: {p:?}"),
        };
        let (status, body) = err("limit=0&startDate=2024-7-01&include=all&cursor=nope");
        assert_eq!(status, 400);
        let body = body.expect("JSON");
        assert_eq!(body["error"]["code"], "VALIDATION_INVALID_BODY");
        let details = body["error"]["details"].as_object().expect("details");
        let mut fields: Vec<&str> = details.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["cursor", "include", "limit", "startDate"]);
        for q in ["limit=21", "limit=-1", "limit=1.5", "limit=+3", "limit="] {
            assert_eq!(err(q).0, 400, "{q}");
        }
        let (status, body) = err("startDate=2024-03-02&endDate=2024-03-01");
        assert_eq!(status, 400);
        assert_eq!(
            body.expect("JSON")["error"]["code"],
            "VALIDATION_INVALID_DATE_RANGE"
        );
        let p = ExportParams::parse("endDate=2024-03-01&startDate=2024-03-01T10:00:00%2B02:00")
            .expect("valid");
        assert_eq!(p.limit, MAX_LIMIT);
        assert_eq!(
            p.start.map(|t| t.to_rfc3339()),
            Some("2024-03-01T08:00:00+00:00".to_owned())
        );
        assert_eq!(
            p.end.map(|t| t.to_rfc3339()),
            Some("2024-03-01T23:59:59.999999999+00:00".to_owned())
        );
    }

    #[actix_web::test]
    async fn export_pages_newest_first_through_cursors() {
        let server = spawn().await;
        let all = server
            .state
            .conversations(Vendor::ChatbaseV2, CHATBASE_V2_BOT);
        assert_eq!(all.len(), 161);
        let (status, body) = call_json(&server, export_call("")).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["data"],
            Value::Array(all[..20].to_vec()),
            "default limit 20"
        );
        assert_eq!(body["pagination"]["hasMore"], true);
        assert_eq!(body["pagination"]["total"], 161);
        let cursor = body["pagination"]["cursor"].as_str().expect("a cursor");
        let keyset = decode_cursor(cursor).expect("base64 of {t, id}");
        assert_eq!(Some(keyset.id.as_str()), all[19]["id"].as_str());
        for limit in [1, 7, 20] {
            let (seen, calls) = walk(&server, &format!("limit={limit}")).await;
            assert_eq!(seen, all_ids(&all, |_| true), "limit {limit}");
            assert_eq!(calls, 161usize.div_ceil(limit));
        }
        server.stop().await;
    }

    #[actix_web::test]
    async fn a_conversation_arriving_at_the_head_does_not_shift_the_next_page() {
        let server = spawn().await;
        let mut all = server
            .state
            .conversations(Vendor::ChatbaseV2, CHATBASE_V2_BOT);
        let (_, first) = call_json(&server, export_call("limit=10")).await;
        let cursor = first["pagination"]["cursor"]
            .as_str()
            .expect("a cursor")
            .to_owned();
        let newest = json!({"id": "conv_new", "title": null, "createdAt": 1_900_000_000,
            "updatedAt": 1_900_000_000, "userId": null, "source": "Email",
            "status": "ongoing", "messages": []});
        let before = all.clone();
        all.insert(0, newest);
        server
            .state
            .set_conversations(Vendor::ChatbaseV2, CHATBASE_V2_BOT, all);
        let q = format!("limit=10&cursor={}", encoded(&cursor));
        let (_, second) = call_json(&server, export_call(&q)).await;
        assert_eq!(ids(&second), all_ids(&before[10..20], |_| true));
        assert_eq!(second["pagination"]["total"], 162);
        server.stop().await;
    }

    #[actix_web::test]
    async fn export_filters_dates_sources_and_one_conversation() {
        let server = spawn().await;
        let all = server
            .state
            .conversations(Vendor::ChatbaseV2, CHATBASE_V2_BOT);
        let day = |c: &Value| unix_instant(&c["createdAt"]).map(|t| t.date_naive());
        let (march, may) = (
            NaiveDate::from_ymd_opt(2024, 3, 1),
            NaiveDate::from_ymd_opt(2024, 5, 31),
        );
        let (seen, _) = walk(&server, "startDate=2024-03-01&endDate=2024-05-31").await;
        let want = all_ids(&all, |c| day(c) >= march && day(c) <= may);
        assert!(want.len() > 20, "spans pages: {}", want.len());
        assert_eq!(seen, want);

        let (seen, _) = walk(
            &server,
            &format!("source={}", encoded("widget or iframe,Iframe")),
        )
        .await;
        let want = all_ids(&all, |c| {
            matches!(c["source"].as_str(), Some("Widget or Iframe" | "Iframe"))
        });
        assert!(want.len() >= 5);
        assert_eq!(seen, want);

        let (seen, _) = walk(&server, "source=Unspecified").await;
        let want = all_ids(&all, |c| {
            matches!(c["source"].as_str(), Some("Unspecified") | None)
        });
        assert_eq!(seen, want, "null sources count as Unspecified");

        let email = all
            .iter()
            .find(|c| c["source"] == "Email")
            .expect("v2-only channels are seeded");
        let id = email["id"].as_str().unwrap_or_default();
        let (status, body) = call_json(&server, export_call(&format!("conversationId={id}"))).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], json!([email]));
        assert_eq!(
            body["pagination"],
            json!({"cursor": null, "hasMore": false, "total": 1})
        );
        let (_, body) = call_json(
            &server,
            export_call(&format!("conversationId={id}&include=summary")),
        )
        .await;
        assert!(body["data"][0].get("messages").is_none());
        assert_eq!(body["data"][0]["status"], email["status"]);
        let (_, body) = call_json(&server, export_call("conversationId=nope")).await;
        assert_eq!(
            body,
            json!({"data": [], "pagination": {"cursor": null, "hasMore": false, "total": 0}})
        );
        server.stop().await;
    }

    #[actix_web::test]
    async fn errors_use_the_documented_envelope() {
        let server = spawn().await;
        let (status, body) = call_json(
            &server,
            Call::get(Vendor::ChatbaseV2, "/agents/nope/conversations/export").key(CHATBASE_V2_KEY),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                404,
                json!({"error": {"code": "AGENT_NOT_FOUND", "message": "Agent not found"}})
            )
        );
        let (status, body) = call_json(
            &server,
            Call::get(Vendor::ChatbaseV2, "/agents/cb-empty/conversations/export")
                .key(CHATBASE_V2_KEY),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], json!([]));
        let (status, body) = call_json(&server, export_call("limit=21")).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "VALIDATION_INVALID_BODY");
        assert!(body["error"]["details"]["limit"].is_string());
        let path = format!("/agents/{CHATBASE_V2_BOT}/conversations/export");
        let (status, body) = call_json(&server, Call::get(Vendor::ChatbaseV2, &path)).await;
        assert_eq!(
            (status, body),
            (
                401,
                json!({"error": {"code": "AUTH_MISSING_API_KEY", "message": "Authentication required"}})
            )
        );
        let (status, body) =
            call_json(&server, Call::get(Vendor::ChatbaseV2, &path).key("wrong")).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "AUTH_INVALID_API_KEY");
        let (status, body) = call_json(
            &server,
            Call::get(
                Vendor::ChatbaseV2,
                &format!("/agents/{CHATBASE_V2_BOT}/conversations"),
            )
            .key(CHATBASE_V2_KEY),
        )
        .await;
        assert_eq!(status, 404, "only the export is served");
        assert_eq!(body["error"]["code"], "RESOURCE_NOT_FOUND");
        server.stop().await;
    }

    #[actix_web::test]
    async fn rate_limit_answers_429_with_retry_after() {
        let server = spawn().await;
        server.state.set_chatbase_v2_rate_limit(Some(2));
        assert_eq!(call(&server, export_call("limit=1")).await.status, 200);
        assert_eq!(call(&server, export_call("limit=1")).await.status, 200);
        let response = call(&server, export_call("limit=1")).await;
        assert_eq!(response.status, 429);
        let wait: u64 = response
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=10).contains(&wait), "{wait}");
        let body: Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(body["error"]["code"], "RATE_LIMIT_TOO_MANY_REQUESTS");
        server.state.set_chatbase_v2_rate_limit(None);
        assert_eq!(call(&server, export_call("limit=1")).await.status, 200);
        server.stop().await;
    }

    #[actix_web::test]
    async fn injected_faults_speak_chatbase_v2() {
        let server = spawn().await;
        let fault = |kind| Fault {
            vendor: Some(Vendor::ChatbaseV2),
            path_contains: Some("/export".to_owned()),
            times: Some(1),
            kind,
        };
        server.state.add_fault(fault(FaultKind::Status {
            status: 503,
            body: None,
            retry_after: Some("4".to_owned()),
        }));
        let response = call(&server, export_call("")).await;
        assert_eq!(response.status, 503);
        assert_eq!(response.retry_after.as_deref(), Some("4"));
        let body: Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(body["error"]["code"], "SERVICE_UNDER_MAINTENANCE");
        server.state.add_fault(fault(FaultKind::WrongShape));
        let (status, body) = call_json(&server, export_call("")).await;
        assert_eq!(
            (status, body),
            (200, json!({"data": "nope", "pagination": {}}))
        );
        server
            .state
            .add_fault(fault(FaultKind::Huge { bytes: 100_000 }));
        let response = call(&server, export_call("")).await;
        assert_eq!(response.body.len(), 100_000);
        let body: Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(body["data"], json!([]));
        assert_eq!(body["pagination"]["hasMore"], false);
        assert_eq!(server.state.request_count(Vendor::ChatbaseV2), 3);
        server.stop().await;
    }
}
