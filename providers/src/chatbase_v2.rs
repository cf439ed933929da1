//! Chatbase API v2 (README "Vendors"; the vendor's pages in
//! `vendor-docs/chatbase-v2-*.md`).
//!
//! **One endpoint.** Conversations are read only through
//! `GET /agents/{agentId}/conversations/export`: it is the one v2 endpoint that
//! covers conversations from every source (the widget, WhatsApp, Slack … as well
//! as API-created ones), with every message embedded. The list, get and messages
//! endpoints see API-created conversations only (the Overview's warning, the CLI
//! docs: "get and messages list work only for API-created conversations"), so a
//! bot moved here from v1 would silently lose most of its history through them.
//! One conversation is the export with `conversationId`, which the vendor's
//! OpenAPI documents for "a single conversation from any source": one call, the
//! whole history. The get + messages pair would only add calls, and would answer
//! 404 for everything that did not come through the API.
//!
//! **Cursor pages.** Export pages hold at most 20 conversations (`limit` 1–20,
//! although the Pagination page says 1–100 for "all list endpoints"; the export's
//! own definition wins). A gateway window of up to 100 is assembled from as many
//! vendor pages as it covers, following `pagination.cursor`, bounded by
//! `max_scan_pages` (502 past it, never a partial page). A window that starts deep
//! needs every cursor before it, so the operation starts from a [`ResumePoint`]
//! when the server remembers one, and returns the points it reached at the
//! window's start and end. `limit` asks for what the window still needs, so a
//! window read in order ends on a vendor page boundary and the next one starts
//! exactly at the next cursor: pages 1, 2, 3 … cost one call per vendor page.
//!
//! **Filters.** `startDate`/`endDate` are native: the vendor reads a bare date as
//! the start (end) of that UTC day, the gateway's own inclusive UTC days. `source`
//! is native with the vendor's labels, except for `unspecified`: it stands for a
//! null `source`, `Unspecified` and the labels no canonical source covers (`Qna
//! preview`, `Center stage`, `Search`, `Agent page`), which no label list can
//! select, so a filter holding it is applied here over the unfiltered stream.
//! Every conversation is checked against the filters here too: a vendor that
//! ignores one costs calls, never a wrong answer.
//!
//! **Mapping.** `createdAt`/`updatedAt`/messages' `createdAt` are Unix seconds
//! (numbers, fractions kept to the millisecond); `userId` is the customer; the
//! text parts of a message, joined by a blank line, are its content; `tool-call`
//! and `tool-result` parts (and any part type to come) are not text anyone wrote
//! or read, so they are left out of `content` and survive in `raw`, as do `title`
//! and `status` (`taken_over` included), which no other vendor has.
//!
//! **Errors** are `{"error": {"code", "message", "details"}}`; the code decides
//! the kind where the docs list it (`error_from`), the status otherwise.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ProviderError;
use crate::fast::{read_twice, Reading, Text, VendorValue};
use crate::model::{
    Conversation, ListQuery, Message, Page, ProviderKind, RangePosition, Role, Target,
};
use crate::request::{UpstreamRequest, UpstreamResponse};
use crate::sanitize;
use crate::sources::Source;
use crate::text::JsonText;
use crate::wire::{self, invalid_json, lenient_opt_string, lenient_string, parse_retry_after};
use crate::{
    Adapter, GetOperation, ListOperation, ListResult, Operation, Paging, ResumePoint, Step,
    VendorInfo,
};

/// What the rest of chatgate knows about Chatbase API v2.
pub const INFO: VendorInfo = VendorInfo {
    kind_name: "chatbase_v2",
    display_name: "Chatbase v2",
    // The Overview's and every OpenAPI `servers` entry's base URL.
    default_base_url: "https://www.chatbase.co/api/v2",
    default_requests_per_second: match NonZeroU32::new(10) {
        Some(n) => n,
        None => unreachable!(),
    },
    quota_source: "Chatbase v2 documents 100 requests per 10-second sliding window per API \
                   key and IP (Authentication page, \"Rate Limiting\"): 10/s",
    dialects: &[],
    // The export's `source` enum (22 values with `Unspecified`), by canonical
    // source. `Qna preview`, `Center stage`, `Search` and `Agent page` are left
    // out: nothing documents what they are, so they read as `unspecified` (the
    // label stays in `raw`) and a caller cannot filter on them by name.
    source_labels: &[
        (Source::Api, "API"),
        (Source::Website, "Chatbase site"),
        (Source::Widget, "Widget or Iframe"),
        (Source::Widget, "Iframe"),
        (Source::Whatsapp, "WhatsApp"),
        (Source::Messenger, "Messenger"),
        (Source::Instagram, "Instagram"),
        (Source::Slack, "Slack"),
        (Source::Playground, "Playground"),
        (Source::ActionPreview, "Action preview"),
        (Source::Email, "Email"),
        (Source::Phone, "Phone"),
        (Source::Zendesk, "Zendesk"),
        (Source::Zendesk, "Zendesk Messaging"),
        (Source::Salesforce, "Salesforce"),
        (Source::AndroidSdk, "Android SDK"),
        (Source::IosSdk, "iOS SDK"),
        (Source::Unspecified, "Unspecified"),
    ],
    // Opaque cursors: a deep window needs the cursors before it.
    paging: Paging::Cursor,
};

/// The export's largest `limit` (its own definition: 1–20, default 20).
pub const MAX_LIMIT: u32 = 20;

/// The longest cursor taken from the vendor: it is sent back in a query string and
/// remembered by the server, so a vendor's runaway value must not be.
pub const MAX_CURSOR_BYTES: usize = 2048;

/// How long a 429 without `Retry-After` pauses: the documented window is a 10-second
/// sliding one, after which every request of it has slid out. (The docs promise
/// `Retry-After` on every 429; `X-RateLimit-Reset` is not read, its unit is
/// milliseconds on two pages and seconds in the OpenAPI.)
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Text parts of one message are joined by a blank line: the vendor splits a reply
/// into parts around its tool calls, and each reads as its own paragraph.
const PART_SEPARATOR: &str = "\n\n";

/// The Chatbase API v2 adapter.
#[derive(Debug, Clone, Copy)]
pub struct ChatbaseV2 {
    max_scan_pages: NonZeroU32,
}

impl ChatbaseV2 {
    /// An adapter that reads at most `max_scan_pages` vendor pages per operation.
    pub fn new(max_scan_pages: NonZeroU32) -> Self {
        Self { max_scan_pages }
    }
}

impl Adapter for ChatbaseV2 {
    fn kind(&self) -> ProviderKind {
        ProviderKind::ChatbaseV2
    }

    fn list(
        &self,
        target: Target<'_>,
        query: &ListQuery,
        vendor_page_size: Option<NonZeroU32>,
    ) -> ListOperation {
        self.list_from(target, query, vendor_page_size, None)
    }

    fn list_from(
        &self,
        target: Target<'_>,
        query: &ListQuery,
        _: Option<NonZeroU32>,
        from: Option<&ResumePoint>,
    ) -> ListOperation {
        let sources = SourcePlan::new(query);
        let mut filters = Vec::with_capacity(3);
        let fmt = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        if let Some(start) = query.dates.start() {
            filters.push(("startDate", fmt(start)));
        }
        if let Some(end) = query.dates.end() {
            filters.push(("endDate", fmt(end)));
        }
        if let SourcePlan::Native(labels) = &sources {
            filters.push(("source", labels.clone()));
        }
        Box::new(ListOp {
            bot: target.bot.to_owned(),
            path: export_path(target.chatbot_id),
            query: query.clone(),
            filters,
            whole_pages: sources == SourcePlan::Gateway,
            sources,
            max_pages: self.max_scan_pages.get(),
            fetched: 0,
            from: from.cloned(),
            resumed: false,
            restarted: false,
            cursor: None,
            skip: 0,
            limit: MAX_LIMIT,
            position: 0,
            cursors_seen: HashSet::new(),
            ids_seen: HashSet::new(),
            collected: Vec::new(),
            start_point: None,
        })
    }

    fn get(
        &self,
        target: Target<'_>,
        conversation_id: &str,
        include_raw: bool,
    ) -> Result<GetOperation, ProviderError> {
        Ok(Box::new(GetOp {
            bot: target.bot.to_owned(),
            path: export_path(target.chatbot_id),
            id: conversation_id.to_owned(),
            include_raw,
        }))
    }
}

fn export_path(agent_id: &str) -> String {
    format!("/agents/{}/conversations/export", wire::segment(agent_id))
}

/// How a source filter reaches the vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourcePlan {
    /// No source filter.
    All,
    /// Sent as `source`: every label of every source asked for.
    Native(String),
    /// Holds `unspecified`, which no label list can select: applied here over the
    /// unfiltered stream.
    Gateway,
    /// Only sources the vendor has no label for: nothing can match, no call.
    Nothing,
}

impl SourcePlan {
    fn new(query: &ListQuery) -> Self {
        let Some(set) = &query.sources else {
            return Self::All;
        };
        if set.contains(&Source::Unspecified) {
            return Self::Gateway;
        }
        let labels: Vec<&str> = set.iter().flat_map(|&s| INFO.source_labels_of(s)).collect();
        if labels.is_empty() {
            Self::Nothing
        } else {
            Self::Native(labels.join(","))
        }
    }
}

/// An export page (`ExportConversationsResponse`). Conversations stay the
/// vendor's text, borrowed from the body: one is copied only for `include=raw`.
#[derive(Deserialize)]
struct ExportPage<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    pagination: Pagination,
}

/// `total` is not read: the gateway counts positions itself, and the docs do not
/// say whether `total` counts before or after the filters.
#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(rename = "hasMore")]
    has_more: bool,
}

/// `ExportConversation`; `title` and `status` are read only through `raw`.
/// Its parts' texts are read as `T` ([`read_twice`]).
#[derive(Deserialize)]
struct WireConversation<T> {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(rename = "createdAt")]
    created_at: serde_json::Number,
    #[serde(rename = "updatedAt", default)]
    updated_at: Option<serde_json::Number>,
    #[serde(rename = "userId", default, deserialize_with = "lenient_opt_string")]
    user_id: Option<String>,
    #[serde(default)]
    source: Option<String>,
    /// Absent only with `include=summary`, which the gateway never asks for.
    #[serde(default = "Option::default")]
    messages: Option<Vec<WireMessage<T>>>,
}

/// `ExportMessage`; `id`, `feedback` and `metadata` are read only through `raw`.
#[derive(Deserialize)]
struct WireMessage<T> {
    role: String,
    parts: Vec<WirePart<T>>,
    #[serde(rename = "createdAt", default)]
    created_at: Option<serde_json::Number>,
}

/// One of a message's `parts`: `text`, `tool-call`, `tool-result`, or a type to
/// come. Only a text part's `text` is read: as [`Text`] fast, any JSON value
/// exactly (a part of another type may hold anything there).
#[derive(Deserialize)]
struct WirePart<T> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "Option::default")]
    text: Option<T>,
}

/// The documented error envelope.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: WireError,
}

#[derive(Deserialize)]
struct WireError {
    code: String,
    #[serde(default)]
    message: Option<String>,
    /// Field-level validation errors, `{field: text}`.
    #[serde(default)]
    details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Maps a vendor answer that is not a page to an error: by its documented
/// `error.code` where the docs list it (the error page has no status table, and
/// a code says more than a status), else by its status.
///
/// | code | kind |
/// |---|---|
/// | `AUTH_*`, `SUBSCRIPTION_*` (the key, or its plan, cannot use the API) | [`ProviderError::Unauthorized`]: the gateway's config, not the caller |
/// | `AGENT_NOT_FOUND`, `RESOURCE_NOT_FOUND`, `CHAT_CONVERSATION_MISMATCH` (not this agent's) | [`ProviderError::NotFound`] |
/// | `RATE_LIMIT_TOO_MANY_REQUESTS` | [`ProviderError::RateLimited`], `Retry-After` or the 10 s window |
/// | `SERVICE_UNDER_MAINTENANCE` ("transient; retry after a short delay") | [`ProviderError::Upstream`] 503, retryable |
/// | `INTERNAL_SERVER_ERROR` | [`ProviderError::Upstream`] |
/// | `VALIDATION_*` | [`ProviderError::Rejected`] |
///
/// The message quotes the vendor's message, code and details.
pub(crate) fn error_from(response: &UpstreamResponse) -> ProviderError {
    let status = response.status;
    let retry_after = || {
        response
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, response.received_at))
            .or(Some(RATE_WINDOW))
    };
    let Ok(ErrorEnvelope { error }) = serde_json::from_slice::<ErrorEnvelope>(&response.body)
    else {
        if (200..300).contains(&status) {
            return ProviderError::InvalidBody {
                status,
                reason: "neither an export page nor an error envelope".to_owned(),
            };
        }
        return wire::error_from_status(
            status,
            response.retry_after.as_deref(),
            &response.body,
            response.received_at,
            |_| Some(RATE_WINDOW),
        );
    };
    let message = describe(&error);
    let code = error.code.as_str();
    if code.starts_with("AUTH_") || code.starts_with("SUBSCRIPTION_") {
        return ProviderError::Unauthorized { status, message };
    }
    match code {
        "AGENT_NOT_FOUND" | "RESOURCE_NOT_FOUND" | "CHAT_CONVERSATION_MISMATCH" => {
            ProviderError::NotFound { message }
        }
        "RATE_LIMIT_TOO_MANY_REQUESTS" => ProviderError::RateLimited {
            retry_after: retry_after(),
        },
        // The vendor's word: transient, rejected before anything was read.
        "SERVICE_UNDER_MAINTENANCE" => ProviderError::Upstream {
            status: 503,
            message,
        },
        "INTERNAL_SERVER_ERROR" => ProviderError::Upstream {
            status: if status >= 500 { status } else { 500 },
            message,
        },
        _ if code.starts_with("VALIDATION_") => ProviderError::Rejected {
            status: if (400..500).contains(&status) {
                status
            } else {
                400
            },
            message,
        },
        _ => match status {
            401 | 403 => ProviderError::Unauthorized { status, message },
            404 => ProviderError::NotFound { message },
            429 => ProviderError::RateLimited {
                retry_after: retry_after(),
            },
            400..=499 => ProviderError::Rejected { status, message },
            200..=299 => ProviderError::InvalidBody {
                status,
                reason: format!("an error envelope with a success status: {message}"),
            },
            _ => ProviderError::Upstream { status, message },
        },
    }
}

/// `message (CODE): field: text; …`, capped (vendor text is shortened when the
/// error is sanitized).
fn describe(e: &WireError) -> String {
    let mut text = match e.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => format!("{m} ({})", e.code),
        _ => e.code.clone(),
    };
    let details: Vec<String> = e
        .details
        .iter()
        .flatten()
        .map(|(field, v)| match v.as_str() {
            Some(s) => format!("{field}: {s}"),
            None => format!("{field}: {v}"),
        })
        .collect();
    if !details.is_empty() {
        text.push_str(": ");
        text.push_str(&details.join("; "));
    }
    sanitize::cap(&text)
}

/// Reads a 2xx answer as an export page, or as the error envelope it carries.
fn open(response: &UpstreamResponse) -> Result<ExportPage<'_>, ProviderError> {
    let status = response.status;
    if !(200..300).contains(&status) {
        return Err(error_from(response));
    }
    wire::from_body::<ExportPage>(&response.body).map_err(|e| {
        if serde_json::from_slice::<ErrorEnvelope>(&response.body).is_ok() {
            error_from(response)
        } else {
            invalid_json(status, &e)
        }
    })
}

/// A Unix-seconds timestamp, in the years 0000 to 9999 (what callers are promised
/// they can parse). Integers are exact; a fraction is kept to the millisecond, as
/// an `f64` of today's seconds holds nothing finer.
fn epoch_time(
    field: &str,
    value: &serde_json::Number,
    status: u16,
) -> Result<DateTime<Utc>, ProviderError> {
    let invalid = || ProviderError::InvalidBody {
        status,
        reason: format!(
            "`{field}` is not Unix seconds between the years 0000 and 9999: {}",
            sanitize::cap(&value.to_string())
        ),
    };
    // Beyond ±10^15 s (±31 million years) nothing can be in range, and every
    // millisecond count below it is exact in an f64 and fits an i64.
    const LIMIT: f64 = 1e15;
    let t = match value.as_i64() {
        Some(secs) => DateTime::from_timestamp(secs, 0),
        None => value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < LIMIT)
            .and_then(|f| DateTime::from_timestamp_millis((f * 1000.0).round() as i64)),
    }
    .ok_or_else(invalid)?;
    if !(0..=9999).contains(&t.year()) {
        return Err(invalid());
    }
    Ok(t)
}

fn normalize(
    raw: &RawValue,
    bot: &str,
    include_raw: bool,
    status: u16,
) -> Result<Conversation, ProviderError> {
    match read_twice::<WireConversation<Text>, WireConversation<serde_json::Value>>(raw.get())
        .map_err(|e| invalid_json(status, &e))?
    {
        Reading::Fast(wire) => normalize_read(wire, raw, bot, include_raw, status),
        Reading::Exact(wire) => normalize_read(wire, raw, bot, include_raw, status),
    }
}

fn normalize_read<T: VendorValue>(
    wire: WireConversation<T>,
    raw: &RawValue,
    bot: &str,
    include_raw: bool,
    status: u16,
) -> Result<Conversation, ProviderError> {
    let mut messages = wire
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| normalize_message(m, status))
        .collect::<Result<Vec<_>, _>>()?;
    // The export's message order is not documented; callers get them oldest
    // first. A stable sort keeps equal times (and the vendor's order) as given,
    // and is skipped when a time is missing: there is then no order to sort by.
    if messages.iter().all(|m| m.created_at.is_some()) {
        messages.sort_by_key(|m| m.created_at);
    }
    Ok(Conversation {
        created_at: epoch_time("createdAt", &wire.created_at, status)?,
        updated_at: wire
            .updated_at
            .as_ref()
            .map(|t| epoch_time("updatedAt", t, status))
            .transpose()?,
        id: wire.id,
        chatbot_id: bot.to_owned(),
        provider: ProviderKind::ChatbaseV2,
        customer: wire.user_id,
        source: Source::from_vendor(wire.source.as_deref()),
        messages,
        raw: include_raw.then(|| raw.to_owned()),
    })
}

fn normalize_message<T: VendorValue>(
    m: WireMessage<T>,
    status: u16,
) -> Result<Message, ProviderError> {
    // Documented: `user`, `assistant`. Anything else is a bot-side speaker whose
    // original role is kept, as for every vendor.
    let (role, vendor_role) = match m.role.as_str() {
        "user" => (Role::User, None),
        "assistant" => (Role::Assistant, None),
        "system" => (Role::System, None),
        other => (Role::Assistant, Some(wire::shorten(other, 64))),
    };
    let mut texts = Vec::new();
    for part in m.parts {
        if part.kind != "text" {
            continue;
        }
        match part.text.and_then(VendorValue::into_text) {
            Some(text) => texts.push(text),
            None => {
                return Err(ProviderError::InvalidBody {
                    status,
                    reason: "a `text` part without a string `text`".to_owned(),
                })
            }
        }
    }
    Ok(Message {
        role,
        vendor_role,
        content: JsonText::join(&texts, PART_SEPARATOR),
        created_at: m
            .created_at
            .as_ref()
            .map(|t| epoch_time("messages[].createdAt", t, status))
            .transpose()?,
        sources: Vec::new(),
    })
}

/// The next page's cursor, if the page says there is one; a page that says more
/// follows but gives no cursor to it contradicts itself.
fn next_cursor(p: Pagination, status: u16) -> Result<Option<String>, ProviderError> {
    let bad = |reason: String| ProviderError::InvalidBody { status, reason };
    let cursor = p.cursor.filter(|c| !c.is_empty());
    if let Some(c) = &cursor {
        if c.len() > MAX_CURSOR_BYTES {
            return Err(bad(format!(
                "a cursor of {} bytes (at most {MAX_CURSOR_BYTES} are taken)",
                c.len()
            )));
        }
    }
    match (p.has_more, cursor) {
        (true, None) => Err(bad("hasMore is true but there is no cursor".to_owned())),
        // No more, whatever a stray cursor says (the vendor's CLI reads it so too).
        (false, _) => Ok(None),
        (true, next) => Ok(next),
    }
}

/// Assembles one gateway window from export pages.
struct ListOp {
    bot: String,
    path: String,
    query: ListQuery,
    /// `startDate`, `endDate`, `source`: the same on every page of the stream.
    filters: Vec<(&'static str, String)>,
    sources: SourcePlan,
    /// Ask for whole vendor pages: the gateway filters (sources with
    /// `unspecified`), or the vendor was seen ignoring a filter, so the vendor's
    /// page holds fewer matches than items and sizing `limit` to the window
    /// would crawl.
    whole_pages: bool,
    max_pages: u32,
    fetched: u32,
    /// The point the server handed in, until `start` takes it.
    from: Option<ResumePoint>,
    /// The request in flight started from that point: if the vendor refuses it,
    /// its cursor may have expired.
    resumed: bool,
    /// Already walked again from the first page once.
    restarted: bool,
    /// The page in flight: its cursor, the items of it already counted, the
    /// `limit` asked.
    cursor: Option<String>,
    skip: u32,
    limit: u32,
    /// The stream position of the page in flight's first item after `skip`.
    position: u64,
    /// A cursor asked twice means the vendor's cursors loop.
    cursors_seen: HashSet<String>,
    /// A conversation read twice means its pages overlap: positions would be off.
    ids_seen: HashSet<String>,
    collected: Vec<Conversation>,
    start_point: Option<ResumePoint>,
}

impl ListOp {
    fn size(&self) -> usize {
        self.query.size.get() as usize
    }

    /// Asks for the page at `self.cursor`, sized to what the window still needs,
    /// or a whole page when matches cannot be counted on (see `whole_pages`).
    fn request(&mut self) -> Result<Step<ListResult>, ProviderError> {
        if self.fetched >= self.max_pages {
            return Err(ProviderError::ScanLimit {
                pages: self.max_pages,
            });
        }
        if let Some(c) = &self.cursor {
            if !self.cursors_seen.insert(c.clone()) {
                return Err(ProviderError::InvalidBody {
                    status: 200,
                    reason: "the vendor's cursors loop: a cursor came back a second time"
                        .to_owned(),
                });
            }
        }
        self.fetched += 1;
        let needed = u64::from(self.skip)
            + self.query.window_start().saturating_sub(self.position)
            + (self.size() - self.collected.len()) as u64;
        self.limit = if self.whole_pages {
            MAX_LIMIT
        } else {
            u32::try_from(needed.min(u64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT)
        };
        let mut q = vec![("limit", self.limit.to_string())];
        if let Some(c) = &self.cursor {
            q.push(("cursor", c.clone()));
        }
        q.extend(self.filters.iter().cloned());
        Ok(Step::Send(UpstreamRequest::get(self.path.clone(), q)))
    }

    /// Forgets everything and walks from the vendor's first page: once, when a
    /// remembered point no longer fits the vendor's stream.
    fn restart(&mut self, error: ProviderError) -> Result<Step<ListResult>, ProviderError> {
        if !self.resumed || self.restarted {
            return Err(error);
        }
        self.restarted = true;
        self.resumed = false;
        self.cursor = None;
        self.skip = 0;
        self.position = 0;
        self.cursors_seen.clear();
        self.ids_seen.clear();
        self.collected.clear();
        self.start_point = None;
        self.request()
    }

    fn done(
        &mut self,
        has_more: bool,
        end: Option<ResumePoint>,
    ) -> Result<Step<ListResult>, ProviderError> {
        let mut conversations = std::mem::take(&mut self.collected);
        // Positions follow the vendor's order, documented only by its CLI
        // ("newest first"); callers are promised newest first by `created_at`.
        conversations.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(Step::Done(ListResult {
            page: Page {
                conversations,
                has_more,
            },
            vendor_page_size: None,
            resume: self.start_point.take().into_iter().chain(end).collect(),
        }))
    }

    /// Whether a conversation is in the stream: the vendor filtered it already,
    /// unless it ignored a filter or the gateway filters sources itself.
    fn in_stream(&self, c: &Conversation) -> bool {
        self.query.dates.position(&c.created_at) == RangePosition::Within
            && self.query.accepts_source(c.source)
    }
}

impl Operation<ListResult> for ListOp {
    fn start(&mut self) -> Result<Step<ListResult>, ProviderError> {
        if self.sources == SourcePlan::Nothing {
            return self.done(false, None);
        }
        // A point after the window, or one this adapter could not have made, is
        // no help: walk from the first page.
        if let Some(p) = self.from.take() {
            if p.position <= self.query.window_start() && p.skip < MAX_LIMIT {
                self.position = p.position;
                self.cursor = p.cursor;
                self.skip = p.skip;
                self.resumed = true;
            }
        }
        self.request()
    }

    fn on_response(
        &mut self,
        response: UpstreamResponse,
    ) -> Result<Step<ListResult>, ProviderError> {
        let status = response.status;
        let page = match open(&response) {
            Ok(page) => page,
            // A remembered cursor the vendor refuses may have expired.
            Err(e @ ProviderError::Rejected { .. }) => return self.restart(e),
            Err(e) => return Err(e),
        };
        if page.data.len() > self.limit as usize {
            return Err(ProviderError::InvalidBody {
                status,
                reason: format!(
                    "asked for {} conversations, got {}",
                    self.limit,
                    page.data.len()
                ),
            });
        }
        let next = next_cursor(page.pagination, status)?;
        if page.data.len() < self.skip as usize {
            // The remembered point lies past this page's end now: the stream
            // changed under it.
            return self.restart(ProviderError::InvalidBody {
                status,
                reason: "a remembered page holds fewer conversations than before".to_owned(),
            });
        }
        self.resumed = false;
        let window_start = self.query.window_start();
        let page_cursor = self.cursor.take();
        let skip = std::mem::take(&mut self.skip);
        for (i, raw) in page.data.into_iter().enumerate().skip(skip as usize) {
            let c = normalize(raw, &self.bot, self.query.include_raw, status)?;
            if !self.ids_seen.insert(c.id.clone()) {
                return Err(ProviderError::InvalidBody {
                    status,
                    reason: format!(
                        "conversation {:?} came twice: the vendor's pages overlap",
                        sanitize::cap(&c.id)
                    ),
                });
            }
            if !self.in_stream(&c) {
                self.whole_pages = true;
                continue;
            }
            let here = ResumePoint {
                position: self.position,
                cursor: page_cursor.clone(),
                skip: u32::try_from(i).unwrap_or(u32::MAX),
            };
            if self.collected.len() == self.size() {
                return self.done(true, Some(here));
            }
            if self.position >= window_start {
                if self.collected.is_empty() && self.position > 0 {
                    self.start_point = Some(here);
                }
                self.collected.push(c);
            }
            self.position += 1;
        }
        let full = self.collected.len() == self.size();
        match next {
            None => self.done(false, None),
            Some(next) if full => {
                let end = ResumePoint {
                    position: self.position,
                    cursor: Some(next),
                    skip: 0,
                };
                self.done(true, Some(end))
            }
            Some(next) => {
                self.cursor = Some(next);
                self.request()
            }
        }
    }
}

/// Just a conversation's id, to find the one asked for before normalizing it.
#[derive(Deserialize)]
struct JustId {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
}

/// One conversation through the export with `conversationId`.
struct GetOp {
    bot: String,
    path: String,
    id: String,
    include_raw: bool,
}

impl Operation<Conversation> for GetOp {
    fn start(&mut self) -> Result<Step<Conversation>, ProviderError> {
        Ok(Step::Send(UpstreamRequest::get(
            self.path.clone(),
            vec![("conversationId", self.id.clone())],
        )))
    }

    fn on_response(
        &mut self,
        response: UpstreamResponse,
    ) -> Result<Step<Conversation>, ProviderError> {
        let status = response.status;
        let page = open(&response)?;
        let any = !page.data.is_empty();
        for raw in page.data {
            let id: JustId =
                serde_json::from_str(raw.get()).map_err(|e| invalid_json(status, &e))?;
            if id.id == self.id {
                return normalize(raw, &self.bot, self.include_raw, status).map(Step::Done);
            }
        }
        if any {
            // Conversations, but not this one: the vendor ignored `conversationId`
            // (older revisions do not document it), so absence proves nothing.
            return Err(ProviderError::InvalidBody {
                status,
                reason: "the export answered conversationId with other conversations".to_owned(),
            });
        }
        Err(ProviderError::NotFound {
            message: format!(
                "the export holds no conversation {:?} for this agent",
                sanitize::cap(&self.id)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn number(text: &str) -> serde_json::Number {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn unix_seconds_become_utc_with_fractions_to_the_millisecond() {
        let t = epoch_time("createdAt", &number("1718379934"), 200).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 34).unwrap());
        let t = epoch_time("createdAt", &number("1718379934.25"), 200).unwrap();
        assert_eq!(crate::model::format_time(&t), "2024-06-14T15:45:34.250Z");
        let t = epoch_time("createdAt", &number("1718379934.0"), 200).unwrap();
        assert_eq!(crate::model::format_time(&t), "2024-06-14T15:45:34Z");
        let t = epoch_time("createdAt", &number("-62167219200"), 200).unwrap();
        assert_eq!(crate::model::format_time(&t), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn unix_seconds_outside_the_years_0000_to_9999_are_refused() {
        for bad in [
            "253402300800",
            "-62167219201",
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
            "-1e15",
        ] {
            assert!(epoch_time("createdAt", &number(bad), 200).is_err(), "{bad}");
        }
    }

    #[test]
    fn unspecified_in_a_source_filter_is_filtered_by_the_gateway() {
        let q = |sources: &[Source]| ListQuery {
            sources: Some(sources.iter().copied().collect()),
            ..ListQuery::default()
        };
        assert_eq!(SourcePlan::new(&ListQuery::default()), SourcePlan::All);
        assert_eq!(
            SourcePlan::new(&q(&[Source::Widget, Source::Zendesk])),
            SourcePlan::Native("Widget or Iframe,Iframe,Zendesk,Zendesk Messaging".to_owned())
        );
        assert_eq!(
            SourcePlan::new(&q(&[Source::Api, Source::Unspecified])),
            SourcePlan::Gateway
        );
    }

    #[test]
    fn every_export_source_label_reads_as_documented() {
        let expected = [
            ("API", Source::Api),
            ("WhatsApp", Source::Whatsapp),
            ("Messenger", Source::Messenger),
            ("Instagram", Source::Instagram),
            ("Slack", Source::Slack),
            ("Salesforce", Source::Salesforce),
            ("Zendesk", Source::Zendesk),
            ("Zendesk Messaging", Source::Zendesk),
            ("Chatbase site", Source::Website),
            ("Playground", Source::Playground),
            ("Action preview", Source::ActionPreview),
            ("Qna preview", Source::Unspecified),
            ("Widget or Iframe", Source::Widget),
            ("Center stage", Source::Unspecified),
            ("Search", Source::Unspecified),
            ("Iframe", Source::Widget),
            ("Email", Source::Email),
            ("Agent page", Source::Unspecified),
            ("Phone", Source::Phone),
            ("Android SDK", Source::AndroidSdk),
            ("iOS SDK", Source::IosSdk),
            ("Unspecified", Source::Unspecified),
        ];
        assert_eq!(expected.len(), 22, "the export's enum, null aside");
        for (label, source) in expected {
            assert_eq!(Source::from_vendor(Some(label)), source, "{label}");
        }
        assert_eq!(Source::from_vendor(None), Source::Unspecified);
    }
}
