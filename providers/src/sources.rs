//! Canonical conversation sources (channels) and the vendors' labels for them
//! (SPEC §2.5, vendors.md "Canonical sources").
//!
//! Vendors spell channels differently (`Chatbase site` vs `Chatzuri site`, Title-case
//! labels in the guides vs lowercase enum values in Chatbase's OpenAPI), so every
//! label is read case-insensitively and mapped to one canonical id. Each vendor's
//! labels live in its own module (`VendorInfo::source_labels`); this module knows
//! only the canonical ids.

use std::fmt;

use serde::Serialize;

use crate::model::ProviderKind;

/// A canonical source id, as callers see it in `source` and may send in
/// `filteredSources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Created through the vendor's API.
    Api,
    /// The vendor-hosted chat page (`Chatbase site`, `Chatzuri site`).
    Website,
    /// An embedded widget or iframe.
    Widget,
    /// WhatsApp.
    Whatsapp,
    /// Facebook Messenger.
    Messenger,
    /// Instagram.
    Instagram,
    /// Slack.
    Slack,
    /// The vendor dashboard's playground.
    Playground,
    /// Chatbase's action preview.
    ActionPreview,
    /// Email (Chatbase v2 `Email`).
    Email,
    /// A phone call (Chatbase v2 `Phone`).
    Phone,
    /// Zendesk, its ticketing and its Messaging channel alike (Chatbase v2
    /// `Zendesk`, `Zendesk Messaging`).
    Zendesk,
    /// Salesforce (Chatbase v2 `Salesforce`).
    Salesforce,
    /// A vendor's Android SDK in a customer's app (Chatbase v2 `Android SDK`).
    AndroidSdk,
    /// A vendor's iOS SDK in a customer's app (Chatbase v2 `iOS SDK`).
    IosSdk,
    /// Unknown, missing or explicitly unspecified.
    Unspecified,
}

impl Source {
    /// Every canonical source: SPEC §2.5's, then the channels Chatbase v2 added
    /// that are real and common elsewhere too, `unspecified` last.
    pub const ALL: [Source; 16] = [
        Self::Api,
        Self::Website,
        Self::Widget,
        Self::Whatsapp,
        Self::Messenger,
        Self::Instagram,
        Self::Slack,
        Self::Playground,
        Self::ActionPreview,
        Self::Email,
        Self::Phone,
        Self::Zendesk,
        Self::Salesforce,
        Self::AndroidSdk,
        Self::IosSdk,
        Self::Unspecified,
    ];

    /// The canonical id.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Website => "website",
            Self::Widget => "widget",
            Self::Whatsapp => "whatsapp",
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
            Self::Slack => "slack",
            Self::Playground => "playground",
            Self::ActionPreview => "action_preview",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Zendesk => "zendesk",
            Self::Salesforce => "salesforce",
            Self::AndroidSdk => "android_sdk",
            Self::IosSdk => "ios_sdk",
            Self::Unspecified => "unspecified",
        }
    }

    /// The label a vendor expects in its `filteredSources`, or `None` when that
    /// vendor has no such channel (a filter on it can match nothing there). Each
    /// vendor's labels live in its module's [`VendorInfo`](crate::VendorInfo).
    pub fn vendor_label(self, kind: ProviderKind) -> Option<&'static str> {
        kind.info().source_label(self)
    }

    /// Reads a caller's filter item: a canonical id or any vendor label,
    /// case-insensitive, surrounding spaces ignored. `None` when it names nothing.
    pub fn parse_filter(item: &str) -> Option<Source> {
        let item = item.trim();
        if item.is_empty() {
            return None;
        }
        Self::from_label(item)
    }

    /// Reads a vendor's `source` field. Anything unknown, empty or missing is
    /// `unspecified` (the original survives in `raw`).
    pub fn from_vendor(label: Option<&str>) -> Source {
        label
            .and_then(|l| Self::from_label(l.trim()))
            .unwrap_or(Self::Unspecified)
    }

    /// A canonical id, or any vendor's label for a source (a bot read from two
    /// vendors, or a caller used to one vendor's spelling, may use either).
    fn from_label(label: &str) -> Option<Source> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(label))
            .or_else(|| {
                ProviderKind::ALL
                    .iter()
                    .flat_map(|k| k.info().source_labels)
                    .find(|(_, l)| l.eq_ignore_ascii_case(label))
                    .map(|&(s, _)| s)
            })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_label_reads_back_as_its_canonical_source() {
        for kind in ProviderKind::ALL {
            for source in Source::ALL {
                if let Some(label) = source.vendor_label(kind) {
                    assert_eq!(Source::parse_filter(label), Some(source), "{label}");
                    assert_eq!(Source::from_vendor(Some(label)), source, "{label}");
                }
            }
        }
    }

    #[test]
    fn every_source_serializes_as_its_canonical_id() {
        for source in Source::ALL {
            let json = serde_json::to_value(source).unwrap();
            assert_eq!(json, source.as_str());
            assert_eq!(Source::parse_filter(source.as_str()), Some(source));
        }
    }

    #[test]
    fn chatbase_v2_channels_have_canonical_sources_and_both_zendesks_are_one() {
        assert_eq!(Source::parse_filter("email"), Some(Source::Email));
        assert_eq!(
            Source::parse_filter("Zendesk Messaging"),
            Some(Source::Zendesk)
        );
        assert_eq!(Source::parse_filter("ios sdk"), Some(Source::IosSdk));
        assert_eq!(
            Source::parse_filter("android_sdk"),
            Some(Source::AndroidSdk)
        );
        assert_eq!(Source::parse_filter("Iframe"), Some(Source::Widget));
        assert_eq!(Source::from_vendor(Some("Agent page")), Source::Unspecified);
        assert_eq!(
            Source::Zendesk.vendor_label(ProviderKind::ChatbaseV2),
            Some("Zendesk")
        );
        assert_eq!(Source::Email.vendor_label(ProviderKind::Chatbase), None);
    }

    #[test]
    fn filter_items_are_case_insensitive_and_trimmed() {
        assert_eq!(Source::parse_filter(" whatsapp "), Some(Source::Whatsapp));
        assert_eq!(
            Source::parse_filter("WIDGET OR IFRAME"),
            Some(Source::Widget)
        );
        assert_eq!(Source::parse_filter("Chatzuri Site"), Some(Source::Website));
        assert_eq!(
            Source::parse_filter("action_preview"),
            Some(Source::ActionPreview)
        );
        assert_eq!(Source::parse_filter("fax"), None);
        assert_eq!(Source::parse_filter("  "), None);
    }

    #[test]
    fn unknown_vendor_sources_become_unspecified() {
        assert_eq!(Source::from_vendor(None), Source::Unspecified);
        assert_eq!(Source::from_vendor(Some("")), Source::Unspecified);
        assert_eq!(Source::from_vendor(Some("Telegram")), Source::Unspecified);
        assert_eq!(Source::from_vendor(Some("website")), Source::Website);
    }

    #[test]
    fn chatzuri_has_no_playground_and_chatling_no_channels() {
        assert_eq!(
            Source::Playground.vendor_label(ProviderKind::Chatzuri),
            None
        );
        assert_eq!(
            Source::Website.vendor_label(ProviderKind::Chatzuri),
            Some("Chatzuri site")
        );
        assert_eq!(Source::Api.vendor_label(ProviderKind::Chatling), None);
    }
}
