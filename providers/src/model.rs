//! The normalized model every adapter produces and every caller reads.
//!
//! These types are the product contract (SPEC §2.2): whatever vendor holds a bot's
//! history, a calling service sees exactly these shapes. Query types are parsed at
//! the edge into values that cannot be out of range, so adapters never re-validate.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::sources::Source;
use crate::text::JsonText;
use crate::timestamp::with_rfc3339;

/// The vendors chatgate speaks to. Serialized as the lowercase name callers see in
/// `provider` and `X-Provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Chatbase API v1.
    Chatbase,
    /// Chatzuri API v1 (Chatbase-like wire format, two doc dialects).
    Chatzuri,
    /// Chatling API v2 (enveloped answers, vendor-sized pages).
    Chatling,
    /// Chatbase API v2 (cursor pages of at most 20, conversations of every source
    /// through its export endpoint). Spelled `chatbase_v2`, as its descriptor says.
    #[serde(rename = "chatbase_v2")]
    ChatbaseV2,
}

impl ProviderKind {
    /// Every kind, in a stable order (for validation messages and docs).
    pub const ALL: [ProviderKind; 4] = [
        Self::Chatbase,
        Self::Chatzuri,
        Self::Chatling,
        Self::ChatbaseV2,
    ];

    /// The lowercase name used in config (`kind = "…"`) and in responses.
    pub fn as_str(self) -> &'static str {
        self.info().kind_name
    }

    /// Parses a config `kind` (exact lowercase name).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who spoke a message, reduced to the three roles every client understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The end user talking to the bot.
    User,
    /// The bot, or any other bot-side speaker (a human agent taking over).
    Assistant,
    /// A system message.
    System,
}

impl Role {
    /// The name callers see in `role` (what the `Serialize` derive writes).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
        }
    }
}

/// A knowledge-base source a vendor cites for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KbSource {
    /// The vendor's source type (e.g. `webpage`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub kind: Option<String>,
    /// A human title for the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub title: Option<String>,
    /// Where the source lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub url: Option<String>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The normalized role.
    pub role: Role,
    /// The vendor's own role when it is not one of the three normalized ones, so a
    /// human agent's messages are never indistinguishable from the bot's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub vendor_role: Option<String>,
    /// The message text.
    // Held escaped (`JsonText`): the vendor's bytes pass through to the answer.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub content: JsonText,
    /// When the message was sent; `null` for vendors that do not say (Chatbase).
    #[serde(serialize_with = "ser_opt_time")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, required = true)
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Knowledge-base sources, only when the vendor gives some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub sources: Vec<KbSource>,
}

/// One conversation, normalized.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// The vendor's conversation id.
    pub id: String,
    /// The bot's name in the gateway's config (never the vendor's id), so a bot
    /// moved between vendors keeps the same identity for its callers.
    pub chatbot_id: String,
    /// Which vendor holds this conversation.
    pub provider: ProviderKind,
    /// When the conversation started.
    #[serde(serialize_with = "ser_time")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    /// When it last changed, if known.
    #[serde(serialize_with = "ser_opt_time")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, format = DateTime, required = true)
    )]
    pub updated_at: Option<DateTime<Utc>>,
    /// The vendor's customer / contact identifier.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub customer: Option<String>,
    /// The canonical channel.
    pub source: Source,
    /// Messages, oldest first.
    pub messages: Vec<Message>,
    /// The vendor's original object, only with `include=raw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object, nullable = false))]
    pub raw: Option<Box<RawValue>>,
}

/// Formats a timestamp as RFC 3339 UTC with `Z`, with fractional seconds only
/// when the vendor gave some.
pub fn format_time(t: &DateTime<Utc>) -> String {
    with_rfc3339(t, str::to_owned)
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// A 1-based page number, at most [`PageNumber::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageNumber(NonZeroU32);

impl PageNumber {
    /// The largest page a caller may ask for (SPEC §2.2).
    pub const MAX: u32 = 100_000;
    /// The first page.
    pub const FIRST: PageNumber = PageNumber(NonZeroU32::MIN);

    /// Returns the page number when it is in `1..=MAX`.
    pub fn new(n: u32) -> Option<Self> {
        if n > Self::MAX {
            return None;
        }
        NonZeroU32::new(n).map(Self)
    }

    /// The number itself.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl Default for PageNumber {
    fn default() -> Self {
        Self::FIRST
    }
}

/// A page size in `1..=100`, the range every vendor documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageSize(u8);

impl PageSize {
    /// The largest page size (Chatbase/Chatzuri `size` max).
    pub const MAX: u8 = 100;
    /// The vendors' documented default.
    pub const DEFAULT: PageSize = PageSize(10);

    /// Returns the size when it is in `1..=100`.
    pub fn new(n: u32) -> Option<Self> {
        match u8::try_from(n) {
            Ok(n @ 1..=Self::MAX) => Some(Self(n)),
            _ => None,
        }
    }

    /// The size itself.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An inclusive range of UTC calendar dates; either end may be open. Construction
/// guarantees `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DateRange {
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

impl DateRange {
    /// Returns `None` when both ends are set and `start > end`.
    pub fn new(start: Option<NaiveDate>, end: Option<NaiveDate>) -> Option<Self> {
        match (start, end) {
            (Some(s), Some(e)) if s > e => None,
            _ => Some(Self { start, end }),
        }
    }

    /// The first included day.
    pub fn start(&self) -> Option<NaiveDate> {
        self.start
    }

    /// The last included day.
    pub fn end(&self) -> Option<NaiveDate> {
        self.end
    }

    /// True when neither end is set.
    pub fn is_unbounded(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// Where a timestamp falls relative to the range.
    pub fn position(&self, t: &DateTime<Utc>) -> RangePosition {
        let day = t.date_naive();
        if self.end.is_some_and(|e| day > e) {
            RangePosition::After
        } else if self.start.is_some_and(|s| day < s) {
            RangePosition::Before
        } else {
            RangePosition::Within
        }
    }
}

/// Where a timestamp lies relative to a [`DateRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangePosition {
    /// Earlier than the first day.
    Before,
    /// Inside the range.
    Within,
    /// Later than the last day.
    After,
}

/// The parameters of a list request, already validated and canonical, so two
/// spellings of one request (`WhatsApp,api` and `API, whatsapp`) are equal values
/// and share a cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ListQuery {
    /// Canonical sources to keep; `None` keeps all.
    pub sources: Option<BTreeSet<Source>>,
    /// Inclusive UTC date range on `created_at`.
    pub dates: DateRange,
    /// Which page.
    pub page: PageNumber,
    /// How many conversations per page.
    pub size: PageSize,
    /// Whether each conversation carries the vendor's original object.
    pub include_raw: bool,
}

impl ListQuery {
    /// True when a conversation from `source` passes the source filter.
    pub fn accepts_source(&self, source: Source) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|set| set.contains(&source))
    }

    /// Index of the first conversation of the requested window in the full,
    /// filtered, newest-first stream.
    pub fn window_start(&self) -> u64 {
        u64::from(self.page.get() - 1) * u64::from(self.size.get())
    }
}

/// Which vendor bot a request is for, and the name callers know it by.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The bot's name in config; becomes each conversation's `chatbot_id`.
    pub bot: &'a str,
    /// The vendor's chatbot id.
    pub chatbot_id: &'a str,
}

/// One page of normalized conversations.
#[derive(Debug, Clone)]
pub struct Page {
    /// Newest first.
    pub conversations: Vec<Conversation>,
    /// Whether another page may follow (`false` only when this page is known to be
    /// the last).
    pub has_more: bool,
}
