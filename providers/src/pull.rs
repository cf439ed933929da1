//! A small JSON pull reader for vendor bodies whose shape is known.
//!
//! Reading the vendor's page with serde was about two thirds of a cache
//! miss: serde_json's byte-at-a-time string scanning, serde's per-field
//! visitor machinery, and a second scan of every message text to see whether
//! its escaped bytes can be kept ([`JsonText`]). A [`Reader`] has no visitors:
//! the caller says what each key means ([`Reader::object`]). It finds the end
//! of each string with memchr's SIMD search, decides whether a text is
//! canonical while it finds its end, and looks for bytes below 0x20 once in
//! the whole body rather than in every string. Read this way, a
//! 100-conversation Chatbase page costs the gateway about a fifth fewer
//! instructions end to end (`bench/instructions.sh`).
//!
//! # The contract: `Some` only where serde_json agrees
//!
//! Every method returns an `Option`, and `None` means "not sure", never "bad
//! body": the caller then reads the body the way it always did (with serde),
//! so every answer and every error stays what serde makes of it. A method
//! returns `Some` only for JSON that serde_json accepts, read to the value
//! serde_json reads. It returns `None` (it *bails*) for every JSON error and
//! also, conservatively, for valid JSON that serde reads in ways the reader
//! does not model: any escaped lone surrogate (which serde_json refuses in a
//! `String` but accepts in a value it skips), any key holding a backslash
//! (serde unescapes `"d\u0061ta"` to `data`), numbers other than plain
//! unsigned integers where a number is read, and nesting deeper than
//! [`MAX_DEPTH`].
//!
//! What it accepts, it accepts as serde_json does: whitespace is space, `\t`,
//! `\n` and `\r`; strings hold no raw character below U+0020 and only the
//! escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (hex in either case, surrogate
//! pairs as one character); numbers follow JSON's grammar; a document is one
//! value with nothing but whitespace after it.
//!
//! ```text
//! Reader::document(text, |r| {
//!     let mut data = None;
//!     r.object(|key, r| match key {
//!         "data" => { data = Some(r.string()?); Some(()) }
//!         _ => r.skip_value(),
//!     })?;
//!     data
//! })
//! ```

use std::borrow::Cow;

use crate::text::{self, JsonText};

/// The deepest nesting of objects and arrays a [`Reader`] reads (the document
/// itself is depth one). Deeper bodies are left to serde_json, whose own limit
/// is higher; the cap keeps the reader's recursion bounded.
const MAX_DEPTH: u32 = 64;

/// Reads one JSON document from the front, value by value, as the caller asks.
/// Every method skips the whitespace before what it reads.
pub(crate) struct Reader<'a> {
    text: &'a str,
    /// Where the next unread byte is.
    at: usize,
    /// Objects and arrays open around `at`.
    depth: u32,
    /// Whether `text` holds any byte below 0x20. Only then can a string
    /// hold one (raw, which JSON forbids), so only then are strings checked
    /// for them: a compact body, as JavaScript's `JSON.stringify` writes,
    /// holds none, and one pass over the whole body costs less than one per
    /// string.
    controls: bool,
    /// Finds the ends of strings and their escapes.
    finder: Finder,
}

/// Finds the next `"` or `\`: memchr's AVX2 searcher, built once per body
/// where the CPU has AVX2, else memchr's `memchr2`, which picks a searcher on
/// every call. Most searches in a body are short (a key, an id, the text
/// between two escapes), and that choice was a third of each.
struct Finder {
    /// memchr's AVX2 searcher, when the CPU has AVX2.
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::Two>,
}

impl Finder {
    /// Picks the searcher for this CPU.
    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::Two::new(b'"', b'\\'),
        }
    }

    /// Where the first `"` or `\` of `haystack` is.
    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(two) = &self.avx2 {
            return two.find(haystack);
        }
        memchr::memchr2(b'"', b'\\', haystack)
    }
}

impl<'a> Reader<'a> {
    /// Reads `text` as one JSON document: `read` reads its value, after which
    /// only whitespace may follow.
    pub(crate) fn document<T>(
        text: &'a str,
        read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
    ) -> Option<T> {
        let mut reader = Reader {
            text,
            at: 0,
            depth: 0,
            controls: has_control(text.as_bytes()),
            finder: Finder::new(),
        };
        let value = read(&mut reader)?;
        reader.skip_whitespace();
        (reader.at == text.len()).then_some(value)
    }

    /// The next byte after whitespace, not consumed: what kind of value comes.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.as_bytes().get(self.at).copied()
    }

    /// Reads an object, handing each key and the reader (at the key's value)
    /// to `entry`, which must read or skip the value. Keys are compared as
    /// they are written: a key holding a backslash bails.
    pub(crate) fn object(
        &mut self,
        mut entry: impl FnMut(&'a str, &mut Self) -> Option<()>,
    ) -> Option<()> {
        self.open(b'{')?;
        if self.peek()? == b'}' {
            return self.close();
        }
        loop {
            self.expect(b'"')?;
            let key = self.contents()?;
            if !key.plain {
                return None;
            }
            self.expect(b':')?;
            entry(key.raw, self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => return self.close(),
                _ => return None,
            }
        }
    }

    /// Reads an array, calling `item` with the reader at each element, which
    /// it must read or skip.
    pub(crate) fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.open(b'[')?;
        if self.peek()? == b']' {
            return self.close();
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => return self.close(),
                _ => return None,
            }
        }
    }

    /// Reads an array whose elements `read` reads, into a `Vec`.
    pub(crate) fn vec<T>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut items = Vec::new();
        self.array(|r| {
            items.push(read(r)?);
            Some(())
        })?;
        Some(items)
    }

    /// Reads a string as the text it stands for (borrowed when it holds no
    /// escape).
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let contents = self.contents()?;
        if contents.plain {
            return Some(Cow::Borrowed(contents.raw));
        }
        decode(contents.raw).map(Cow::Owned)
    }

    /// Reads a string as a [`JsonText`], keeping its bytes when they are
    /// already canonical (as [`JsonText::from_json`] does, without scanning
    /// the text a second time).
    pub(crate) fn json_text(&mut self) -> Option<JsonText> {
        self.expect(b'"')?;
        let contents = self.contents()?;
        if contents.canonical {
            return Some(JsonText::from_escaped(contents.raw.to_owned()));
        }
        decode(contents.raw).map(|text| JsonText::new(&text))
    }

    /// Reads an unsigned integer written plainly: digits, no leading zero, at
    /// most `u64::MAX`: what serde_json hands a visitor as a `u64`. Any other
    /// number bails: a sign or an overflow here, a fraction or an exponent
    /// where the container (or [`document`](Self::document)) finds its `.`,
    /// `e` or `E` instead of what may follow a value.
    pub(crate) fn unsigned(&mut self) -> Option<u64> {
        self.skip_whitespace();
        let bytes = self.text.as_bytes();
        let start = self.at;
        let end = digits_end(bytes, start);
        let digits = bytes.get(start..end)?;
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        let mut value: u64 = 0;
        for &d in digits {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.at = end;
        Some(value)
    }

    /// `None` inside for `null`, else what `read` reads: an `Option` field.
    pub(crate) fn null_or<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// Reads any value and drops it, checking it as serde_json checks a value
    /// it ignores.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(|_, r| r.skip_value()),
            b'[' => self.array(Self::skip_value),
            b'"' => {
                self.at += 1;
                self.contents().map(drop)
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// Consumes JSON whitespace: space, `\t`, `\n` and `\r`, as serde_json.
    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Consumes `byte` after whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `word` (`true`, `false`, `null`) after whitespace.
    fn literal(&mut self, word: &str) -> Option<()> {
        self.skip_whitespace();
        let rest = self.text.get(self.at..)?;
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// Opens an object or array, one level deeper.
    fn open(&mut self, bracket: u8) -> Option<()> {
        self.expect(bracket)?;
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Consumes the closing bracket `peek` has seen, one level up.
    fn close(&mut self) -> Option<()> {
        self.at += 1;
        self.depth -= 1;
        Some(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as serde_json skips a
    /// number (a leading zero followed by a digit is left for the container,
    /// which bails on the digit).
    fn skip_number(&mut self) -> Option<()> {
        let bytes = self.text.as_bytes();
        let mut at = self.at;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        at = match bytes.get(at)? {
            b'0' => at + 1,
            b'1'..=b'9' => digits_end(bytes, at + 1),
            _ => return None,
        };
        if bytes.get(at) == Some(&b'.') {
            let end = digits_end(bytes, at + 1);
            if end == at + 1 {
                return None;
            }
            at = end;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let end = digits_end(bytes, at);
            if end == at {
                return None;
            }
            at = end;
        }
        self.at = at;
        Some(())
    }

    /// Reads a string's contents, the reader just past its opening quote, and
    /// consumes its closing quote. Checks it as serde_json checks a string it
    /// reads into a `String` (no raw control characters, known escapes,
    /// surrogates paired), and notes on the way whether it holds escapes and
    /// whether it is canonical ([`text::canonical_escape_len`]).
    #[inline]
    fn contents(&mut self) -> Option<Contents<'a>> {
        let start = self.at;
        // Most strings of a body are short and plain (keys, ids, timestamps,
        // roles): they end within a few words, which is cheaper to see here
        // than through the search below.
        let Some(len) = short_plain_len(self.text.as_bytes().get(start..)?) else {
            return self.escaped_contents();
        };
        let end = start + len;
        let raw = self.text.get(start..end)?;
        self.at = end + 1;
        Some(Contents {
            raw,
            plain: true,
            canonical: true,
        })
    }

    /// [`contents`](Self::contents) for a string that is not short and plain:
    /// any length, escapes, and the checks they need.
    #[inline(never)]
    fn escaped_contents(&mut self) -> Option<Contents<'a>> {
        let start = self.at;
        // What is left of the body after the contents read so far.
        let mut rest = self.text.as_bytes().get(start..)?;
        let mut plain = true;
        let mut canonical = true;
        loop {
            // Texts have runs of escapes (`\n\n`): a byte looked at costs less
            // than a call.
            let found = match rest.first()? {
                b'"' | b'\\' => 0,
                _ => self.finder.find(rest)?,
            };
            let (run, after) = rest.split_at_checked(found)?;
            if self.controls && has_control(run) {
                return None;
            }
            match after {
                [b'\\', tail @ ..] => {
                    plain = false;
                    let (len, kept) = check_escape(tail)?;
                    canonical &= kept;
                    rest = tail.get(len..)?;
                }
                [b'"', ..] => {
                    let end = self.text.len() - after.len();
                    let raw = self.text.get(start..end)?;
                    self.at = end + 1;
                    return Some(Contents {
                        raw,
                        plain,
                        canonical,
                    });
                }
                _ => return None,
            }
        }
    }
}

/// How many bytes of `rest` come before a `"` found within its first
/// [`SHORT`] bytes with no `\` and no byte below 0x20 before it: the length
/// of a string that needs none of [`Reader::escaped_contents`]'s checks.
/// `None` when there is no such quote (a longer string, an escape, a raw
/// control byte, or fewer than [`SHORT`] bytes left).
///
/// Each 8-byte word is searched for all three at once (SWAR): a byte `b` is
/// flagged when `b ^ b'"'`, `b ^ b'\\'` or `b & 0xe0` is zero, with the
/// zero-byte test `(x - 0x01…) & !x & 0x80…`. That test can also flag bytes
/// after a zero one (a borrow runs upward), never before, so the lowest flag
/// is the first such byte, and only that byte is looked at.
#[inline]
fn short_plain_len(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    const CONTROL_BITS: u64 = u64::from_le_bytes([0xe0; 8]);
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let words = rest.get(..SHORT)?.chunks_exact(8);
    for (i, word) in words.enumerate() {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let flags =
            zero_bytes(w ^ QUOTES) | zero_bytes(w ^ BACKSLASHES) | zero_bytes(w & CONTROL_BITS);
        if flags != 0 {
            let at = i * 8 + (flags.trailing_zeros() / 8) as usize;
            return (rest.get(at) == Some(&b'"')).then_some(at);
        }
    }
    None
}

/// How far [`short_plain_len`] looks: keys, ids, timestamps and roles fit.
const SHORT: usize = 32;

/// A string's contents as written between its quotes, checked.
struct Contents<'a> {
    raw: &'a str,
    /// No escapes: the contents are the text.
    plain: bool,
    /// Escaped as [`JsonText`] holds text.
    canonical: bool,
}

/// Where the run of ASCII digits starting at `at` ends.
fn digits_end(bytes: &[u8], at: usize) -> usize {
    let run = bytes.get(at..).unwrap_or_default();
    at + run.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Whether `run` holds a byte below 0x20, which a JSON string may not hold
/// raw. No early exit, so the loop compiles to SIMD.
fn has_control(run: &[u8]) -> bool {
    run.iter().fold(false, |seen, &b| seen | (b < 0x20))
}

/// Checks the escape at the start of `tail` (what follows a backslash): its
/// length after the backslash, and whether it is written as [`JsonText`]
/// writes it ([`text::canonical_escape_len`]). Texts are full of `\n` and
/// `\"`, so the short escapes are told apart here without decoding them.
#[inline]
fn check_escape(tail: &[u8]) -> Option<(usize, bool)> {
    match tail.first()? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some((1, true)),
        b'/' => Some((1, false)),
        _ => {
            let (_, len) = escape(tail)?;
            Some((len, text::canonical_escape_len(tail).is_some()))
        }
    }
}

/// The escape at the start of `tail` (what follows a backslash): the
/// character it stands for and its length after the backslash. `None` for an
/// unknown escape, bad hex, or a surrogate not paired with the one escape
/// that completes it.
fn escape(tail: &[u8]) -> Option<(char, usize)> {
    let short = match tail.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(tail.get(1..5)?)?;
            return match unit {
                0xd800..=0xdbff => {
                    let low = match tail.get(5..11)? {
                        [b'\\', b'u', digits @ ..] => hex4(digits)?,
                        _ => return None,
                    };
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return None;
                    }
                    let code = 0x1_0000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                    Some((char::from_u32(code)?, 11))
                }
                0xdc00..=0xdfff => None,
                _ => Some((char::from_u32(unit)?, 5)),
            };
        }
        _ => return None,
    };
    Some((short, 1))
}

/// Four hex digits, either case.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |value, &d| {
        let digit = char::from(d).to_digit(16)?;
        Some(value << 4 | digit)
    })
}

/// The text a string's checked contents stand for.
fn decode(raw: &str) -> Option<String> {
    let mut text = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        text.push_str(rest.get(..at)?);
        let (c, len) = escape(rest.as_bytes().get(at + 1..)?)?;
        text.push(c);
        rest = rest.get(at + 1 + len..)?;
    }
    text.push_str(rest);
    Some(text)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::de::IgnoredAny;
    use serde_json::value::RawValue;

    use super::*;
    use crate::test_support::{quoted, serde_escaped, tricky_text, unicode_escapes};

    fn read_string(json: &str) -> Option<String> {
        Reader::document(json, |r| r.string().map(String::from))
    }

    fn read_text(json: &str) -> Option<JsonText> {
        Reader::document(json, Reader::json_text)
    }

    fn skip(json: &str) -> Option<()> {
        Reader::document(json, Reader::skip_value)
    }

    /// What the fast serde reading of a message text gives.
    fn serde_text(json: &str) -> Option<JsonText> {
        let raw: &RawValue = serde_json::from_str(json).ok()?;
        JsonText::from_json(raw)
    }

    fn serde_skips(json: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(json).is_ok()
    }

    #[test]
    fn strings_read_every_escape_as_serde_json_does() {
        for json in [
            r#""""#,
            r#""plain é € 😊""#,
            r#""\" \\ \/ \b \f \n \r \t""#,
            r#""\u0000\u001f\u0041\u00e9\u00E9\u20AC\uffff""#,
            r#""\ud83d\ude00 \uD83D\uDE00""#,
            r#""a" "#,
            " \"a\"\n\t\r",
        ] {
            // Padded, a short string is read by `short_plain_len`'s path.
            for json in [json.to_owned(), padded(json)] {
                let json = json.as_str();
                let expected = serde_json::from_str::<String>(json).unwrap();
                assert_eq!(
                    read_string(json).as_deref(),
                    Some(expected.as_str()),
                    "{json}"
                );
                assert_eq!(read_text(json), serde_text(json), "{json}");
                assert!(read_text(json).is_some(), "{json}");
            }
        }
    }

    /// `json` followed by enough whitespace that every string in it has
    /// [`SHORT`] bytes after its opening quote.
    fn padded(json: &str) -> String {
        format!("{json}{}", " ".repeat(SHORT + 8))
    }

    /// What [`short_plain_len`] must say, byte by byte.
    fn short_plain_len_by_bytes(rest: &[u8]) -> Option<usize> {
        let at = rest
            .get(..SHORT)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        (rest[at] == b'"').then_some(at)
    }

    #[test]
    fn short_plain_len_stops_at_the_first_quote_backslash_or_control() {
        // Each byte that can matter, and neighbours of the ones the word test
        // looks for, at every place relative to a quote, then pairs of them.
        let bytes = [
            b'"', b'\\', 0x00, 0x01, 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc,
            0xe0, 0xff, b'a',
        ];
        let len = SHORT + 8;
        let mut cases = 0;
        for quote in 0..len {
            for place in 0..len {
                for &byte in &bytes {
                    let mut rest = vec![b'a'; len];
                    rest[quote] = b'"';
                    rest[place] = byte;
                    assert_eq!(
                        short_plain_len(&rest),
                        short_plain_len_by_bytes(&rest),
                        "{rest:?}"
                    );
                    for &second in &bytes {
                        let mut rest = rest.clone();
                        rest[(place + 1) % len] = second;
                        assert_eq!(
                            short_plain_len(&rest),
                            short_plain_len_by_bytes(&rest),
                            "{rest:?}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 100_000);
        // Too few bytes left to look at: the search below decides.
        assert_eq!(short_plain_len(b"ab\""), None);
        assert_eq!(short_plain_len(&[b'"'; SHORT - 1]), None);
        assert_eq!(short_plain_len(&[b'"'; SHORT]), Some(0));
    }

    #[test]
    fn what_serde_json_refuses_as_a_string_bails() {
        for json in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800\ud800\udc00""#,
            r#""\ud83dx""#,
            r#""\ud83d\n""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            r#""\'""#,
            "\"tab\there\"",
            "\"nul\u{0}\"",
            "\"\u{1f}\"",
            r#""unterminated"#,
            r#""\"#,
            r#""a"b"#,
            "\"a\" x",
            "'a'",
            "1",
            "null",
        ] {
            for json in [json.to_owned(), padded(json)] {
                let json = json.as_str();
                assert!(serde_json::from_str::<String>(json).is_err(), "{json}");
                assert_eq!(read_string(json), None, "{json}");
                assert_eq!(read_text(json), None, "{json}");
            }
        }
    }

    #[test]
    fn texts_keep_canonical_bytes_and_re_escape_the_rest() {
        let kept = read_text(r#""a\"b\\c\n\u0001""#).unwrap();
        assert_eq!(kept.escaped(), r#"a\"b\\c\n\u0001"#);
        let redone = read_text(r#""a\/b\u00e9\u000A\ud83d\ude00""#).unwrap();
        assert_eq!(redone.escaped(), "a/bé\\n😀");
    }

    #[test]
    fn unsigned_integers_are_only_plain_u64s() {
        let read = |json: &str| Reader::document(json, Reader::unsigned);
        assert_eq!(read("0"), Some(0));
        assert_eq!(read(" 42 "), Some(42));
        assert_eq!(read("18446744073709551615"), Some(u64::MAX));
        for json in [
            "18446744073709551616",
            "99999999999999999999999",
            "-1",
            "-0",
            "01",
            "1.0",
            "1e3",
            "1E3",
            "",
            "+1",
            "\"1\"",
        ] {
            assert_eq!(read(json), None, "{json}");
        }
    }

    #[test]
    fn skipped_values_follow_json_grammar() {
        for json in [
            "0",
            "-0",
            "-12.5e+3",
            "1E-2",
            "1e5",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            " [ 1 , {\"a\" : [null, true, \"x\\/\"]}, -0.0 ] ",
            "{\"a\":{\"b\":{}},\"a\":1}",
            "\"\\ud83d\\ude00\"",
        ] {
            assert!(serde_skips(json), "{json}");
            assert_eq!(skip(json), Some(()), "{json}");
        }
        for json in [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "nulll",
            "True",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "{\"a\" 1}",
            "[1 2]",
            "[1] x",
            "[",
            "{",
            "]",
            "\u{a0}1",
            "\u{b}1",
            "1\u{c}",
            "NaN",
            "Infinity",
        ] {
            assert!(!serde_skips(json), "{json}");
            assert_eq!(skip(json), None, "{json}");
        }
    }

    #[test]
    fn conservative_bails_on_what_serde_json_skips() {
        // serde_json skips these; the reader leaves them to it.
        for json in [
            "\"\\ud800\"",
            "{\"\\u0061\":1}",
            &format!("{}{}", "[".repeat(65), "]".repeat(65)),
        ] {
            assert!(serde_skips(json), "{json}");
            assert_eq!(skip(json), None, "{json}");
        }
        let deepest = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(skip(&deepest), Some(()));
    }

    #[test]
    fn deep_nesting_bails_without_recursing_further() {
        let json = "[".repeat(1_000_000);
        assert_eq!(skip(&json), None);
        let json = "{\"a\":".repeat(100_000);
        assert_eq!(skip(&json), None);
    }

    #[test]
    fn objects_hand_over_keys_as_written() {
        let mut keys = Vec::new();
        let read = Reader::document(r#" { "b" : 1 , "a":{"x":[]} , "é€":null } "#, |r| {
            r.object(|key, r| {
                keys.push(key);
                r.skip_value()
            })
        });
        assert_eq!(read, Some(()));
        assert_eq!(keys, ["b", "a", "é€"]);
    }

    #[test]
    fn null_or_reads_null_as_none() {
        let read = |json: &str| Reader::document(json, |r| r.null_or(Reader::unsigned));
        assert_eq!(read(" null "), Some(None));
        assert_eq!(read("7"), Some(Some(7)));
        assert_eq!(read("nul"), None);
        assert_eq!(read("nullx"), None);
        assert_eq!(read("\"null\""), None);
    }

    /// A character spelled raw or with any escape JSON allows, picked by
    /// `how`, and sometimes as serde_json refuses it.
    fn spelled(c: char, how: u8) -> String {
        let mut units = [0u16; 2];
        let units = c.encode_utf16(&mut units);
        match how % 8 {
            2 => unicode_escapes(units, false),
            3 => unicode_escapes(units, true),
            4 if c == '/' => "\\/".to_owned(),
            // Only the first half of a pair: a lone surrogate.
            5 if units.len() == 2 => unicode_escapes(&units[..1], false),
            // Raw, even where JSON needs an escape.
            6 => c.to_string(),
            _ => serde_escaped(&c.to_string()),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_spelling_reads_exactly_as_serde_json_reads_it(
            text in tricky_text(),
            hows in proptest::collection::vec(any::<u8>(), 64),
        ) {
            // Spelled as serde_json writes it, every text reads back.
            let canonical = quoted(&text, &[0], spelled);
            prop_assert_eq!(read_string(&canonical), Some(text.clone()));
            let json = quoted(&text, &hows, spelled);
            prop_assert_eq!(read_string(&json), serde_json::from_str::<String>(&json).ok());
            prop_assert_eq!(read_text(&json), serde_text(&json));
            if skip(&json).is_some() {
                prop_assert!(serde_skips(&json));
            }
        }

        #[test]
        fn skipping_bytes_never_accepts_what_serde_json_refuses(
            json in "[ \t\n\r\\[\\]{}:,\"\\\\/u0-9a-fA-F.eE+\\-ntrulsx\u{1}é]{0,24}",
        ) {
            if skip(&json).is_some() {
                prop_assert!(serde_skips(&json), "{}", json);
            }
        }
    }
}
