//! Vendor text kept as the JSON it arrived as.
//!
//! Most of the bytes of a page are message texts that come in as JSON strings
//! and go out as JSON strings. Decoding each one on the way in and escaping it
//! again on the way out was about a third of the work of a cache miss, for
//! nothing: a vendor whose JSON library escapes as serde_json does (as
//! JavaScript's `JSON.stringify` and Python's `json.dumps(ensure_ascii=False)`
//! do) already sends exactly the bytes the answer needs. [`JsonText`] holds text
//! in that escaped form: read from a vendor, it keeps the vendor's bytes when
//! they are already canonical, and the answer writer copies them as they are.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Text held in its canonical JSON escaped form: the characters between the
/// quotes of the JSON string serde_json writes for it (`"` and `\` escaped with
/// a backslash; `\b`, `\f`, `\n`, `\r`, `\t` by name; other characters below
/// U+0020 as `\u00XX` in lowercase hex; everything else, `/`, DEL and non-ASCII
/// included, as it is).
///
/// Writing it as JSON is a copy of [`escaped`](Self::escaped). The text itself
/// ([`as_str`](Self::as_str), or through `Deref<Target = str>`) is decoded the
/// first time it is asked for and kept, so code that reads the text (tests,
/// merging, export) reads a plain `str`, and the answer path never decodes.
///
/// Two values are equal when their texts are: the canonical form of a text is
/// unique, so equality, ordering and hashing compare the escaped forms.
/// [`Serialize`] writes the text, as a `String` field did, so `serde_json`'s
/// output of the model is unchanged.
#[derive(Clone, Default)]
pub struct JsonText {
    /// The canonical escaped form (always valid as a JSON string's contents).
    escaped: String,
    /// The decoded text, once asked for, when `escaped` holds a backslash (when
    /// it does not, the text is `escaped` itself).
    decoded: OnceLock<String>,
}

impl JsonText {
    /// Holds `text`, escaped.
    pub fn new(text: &str) -> Self {
        let mut escaped = String::with_capacity(text.len());
        escape(text, |piece| escaped.push_str(piece));
        Self::from_escaped(escaped)
    }

    /// Reads a JSON string as the text it stands for, keeping its bytes when
    /// they are already canonical. `None` when `json` is not a string, or is a
    /// string serde_json would not read into a `String` (an escaped lone
    /// surrogate), so the caller can fall back to reading it as serde_json does
    /// and get serde_json's own error.
    pub(crate) fn from_json(json: &RawValue) -> Option<Self> {
        let json = json.get();
        let contents = json.strip_prefix('"')?.strip_suffix('"')?;
        if is_canonical(contents) {
            return Some(Self::from_escaped(contents.to_owned()));
        }
        serde_json::from_str::<String>(json)
            .ok()
            .map(|text| Self::new(&text))
    }

    /// The texts of `parts` joined by `separator`, escaped: escaping works
    /// character by character, so the escaped parts are joined as they are.
    pub(crate) fn join<'a>(parts: impl IntoIterator<Item = &'a JsonText>, separator: &str) -> Self {
        let separator = Self::new(separator);
        let mut escaped = String::new();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                escaped.push_str(&separator.escaped);
            }
            escaped.push_str(&part.escaped);
        }
        Self::from_escaped(escaped)
    }

    /// Holds text whose canonical escaped form is `escaped`, as it is. The
    /// caller has checked that `escaped` is canonical (a reading that keeps
    /// vendor bytes, such as [`crate::pull::Reader::json_text`]).
    pub(crate) fn from_escaped(escaped: String) -> Self {
        Self {
            escaped,
            decoded: OnceLock::new(),
        }
    }

    /// The canonical escaped form: what goes between the quotes when the text
    /// is written as a JSON string. Its length is the written length less two.
    pub fn escaped(&self) -> &str {
        &self.escaped
    }

    /// The text itself, decoded on first use.
    pub fn as_str(&self) -> &str {
        if !self.escaped.contains('\\') {
            return &self.escaped;
        }
        self.decoded.get_or_init(|| unescape(&self.escaped))
    }

    /// True for the empty text.
    pub fn is_empty(&self) -> bool {
        self.escaped.is_empty()
    }
}

impl Deref for JsonText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for JsonText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for JsonText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for JsonText {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.escaped == other.escaped
    }
}

impl Eq for JsonText {}

impl Hash for JsonText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.escaped.hash(state);
    }
}

impl PartialEq<str> for JsonText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for JsonText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for JsonText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How serde_json escapes each character below U+0020.
const CONTROL_ESCAPES: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b",
    "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012",
    "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
    "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

/// Hands `text`, escaped as serde_json escapes it, to `emit` piece by piece:
/// runs of text that need no escaping, and escape sequences.
pub(crate) fn escape(text: &str, mut emit: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    // `text[start..i]` is emitted as it is once a byte needing escape (or the
    // end) is found. Such bytes are ASCII, so every cut is on a character
    // boundary.
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time up to the next byte that needs escaping.
        if let Some(chunk) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            let flagged = escape_mask(word);
            if flagged == 0 {
                i += 8;
                continue;
            }
            i += flagged.trailing_zeros() as usize / 8;
        }
        let escaped = match bytes[i] {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b @ 0..=0x1f => CONTROL_ESCAPES[usize::from(b)],
            _ => {
                i += 1;
                continue;
            }
        };
        emit(&text[start..i]);
        emit(escaped);
        i += 1;
        start = i;
    }
    emit(&text[start..]);
}

/// The high bit of each byte of `word` (little-endian) that is `"`, `\` or
/// below 0x20, and possibly of bytes after the first such one: the classic
/// "has a zero byte" and "has a byte less than n" tests are exact up to the
/// first byte they flag, which is all the caller uses (`trailing_zeros`).
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    below_space
        | zero_bytes(word ^ (ONES * u64::from(b'"')))
        | zero_bytes(word ^ (ONES * u64::from(b'\\')))
}

/// Whether the contents of a JSON string serde_json has read are escaped
/// exactly as [`escape`] escapes the text they stand for. Only the escapes
/// need checking: in a string serde_json accepted, `"`, `\` and characters
/// below U+0020 only ever appear escaped.
fn is_canonical(contents: &str) -> bool {
    let bytes = contents.as_bytes();
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[at..]) {
        let escape = at + found;
        at = match canonical_escape_len(&bytes[escape + 1..]) {
            Some(len) => escape + 1 + len,
            None => return false,
        };
    }
    true
}

/// The length of the escape at the start of `tail` (what follows a
/// backslash) when it is one [`escape`] writes, else `None`: `\/`, uppercase
/// hex, a `\u` escape of a character that is written as it is or by name, and
/// anything else are not canonical.
#[inline]
pub(crate) fn canonical_escape_len(tail: &[u8]) -> Option<usize> {
    match tail {
        [b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't', ..] => Some(1),
        [b'u', b'0', b'0', high @ (b'0' | b'1'), low, ..]
            if matches!(low, b'0'..=b'9' | b'a'..=b'f')
                && CONTROL_ESCAPES[usize::from(((high - b'0') << 4) | hex(*low))]
                    .starts_with("\\u") =>
        {
            Some(5)
        }
        _ => None,
    }
}

/// The value of a lowercase hex digit (`canonical_escape_len` has checked it
/// is one).
fn hex(digit: u8) -> u8 {
    match digit {
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.wrapping_sub(b'0') & 0x0f,
    }
}

/// Decodes a canonical escaped form. Total, whatever it is given: an escape
/// that is not canonical is kept as it is (none reaches here).
fn unescape(escaped: &str) -> String {
    let mut text = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('\\') {
        text.push_str(&rest[..at]);
        let tail = &rest.as_bytes()[at + 1..];
        let (decoded, len) = match tail {
            [b'"', ..] => ('"', 1),
            [b'\\', ..] => ('\\', 1),
            [b'b', ..] => ('\u{8}', 1),
            [b'f', ..] => ('\u{c}', 1),
            [b'n', ..] => ('\n', 1),
            [b'r', ..] => ('\r', 1),
            [b't', ..] => ('\t', 1),
            [b'u', b'0', b'0', high @ (b'0' | b'1'), low, ..] if matches!(low, b'0'..=b'9' | b'a'..=b'f') => {
                (char::from(((high - b'0') << 4) | hex(*low)), 5)
            }
            _ => ('\\', 0),
        };
        text.push(decoded);
        rest = &rest[at + 1 + len..];
    }
    text.push_str(rest);
    text
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{quoted, serde_escaped, tricky_text, unicode_escapes};

    /// What a `String` field held: serde_json's reading of `json`.
    fn serde_reading(json: &str) -> Option<String> {
        serde_json::from_str::<String>(json).ok()
    }

    /// What `JsonText` reads from `json` (a JSON value's text).
    fn reading(json: &str) -> Option<JsonText> {
        let raw: &RawValue = serde_json::from_str(json).ok()?;
        JsonText::from_json(raw)
    }

    #[test]
    fn canonical_strings_are_kept_as_they_are_and_others_are_not() {
        for (contents, canonical) in [
            ("", true),
            ("plain text, é € 😊 / \u{7f} \u{2028}", true),
            (r#"\" \\ \b \f \n \r \t"#, true),
            (r"\u0000 \u0001 \u000b \u000e \u001f \u001a", true),
            (r"\/", false),
            (r"\u00e9", false),
            (r"\u001A", false),
            (r"\u0008", false),
            (r"\u0009", false),
            (r"\u000a", false),
            (r"\u000c", false),
            (r"\u000d", false),
            (r"\u0020", false),
            (r"\u0041", false),
            (r"\u007f", false),
            (r"\u0022", false),
            (r"\u005c", false),
            (r"\uD83D\uDE00", false),
            (r"\ud800", false),
        ] {
            assert_eq!(is_canonical(contents), canonical, "{contents}");
        }
    }

    #[test]
    fn what_serde_json_refuses_as_a_string_is_refused() {
        for json in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""a\ud800\u0041""#,
            r#""\ud83dx""#,
            "1",
            "null",
            "true",
            "[\"a\"]",
            "{\"a\":\"b\"}",
        ] {
            assert!(serde_reading(json).is_none(), "{json}");
            assert!(reading(json).is_none(), "{json}");
        }
    }

    #[test]
    fn every_character_below_0x80_survives_every_spelling() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            let text = format!("a{c}b");
            let mut spellings = vec![
                format!("\"a\\u{:04x}b\"", byte),
                format!("\"a\\u{:04X}b\"", byte),
                serde_json::to_string(&text).unwrap(),
            ];
            if !matches!(c, '"' | '\\' | '\0'..='\u{1f}') {
                spellings.push(format!("\"{text}\""));
            }
            for json in spellings {
                let t = reading(&json).unwrap();
                assert_eq!(t.escaped(), serde_escaped(&text), "{json}");
                assert_eq!(t.as_str(), text, "{json}");
            }
        }
    }

    #[test]
    fn joined_texts_are_the_texts_joined() {
        let parts = [
            JsonText::new("a\"b"),
            JsonText::new(""),
            JsonText::new("c\n"),
        ];
        let joined = JsonText::join(&parts, "\n\n");
        assert_eq!(joined.as_str(), "a\"b\n\n\n\nc\n");
        assert_eq!(joined, JsonText::new("a\"b\n\n\n\nc\n"));
        assert_eq!(JsonText::join(&[], "\n\n"), JsonText::new(""));
    }

    #[test]
    fn a_text_serializes_as_a_string_holding_it() {
        let text = "**Hi** \"there\"\n\tC:\\path 😊 \u{7f}\u{1}";
        assert_eq!(
            serde_json::to_string(&JsonText::new(text)).unwrap(),
            serde_json::to_string(text).unwrap()
        );
        assert_eq!(format!("{:?}", JsonText::new(text)), format!("{text:?}"));
        assert_eq!(JsonText::new(text).to_string(), text);
    }

    /// A character spelled any way JSON allows, picked by `how`.
    fn spelled(c: char, how: u8) -> String {
        let mut units = [0u16; 2];
        let units = c.encode_utf16(&mut units);
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        match (how % 4, short) {
            (0, _) if !matches!(c, '"' | '\\' | '\0'..='\u{1f}') => c.to_string(),
            (1, Some(short)) => short.to_owned(),
            (2, _) => unicode_escapes(units, false),
            (3, _) => unicode_escapes(units, true),
            _ => serde_escaped(&c.to_string()),
        }
    }

    proptest! {
        #[test]
        fn a_new_text_is_escaped_as_serde_json_escapes_it(text in tricky_text()) {
            let t = JsonText::new(&text);
            prop_assert_eq!(t.escaped(), serde_escaped(&text));
            prop_assert_eq!(t.as_str(), text.as_str());
            prop_assert_eq!(t.is_empty(), text.is_empty());
        }

        #[test]
        fn any_spelling_reads_as_serde_json_reads_it_and_writes_canonically(
            text in tricky_text(),
            hows in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let json = quoted(&text, &hows, spelled);
            let expected = serde_reading(&json).unwrap();
            prop_assert_eq!(&expected, &text);
            let t = reading(&json).unwrap();
            prop_assert_eq!(t.escaped(), serde_escaped(&expected));
            prop_assert_eq!(t.as_str(), expected.as_str());
            // The canonical spelling is the one kept as it is.
            prop_assert_eq!(
                is_canonical(&json[1..json.len() - 1]),
                json == serde_json::to_string(&expected).unwrap()
            );
            prop_assert_eq!(t, JsonText::new(&expected));
        }

        #[test]
        fn escaped_strings_with_stray_surrogates_read_as_serde_json_reads_them(
            prefix in "[a-z\n]{0,4}",
            unit in 0xd800u16..0xe000,
            after in prop_oneof![
                Just(String::new()),
                Just("x".to_owned()),
                (0u16..=0xffff).prop_map(|u| format!("\\u{u:04x}")),
            ],
        ) {
            let contents = format!("{prefix}\\u{unit:04x}{after}");
            let json = format!("\"{}\"", contents.replace('\n', "\\n"));
            let expected = serde_reading(&json);
            let got = reading(&json);
            prop_assert_eq!(got.is_some(), expected.is_some(), "{}", json);
            if let (Some(got), Some(expected)) = (got, expected) {
                prop_assert_eq!(got.as_str(), expected.as_str());
                prop_assert_eq!(got.escaped(), serde_escaped(&expected));
            }
        }
    }
}
