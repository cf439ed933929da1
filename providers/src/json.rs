//! The normalized model written as JSON by hand, into one buffer.
//!
//! Every answer the gateway sends on a cache miss is a page of
//! [`Conversation`]s, and writing it is a large share of the miss path's work:
//! serde_json's generic serializer looks each byte of each string up in a table
//! and grows its buffer as it goes. This writer checks eight bytes at a time for
//! the few that need escaping and writes into a buffer sized beforehand.
//!
//! The output is byte for byte what `serde_json::to_vec` writes for the same
//! value (the `Serialize` derives in [`crate::model`] stay the contract, and the
//! OpenAPI schema is derived from them): the tests below compare the two on
//! every field shape and on arbitrary text, so a field added to the model and
//! not here fails them.

use crate::model::{Conversation, KbSource, Message};
use crate::text::{escape, JsonText};
use crate::timestamp::with_rfc3339;

/// Bytes a conversation will take, without its message texts and `raw`: an
/// estimate to size the buffer once, not a bound.
const CONVERSATION_OVERHEAD: usize = 256;
/// Bytes a message will take, without its text.
const MESSAGE_OVERHEAD: usize = 64;

/// About how many bytes [`conversations`] writes for `items` (an estimate to
/// size the buffer once: a little over for plain text, under for text full of
/// escapes).
pub fn estimated_len(items: &[Conversation]) -> usize {
    items.iter().map(estimated_conversation_len).sum()
}

fn estimated_conversation_len(c: &Conversation) -> usize {
    let messages: usize = c
        .messages
        .iter()
        .map(|m| MESSAGE_OVERHEAD + m.content.escaped().len() + m.sources.len() * 128)
        .sum();
    CONVERSATION_OVERHEAD + messages + c.raw.as_ref().map_or(0, |r| r.get().len())
}

/// Appends `items` as a JSON array, as serde_json writes a `&[Conversation]`.
pub fn conversations(out: &mut Vec<u8>, items: &[Conversation]) {
    array(out, items, conversation);
}

/// Appends `items` as a JSON array, each written by `write`.
fn array<T>(out: &mut Vec<u8>, items: &[T], write: fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// Appends one conversation, as serde_json writes it.
pub fn conversation(out: &mut Vec<u8>, c: &Conversation) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &c.id);
    out.extend_from_slice(b",\"chatbot_id\":");
    string(out, &c.chatbot_id);
    out.extend_from_slice(b",\"provider\":\"");
    // Kind names are plain lowercase ASCII: nothing to escape.
    out.extend_from_slice(c.provider.as_str().as_bytes());
    out.extend_from_slice(b"\",\"created_at\":");
    time(out, Some(&c.created_at));
    out.extend_from_slice(b",\"updated_at\":");
    time(out, c.updated_at.as_ref());
    out.extend_from_slice(b",\"customer\":");
    optional_string(out, c.customer.as_deref());
    out.extend_from_slice(b",\"source\":\"");
    // Canonical source ids are plain lowercase ASCII too.
    out.extend_from_slice(c.source.as_str().as_bytes());
    out.extend_from_slice(b"\",\"messages\":");
    array(out, &c.messages, message);
    if let Some(raw) = &c.raw {
        out.extend_from_slice(b",\"raw\":");
        out.extend_from_slice(raw.get().as_bytes());
    }
    out.push(b'}');
}

fn message(out: &mut Vec<u8>, m: &Message) {
    out.extend_from_slice(b"{\"role\":\"");
    out.extend_from_slice(m.role.as_str().as_bytes());
    out.push(b'"');
    if let Some(vendor_role) = &m.vendor_role {
        out.extend_from_slice(b",\"vendor_role\":");
        string(out, vendor_role);
    }
    out.extend_from_slice(b",\"content\":");
    text(out, &m.content);
    out.extend_from_slice(b",\"created_at\":");
    time(out, m.created_at.as_ref());
    if !m.sources.is_empty() {
        out.extend_from_slice(b",\"sources\":");
        array(out, &m.sources, kb_source);
    }
    out.push(b'}');
}

fn kb_source(out: &mut Vec<u8>, s: &KbSource) {
    out.push(b'{');
    let mut first = true;
    for (key, value) in [
        (&b"\"type\":"[..], &s.kind),
        (&b"\"title\":"[..], &s.title),
        (&b"\"url\":"[..], &s.url),
    ] {
        if let Some(value) = value {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            string(out, value);
        }
    }
    out.push(b'}');
}

fn time(out: &mut Vec<u8>, t: Option<&chrono::DateTime<chrono::Utc>>) {
    match t {
        // RFC 3339 text is plain ASCII with nothing to escape.
        Some(t) => {
            out.push(b'"');
            with_rfc3339(t, |text| out.extend_from_slice(text.as_bytes()));
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn optional_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `s` as a JSON string exactly as serde_json escapes it: `"` and `\`
/// with a backslash; `\b`, `\f`, `\n`, `\r`, `\t` by name; other bytes below
/// 0x20 as `\u00XX` in lowercase hex; everything else, non-ASCII included,
/// as it is.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape(s, |piece| out.extend_from_slice(piece.as_bytes()));
    out.push(b'"');
}

/// Appends `t` as a JSON string: its escaped form is already what [`string`]
/// writes, so it is copied as it is.
pub fn text(out: &mut Vec<u8>, t: &JsonText) {
    out.push(b'"');
    out.extend_from_slice(t.escaped().as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::*;
    use crate::model::{ProviderKind, Role};
    use crate::sources::Source;

    fn written(c: &Conversation) -> String {
        let mut out = Vec::new();
        conversation(&mut out, c);
        String::from_utf8(out).unwrap()
    }

    fn serde(c: &Conversation) -> String {
        serde_json::to_string(c).unwrap()
    }

    fn message(text: &str) -> Message {
        Message {
            role: Role::User,
            vendor_role: None,
            content: text.into(),
            created_at: None,
            sources: Vec::new(),
        }
    }

    fn sample() -> Conversation {
        let t = Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 34).unwrap();
        Conversation {
            id: "conv \"1\"".to_owned(),
            chatbot_id: "support".to_owned(),
            provider: ProviderKind::ChatbaseV2,
            created_at: t + chrono::Duration::milliseconds(250),
            updated_at: None,
            customer: Some("José <jose@example.com>".to_owned()),
            source: Source::ActionPreview,
            messages: vec![
                Message {
                    role: Role::Assistant,
                    vendor_role: Some("agent\n".to_owned()),
                    content: "**Hi** \"there\"\n\tC:\\path 😊 \u{2028} \u{7f}\u{1}\u{8}\u{c}"
                        .into(),
                    created_at: Some(t),
                    sources: vec![
                        KbSource {
                            kind: Some("webpage".to_owned()),
                            title: None,
                            url: Some("https://example.com/a?b=\"c\"".to_owned()),
                        },
                        KbSource {
                            kind: None,
                            title: None,
                            url: None,
                        },
                        KbSource {
                            kind: None,
                            title: Some("Billing — FAQ".to_owned()),
                            url: None,
                        },
                    ],
                },
                Message {
                    role: Role::System,
                    ..message("")
                },
            ],
            raw: Some(
                RawValue::from_string(r#"{"id": "conv \"1\"", "x": [1, 2.50]}"#.to_owned())
                    .unwrap(),
            ),
        }
    }

    #[test]
    fn every_field_shape_is_written_as_serde_json_writes_it() {
        let full = sample();
        assert_eq!(written(&full), serde(&full));
        let bare = Conversation {
            updated_at: Some(full.created_at),
            customer: None,
            messages: Vec::new(),
            raw: None,
            ..full.clone()
        };
        assert_eq!(written(&bare), serde(&bare));
        for kind in ProviderKind::ALL {
            for source in Source::ALL {
                let c = Conversation {
                    provider: kind,
                    source,
                    ..bare.clone()
                };
                assert_eq!(written(&c), serde(&c));
            }
        }
        for role in [Role::User, Role::Assistant, Role::System] {
            let c = Conversation {
                messages: vec![Message {
                    role,
                    ..message("x")
                }],
                ..bare.clone()
            };
            assert_eq!(written(&c), serde(&c));
        }
    }

    #[test]
    fn a_list_is_written_as_serde_json_writes_a_slice() {
        let items = vec![sample(), sample()];
        let mut out = Vec::new();
        conversations(&mut out, &items);
        assert_eq!(out, serde_json::to_vec(&items).unwrap());
        let mut empty = Vec::new();
        conversations(&mut empty, &[]);
        assert_eq!(empty, b"[]");
    }

    #[test]
    fn every_byte_that_needs_escaping_is_escaped_wherever_it_falls_in_a_word() {
        for c in (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '😊', '\u{2028}'])
        {
            for offset in 0..17 {
                let text = format!("{}{c}{}", "a".repeat(offset), "b".repeat(offset % 5));
                let mut out = Vec::new();
                string(&mut out, &text);
                assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{c:?} at {offset}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_is_escaped_as_serde_json_escapes_it(text in any::<String>()) {
            let mut out = Vec::new();
            string(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn text_dense_in_escapes_is_escaped_as_serde_json_escapes_it(
            text in "[\"\\\\\n\t\u{0}-\u{1f}a-z é😊]{0,64}"
        ) {
            let mut out = Vec::new();
            string(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }
    }
}
