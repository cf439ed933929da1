//! One bot's conversations, indexed once when set so that answering a request is only
//! filtering and concatenating pre-serialized bytes (the emulator is also a benchmark
//! upstream and must not be the bottleneck).

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::Vendor;

/// A bot's data set, newest conversation first.
#[derive(Debug, Default)]
pub(crate) struct BotData {
    pub(crate) convs: Vec<StoredConv>,
    by_id: HashMap<String, usize>,
}

/// One conversation as the vendor stores it, plus what filtering and paging need.
#[derive(Debug)]
pub(crate) struct StoredConv {
    /// The vendor-native object, exactly as given or generated.
    pub(crate) value: Value,
    /// `value` serialized once.
    pub(crate) json: Bytes,
    /// `created_at` as an instant (Chatbase v2: `createdAt`, Unix seconds); `None` when
    /// missing or unreadable (sorts oldest, never matches a date filter).
    pub(crate) created: Option<DateTime<Utc>>,
    /// Lowercase Title-case source label used by `filteredSources` (see [`source_key`]).
    pub(crate) source_key: String,
    /// Chatling only: each message serialized, newest first by `created_at` (stable).
    pub(crate) messages_desc: Vec<Bytes>,
}

impl StoredConv {
    /// The UTC calendar date of `created_at`, which the vendors' date filters compare.
    pub(crate) fn created_date(&self) -> Option<NaiveDate> {
        self.created.map(|c| c.date_naive())
    }
}

impl BotData {
    /// Indexes `convs` and sorts them newest first by `created_at`, keeping the given
    /// order among equal timestamps (the vendors' lists are newest first; a stable sort
    /// keeps ties deterministic, which the gateway's merge tests rely on).
    pub(crate) fn new(vendor: Vendor, convs: Vec<Value>) -> Self {
        let mut stored: Vec<StoredConv> = convs
            .into_iter()
            .map(|value| StoredConv {
                json: Bytes::from(value.to_string()),
                created: match vendor {
                    Vendor::ChatbaseV2 => value.get("createdAt").and_then(unix_instant),
                    Vendor::Chatbase | Vendor::Chatzuri | Vendor::Chatling => {
                        value.get("created_at").and_then(parse_instant)
                    }
                },
                source_key: source_key(vendor, value.get("source")),
                messages_desc: match vendor {
                    Vendor::Chatling => messages_newest_first(&value),
                    Vendor::Chatbase | Vendor::Chatzuri | Vendor::ChatbaseV2 => Vec::new(),
                },
                value,
            })
            .collect();
        stored.sort_by_key(|c| std::cmp::Reverse(c.created));
        let mut by_id = HashMap::with_capacity(stored.len());
        for (i, conv) in stored.iter().enumerate() {
            if let Some(id) = id_string(&conv.value) {
                // The first of duplicate ids wins, like a lookup in the list would.
                by_id.entry(id).or_insert(i);
            }
        }
        BotData {
            convs: stored,
            by_id,
        }
    }

    /// The conversation with this id (string, or a number written in decimal).
    pub(crate) fn find(&self, id: &str) -> Option<&StoredConv> {
        self.by_id.get(id).and_then(|i| self.convs.get(*i))
    }
}

/// Parses an RFC 3339 timestamp with `Z` or any offset, with or without fractions.
fn parse_instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Reads Unix seconds, to the millisecond.
pub(crate) fn unix_instant(v: &Value) -> Option<DateTime<Utc>> {
    let millis = (v.as_f64()? * 1000.0).round();
    if !millis.is_finite() || millis.abs() > 1e17 {
        return None;
    }
    DateTime::from_timestamp_millis(millis as i64)
}

fn id_string(value: &Value) -> Option<String> {
    match value.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The key a conversation's `source` is matched under: the lowercase Title-case label.
///
/// Chatbase's OpenAPI spells sources in lowercase (`website`, `whatsapp`) while its guide
/// uses Title-case labels (`Chatbase site`, `WhatsApp`); the emulator stores both forms
/// and, like the vendor presumably does, matches either against `filteredSources`.
/// A missing or empty source counts as `Unspecified`, so that a gateway filtering on
/// `unspecified` sees the same conversations it would normalize to `unspecified`.
pub(crate) fn source_key(vendor: Vendor, source: Option<&Value>) -> String {
    let raw = source.and_then(Value::as_str).map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return "unspecified".to_owned();
    }
    let lower = raw.to_ascii_lowercase();
    if lower == "website" {
        return match vendor {
            Vendor::Chatzuri => "chatzuri site".to_owned(),
            Vendor::Chatbase | Vendor::Chatling | Vendor::ChatbaseV2 => "chatbase site".to_owned(),
        };
    }
    lower
}

/// A Chatling conversation's messages, serialized, newest first by `created_at`; ties and
/// unparseable timestamps keep the stored order (Chatling stores newest first already).
fn messages_newest_first(conv: &Value) -> Vec<Bytes> {
    let Some(messages) = conv.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut keyed: Vec<(Option<DateTime<Utc>>, Bytes)> = messages
        .iter()
        .map(|m| {
            (
                m.get("created_at").and_then(parse_instant),
                Bytes::from(m.to_string()),
            )
        })
        .collect();
    keyed.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
    keyed.into_iter().map(|(_, json)| json).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_newest_first_by_instant_across_offsets_and_keeps_ties_stable() {
        let data = BotData::new(
            Vendor::Chatbase,
            vec![
                json!({"id": "a", "created_at": "2024-03-05T10:00:00Z"}),
                json!({"id": "b", "created_at": "2024-03-05T11:30:00+02:00"}), // 09:30Z
                json!({"id": "c", "created_at": "2024-03-05T10:00:00.000+00:00"}), // tie with a
                json!({"id": "d"}),
                json!({"id": "e", "created_at": "2024-03-06T00:00:00.5Z"}),
            ],
        );
        let ids: Vec<&str> = data
            .convs
            .iter()
            .filter_map(|c| c.value["id"].as_str())
            .collect();
        assert_eq!(ids, ["e", "a", "c", "b", "d"]);
        assert_eq!(
            data.find("b").and_then(|c| c.created_date()),
            NaiveDate::from_ymd_opt(2024, 3, 5)
        );
        assert!(data.find("zz").is_none());
    }

    #[test]
    fn chatbase_v2_sorts_by_its_unix_seconds() {
        let data = BotData::new(
            Vendor::ChatbaseV2,
            vec![
                json!({"id": "a", "createdAt": 1_709_370_000}),
                json!({"id": "b", "createdAt": 1_709_370_000.5}),
                json!({"id": "c", "createdAt": "2024-03-02T09:00:00Z"}),
                json!({"id": "d", "createdAt": 1_709_370_000}),
            ],
        );
        let ids: Vec<&str> = data
            .convs
            .iter()
            .filter_map(|c| c.value["id"].as_str())
            .collect();
        assert_eq!(ids, ["b", "a", "d", "c"]);
        assert_eq!(
            data.find("b").and_then(|c| c.created_date()),
            NaiveDate::from_ymd_opt(2024, 3, 2)
        );
    }

    #[test]
    fn source_key_maps_both_spellings_to_the_title_case_label() {
        let key = |v: Value| source_key(Vendor::Chatbase, Some(&v));
        assert_eq!(key(json!("WhatsApp")), "whatsapp");
        assert_eq!(key(json!("whatsapp")), "whatsapp");
        assert_eq!(key(json!("website")), "chatbase site");
        assert_eq!(key(json!("Chatbase site")), "chatbase site");
        assert_eq!(key(json!("")), "unspecified");
        assert_eq!(key(json!(null)), "unspecified");
        assert_eq!(source_key(Vendor::Chatbase, None), "unspecified");
        assert_eq!(
            source_key(Vendor::Chatzuri, Some(&json!("website"))),
            "chatzuri site"
        );
    }

    #[test]
    fn chatling_messages_are_indexed_newest_first_stably() {
        let data = BotData::new(
            Vendor::Chatling,
            vec![
                json!({"id": "1", "created_at": "2024-06-14T15:45:34+00:00", "messages": [
                    {"text": "a", "created_at": "2024-06-14T15:45:34+00:00"},
                    {"text": "b", "created_at": "2024-06-14T15:45:39+00:00"},
                    {"text": "c", "created_at": "2024-06-14T15:45:34+00:00"},
                ]}),
            ],
        );
        let texts: Vec<String> = data.convs[0]
            .messages_desc
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_slice(b).expect("stored message is JSON");
                v["text"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(texts, ["b", "a", "c"]);
    }
}
