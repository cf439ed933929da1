//! Sans-IO adapters between chatgate's normalized conversation model and each
//! chatbot vendor's API.
//!
//! An adapter never touches a socket or a clock. For each operation it returns an
//! [`Operation`]: a small state machine that says which [`UpstreamRequest`] to send
//! next and consumes each [`UpstreamResponse`] until it yields a normalized result.
//! One vendor call (Chatbase) and many (Chatling assembling a window out of
//! vendor-sized pages) look the same to the server, and every mapping is unit-tested
//! with the vendors' documented JSON.
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
pub mod chatling;
pub mod chatzuri;
pub mod error;
pub mod model;
pub mod request;
pub mod sanitize;
pub mod sources;
pub mod wire;

use std::num::NonZeroU32;

pub use error::ProviderError;
pub use model::{
    Conversation, DateRange, KbSource, ListQuery, Message, Page, PageNumber, PageSize,
    ProviderKind, RangePosition, Role, Target,
};
pub use request::{Method, UpstreamRequest, UpstreamResponse};
pub use sources::Source;

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
    /// Opaque cursors (Chatbase API v2, not yet adapted): page N needs the N-1
    /// before it.
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

/// A boxed list operation.
pub type ListOperation = Box<dyn Operation<ListResult>>;
/// A boxed single-conversation operation.
pub type GetOperation = Box<dyn Operation<Conversation>>;

/// One vendor's mapping between the normalized model and its wire format.
pub trait Adapter: Send + Sync {
    /// Which vendor this is.
    fn kind(&self) -> ProviderKind;

    /// How the vendor pages its list.
    fn paging(&self) -> Paging;

    /// Lists one page of conversations. `vendor_page_size` is what a previous
    /// [`ListResult::vendor_page_size`] reported for this provider, if anything.
    fn list(
        &self,
        target: Target<'_>,
        query: &ListQuery,
        vendor_page_size: Option<NonZeroU32>,
    ) -> ListOperation;

    /// Reads one conversation with every message, or
    /// [`ProviderError::NotSupported`] when the vendor has no such endpoint.
    fn get(
        &self,
        target: Target<'_>,
        conversation_id: &str,
        include_raw: bool,
    ) -> Result<GetOperation, ProviderError>;
}

/// The registry of vendor kinds: adding a vendor is one module and one line here.
pub fn adapter(kind: ProviderKind, options: &AdapterOptions) -> Box<dyn Adapter> {
    match kind {
        ProviderKind::Chatbase => Box::new(chatbase::Chatbase),
        ProviderKind::Chatzuri => Box::new(chatzuri::Chatzuri::new(options.dialect)),
        ProviderKind::Chatling => Box::new(chatling::Chatling::new(options.max_scan_pages)),
    }
}
