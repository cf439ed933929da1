//! Chatling API v2 (vendors.md "Chatling").
//!
//! Every answer is an envelope `{"status": "success" | "error", "data": …}`. The
//! list endpoint takes only `page` and `sort` — no page size and no filters — and
//! reports its own `per_page`. So the gateway's `page`/`size` window is assembled
//! here out of as many vendor pages as it covers, planned with the `per_page` the
//! vendor reports (never an assumed constant), and dates/sources are filtered here
//! with a bounded scan. Whenever the vendor's paging shifts under us, we re-plan
//! once and otherwise fail: a wrong window is never returned.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde::de::{DeserializeOwned, MapAccess, SeqAccess};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ProviderError;
use crate::fast::{
    deserialize_looked, fast_or_exact, read_twice, Checked, Key, Looked, Reading, Text,
    VendorString,
};
use crate::model::{
    Conversation, KbSource, ListQuery, Message, Page, ProviderKind, RangePosition, Role, Target,
};
use crate::request::{UpstreamRequest, UpstreamResponse};
use crate::sanitize;
use crate::sources::Source;
use crate::wire::{
    self, error_from_status, invalid_json, lenient_opt_string, lenient_string, parse_time,
};
use crate::{
    Adapter, GetOperation, ListOperation, ListResult, Operation, Paging, Step, VendorInfo,
};

/// What the rest of chatgate knows about Chatling v2 (vendors.md "Chatling").
pub const INFO: VendorInfo = VendorInfo {
    kind_name: "chatling",
    display_name: "Chatling",
    default_base_url: "https://api.chatling.ai/v2",
    default_requests_per_second: match NonZeroU32::new(5) {
        Some(n) => n,
        None => unreachable!(),
    },
    quota_source: "Chatling documents 300 calls per minute per API key \
                   (vendors.md \"Errors and limits\"): 5/s",
    dialects: &[],
    // Chatling has no channel at all: every conversation is `unspecified`, which
    // the gateway filters itself.
    source_labels: &[],
    // Pages of the vendor's own `per_page`: a gateway page may span several.
    paging: Paging::VendorSized,
};

/// The Chatling v2 adapter.
#[derive(Debug, Clone, Copy)]
pub struct Chatling {
    max_scan_pages: NonZeroU32,
}

impl Chatling {
    /// An adapter that reads at most `max_scan_pages` vendor pages per operation.
    pub fn new(max_scan_pages: NonZeroU32) -> Self {
        Self { max_scan_pages }
    }
}

impl Adapter for Chatling {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Chatling
    }

    fn list(
        &self,
        target: Target<'_>,
        query: &ListQuery,
        vendor_page_size: Option<NonZeroU32>,
    ) -> ListOperation {
        Box::new(ListOp {
            bot: target.bot.to_owned(),
            path: format!(
                "/chatbots/{}/conversations",
                wire::segment(target.chatbot_id)
            ),
            scan: !query.dates.is_unbounded(),
            query: query.clone(),
            pager: Pager::new(self.max_scan_pages),
            per_page: vendor_page_size,
            replanned: false,
            collected: Vec::new(),
            matched: 0,
            previous: None,
            seen: HashSet::new(),
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
            path: format!(
                "/chatbots/{}/conversations/{}",
                wire::segment(target.chatbot_id),
                wire::segment(conversation_id)
            ),
            include_raw,
            pager: Pager::new(self.max_scan_pages),
            conversation: None,
            messages: Vec::new(),
            replanned: false,
        }))
    }
}

/// Chatling's 429 carries no `Retry-After`; its documented window resets at the
/// next full minute (vendors.md "Errors and limits").
fn until_next_minute(now: DateTime<Utc>) -> Option<Duration> {
    let into_minute = Duration::from_secs(u64::from(now.second()))
        + Duration::from_nanos(u64::from(now.nanosecond() % 1_000_000_000));
    Some(Duration::from_secs(60).saturating_sub(into_minute))
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(default)]
    message: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Pages {
    current_page: u32,
    last_page: u32,
    per_page: u32,
}

/// A list page. Conversations stay the vendor's text, borrowed from the body,
/// until one is in the window: one is copied only for `include=raw`.
#[derive(Deserialize)]
struct ListData<'a> {
    pages: Pages,
    #[serde(borrow)]
    conversations: Vec<&'a RawValue>,
}

/// A list page read in one pass, every conversation typed (and read fast).
/// Without `include=raw` this is tried first: reading each conversation as
/// text and then again typed costs about twice the parsing, and a page usually
/// lies inside the window. A page that does not read so (a conversation the
/// window would skip may be malformed) is read as [`ListData`], which decides.
#[derive(Deserialize)]
struct TypedListData {
    pages: Pages,
    conversations: Vec<WireConversation<Fast>>,
}

/// A conversation of a list page, as the page was read.
enum Item<'a> {
    /// The vendor's text, parsed only if the window needs it.
    Raw(&'a RawValue),
    /// Already parsed (the page read in one pass).
    Typed(WireConversation<Fast>),
}

/// How a body's messages are read ([`read_twice`]): [`Fast`] first,
/// [`Exact`] when that fails.
trait Mode {
    /// A message's `text`.
    type Text: VendorString + DeserializeOwned;
    /// A message's `data`.
    type Data: MessageData + DeserializeOwned;
}

/// Texts kept as the vendor escaped them, `data` looked into for `sources`
/// without building a `Value`.
struct Fast;

impl Mode for Fast {
    type Text = Text;
    type Data = FastData;
}

/// Every message read as it always was: `String` texts, `Value` data.
struct Exact;

impl Mode for Exact {
    type Text = String;
    type Data = serde_json::Value;
}

/// A page of one conversation's messages.
#[derive(Deserialize)]
#[serde(bound = "")]
struct MessagesData<M: Mode> {
    pages: Pages,
    messages: Vec<WireMessage<M>>,
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct WireConversation<M: Mode> {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    contact_id: Option<String>,
    created_at: String,
    #[serde(default = "Option::default")]
    messages: Option<Vec<WireMessage<M>>>,
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct WireMessage<M: Mode> {
    #[serde(default = "Option::default")]
    text: Option<M::Text>,
    role: String,
    #[serde(default)]
    created_at: Option<String>,
    /// "Varies depending on the message type" (Chatling docs): only `sources` is
    /// read, anything else is tolerated.
    #[serde(default = "Option::default")]
    data: Option<M::Data>,
}

/// A message's `data`, as far as the gateway reads it.
trait MessageData {
    /// The knowledge-base sources: each object of the array under `sources`
    /// (the last such key), with its string `type`, `title` and `url`.
    fn into_sources(self) -> Vec<KbSource>;
}

impl MessageData for serde_json::Value {
    fn into_sources(self) -> Vec<KbSource> {
        self.get("sources")
            .and_then(|s| s.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|s| s.as_object())
                    .map(|s| {
                        let field = |k: &str| s.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                        KbSource {
                            kind: field("type"),
                            title: field("title"),
                            url: field("url"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `data` read fast: the sources a `Value` would give, and everything else
/// checked as a `Value` would check it ([`Looked`]) and dropped.
struct FastData(Vec<KbSource>);

impl MessageData for FastData {
    fn into_sources(self) -> Vec<KbSource> {
        self.0
    }
}

impl Looked for FastData {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut sources = Vec::new();
        while let Some(key) = map.next_key_seed(Key(&["sources"]))? {
            match key {
                // A later `sources` replaces an earlier one, as in a `Value`.
                Some(_) => sources = map.next_value::<FastSources>()?.0,
                None => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(Self(sources))
    }

    fn other() -> Self {
        Self(Vec::new())
    }
}

/// `data.sources`: the objects of an array (anything else gives none).
struct FastSources(Vec<KbSource>);

impl Looked for FastSources {
    fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut sources = Vec::new();
        while let Some(item) = seq.next_element::<FastSource>()? {
            sources.extend(item.0);
        }
        Ok(Self(sources))
    }

    fn other() -> Self {
        Self(Vec::new())
    }
}

/// One item of `data.sources`: a source when it is an object.
struct FastSource(Option<KbSource>);

impl Looked for FastSource {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut source = KbSource {
            kind: None,
            title: None,
            url: None,
        };
        while let Some(key) = map.next_key_seed(Key(&["type", "title", "url"]))? {
            let field = match key {
                Some(0) => &mut source.kind,
                Some(1) => &mut source.title,
                Some(_) => &mut source.url,
                None => {
                    map.next_value::<Checked>()?;
                    continue;
                }
            };
            // A later key replaces an earlier one, as in a `Value`.
            *field = map.next_value::<FastString>()?.0;
        }
        Ok(Self(Some(source)))
    }

    fn other() -> Self {
        Self(None)
    }
}

/// A source's field: its text when it is a string.
struct FastString(Option<String>);

impl Looked for FastString {
    fn string(s: &str) -> Self {
        Self(Some(s.to_owned()))
    }

    fn other() -> Self {
        Self(None)
    }
}

deserialize_looked!(FastData, FastSources, FastSource, FastString);

/// Unwraps a successful envelope, mapping error statuses and error envelopes.
fn open<'a, T: Deserialize<'a>>(response: &'a UpstreamResponse) -> Result<T, ProviderError> {
    let status = response.status;
    if !(200..300).contains(&status) {
        return Err(error_from_status(
            status,
            response.retry_after.as_deref(),
            &response.body,
            response.received_at,
            until_next_minute,
        ));
    }
    let envelope: Envelope<T> =
        wire::from_body(&response.body).map_err(|e| invalid_json(status, &e))?;
    match (envelope.status.as_str(), envelope.data) {
        ("success", Some(data)) => Ok(data),
        ("success", None) => Err(ProviderError::InvalidBody {
            status,
            reason: "a success envelope without `data`".to_owned(),
        }),
        // Vendor text is only capped here; it is shortened when sanitized.
        (other, _) => Err(ProviderError::InvalidBody {
            status,
            reason: format!(
                "envelope status {:?} with HTTP {status}: {}",
                sanitize::cap(other),
                envelope
                    .message
                    .as_ref()
                    .and_then(|m| m.as_str())
                    .map(sanitize::cap)
                    .unwrap_or_default()
            ),
        }),
    }
}

/// Checks that an answer is the page that was asked for and that its size is
/// consistent with its own `per_page`, so index arithmetic over pages is sound.
fn check_pages(
    pages: &Pages,
    requested: u32,
    items: usize,
    status: u16,
) -> Result<NonZeroU32, ProviderError> {
    let bad = |reason: String| ProviderError::InvalidBody { status, reason };
    let per_page =
        NonZeroU32::new(pages.per_page).ok_or_else(|| bad("per_page is 0".to_owned()))?;
    if pages.current_page != requested {
        return Err(bad(format!(
            "asked for page {requested}, got current_page {}",
            pages.current_page
        )));
    }
    if items > per_page.get() as usize {
        return Err(bad(format!(
            "{items} items on a page of per_page {per_page}"
        )));
    }
    if pages.current_page < pages.last_page && items != per_page.get() as usize {
        return Err(bad(format!(
            "page {} of {} holds {items} items, not per_page {per_page}",
            pages.current_page, pages.last_page
        )));
    }
    Ok(per_page)
}

/// Counts vendor pages against the scan bound and builds paged requests.
struct Pager {
    max: u32,
    fetched: u32,
    requested: u32,
}

impl Pager {
    fn new(max: NonZeroU32) -> Self {
        Self {
            max: max.get(),
            fetched: 0,
            requested: 0,
        }
    }

    fn request<T>(
        &mut self,
        path: &str,
        page: u32,
        sort: &'static str,
    ) -> Result<Step<T>, ProviderError> {
        if self.fetched >= self.max {
            return Err(ProviderError::ScanLimit { pages: self.max });
        }
        self.fetched += 1;
        self.requested = page;
        Ok(Step::Send(UpstreamRequest::get(
            path.to_owned(),
            vec![("page", page.to_string()), ("sort", sort.to_owned())],
        )))
    }
}

/// Assembles one gateway page from Chatling's vendor-sized pages.
struct ListOp {
    bot: String,
    path: String,
    query: ListQuery,
    /// Dates are filtered here: the window's position in the vendor's stream is
    /// unknown, so the stream is scanned from its first page.
    scan: bool,
    pager: Pager,
    /// The vendor page size the current plan is based on.
    per_page: Option<NonZeroU32>,
    replanned: bool,
    collected: Vec<Conversation>,
    /// Conversations that passed the filters so far (scan mode).
    matched: u64,
    /// The previous conversation's `created_at` (scan mode), to detect a vendor
    /// that ignored `sort=date_desc`, which would make early stopping wrong.
    previous: Option<DateTime<Utc>>,
    /// Ids read so far. One read twice means a conversation arrived between two
    /// page reads and pushed every later page down by one (newest first).
    seen: HashSet<String>,
}

impl ListOp {
    fn next_page(&mut self, page: u32) -> Result<Step<ListResult>, ProviderError> {
        self.pager.request(&self.path, page, "date_desc")
    }

    fn done(&mut self, has_more: bool) -> Result<Step<ListResult>, ProviderError> {
        let mut conversations = std::mem::take(&mut self.collected);
        conversations.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(Step::Done(ListResult {
            page: Page {
                conversations,
                has_more,
            },
            vendor_page_size: self.per_page,
            resume: Vec::new(),
        }))
    }

    fn normalize(&self, item: Item<'_>, status: u16) -> Result<Conversation, ProviderError> {
        match item {
            Item::Typed(wire) => normalize_conversation(wire, &self.bot, None, status),
            Item::Raw(raw) => {
                let wire = read_conversation(raw, status)?;
                let raw = self.query.include_raw.then(|| raw.to_owned());
                match wire {
                    Reading::Fast(wire) => normalize_conversation(wire, &self.bot, raw, status),
                    Reading::Exact(wire) => normalize_conversation(wire, &self.bot, raw, status),
                }
            }
        }
    }

    /// Too many re-plans means the vendor's paging keeps moving.
    fn replan(&mut self, status: u16) -> Result<(), ProviderError> {
        if self.replanned {
            return Err(ProviderError::InvalidBody {
                status,
                reason: "the vendor's pages shifted again while re-reading (per_page changed \
                         or conversations moved); refusing to return a shifted window"
                    .to_owned(),
            });
        }
        self.replanned = true;
        self.collected.clear();
        self.matched = 0;
        self.previous = None;
        self.seen.clear();
        Ok(())
    }

    /// The vendor page the plan starts from: the window's own page when the vendor
    /// page size is known and nothing is filtered, else the stream's first.
    fn first_page(&self) -> u32 {
        match (self.scan, self.per_page) {
            (false, Some(pp)) => u32::try_from(self.query.window_start() / u64::from(pp.get()) + 1)
                .unwrap_or(u32::MAX),
            _ => 1,
        }
    }

    /// Records a conversation's id; one already read means the pages moved under
    /// us: re-read once from the first page of the plan.
    fn check_not_seen(
        &mut self,
        conversation: &Conversation,
        status: u16,
    ) -> Result<Option<Step<ListResult>>, ProviderError> {
        if self.seen.insert(conversation.id.clone()) {
            return Ok(None);
        }
        self.replan(status)?;
        self.next_page(self.first_page()).map(Some)
    }

    /// Unfiltered: the window `[start, start + size)` maps straight onto vendor
    /// positions.
    fn window_page(
        &mut self,
        pages: Pages,
        per_page: NonZeroU32,
        items: Vec<Item<'_>>,
        status: u16,
    ) -> Result<Step<ListResult>, ProviderError> {
        let start = self.query.window_start();
        let pp = u64::from(per_page.get());
        if self.per_page != Some(per_page) {
            if !self.collected.is_empty() {
                self.replan(status)?;
            }
            self.per_page = Some(per_page);
            let page = start / pp + 1;
            let page = u32::try_from(page).map_err(|_| ProviderError::InvalidBody {
                status,
                reason: "the requested window lies beyond any vendor page".to_owned(),
            })?;
            if page != pages.current_page {
                return self.next_page(page);
            }
        }
        let size = self.query.size.get() as usize;
        let end = start + size as u64;
        let page_start = u64::from(pages.current_page - 1) * pp;
        let mut more_in_page = false;
        for (i, item) in items.into_iter().enumerate() {
            let index = page_start + i as u64;
            if index < start {
                continue;
            }
            if index >= end {
                more_in_page = true;
                break;
            }
            let conversation = self.normalize(item, status)?;
            if let Some(step) = self.check_not_seen(&conversation, status)? {
                return Ok(step);
            }
            self.collected.push(conversation);
        }
        let last = pages.current_page >= pages.last_page;
        if self.collected.len() == size || last {
            let has_more = more_in_page || !last;
            return self.done(has_more && self.collected.len() == size);
        }
        self.next_page(pages.current_page + 1)
    }

    /// Filtered by date: scan newest first; an `endDate` skips newer items and a
    /// `startDate` ends the stream at the first older item.
    fn scan_page(
        &mut self,
        pages: Pages,
        per_page: NonZeroU32,
        items: Vec<Item<'_>>,
        status: u16,
    ) -> Result<Step<ListResult>, ProviderError> {
        if self.per_page.is_some_and(|p| p != per_page) && pages.current_page > 1 {
            // Page boundaries moved mid-scan: items may repeat or be skipped.
            self.replan(status)?;
            self.per_page = Some(per_page);
            return self.next_page(1);
        }
        self.per_page = Some(per_page);
        let skip = self.query.window_start();
        let size = self.query.size.get() as usize;
        for item in items {
            let conversation = self.normalize(item, status)?;
            if let Some(step) = self.check_not_seen(&conversation, status)? {
                return Ok(step);
            }
            if self.previous.is_some_and(|p| conversation.created_at > p) {
                return Err(ProviderError::InvalidBody {
                    status,
                    reason: "conversations are not newest first despite sort=date_desc; \
                             date filtering would be unsound"
                        .to_owned(),
                });
            }
            self.previous = Some(conversation.created_at);
            match self.query.dates.position(&conversation.created_at) {
                RangePosition::After => continue,
                RangePosition::Before => return self.done(false),
                RangePosition::Within => {}
            }
            if !self.query.accepts_source(conversation.source) {
                continue;
            }
            if self.collected.len() == size {
                return self.done(true);
            }
            self.matched += 1;
            if self.matched > skip {
                self.collected.push(conversation);
            }
        }
        if pages.current_page >= pages.last_page {
            return self.done(false);
        }
        if self.collected.len() == size {
            // More vendor pages exist; they may or may not hold a match.
            return self.done(true);
        }
        self.next_page(pages.current_page + 1)
    }
}

impl Operation<ListResult> for ListOp {
    fn start(&mut self) -> Result<Step<ListResult>, ProviderError> {
        // Chatling has no channel: every conversation is `unspecified`.
        if !self.query.accepts_source(Source::Unspecified) {
            return self.done(false);
        }
        self.next_page(self.first_page())
    }

    fn on_response(
        &mut self,
        response: UpstreamResponse,
    ) -> Result<Step<ListResult>, ProviderError> {
        let status = response.status;
        let typed = if self.query.include_raw {
            None
        } else {
            open::<TypedListData>(&response).ok()
        };
        let (pages, items) = match typed {
            Some(data) => (
                data.pages,
                data.conversations.into_iter().map(Item::Typed).collect(),
            ),
            None => {
                let data: ListData = open(&response)?;
                let items: Vec<Item<'_>> = data.conversations.into_iter().map(Item::Raw).collect();
                (data.pages, items)
            }
        };
        let per_page = check_pages(&pages, self.pager.requested, items.len(), status)?;
        if self.scan {
            self.scan_page(pages, per_page, items, status)
        } else {
            self.window_page(pages, per_page, items, status)
        }
    }
}

/// Reads one conversation, then every page of its messages (the list's embedded
/// messages are not documented to be complete; the messages endpoint is).
struct GetOp {
    bot: String,
    path: String,
    include_raw: bool,
    pager: Pager,
    conversation: Option<Conversation>,
    messages: Vec<Message>,
    replanned: bool,
}

impl GetOp {
    fn messages_page(&mut self, page: u32) -> Result<Step<Conversation>, ProviderError> {
        // Oldest first: a message arriving while we page appends at the end
        // instead of shifting every page boundary.
        let path = format!("{}/messages", self.path);
        self.pager.request(&path, page, "date_asc")
    }
}

impl Operation<Conversation> for GetOp {
    fn start(&mut self) -> Result<Step<Conversation>, ProviderError> {
        self.pager.requested = 0;
        Ok(Step::Send(UpstreamRequest::get(
            self.path.clone(),
            Vec::new(),
        )))
    }

    fn on_response(
        &mut self,
        response: UpstreamResponse,
    ) -> Result<Step<Conversation>, ProviderError> {
        let status = response.status;
        let Some(conversation) = self.conversation.as_mut() else {
            let raw: &RawValue = open(&response)?;
            let wire = read_conversation(raw, status)?;
            let raw = self.include_raw.then(|| raw.to_owned());
            self.conversation = Some(match wire {
                Reading::Fast(wire) => normalize_conversation(wire, &self.bot, raw, status)?,
                Reading::Exact(wire) => normalize_conversation(wire, &self.bot, raw, status)?,
            });
            return self.messages_page(1);
        };
        let data = fast_or_exact(
            || open::<MessagesData<Fast>>(&response),
            || open::<MessagesData<Exact>>(&response),
        )?;
        let (pages, count) = match &data {
            Reading::Fast(d) => (d.pages, d.messages.len()),
            Reading::Exact(d) => (d.pages, d.messages.len()),
        };
        let per_page = check_pages(&pages, self.pager.requested, count, status)?;
        let offset = u64::from(pages.current_page - 1) * u64::from(per_page.get());
        if offset != self.messages.len() as u64 {
            if self.replanned {
                return Err(ProviderError::InvalidBody {
                    status,
                    reason:
                        "message pages keep shifting; refusing to return a partial conversation"
                            .to_owned(),
                });
            }
            self.replanned = true;
            self.messages.clear();
            return self.messages_page(1);
        }
        self.messages.extend(match data {
            Reading::Fast(d) => normalize_messages(d.messages, status)?,
            Reading::Exact(d) => normalize_messages(d.messages, status)?,
        });
        if pages.current_page < pages.last_page {
            return self.messages_page(pages.current_page + 1);
        }
        let mut messages = std::mem::take(&mut self.messages);
        sort_chronologically(&mut messages);
        conversation.updated_at = newest(&messages);
        conversation.messages = messages;
        let conversation = self
            .conversation
            .take()
            .expect("checked above: the conversation was read");
        Ok(Step::Done(conversation))
    }
}

/// Reads one conversation's text fast, or as it always was when that fails.
fn read_conversation(
    raw: &RawValue,
    status: u16,
) -> Result<Reading<WireConversation<Fast>, WireConversation<Exact>>, ProviderError> {
    read_twice(raw.get()).map_err(|e| invalid_json(status, &e))
}

fn normalize_conversation<M: Mode>(
    wire: WireConversation<M>,
    bot: &str,
    raw: Option<Box<RawValue>>,
    status: u16,
) -> Result<Conversation, ProviderError> {
    let mut messages = normalize_messages(wire.messages.unwrap_or_default(), status)?;
    // Chatling lists messages newest first (doc example); callers get them oldest
    // first. Reversing keeps equal timestamps in their true order.
    messages.reverse();
    sort_chronologically(&mut messages);
    Ok(Conversation {
        id: wire.id,
        chatbot_id: bot.to_owned(),
        provider: ProviderKind::Chatling,
        created_at: parse_time("created_at", &wire.created_at, status)?,
        // No conversation-level update time: the newest message's is the best.
        updated_at: newest(&messages),
        customer: wire.contact_id,
        source: Source::Unspecified,
        messages,
        raw,
    })
}

/// Stable sort by time, a no-op when the vendor's order is already right; skipped
/// when a message has no time, as there is then no total order to sort by.
fn sort_chronologically(messages: &mut [Message]) {
    if messages.iter().all(|m| m.created_at.is_some()) {
        messages.sort_by_key(|m| m.created_at);
    }
}

fn newest(messages: &[Message]) -> Option<DateTime<Utc>> {
    messages.iter().filter_map(|m| m.created_at).max()
}

fn normalize_messages<M: Mode>(
    messages: Vec<WireMessage<M>>,
    status: u16,
) -> Result<Vec<Message>, ProviderError> {
    messages
        .into_iter()
        .map(|m| normalize_message(m, status))
        .collect()
}

fn normalize_message<M: Mode>(m: WireMessage<M>, status: u16) -> Result<Message, ProviderError> {
    let (role, vendor_role) = match m.role.as_str() {
        "user" => (Role::User, None),
        "bot" | "assistant" => (Role::Assistant, None),
        "system" => (Role::System, None),
        // A human agent taking over is a bot-side speaker; keep who it was.
        other => (Role::Assistant, Some(wire::shorten(other, 64))),
    };
    let sources = m.data.map(MessageData::into_sources).unwrap_or_default();
    Ok(Message {
        role,
        vendor_role,
        content: m.text.map(VendorString::into_text).unwrap_or_default(),
        created_at: m
            .created_at
            .as_deref()
            .map(|t| parse_time("messages[].created_at", t, status))
            .transpose()?,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn a_429_without_retry_after_waits_for_the_next_full_minute() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 10, 0, 45).unwrap();
        assert_eq!(until_next_minute(now), Some(Duration::from_secs(15)));
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 10, 0, 0).unwrap();
        assert_eq!(until_next_minute(now), Some(Duration::from_secs(60)));
    }

    /// `data` (as JSON text) read both ways: the sources, or the error.
    fn both_ways(data: &str) -> (Result<Vec<KbSource>, String>, Result<Vec<KbSource>, String>) {
        let read = |d: Result<Option<Vec<KbSource>>, serde_json::Error>| {
            d.map(Option::unwrap_or_default).map_err(|e| e.to_string())
        };
        let fast = serde_json::from_str::<Option<FastData>>(data)
            .map(|d| d.map(MessageData::into_sources));
        let exact = serde_json::from_str::<Option<serde_json::Value>>(data)
            .map(|d| d.map(MessageData::into_sources));
        (read(fast), read(exact))
    }

    #[test]
    fn sources_are_read_fast_as_a_value_gives_them() {
        for data in [
            "null",
            "{}",
            "[]",
            "\"sources\"",
            r#"{"sources": null}"#,
            r#"{"sources": {"type": "webpage"}}"#,
            r#"{"helpful_value": null, "sources": [{"type": "webpage", "title": "Billing", "url": "https://x/\u00e9"}]}"#,
            r#"{"sources": [1, "a", null, [], {}, {"title": 5, "url": ["u"], "type": {"a": 1}}]}"#,
            r#"{"sources": [{"title": "a", "title": "b", "url": "u", "url": 7}]}"#,
            r#"{"sources": [{"title": "first"}], "x": 1, "sources": [{"title": "last"}]}"#,
            r#"{"sources": [{"title": "kept"}], "sources": 5}"#,
            r#"{"x": {"y": [1.5, -0, 1e300, "\ud83d\ude00"]}, "sources": [{"url": "\/"}]}"#,
        ] {
            let (fast, exact) = both_ways(data);
            assert!(exact.is_ok(), "{data}: {exact:?}");
            assert_eq!(fast, exact, "{data}");
        }
    }

    #[test]
    fn data_a_value_refuses_fails_fast_with_the_same_error() {
        let deep = format!("{{\"x\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        for data in [
            r#"{"x": 1e400}"#,
            r#"{"x": -1e400, "sources": []}"#,
            r#"{"x": "\ud800"}"#,
            r#"{"sources": [{"tag": "\udc00x"}]}"#,
            r#"{"sources": [{"title": "\ud83d"}]}"#,
            r#"{"\ud800": 1}"#,
            "{\"x\": \"a\u{1}\"}",
            r#"{"x": [1, 2,]}"#,
            r#"{"x": tru}"#,
            &deep,
        ] {
            let (fast, exact) = both_ways(data);
            assert!(exact.is_err(), "{data}");
            assert_eq!(fast, exact, "{data}");
        }
    }

    #[test]
    fn serde_jsons_raw_value_key_leaves_data_to_the_exact_reading() {
        let data = r#"{"$serde_json::private::RawValue": "{\"sources\": [{\"title\": \"t\"}]}"}"#;
        let (fast, exact) = both_ways(data);
        assert!(fast.is_err(), "{fast:?}");
        assert_eq!(
            exact.unwrap(),
            [KbSource {
                kind: None,
                title: Some("t".to_owned()),
                url: None
            }]
        );
    }

    /// JSON text of any shape `data` may take, keys repeated and values a
    /// `Value` refuses included.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("-0".to_owned()),
            Just("1e400".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("-12.5e-3".to_owned()),
            Just(r#""\ud800""#.to_owned()),
            Just(r#""\ud83d\ude00 \/ \u00E9""#.to_owned()),
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("sources"),
                            Just("type"),
                            Just("title"),
                            Just("url"),
                            Just("x"),
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|entries| {
                    let entries: Vec<String> = entries
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", entries.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_data_reads_fast_as_a_value_reads_it(data in json_text()) {
            let (fast, exact) = both_ways(&data);
            prop_assert_eq!(fast, exact, "{}", data);
        }
    }
}
