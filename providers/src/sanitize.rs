//! Vendor text made safe to log and to answer with: the provider's key redacted,
//! control characters escaped, the length bounded — in that order.
//!
//! The order is the point. Shortening first can cut a key in two and leave its
//! prefix behind, where matching the whole key no longer finds it; escaping first
//! can change the key's characters so it no longer matches. So adapters keep a
//! vendor's text whole (only [`cap`]ped to bound the work), and
//! [`ProviderError::sanitize`](crate::ProviderError::sanitize) runs [`vendor_text`]
//! once, where the key is known.

use std::fmt::Write as _;

/// A fragment of the provider's key at least this many characters long is
/// redacted wherever it appears, not only the whole key: a vendor may echo a key
/// cut short, or a cut elsewhere may leave a prefix or suffix, and 8 characters of
/// a random key (about 48 bits in base64) already give an attacker real help, or
/// identify the key in other logs. Shorter fragments are too likely to occur by
/// chance in ordinary text (`Bearer s`, `https://`) to redact without mangling it.
pub const REDACT_MIN_CHARS: usize = 8;

/// A key shorter than this is never redacted: it would match ordinary words. A key
/// of `REDACT_NEVER_BELOW_CHARS..REDACT_MIN_CHARS` characters is redacted only
/// whole, since any fragment of it is shorter than [`REDACT_MIN_CHARS`].
pub const REDACT_NEVER_BELOW_CHARS: usize = 4;

/// The final length of vendor text in an error, in characters after escaping,
/// so a vendor's long error page cannot bloat logs or responses. Longer text is
/// cut and ends in `…`.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Adapters cap raw vendor text at this many characters only to bound the work of
/// [`vendor_text`] (and memory) on a vendor that answers megabytes.
///
/// This early cut cannot leak a fragment of the key that matters. Every
/// character that survives redaction becomes at least one character of output,
/// so unless redaction compresses the text, the final [`MAX_MESSAGE_CHARS`] cut
/// falls long before this one and whatever sits near it is never shown. And where
/// a long key repeated many times does compress the text enough to show it, the
/// cut can only leave a piece of the key at the end, which is redacted like any
/// other fragment when it is [`REDACT_MIN_CHARS`] long or more — so what remains
/// is under the threshold, exactly as anywhere else in the text.
pub const MAX_VENDOR_TEXT_CHARS: usize = 4096;

/// Caps raw vendor text at [`MAX_VENDOR_TEXT_CHARS`] (see there why this is safe
/// before redaction), on a character boundary, ending in `…` when cut.
pub fn cap(text: &str) -> String {
    crate::wire::shorten(text, MAX_VENDOR_TEXT_CHARS)
}

/// Makes vendor text safe to log and to answer with, given the provider's key:
///
/// 1. redacts the key and every fragment of it of at least [`REDACT_MIN_CHARS`]
///    characters (the whole key only when it is shorter; nothing when it is
///    shorter than [`REDACT_NEVER_BELOW_CHARS`]), each maximal run of redacted
///    characters becoming one `[redacted]`; the key is also looked for in the
///    form `{:?}` prints it, since error reasons quote vendor values that way;
/// 2. escapes control characters so the text stays data in any log format:
///    `\n`, `\r`, `\t` as those escapes, other C0 and C1 controls, DEL, the bidi
///    embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069)
///    and the line and paragraph separators (U+2028, U+2029) as `\u{1b}`-style
///    escapes; a backslash is kept as it is, so the escaping is for the eye and
///    the log parser, not reversible;
/// 3. shortens the result to [`MAX_MESSAGE_CHARS`], never inside an escape or a
///    `[redacted]`.
///
/// Work is O(n·k) for n characters of text and a k-character key.
pub fn vendor_text(text: &str, secret: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let redacted = redaction_mask(&chars, secret);
    let mut out = String::new();
    let mut written = 0;
    let mut piece = String::new();
    let mut i = 0;
    while i < chars.len() {
        piece.clear();
        if redacted[i] {
            piece.push_str("[redacted]");
            while i < chars.len() && redacted[i] {
                i += 1;
            }
        } else {
            escape(chars[i], &mut piece);
            i += 1;
        }
        let len = piece.chars().count();
        if written + len > MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        written += len;
    }
    out
}

/// Which characters of `text` lie in an occurrence of the key (or of the key as
/// `{:?}` prints it) long enough to redact.
fn redaction_mask(text: &[char], secret: &str) -> Vec<bool> {
    let mut mask = vec![false; text.len()];
    let raw: Vec<char> = secret.chars().collect();
    if raw.len() < REDACT_NEVER_BELOW_CHARS {
        return mask;
    }
    let debug = format!("{secret:?}");
    let debug: Vec<char> = debug
        .strip_prefix('"')
        .and_then(|d| d.strip_suffix('"'))
        .unwrap_or(&debug)
        .chars()
        .collect();
    let threshold = |key: &[char]| {
        if raw.len() < REDACT_MIN_CHARS {
            key.len()
        } else {
            REDACT_MIN_CHARS
        }
    };
    mark(text, &raw, threshold(&raw), &mut mask);
    if debug != raw {
        mark(text, &debug, threshold(&debug), &mut mask);
    }
    mask
}

/// Marks every character of `text` covered by a common substring of `text` and
/// `key` of at least `min` characters.
///
/// For each start `i`, the longest substring of `key` that `text[i..]` begins with
/// is `max_j ext(i, j)`, where `ext(i, j)` is how far `text[i..]` and `key[j..]`
/// agree; `ext(i, j) = 1 + ext(i + 1, j + 1)` when `text[i] == key[j]`, else 0. One
/// row of `ext` per `i`, computed from the end: O(n·k) time, O(n + k) memory.
fn mark(text: &[char], key: &[char], min: usize, mask: &mut [bool]) {
    let k = key.len();
    let mut longest = vec![0usize; text.len()];
    let mut row = vec![0usize; k + 1];
    let mut next = vec![0usize; k + 1];
    for (i, &c) in text.iter().enumerate().rev() {
        let mut best = 0;
        for (j, &kc) in key.iter().enumerate() {
            next[j] = if c == kc { 1 + row[j + 1] } else { 0 };
            best = best.max(next[j]);
        }
        std::mem::swap(&mut row, &mut next);
        longest[i] = best;
    }
    let mut covered_until = 0;
    for (i, len) in longest.into_iter().enumerate() {
        if len >= min {
            covered_until = covered_until.max(i + len);
        }
        if i < covered_until {
            mask[i] = true;
        }
    }
}

/// Appends `c`, escaped when it could act as markup in a log line or a terminal.
fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // `is_control` is exactly the C0 controls, DEL and the C1 controls.
        c if c.is_control()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
            || matches!(c, '\u{2028}' | '\u{2029}') =>
        {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdef";

    #[test]
    fn the_whole_key_and_each_occurrence_is_redacted() {
        assert_eq!(
            vendor_text(&format!("invalid key {KEY} ({KEY})"), KEY),
            "invalid key [redacted] ([redacted])"
        );
    }

    #[test]
    fn a_fragment_of_eight_characters_is_redacted_anywhere() {
        // prefix, middle and suffix of the key, each exactly 8 characters
        for fragment in [&KEY[..8], &KEY[6..14], &KEY[KEY.len() - 8..]] {
            assert_eq!(
                vendor_text(&format!("key <{fragment}> rejected"), KEY),
                "key <[redacted]> rejected",
                "{fragment}"
            );
        }
    }

    #[test]
    fn a_fragment_of_seven_characters_is_kept() {
        let text = format!("key <{}> rejected", &KEY[..7]);
        assert_eq!(vendor_text(&text, KEY), text);
    }

    #[test]
    fn adjacent_fragments_become_one_redaction() {
        // two overlapping pieces and a suffix glued to a prefix: one run
        let text = format!("x{}{}y", &KEY[..12], &KEY[10..]);
        assert_eq!(vendor_text(&text, KEY), "x[redacted]y");
    }

    #[test]
    fn short_keys_are_redacted_only_whole_and_tiny_ones_never() {
        assert_eq!(vendor_text("a abcdef b", "abcdef"), "a [redacted] b");
        assert_eq!(vendor_text("a abcde b", "abcdef"), "a abcde b");
        assert_eq!(vendor_text("abc", "abc"), "abc");
        assert_eq!(vendor_text("abcd", "abcd"), "[redacted]");
        assert_eq!(vendor_text("anything", ""), "anything");
    }

    #[test]
    fn a_key_straddling_the_final_cut_leaves_no_prefix() {
        let text = format!("{}{KEY}", "a".repeat(MAX_MESSAGE_CHARS - 5));
        let clean = vendor_text(&text, KEY);
        assert!(!clean.contains("sk-li"), "{clean}");
        assert!(clean.ends_with('…'), "{clean}");
        assert!(clean.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn the_key_is_found_as_debug_formatting_quotes_it() {
        let key = r#"k"ey\with-quotes"#;
        let quoted = format!("bad value {key:?}");
        assert_eq!(vendor_text(&quoted, key), "bad value \"[redacted]\"");
    }

    #[test]
    fn non_ascii_keys_and_text_never_split_a_character() {
        let key = "clé-sécrète-ü";
        let text = format!("héllo {} wörld {key} 🎉", &key[..key.len() - 2]);
        assert_eq!(
            vendor_text(&text, key),
            "héllo [redacted] wörld [redacted] 🎉"
        );
        assert_eq!(
            vendor_text("日本語のエラー — ok", KEY),
            "日本語のエラー — ok"
        );
    }

    #[test]
    fn a_newline_cannot_forge_a_log_line() {
        let text = "bad\n2024-01-01T00:00:00Z INFO admin logged in\r\tdone";
        assert_eq!(
            vendor_text(text, KEY),
            "bad\\n2024-01-01T00:00:00Z INFO admin logged in\\r\\tdone"
        );
    }

    #[test]
    fn terminal_and_bidi_controls_are_escaped_and_backslashes_kept() {
        assert_eq!(
            vendor_text("\u{1b}[31mred\u{0}\u{7f}\u{85}", KEY),
            "\\u{1b}[31mred\\u{0}\\u{7f}\\u{85}"
        );
        assert_eq!(
            vendor_text("a\u{202e}b\u{2066}c\u{2069}d\u{2028}", KEY),
            "a\\u{202e}b\\u{2066}c\\u{2069}d\\u{2028}"
        );
        assert_eq!(vendor_text(r"C:\path\n", KEY), r"C:\path\n");
    }

    #[test]
    fn shortening_counts_escapes_and_never_splits_one() {
        let text = format!("{}\u{1b}tail", "a".repeat(MAX_MESSAGE_CHARS - 3));
        let clean = vendor_text(&text, KEY);
        assert_eq!(clean, format!("{}…", "a".repeat(MAX_MESSAGE_CHARS - 3)));
        let exact = "b".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(vendor_text(&exact, KEY), exact);
    }

    #[test]
    fn sanitizing_twice_changes_nothing() {
        let text = format!("{}\n{KEY}\u{1b}", "é".repeat(400));
        let once = vendor_text(&text, KEY);
        assert_eq!(vendor_text(&once, KEY), once);
    }

    #[test]
    fn a_repetitive_key_and_text_stay_fast_and_exact() {
        let key = "a".repeat(64);
        let text = format!("{}b{}", "a".repeat(MAX_VENDOR_TEXT_CHARS), "a".repeat(7));
        assert_eq!(vendor_text(&text, &key), "[redacted]baaaaaaa");
    }

    #[test]
    fn the_cap_keeps_characters_whole() {
        let text = "é".repeat(MAX_VENDOR_TEXT_CHARS + 10);
        let capped = cap(&text);
        assert_eq!(capped.chars().count(), MAX_VENDOR_TEXT_CHARS + 1);
        assert!(capped.ends_with('…'));
    }
}
