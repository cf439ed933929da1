//! Chatbase API v1 (vendors.md "Chatbase").
//!
//! `GET /get-conversations` takes `chatbotId`, `filteredSources` (vendor labels),
//! `startDate`, `endDate`, `page` and `size`, and answers `{"data": [...]}` with no
//! total and no "has more". Chatzuri documents the same answer shape, so its adapter
//! reuses `V1List` with its own request.
//!
//! Decisions where the docs are silent: conversations are sorted newest first by
//! `created_at` (stable), messages keep the vendor's (chronological) order, and a
//! page shorter than `size` is the last.

use std::borrow::Cow;
use std::num::NonZeroU32;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ProviderError;
use crate::fast::{read_body_twice, read_twice, Reading, Text, VendorString};
use crate::model::{Conversation, ListQuery, Message, Page, ProviderKind, Role, Target};
use crate::pull::Reader;
use crate::request::{UpstreamRequest, UpstreamResponse};
use crate::sources::Source;
use crate::wire::{self, error_from_status, invalid_json, lenient_string, parse_time};
use crate::{
    Adapter, GetOperation, ListOperation, ListResult, Operation, Paging, Step, VendorInfo,
};

/// What the rest of chatgate knows about Chatbase v1 (vendors.md "Chatbase").
pub const INFO: VendorInfo = VendorInfo {
    kind_name: "chatbase",
    display_name: "Chatbase",
    default_base_url: "https://www.chatbase.co/api/v1",
    default_requests_per_second: match NonZeroU32::new(10) {
        Some(n) => n,
        None => unreachable!(),
    },
    quota_source: "Chatbase v1 publishes no rate limit: the common default of 10/s",
    dialects: &[],
    source_labels: &[
        (Source::Api, "API"),
        (Source::Website, "Chatbase site"),
        (Source::Widget, "Widget or Iframe"),
        (Source::Whatsapp, "WhatsApp"),
        (Source::Messenger, "Messenger"),
        (Source::Instagram, "Instagram"),
        (Source::Slack, "Slack"),
        (Source::Playground, "Playground"),
        (Source::ActionPreview, "Action preview"),
        (Source::Unspecified, "Unspecified"),
    ],
    // One call per gateway page, of the size the gateway asks for.
    paging: Paging::CallerSized,
};

/// The Chatbase v1 adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chatbase;

impl Adapter for Chatbase {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Chatbase
    }

    fn list(&self, target: Target<'_>, query: &ListQuery, _: Option<NonZeroU32>) -> ListOperation {
        let params = V1Params::new(ProviderKind::Chatbase, query);
        let request = params.map(|p| {
            let mut q = vec![("chatbotId", target.chatbot_id.to_owned())];
            q.extend(p.into_query());
            UpstreamRequest::get("/get-conversations".to_owned(), q)
        });
        Box::new(V1List::new(ProviderKind::Chatbase, target, query, request))
    }

    fn get(&self, _: Target<'_>, _: &str, _: bool) -> Result<GetOperation, ProviderError> {
        Err(ProviderError::NotSupported(
            "Chatbase API v1 has no endpoint that reads one conversation; \
             list them with GET /api/v1/get-conversations",
        ))
    }
}

/// The optional list parameters in the form both v1 vendors document (all
/// strings, sources as the vendor's own labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Params {
    pub filtered_sources: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub page: String,
    pub size: String,
}

impl V1Params {
    /// `None` when the source filter names only channels this vendor does not
    /// have: no vendor call could return anything.
    pub fn new(kind: ProviderKind, query: &ListQuery) -> Option<Self> {
        let filtered_sources = match &query.sources {
            None => None,
            Some(set) => {
                let labels: Vec<&str> = set.iter().filter_map(|s| s.vendor_label(kind)).collect();
                if labels.is_empty() {
                    return None;
                }
                Some(labels.join(","))
            }
        };
        let fmt = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        Some(Self {
            filtered_sources,
            start_date: query.dates.start().map(fmt),
            end_date: query.dates.end().map(fmt),
            page: query.page.get().to_string(),
            size: query.size.get().to_string(),
        })
    }

    pub fn into_query(self) -> Vec<(&'static str, String)> {
        let mut q = Vec::with_capacity(5);
        if let Some(s) = self.filtered_sources {
            q.push(("filteredSources", s));
        }
        if let Some(s) = self.start_date {
            q.push(("startDate", s));
        }
        if let Some(s) = self.end_date {
            q.push(("endDate", s));
        }
        q.push(("page", self.page));
        q.push(("size", self.size));
        q
    }
}

/// A v1 conversation as documented (the OpenAPI schema plus the guide), its
/// message texts read as `T` ([`read_twice`]). [`read_list`] reads the same
/// fields by hand: a field or attribute changed here must change there.
///
/// The fields only looked at on the way to the normalized conversation (the
/// timestamps, parsed; the source, mapped; each message's role, mapped) are
/// `Cow`s: [`read_list`] borrows them from the vendor's body wherever it
/// spells them without escapes, where a 100-conversation page would otherwise
/// allocate a thousand short strings only to drop them. The serde readings
/// borrow only the plain `Cow` fields (`created_at`, `role`); serde copies an
/// optional one, as it did the `String` before.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct WireConversation<'a, T> {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(default, borrow)]
    updated_at: Option<Cow<'a, str>>,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default, borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(default = "Option::default", borrow)]
    messages: Option<Vec<WireMessage<'a, T>>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct WireMessage<'a, T> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    content: T,
}

/// A conversation read fast: message texts kept as the vendor escaped them.
type FastConversation<'a> = WireConversation<'a, Text>;
/// A conversation read as it always was, when the fast reading fails.
type ExactConversation<'a> = WireConversation<'a, String>;

#[derive(Deserialize)]
struct ListBody<T> {
    data: Vec<T>,
}

/// One v1 list call: a single request, or an empty page without a call.
pub(crate) struct V1List {
    kind: ProviderKind,
    bot: String,
    query: ListQuery,
    request: Option<UpstreamRequest>,
}

impl V1List {
    pub fn new(
        kind: ProviderKind,
        target: Target<'_>,
        query: &ListQuery,
        request: Option<UpstreamRequest>,
    ) -> Self {
        Self {
            kind,
            bot: target.bot.to_owned(),
            query: query.clone(),
            request,
        }
    }

    fn parse(&self, response: &UpstreamResponse) -> Result<Vec<Conversation>, ProviderError> {
        let status = response.status;
        let invalid = |e: serde_json::Error| invalid_json(status, &e);
        if self.query.include_raw {
            return parse_data::<Box<RawValue>>(response)?
                .into_iter()
                .map(|raw| {
                    // Normalized before `raw` moves in: the reading borrows it.
                    let mut conversation =
                        match read_twice::<FastConversation, ExactConversation>(raw.get())
                            .map_err(invalid)?
                        {
                            Reading::Fast(c) => self.normalize(c, status),
                            Reading::Exact(c) => self.normalize(c, status),
                        }?;
                    conversation.raw = Some(raw);
                    Ok(conversation)
                })
                .collect();
        }
        if let Some(data) = read_list(&response.body) {
            return data
                .into_iter()
                .map(|c| self.normalize(c, status))
                .collect();
        }
        match read_body_twice::<ListBody<FastConversation>, ListBody<ExactConversation>>(
            &response.body,
        )
        .map_err(invalid)?
        {
            Reading::Fast(body) => body
                .data
                .into_iter()
                .map(|c| self.normalize(c, status))
                .collect(),
            Reading::Exact(body) => body
                .data
                .into_iter()
                .map(|c| self.normalize(c, status))
                .collect(),
        }
    }

    /// The normalized conversation, without its raw JSON (the caller adds
    /// it when asked for).
    fn normalize<T: VendorString>(
        &self,
        c: WireConversation<'_, T>,
        status: u16,
    ) -> Result<Conversation, ProviderError> {
        let messages = c
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let (role, vendor_role) = map_role(&m.role);
                Message {
                    role,
                    vendor_role,
                    content: m.content.into_text(),
                    created_at: None,
                    sources: Vec::new(),
                }
            })
            .collect();
        Ok(Conversation {
            created_at: parse_time("created_at", &c.created_at, status)?,
            updated_at: c
                .updated_at
                .as_deref()
                .map(|t| parse_time("updated_at", t, status))
                .transpose()?,
            id: c.id,
            chatbot_id: self.bot.clone(),
            provider: self.kind,
            customer: c.customer,
            source: Source::from_vendor(c.source.as_deref()),
            messages,
            raw: None,
        })
    }
}

impl Operation<ListResult> for V1List {
    fn start(&mut self) -> Result<Step<ListResult>, ProviderError> {
        Ok(match self.request.take() {
            Some(request) => Step::Send(request),
            None => Step::Done(ListResult {
                page: Page {
                    conversations: Vec::new(),
                    has_more: false,
                },
                vendor_page_size: None,
                resume: Vec::new(),
            }),
        })
    }

    fn on_response(
        &mut self,
        response: UpstreamResponse,
    ) -> Result<Step<ListResult>, ProviderError> {
        if !(200..300).contains(&response.status) {
            return Err(error_from_status(
                response.status,
                response.retry_after.as_deref(),
                &response.body,
                response.received_at,
                |_| None,
            ));
        }
        let mut conversations = self.parse(&response)?;
        let size = self.query.size.get() as usize;
        if conversations.len() > size {
            return Err(ProviderError::InvalidBody {
                status: response.status,
                reason: format!(
                    "asked for {size} conversations, got {}; the page window would be wrong",
                    conversations.len()
                ),
            });
        }
        // The docs do not state an order; callers are promised newest first.
        conversations.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(Step::Done(ListResult {
            page: Page {
                has_more: conversations.len() == size,
                conversations,
            },
            vendor_page_size: None,
            resume: Vec::new(),
        }))
    }
}

/// Reads a v1 list body's conversations with a [`Reader`], to exactly what
/// the fast serde reading of `ListBody<FastConversation>` gives, with about a
/// third less work (most of a cache miss is this reading). `None` for
/// anything the reader is not sure of (see [`crate::pull`]): then the serde
/// readings run as before, so every error and every unusual but valid body is
/// read as it always was.
///
/// It mirrors the derives above: unknown keys are skipped at every level; a
/// known key twice bails (serde refuses a duplicate field); `data`, `id`,
/// `created_at`, `role` and `content` are required; `updated_at`, `customer`,
/// `source` and `messages` may be missing or `null`; `id` is a string or an
/// unsigned integer ([`lenient_string`]; its other numbers bail).
fn read_list(body: &[u8]) -> Option<Vec<FastConversation<'_>>> {
    let text = simdutf8::basic::from_utf8(body).ok()?;
    Reader::document(text, |r| {
        let mut data = None;
        r.object(|key, r| match key {
            "data" => once(&mut data, r.vec(read_conversation)?),
            _ => r.skip_value(),
        })?;
        data
    })
}

fn read_conversation<'a>(r: &mut Reader<'a>) -> Option<FastConversation<'a>> {
    let mut id = None;
    let mut created_at = None;
    let mut updated_at = None;
    let mut customer = None;
    let mut source = None;
    let mut messages = None;
    let optional = |r: &mut Reader<'a>| r.null_or(|r| r.string());
    r.object(|key, r| match key {
        "id" => once(&mut id, read_id(r)?),
        "created_at" => once(&mut created_at, r.string()?),
        "updated_at" => once(&mut updated_at, optional(r)?),
        "customer" => once(&mut customer, optional(r)?.map(String::from)),
        "source" => once(&mut source, optional(r)?),
        "messages" => once(&mut messages, r.null_or(|r| r.vec(read_message))?),
        _ => r.skip_value(),
    })?;
    Some(WireConversation {
        id: id?,
        created_at: created_at?,
        updated_at: updated_at.flatten(),
        customer: customer.flatten(),
        source: source.flatten(),
        messages: messages.flatten(),
    })
}

fn read_message<'a>(r: &mut Reader<'a>) -> Option<WireMessage<'a, Text>> {
    let mut role = None;
    let mut content = None;
    r.object(|key, r| match key {
        "role" => once(&mut role, r.string()?),
        "content" => once(&mut content, r.json_text()?),
        _ => r.skip_value(),
    })?;
    Some(WireMessage {
        role: role?,
        content: Text::new(content?),
    })
}

/// An id as [`lenient_string`] reads one, for the strings and unsigned
/// integers it takes; anything else bails.
fn read_id(r: &mut Reader<'_>) -> Option<String> {
    match r.peek()? {
        b'"' => r.string().map(String::from),
        _ => r.unsigned().map(|n| n.to_string()),
    }
}

/// Fills a field's slot, bailing when it is already filled: serde refuses a
/// duplicate field.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

fn parse_data<'a, T: Deserialize<'a>>(
    response: &'a UpstreamResponse,
) -> Result<Vec<T>, ProviderError> {
    wire::from_body::<ListBody<T>>(&response.body)
        .map(|b| b.data)
        .map_err(|e| invalid_json(response.status, &e))
}

/// v1 roles: `user` and `assistant` are documented; `system` is kept; anything
/// else is a bot-side speaker whose original role is preserved.
fn map_role(role: &str) -> (Role, Option<String>) {
    // The documented spellings first: one comparison for nearly every message.
    match role {
        "user" => return (Role::User, None),
        "assistant" => return (Role::Assistant, None),
        _ => {}
    }
    if role.eq_ignore_ascii_case("user") {
        (Role::User, None)
    } else if role.eq_ignore_ascii_case("assistant") {
        (Role::Assistant, None)
    } else if role.eq_ignore_ascii_case("system") {
        (Role::System, None)
    } else {
        (Role::Assistant, Some(wire::shorten(role, 64)))
    }
}

#[cfg(test)]
mod tests {
    //! [`read_list`] against the fast serde reading it stands in for: on
    //! generated v1 bodies (every field order, unknown keys holding any value,
    //! every spelling of every string, keys included, ids as numbers, nulls,
    //! whitespace) and their mutations (truncated, bytes flipped, inserted and
    //! removed, duplicate keys, lone surrogates, deep nesting, trailing bytes,
    //! bytes that are not UTF-8), whenever the reader gives a value, serde
    //! gives the same; and on the bodies vendors send, the reader gives one.

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// The fast serde reading [`read_list`] stands in for.
    fn serde_list(body: &[u8]) -> Option<Vec<FastConversation<'_>>> {
        wire::from_body::<ListBody<FastConversation>>(body)
            .ok()
            .map(|b| b.data)
    }

    /// The contract: `Some` only where serde reads the same. Returns whether
    /// the reader read it.
    fn agrees(body: &[u8]) -> Result<bool, TestCaseError> {
        let Some(read) = read_list(body) else {
            return Ok(false);
        };
        let expected = serde_list(body);
        prop_assert!(
            expected.is_some(),
            "read what serde refuses: {}",
            String::from_utf8_lossy(body)
        );
        prop_assert_eq!(Some(read), expected, "{}", String::from_utf8_lossy(body));
        Ok(true)
    }

    /// splitmix64: the generator's choices, from one proptest seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    /// Writes v1 list bodies at random. `hostile` is the percentage of choices
    /// that are odd: ones serde may refuse or the reader may bail on. `clean`
    /// stays true while nothing odd was written, so the reader must read the
    /// body.
    struct Writer {
        rng: Rng,
        hostile: usize,
        clean: bool,
    }

    const CHARS: &[char] = &[
        'a',
        'b',
        'Z',
        '0',
        ' ',
        '"',
        '\\',
        '/',
        '\n',
        '\r',
        '\t',
        '\u{8}',
        '\u{c}',
        '\u{0}',
        '\u{1}',
        '\u{1f}',
        '\u{7f}',
        'é',
        '€',
        '😊',
        '\u{2028}',
        '\u{ffff}',
        '\u{10ffff}',
    ];

    impl Writer {
        fn odd(&mut self) -> bool {
            let odd = self.rng.chance(self.hostile);
            self.clean &= !odd;
            odd
        }

        fn ws(&mut self) -> &'static str {
            if self.rng.chance(70) {
                ""
            } else {
                self.rng.pick(&[" ", "\n  ", "\t", "\r\n", "  \n\t "])
            }
        }

        fn text(&mut self) -> String {
            let len = self.rng.pick(&[0, 1, 3, 10, 40]);
            (0..len).map(|_| self.rng.pick(CHARS)).collect()
        }

        /// `text` as a JSON string, each character spelled any way JSON
        /// allows, and when odd in ways it does not or that serde reads
        /// only when it skips the string.
        fn string(&mut self, text: &str) -> String {
            let mut out = String::from("\"");
            for c in text.chars() {
                let mut units = [0u16; 2];
                let units = c.encode_utf16(&mut units);
                let hex = |units: &[u16], upper: bool| -> String {
                    units
                        .iter()
                        .map(|u| match upper {
                            true => format!("\\u{u:04X}"),
                            false => format!("\\u{u:04x}"),
                        })
                        .collect()
                };
                let canonical = serde_json::to_string(&c.to_string()).unwrap();
                let canonical = &canonical[1..canonical.len() - 1];
                match self.rng.below(10) {
                    0 => out.push_str(&hex(units, false)),
                    1 => out.push_str(&hex(units, true)),
                    2 if c == '/' => out.push_str("\\/"),
                    3 if c < ' ' && self.odd() => out.push(c),
                    4 if units.len() == 2 && self.odd() => out.push_str(&hex(&units[..1], false)),
                    5 if units.len() == 2 && self.odd() => out.push_str(&hex(&units[1..], true)),
                    _ => out.push_str(canonical),
                }
            }
            out.push('"');
            out
        }

        fn key(&mut self, name: &str) -> String {
            if !name.is_empty() && self.odd() {
                // serde reads `"d\u0061ta"` as `data`; the reader bails.
                let spelled: String = name
                    .chars()
                    .map(|c| match self.rng.chance(50) {
                        true => format!("\\u{:04x}", u32::from(c)),
                        false => c.to_string(),
                    })
                    .collect();
                return format!("\"{spelled}\"");
            }
            format!("\"{name}\"")
        }

        fn number(&mut self) -> &'static str {
            self.rng.pick(&[
                "0",
                "-0",
                "7",
                "-12",
                "3.25",
                "-0.5e-3",
                "1E+9",
                "6e2",
                "18446744073709551615",
                "18446744073709551616",
                "123456789012345678901234567890",
            ])
        }

        /// Any JSON value, for an unknown key.
        fn any(&mut self, depth: usize) -> String {
            match self.rng.below(if depth > 3 { 6 } else { 9 }) {
                0 => "null".to_owned(),
                1 => self.rng.pick(&["true", "false"]).to_owned(),
                2 | 3 => self.number().to_owned(),
                4 | 5 => {
                    let text = self.text();
                    self.string(&text)
                }
                6 => {
                    let n = self.rng.below(4);
                    let items: Vec<String> = (0..n).map(|_| self.any(depth + 1)).collect();
                    self.array(&items)
                }
                7 => {
                    let n = self.rng.below(4);
                    let entries: Vec<(String, String)> = (0..n)
                        .map(|_| {
                            let name = self.text();
                            let key = self.string(&name);
                            // The reader bails on any escaped key.
                            self.clean &= !key.contains('\\');
                            (key, self.any(depth + 1))
                        })
                        .collect();
                    self.object(entries)
                }
                _ if self.odd() => {
                    // Deeper than the reader goes; serde skips it.
                    let n = self.rng.pick(&[63, 64, 65, 200]);
                    format!("{}{}", "[".repeat(n), "]".repeat(n))
                }
                _ => "{}".to_owned(),
            }
        }

        fn array(&mut self, items: &[String]) -> String {
            let mut out = format!("[{}", self.ws());
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&format!("{},{}", self.ws(), self.ws()));
                }
                out.push_str(item);
            }
            out.push_str(&format!("{}]", self.ws()));
            out
        }

        /// An object of `entries` (keys already written), shuffled.
        fn object(&mut self, mut entries: Vec<(String, String)>) -> String {
            for i in (1..entries.len()).rev() {
                entries.swap(i, self.rng.below(i + 1));
            }
            let mut out = format!("{{{}", self.ws());
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(&format!("{},{}", self.ws(), self.ws()));
                }
                out.push_str(&format!("{key}{}:{}{value}", self.ws(), self.ws()));
            }
            out.push_str(&format!("{}}}", self.ws()));
            out
        }

        /// A known field's entry: its usual `value`, or when odd, missing,
        /// `null`, another kind of value or twice.
        fn field(&mut self, entries: &mut Vec<(String, String)>, name: &str, value: String) {
            let key = self.key(name);
            if self.odd() {
                match self.rng.below(4) {
                    0 => {}
                    1 => entries.push((key, "null".to_owned())),
                    2 => entries.push((key, self.any(0))),
                    _ => {
                        let again = self.key(name);
                        entries.push((key, value.clone()));
                        entries.push((again, value));
                    }
                }
            } else {
                entries.push((key, value));
            }
        }

        /// An optional string field: a string, `null` or missing.
        fn optional(&mut self, entries: &mut Vec<(String, String)>, name: &str, text: &str) {
            match self.rng.below(3) {
                0 => {}
                1 => entries.push((self.key(name), "null".to_owned())),
                _ => {
                    let value = self.string(text);
                    self.field(entries, name, value);
                }
            }
        }

        fn unknown(&mut self, entries: &mut Vec<(String, String)>) {
            for _ in 0..self.rng.below(3) {
                let name = self
                    .rng
                    .pick(&["chatbot_id", "meta", "", "Data", "ID", "x"]);
                let key = self.key(name);
                let value = self.any(0);
                entries.push((key, value));
            }
        }

        fn message(&mut self) -> String {
            let mut entries = Vec::new();
            let role = self
                .rng
                .pick(&["user", "assistant", "system", "USER", "tool", ""]);
            let role = self.string(role);
            self.field(&mut entries, "role", role);
            let text = self.text();
            let content = self.string(&text);
            self.field(&mut entries, "content", content);
            self.unknown(&mut entries);
            self.object(entries)
        }

        fn conversation(&mut self) -> String {
            let mut entries = Vec::new();
            let id = match self.rng.below(4) {
                0 => self
                    .rng
                    .pick(&["0", "42", "18446744073709551615"])
                    .to_owned(),
                1 if self.odd() => self.number().to_owned(),
                _ => {
                    let text = format!("conv_{}", self.text());
                    self.string(&text)
                }
            };
            self.field(&mut entries, "id", id);
            let created = self.string("2024-03-02T09:00:00Z");
            self.field(&mut entries, "created_at", created);
            self.optional(&mut entries, "updated_at", "2024-03-02T09:00:05.5+02:00");
            let customer = self.text();
            self.optional(&mut entries, "customer", &customer);
            let source = self.rng.pick(&["API", "WhatsApp", "Widget or Iframe", "x"]);
            self.optional(&mut entries, "source", source);
            match self.rng.below(4) {
                0 => {}
                1 => entries.push((self.key("messages"), "null".to_owned())),
                _ => {
                    let n = self.rng.below(4);
                    let messages: Vec<String> = (0..n).map(|_| self.message()).collect();
                    let messages = self.array(&messages);
                    self.field(&mut entries, "messages", messages);
                }
            }
            self.unknown(&mut entries);
            self.object(entries)
        }

        fn body(&mut self) -> String {
            let n = self.rng.below(4);
            let conversations: Vec<String> = (0..n).map(|_| self.conversation()).collect();
            let data = self.array(&conversations);
            let mut entries = Vec::new();
            self.field(&mut entries, "data", data);
            self.unknown(&mut entries);
            let body = self.object(entries);
            format!("{}{body}{}", self.ws(), self.ws())
        }
    }

    /// Bytes a mutation writes: JSON's structure, quotes and escapes, a
    /// control character, bytes that are not UTF-8 alone.
    const MUTATIONS: &[u8] = b"\"\\{}[]:,0-. nu\x01\xff\xc3\x80";

    /// `body` changed once at random.
    fn mutated(rng: &mut Rng, body: &str) -> Vec<u8> {
        let mut bytes = body.as_bytes().to_vec();
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 => bytes.truncate(at),
            1 if at < bytes.len() => bytes[at] = rng.pick(MUTATIONS),
            2 => bytes.insert(at, rng.pick(MUTATIONS)),
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            4 => {
                bytes.extend_from_slice(rng.pick(&[&b"x"[..], b",", b"}", b" {}", b"\0", b"\xff"]))
            }
            _ => bytes.insert(0, rng.pick(MUTATIONS)),
        }
        bytes
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 2048,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn the_reader_reads_only_what_serde_reads_and_to_the_same_values(
            seed in any::<u64>(),
            hostile in prop_oneof![Just(0usize), Just(2), Just(10), Just(40)],
        ) {
            let mut w = Writer { rng: Rng(seed), hostile, clean: true };
            let body = w.body();
            let read = agrees(body.as_bytes())?;
            prop_assert!(read || !w.clean, "a plain body bailed: {}", body);
            let mutant = mutated(&mut w.rng, &body);
            agrees(&mutant)?;
        }
    }

    /// A small body with every kind of field and spelling, no trailing
    /// whitespace: every proper prefix of it is invalid.
    const SMALL: &str = concat!(
        r#"{"total":[1,-2.5e3,{"a":null}], "data":[{"id":18446744073709551615,"created_at":"#,
        r#""2024-03-02T09:00:00Z","updated_at":null,"customer":"a\u00e9\ud83d\ude00\/\"b","#,
        r#""messages":[{"role":"user","content":"x\n\u0001\\y","seen":true},"#,
        r#"{"content":"\u00E9","role":"bot"}]},{"id":"c\t1","created_at":"2024-03-02T09:00:00Z","#,
        r#""messages":null,"source":"API"}]}"#
    );

    #[test]
    fn the_small_body_is_read_and_no_prefix_of_it_is() {
        assert!(agrees(SMALL.as_bytes()).unwrap());
        for end in 0..SMALL.len() {
            assert_eq!(read_list(&SMALL.as_bytes()[..end]), None, "{end}");
            assert_eq!(serde_list(&SMALL.as_bytes()[..end]), None, "{end}");
        }
    }

    #[test]
    fn every_byte_of_the_small_body_changed_or_inserted_agrees() {
        let mut read = 0;
        for at in 0..=SMALL.len() {
            for &byte in MUTATIONS.iter().chain(b"\t\n\r 19aeEtf/") {
                let mut changed = SMALL.as_bytes().to_vec();
                if at < changed.len() {
                    changed[at] = byte;
                    read += usize::from(agrees(&changed).unwrap());
                }
                let mut inserted = SMALL.as_bytes().to_vec();
                inserted.insert(at, byte);
                read += usize::from(agrees(&inserted).unwrap());
            }
        }
        // Whitespace between tokens, digits in numbers and the like.
        assert!(read > 1000, "{read}");
    }

    #[test]
    fn odd_but_valid_bodies_are_left_to_serde() {
        for body in [
            r#"{"d\u0061ta":[]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","x":"\ud800"}]}"#,
            r#"{"data":[{"id":-1,"created_at":"2024-03-02T09:00:00Z"}]}"#,
            r#"{"data":[["1","2024-03-02T09:00:00Z",null,null,null,null]]}"#,
            &format!(r#"{{"data":[],"x":{}{}}}"#, "[".repeat(80), "]".repeat(80)),
        ] {
            assert!(serde_list(body.as_bytes()).is_some(), "{body}");
            assert_eq!(read_list(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn what_serde_refuses_bails() {
        for body in [
            r#"{"data":[],"data":[]}"#,
            r#"{"data":null}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"data":[{"created_at":"2024-03-02T09:00:00Z"}]}"#,
            r#"{"data":[{"id":"1"}]}"#,
            r#"{"data":[{"id":1.5,"created_at":"2024-03-02T09:00:00Z"}]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","customer":1}]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","source":null,"source":null}]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","messages":[{"role":"user"}]}]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","messages":[{"role":"user","content":7}]}]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","messages":[{"role":"user","content":"\ud83d"}]}]}"#,
            r#"{"data":[{"id":"1","created_at":"2024-03-02T09:00:00Z","messages":{}}]}"#,
            "{\"data\":[]} x",
            "{\"data\":[\"\u{1}\"]}",
        ] {
            assert!(serde_list(body.as_bytes()).is_none(), "{body}");
            assert_eq!(read_list(body.as_bytes()), None, "{body}");
        }
        assert_eq!(read_list(b"{\"data\":[],\"x\":\"\xff\"}"), None);
    }

    #[test]
    fn every_v1_fixture_serde_reads_is_read_to_the_same_values() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut read = 0;
        for vendor in ["chatbase", "chatzuri"] {
            for entry in std::fs::read_dir(format!("{root}/{vendor}")).unwrap() {
                let path = entry.unwrap().path();
                let body = std::fs::read(&path).unwrap();
                assert_eq!(
                    read_list(&body).is_some(),
                    serde_list(&body).is_some(),
                    "{}",
                    path.display()
                );
                read += usize::from(agrees(&body).unwrap());
            }
        }
        assert!(read >= 20, "{read}");
    }

    /// A page as a JavaScript server sends one (compact, raw UTF-8, quotes
    /// and newlines escaped), like `bench/gen_pages.py`'s and the criterion
    /// bench's.
    fn page_as_json_stringify_writes_it() -> String {
        let data: Vec<_> = (0..100)
            .map(|i| {
                let messages: Vec<_> = (0..8)
                    .map(|m| {
                        json!({
                            "role": if m % 2 == 0 { "user" } else { "assistant" },
                            "content": format!(
                                "Sure! Here's how to update your **plan {i}**:\n\n1. Open \
                                 **Settings** → *Billing*.\n2. Click \"Edit\" and `Save` — \
                                 merci ✅ 😊 C:\\temp {m}"
                            ),
                        })
                    })
                    .collect();
                let source = ["API", "WhatsApp", "Widget or Iframe"][i % 3];
                json!({
                    "id": format!("conv_{i:016x}"),
                    "chatbot_id": "ckl123abc456",
                    "created_at": format!("2024-06-{:02}T12:{:02}:00Z", 1 + i % 28, i % 60),
                    "updated_at": format!("2024-06-{:02}T12:{:02}:30.250Z", 1 + i % 28, i % 60),
                    "customer": if i % 5 == 0 { None } else { Some(format!("chloé.{i}@example.com")) },
                    "source": source,
                    "messages": messages,
                })
            })
            .collect();
        serde_json::to_string(&json!({ "data": data })).unwrap()
    }

    #[test]
    fn realistic_pages_take_the_reader() {
        let page = page_as_json_stringify_writes_it();
        assert!(agrees(page.as_bytes()).unwrap());
        // As other vendors write the same page: emoji as surrogate pairs, some
        // accents and slashes escaped, pretty-printed.
        let value: serde_json::Value = serde_json::from_str(&page).unwrap();
        let pretty = serde_json::to_string_pretty(&value)
            .unwrap()
            .replace('😊', "\\ud83d\\ude0a")
            .replace('é', "\\u00E9")
            .replace('/', "\\/");
        assert!(agrees(pretty.as_bytes()).unwrap());
    }
}
