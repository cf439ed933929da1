//! Sans-IO adapters between chatgate's normalized conversation model and each
//! chatbot vendor's API.
//!
//! An adapter never touches a socket or a clock. For each operation it returns an
//! [`Operation`]: a small state machine that says which [`UpstreamRequest`] to send
//! next and consumes each [`UpstreamResponse`] until it yields a normalized result.
//! One vendor call (Chatbase) and many (Chatling assembling a window out of
//! vendor-sized pages, Chatbase v2 following cursors) look the same to the server,
//! and every mapping is unit-tested with the vendors' documented JSON.
//!
//! ```
//! use chatgate_providers::{adapter, AdapterOptions, ListQuery, ProviderKind, Step, Target};
//!
//! let chatbase = adapter(ProviderKind::Chatbase, &AdapterOptions::default());
//! let target = Target { bot: "support", chatbot_id: "ckl123abc456" };
//! let mut op = chatbase.list(target, &ListQuery::default(), None);
//! let Step::Send(request) = op.start().unwrap() else { panic!("Chatbase always asks") };
//! assert_eq!(request.path, "/get-conversations");
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod chatbase;
pub mod chatbase_v2;
pub mod chatling;
pub mod chatzuri;
pub mod error;
mod fast;
pub mod json;
pub mod model;
mod pull;
pub mod request;
pub mod sanitize;
pub mod sources;
#[cfg(test)]
mod test_support;
pub mod text;
mod timestamp;
pub mod wire;

use std::num::NonZeroU32;

pub use error::ProviderError;
pub use model::{
    Conversation, DateRange, KbSource, ListQuery, Message, Page, PageNumber, PageSize,
    ProviderKind, RangePosition, Role, Target,
};
pub use request::{Method, UpstreamRequest, UpstreamResponse};
pub use sources::Source;
pub use text::JsonText;

/// What an operation wants next.
#[derive(Debug)]
pub enum Step<T> {
    /// Send this request and hand the answer to [`Operation::on_response`].
    Send(UpstreamRequest),
    /// The operation is complete.
    Done(T),
}

/// A vendor operation as a state machine: the server calls [`start`](Self::start)
/// once, then feeds every answer to [`on_response`](Self::on_response) until it
/// returns [`Step::Done`] or an error. Both methods are pure functions of their
/// inputs and the operation's state.
pub trait Operation<T>: Send {
    /// The first step: usually a request, or `Done` when no vendor call can change
    /// the answer (a source filter the vendor can never match).
    fn start(&mut self) -> Result<Step<T>, ProviderError>;

    /// Consumes one answer to the last request sent.
    ///
    /// A retryable error ([`ProviderError::is_retryable`]) leaves the operation
    /// as it was, so the server may send the same request again and feed the new
    /// answer here.
    fn on_response(&mut self, response: UpstreamResponse) -> Result<Step<T>, ProviderError>;
}

/// The result of a list operation.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// The normalized page.
    pub page: Page,
    /// For vendors that choose their own page size: the size they reported, so the
    /// server can remember it and plan the next request without a probing call.
    pub vendor_page_size: Option<NonZeroU32>,
    /// For vendors that page by cursor: the places in the stream this operation
    /// reached at its window's start and end (only those past the stream's first
    /// conversation), for the server to remember and hand back to
    /// [`Adapter::list_from`]. Empty for other vendors.
    pub resume: Vec<ResumePoint>,
}

/// A place in a cursor-paged vendor's stream, reached by one list operation and
/// remembered by the server so a later one can start there instead of following
/// every cursor from the vendor's first page: reading pages 1, 2, 3 … in order
/// then costs one vendor call per vendor page.
///
/// A stream is one vendor bot's conversations under one set of filters
/// ([`ListQuery::sources`] and [`ListQuery::dates`]). A point is valid for every
/// `page` and `size` of its stream and for no other stream, so the server keys
/// what it remembers by (provider, vendor bot id, sources, dates,
/// [`position`](Self::position)) and hands back the one nearest before a window's
/// start. Nothing here is vendor-specific: a cursor is opaque text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResumePoint {
    /// How many conversations of the stream (after every filter) come before this
    /// point: the index, in the gateway's newest-first stream, of the next one.
    pub position: u64,
    /// The vendor's opaque cursor for the vendor page this point lies on; `None`
    /// for the vendor's first page.
    pub cursor: Option<String>,
    /// How many items of that vendor page, as the vendor sent them (before any
    /// filter the gateway applies itself), come before this point.
    pub skip: u32,
}

/// How a vendor pages its list. The server does not need this to execute an
/// operation; it is what a merging or exporting caller reads to know how expensive
/// a deep page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Numbered pages of a size the gateway chooses (Chatbase, Chatzuri): one
    /// vendor call per gateway page.
    CallerSized,
    /// Numbered pages of a size the vendor chooses (Chatling): a gateway page may
    /// span several vendor pages.
    VendorSized,
    /// Opaque cursors (Chatbase API v2): page N needs the cursors before it, so
    /// a deep page walks from the vendor's first page unless the server hands the
    /// operation a [`ResumePoint`] an earlier page reached.
    Cursor,
}

/// Which of Chatzuri's two documented request styles to speak (vendors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The current docs: `GET` with `agentId` in the query.
    #[default]
    Current,
    /// The older docs: `POST` with a JSON body holding `chatbotId`.
    Legacy,
}

/// Per-provider settings an adapter honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterOptions {
    /// Chatzuri's request style; ignored by other vendors.
    pub dialect: Dialect,
    /// Bound on vendor pages one operation may read when the gateway filters or
    /// assembles pages itself (vendors.md: default 50).
    pub max_scan_pages: NonZeroU32,
}

impl AdapterOptions {
    /// The documented default scan bound.
    pub const DEFAULT_MAX_SCAN_PAGES: NonZeroU32 = match NonZeroU32::new(50) {
        Some(n) => n,
        None => unreachable!(),
    };
}

impl Default for AdapterOptions {
    fn default() -> Self {
        Self {
            dialect: Dialect::default(),
            max_scan_pages: Self::DEFAULT_MAX_SCAN_PAGES,
        }
    }
}

/// Everything the rest of chatgate must know about one vendor, beside its
/// adapter: each vendor module defines it as `pub const INFO: VendorInfo`, and
/// [`ProviderKind::info`] is the one place that maps a kind to it. The config
/// takes its defaults and dialect names from here, the source table its labels,
/// so a new vendor changes nothing outside `providers/`.
///
/// ```
/// use chatgate_providers::{Dialect, ProviderKind, Source};
///
/// let chatling = ProviderKind::Chatling.info();
/// assert_eq!(chatling.default_base_url, "https://api.chatling.ai/v2");
/// assert_eq!(chatling.default_requests_per_second.get(), 5); // 300 per minute
/// assert_eq!(chatling.source_label(Source::Whatsapp), None); // no channels
///
/// let chatzuri = ProviderKind::Chatzuri.info();
/// assert_eq!(chatzuri.dialect("legacy"), Some(Dialect::Legacy));
/// assert_eq!(chatzuri.default_dialect(), Dialect::Current);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VendorInfo {
    /// The lowercase name used in config (`kind = "…"`), in responses
    /// (`provider`), headers and metrics.
    pub kind_name: &'static str,
    /// The vendor's own spelling, for messages (`Chatzuri`).
    pub display_name: &'static str,
    /// The production API root, without a trailing slash: `base_url`'s default.
    pub default_base_url: &'static str,
    /// The calls per second the gateway allows one account of this vendor when
    /// `max_requests_per_second` is unset: the vendor's documented quota where
    /// it publishes one, else 10.
    pub default_requests_per_second: NonZeroU32,
    /// Where [`default_requests_per_second`](Self::default_requests_per_second)
    /// comes from, for docs and reviewers.
    pub quota_source: &'static str,
    /// The request styles the vendor documents, by their config name
    /// (`dialect = "…"`); the first is the default. Empty when there is nothing
    /// to choose.
    pub dialects: &'static [(&'static str, Dialect)],
    /// The vendor's labels for each canonical source it has, as sent in its
    /// source filter and read back from `source`. A source may have several
    /// labels (Chatbase v2's `Widget or Iframe` and `Iframe`); the first is its
    /// main spelling. A source missing here is a channel the vendor does not
    /// have: a filter on it alone needs no call.
    pub source_labels: &'static [(Source, &'static str)],
    /// How the vendor pages its list.
    pub paging: Paging,
}

impl VendorInfo {
    /// The dialect called `name` in config, if the vendor documents one by that
    /// name (exact, lowercase).
    pub fn dialect(&self, name: &str) -> Option<Dialect> {
        self.dialects
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, d)| d)
    }

    /// The dialect used when config names none.
    pub fn default_dialect(&self) -> Dialect {
        self.dialects
            .first()
            .map_or_else(Dialect::default, |&(_, d)| d)
    }

    /// The vendor's (main) label for `source`, or `None` when it has no such
    /// channel.
    pub fn source_label(&self, source: Source) -> Option<&'static str> {
        self.source_labels_of(source).next()
    }

    /// Every label the vendor uses for `source`, main spelling first.
    pub fn source_labels_of(&self, source: Source) -> impl Iterator<Item = &'static str> {
        self.source_labels
            .iter()
            .filter(move |(s, _)| *s == source)
            .map(|&(_, l)| l)
    }
}

/// A boxed list operation.
pub type ListOperation = Box<dyn Operation<ListResult>>;
/// A boxed single-conversation operation.
pub type GetOperation = Box<dyn Operation<Conversation>>;

/// One vendor's mapping between the normalized model and its wire format.
pub trait Adapter: Send + Sync {
    /// Which vendor this is.
    fn kind(&self) -> ProviderKind;

    /// How the vendor pages its list (its [`VendorInfo::paging`]).
    fn paging(&self) -> Paging {
        self.kind().info().paging
    }

    /// Lists one page of conversations. `vendor_page_size` is what a previous
    /// [`ListResult::vendor_page_size`] reported for this provider, if anything.
    fn list(
        &self,
        target: Target<'_>,
        query: &ListQuery,
        vendor_page_size: Option<NonZeroU32>,
    ) -> ListOperation;

    /// Like [`list`](Self::list), starting from `from`: a [`ResumePoint`] an
    /// earlier operation returned for the same vendor bot, sources and dates.
    /// Only cursor-paged vendors use it; the others ignore it (this default).
    ///
    /// A point after the window's start, or one the vendor no longer accepts,
    /// costs a walk from the vendor's first page, never a wrong window.
    fn list_from(
        &self,
        target: Target<'_>,
        query: &ListQuery,
        vendor_page_size: Option<NonZeroU32>,
        from: Option<&ResumePoint>,
    ) -> ListOperation {
        let _ = from;
        self.list(target, query, vendor_page_size)
    }

    /// Reads one conversation with every message, or
    /// [`ProviderError::NotSupported`] when the vendor has no such endpoint.
    fn get(
        &self,
        target: Target<'_>,
        conversation_id: &str,
        include_raw: bool,
    ) -> Result<GetOperation, ProviderError>;
}

// The registry of vendor kinds: adding a vendor is one module and one line in
// each of the two matches below (README "Adding a vendor").

/// The adapter for `kind`.
pub fn adapter(kind: ProviderKind, options: &AdapterOptions) -> Box<dyn Adapter> {
    match kind {
        ProviderKind::Chatbase => Box::new(chatbase::Chatbase),
        ProviderKind::Chatzuri => Box::new(chatzuri::Chatzuri::new(options.dialect)),
        ProviderKind::Chatling => Box::new(chatling::Chatling::new(options.max_scan_pages)),
        ProviderKind::ChatbaseV2 => Box::new(chatbase_v2::ChatbaseV2::new(options.max_scan_pages)),
    }
}

impl ProviderKind {
    /// What the rest of chatgate must know about this vendor (its module's `INFO`).
    pub const fn info(self) -> &'static VendorInfo {
        match self {
            ProviderKind::Chatbase => &chatbase::INFO,
            ProviderKind::Chatzuri => &chatzuri::INFO,
            ProviderKind::Chatling => &chatling::INFO,
            ProviderKind::ChatbaseV2 => &chatbase_v2::INFO,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_vendor_info_is_found_by_its_own_kind_name() {
        for kind in ProviderKind::ALL {
            let info = kind.info();
            assert_eq!(ProviderKind::parse(info.kind_name), Some(kind));
            assert_eq!(kind.as_str(), info.kind_name);
            assert_eq!(info.kind_name, info.kind_name.to_ascii_lowercase());
            // `provider` in answers is the serialized kind.
            let serialized = serde_json::to_value(kind).unwrap();
            assert_eq!(serialized, info.kind_name);
            assert_eq!(adapter(kind, &AdapterOptions::default()).kind(), kind);
        }
    }

    #[test]
    fn default_base_urls_are_https_roots_without_a_trailing_slash() {
        for kind in ProviderKind::ALL {
            let url = kind.info().default_base_url;
            assert!(url.starts_with("https://"), "{kind}: {url}");
            assert!(
                !url.ends_with('/') && !url.contains(['?', '#']),
                "{kind}: {url}"
            );
        }
    }

    #[test]
    fn dialect_names_are_distinct_and_the_first_is_the_default() {
        for kind in ProviderKind::ALL {
            let info = kind.info();
            let names: HashSet<&str> = info.dialects.iter().map(|(n, _)| *n).collect();
            assert_eq!(names.len(), info.dialects.len(), "{kind}");
            for &(name, dialect) in info.dialects {
                assert_eq!(info.dialect(name), Some(dialect), "{kind}: {name}");
                assert_eq!(info.dialect(&name.to_ascii_uppercase()), None, "{kind}");
            }
            if let Some(&(_, first)) = info.dialects.first() {
                assert_eq!(info.default_dialect(), first, "{kind}");
            }
        }
        assert_eq!(ProviderKind::Chatbase.info().dialect("current"), None);
    }

    #[test]
    fn a_vendor_label_names_one_source_whatever_the_vendor() {
        let mut seen: Vec<(&str, Source)> = Vec::new();
        for kind in ProviderKind::ALL {
            let info = kind.info();
            let labels: HashSet<String> = info
                .source_labels
                .iter()
                .map(|(_, l)| l.to_ascii_lowercase())
                .collect();
            assert_eq!(
                labels.len(),
                info.source_labels.len(),
                "{kind}: a label twice"
            );
            for &(source, label) in info.source_labels {
                assert_eq!(
                    info.source_label(source),
                    info.source_labels_of(source).next()
                );
                // Labels are read back without knowing the vendor.
                for &(other_label, other) in &seen {
                    if other_label.eq_ignore_ascii_case(label) {
                        assert_eq!(other, source, "{kind}: {label}");
                    }
                }
                for canonical in Source::ALL {
                    if canonical.as_str().eq_ignore_ascii_case(label) {
                        assert_eq!(canonical, source, "{kind}: {label}");
                    }
                }
                seen.push((label, source));
            }
        }
    }
}
