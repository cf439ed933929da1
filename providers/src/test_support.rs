//! What the unit tests of the JSON-text modules ([`crate::text`],
//! [`crate::pull`]) write strings with, shared so both test the same spellings.

use proptest::prelude::*;

/// `units` (UTF-16 code units) as `\u` escapes, hex in upper or lower case.
pub(crate) fn unicode_escapes(units: &[u16], upper: bool) -> String {
    units
        .iter()
        .map(|u| {
            if upper {
                format!("\\u{u:04X}")
            } else {
                format!("\\u{u:04x}")
            }
        })
        .collect()
}

/// `text` as serde_json escapes it, without the quotes.
pub(crate) fn serde_escaped(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_default();
    json[1..json.len() - 1].to_owned()
}

/// Any text, or text made of what JSON escapes: quotes, backslashes, `/`,
/// control characters, DEL, line separators, non-ASCII.
pub(crate) fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/\n\r\t\u{8}\u{c}\u{0}-\u{1f}\u{7f}a-z é€😊\u{2028}]{0,40}",
    ]
}

/// `text` as a JSON string, its `i`th character spelled by `spell` as
/// `hows[i]` picks (cycling through `hows`, which must not be empty).
pub(crate) fn quoted(text: &str, hows: &[u8], spell: fn(char, u8) -> String) -> String {
    let mut json = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        json.push_str(&spell(c, hows[i % hows.len()]));
    }
    json.push('"');
    json
}
