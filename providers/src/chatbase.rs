//! Chatbase API v1 (vendors.md "Chatbase").
//!
//! `GET /get-conversations` takes `chatbotId`, `filteredSources` (vendor labels),
//! `startDate`, `endDate`, `page` and `size`, and answers `{"data": [...]}` with no
//! total and no "has more". Chatzuri documents the same answer shape, so its adapter
//! reuses [`V1List`] with its own request.
//!
//! Decisions where the docs are silent: conversations are sorted newest first by
//! `created_at` (stable), messages keep the vendor's (chronological) order, and a
//! page shorter than `size` is the last.

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
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct WireConversation<T> {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    created_at: String,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default = "Option::default")]
    messages: Option<Vec<WireMessage<T>>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct WireMessage<T> {
    role: String,
    content: T,
}

/// A conversation read fast: message texts kept as the vendor escaped them.
type FastConversation = WireConversation<Text>;
/// A conversation read as it always was, when the fast reading fails.
type ExactConversation = WireConversation<String>;

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
                    match read_twice::<FastConversation, ExactConversation>(raw.get())
                        .map_err(invalid)?
                    {
                        Reading::Fast(c) => self.normalize(c, Some(raw), status),
                        Reading::Exact(c) => self.normalize(c, Some(raw), status),
                    }
                })
                .collect();
        }
        if let Some(data) = read_list(&response.body) {
            return data
                .into_iter()
                .map(|c| self.normalize(c, None, status))
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
                .map(|c| self.normalize(c, None, status))
                .collect(),
            Reading::Exact(body) => body
                .data
                .into_iter()
                .map(|c| self.normalize(c, None, status))
                .collect(),
        }
    }

    fn normalize<T: VendorString>(
        &self,
        c: WireConversation<T>,
        raw: Option<Box<RawValue>>,
        status: u16,
    ) -> Result<Conversation, ProviderError> {
        let messages = c
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let (role, vendor_role) = map_role(m.role);
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
            raw,
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
/// the fast serde reading of `ListBody<FastConversation>` gives, in about half
/// the work. `None` for anything the reader is not sure of (see
/// [`crate::pull`]): then the serde readings run as before, so every error and
/// every unusual but valid body is read as it always was.
///
/// It mirrors the derives above: unknown keys are skipped at every level; a
/// known key twice bails (serde refuses a duplicate field); `data`, `id`,
/// `created_at`, `role` and `content` are required; `updated_at`, `customer`,
/// `source` and `messages` may be missing or `null`; `id` is a string or an
/// unsigned integer ([`lenient_string`]; its other numbers bail).
fn read_list(body: &[u8]) -> Option<Vec<FastConversation>> {
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

fn read_conversation(r: &mut Reader<'_>) -> Option<FastConversation> {
    let mut id = None;
    let mut created_at = None;
    let mut updated_at = None;
    let mut customer = None;
    let mut source = None;
    let mut messages = None;
    let optional = |r: &mut Reader<'_>| r.null_or(|r| r.string().map(String::from));
    r.object(|key, r| match key {
        "id" => once(&mut id, read_id(r)?),
        "created_at" => once(&mut created_at, r.string()?.into_owned()),
        "updated_at" => once(&mut updated_at, optional(r)?),
        "customer" => once(&mut customer, optional(r)?),
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

fn read_message(r: &mut Reader<'_>) -> Option<WireMessage<Text>> {
    let mut role = None;
    let mut content = None;
    r.object(|key, r| match key {
        "role" => once(&mut role, r.string()?.into_owned()),
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
fn map_role(role: String) -> (Role, Option<String>) {
    if role.eq_ignore_ascii_case("user") {
        (Role::User, None)
    } else if role.eq_ignore_ascii_case("assistant") {
        (Role::Assistant, None)
    } else if role.eq_ignore_ascii_case("system") {
        (Role::System, None)
    } else {
        (Role::Assistant, Some(wire::shorten(&role, 64)))
    }
}
