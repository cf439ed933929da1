//! Chatzuri (vendors.md "Chatzuri").
//!
//! Two versions of Chatzuri's docs disagree: the current "agents" page reads with
//! `GET /get-conversations?agentId=…`; the older page documents `POST` with a JSON
//! body holding `chatbotId` (while its own examples use GET). The current dialect is
//! the default; `dialect = "legacy"` in a provider's config selects the POST body.
//! The answer is Chatbase v1's shape either way, so parsing is shared.

use std::num::NonZeroU32;

use serde::Serialize;

use crate::chatbase::{V1List, V1Params};
use crate::error::ProviderError;
use crate::model::{ListQuery, ProviderKind, Target};
use crate::request::{Method, UpstreamRequest};
use crate::sources::Source;
use crate::{Adapter, Dialect, GetOperation, ListOperation, Paging, VendorInfo};

/// What the rest of chatgate knows about Chatzuri (vendors.md "Chatzuri").
pub const INFO: VendorInfo = VendorInfo {
    kind_name: "chatzuri",
    display_name: "Chatzuri",
    default_base_url: "https://www.chatzuri.com/api/v1",
    default_requests_per_second: match NonZeroU32::new(10) {
        Some(n) => n,
        None => unreachable!(),
    },
    quota_source: "Chatzuri says \"each plan has a per-team rate limit\" without numbers: \
                   the common default of 10/s",
    dialects: &[("current", Dialect::Current), ("legacy", Dialect::Legacy)],
    // Chatbase's labels with Chatzuri's site, and no playground or action preview.
    source_labels: &[
        (Source::Api, "API"),
        (Source::Website, "Chatzuri site"),
        (Source::Widget, "Widget or Iframe"),
        (Source::Whatsapp, "WhatsApp"),
        (Source::Messenger, "Messenger"),
        (Source::Instagram, "Instagram"),
        (Source::Slack, "Slack"),
        (Source::Unspecified, "Unspecified"),
    ],
    // One call per gateway page, of the size the gateway asks for.
    paging: Paging::CallerSized,
};

const PATH: &str = "/get-conversations";

/// The Chatzuri adapter, in one of its two dialects.
#[derive(Debug, Clone, Copy)]
pub struct Chatzuri {
    dialect: Dialect,
}

impl Chatzuri {
    /// An adapter speaking `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect }
    }
}

/// The legacy dialect's body: every field a string, as the older docs type them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LegacyBody<'a> {
    chatbot_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filtered_sources: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<String>,
    page: String,
    size: String,
}

impl Adapter for Chatzuri {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Chatzuri
    }

    fn list(&self, target: Target<'_>, query: &ListQuery, _: Option<NonZeroU32>) -> ListOperation {
        let request = V1Params::new(ProviderKind::Chatzuri, query).map(|p| match self.dialect {
            Dialect::Current => {
                let mut q = vec![("agentId", target.chatbot_id.to_owned())];
                q.extend(p.into_query());
                UpstreamRequest::get(PATH.to_owned(), q)
            }
            Dialect::Legacy => {
                let body = LegacyBody {
                    chatbot_id: target.chatbot_id,
                    filtered_sources: p.filtered_sources,
                    start_date: p.start_date,
                    end_date: p.end_date,
                    page: p.page,
                    size: p.size,
                };
                UpstreamRequest {
                    method: Method::Post,
                    path: PATH.to_owned(),
                    query: Vec::new(),
                    json_body: Some(
                        serde_json::to_vec(&body).expect("a struct of strings always serializes"),
                    ),
                }
            }
        });
        Box::new(V1List::new(ProviderKind::Chatzuri, target, query, request))
    }

    fn get(&self, _: Target<'_>, _: &str, _: bool) -> Result<GetOperation, ProviderError> {
        Err(ProviderError::NotSupported(
            "Chatzuri has no endpoint that reads one conversation; \
             list them with GET /api/v1/get-conversations",
        ))
    }
}
