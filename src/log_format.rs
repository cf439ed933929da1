//! How log lines are formatted: every event by tracing-subscriber's own
//! formatter (text, or with `CHATGATE_LOG_FORMAT=json` one flattened JSON
//! object per line), except the one access line per request
//! ([`log_access`](crate::server::request_log)), which [`LogFormat`] writes by
//! hand, byte for byte as tracing-subscriber would.
//!
//! Why: tracing-subscriber writes each field through `core::fmt` — a `write!`
//! for every name, `=` and value, `Debug` for every string, a float's
//! shortest-digits search for every millisecond count, the timestamp through
//! a dozen padded integers — about 17 400 instructions per access line, 18%
//! of a 10-conversation cache hit. Here the line is appended to a reused
//! per-thread buffer: names and plain ASCII strings copied, integers by
//! `itoa`, milliseconds as digits (they are whole microseconds, see
//! `thousandths`), the timestamp's date and time worked out once a second;
//! then the buffer goes to the fmt layer in one write. The line now costs
//! about 4 600 instructions, of which the formatting proper is ~3 300 (the
//! rest is tracing's dispatch and the fmt layer's buffer and writer). `core::fmt` is left only for what needs it: the `%` fields
//! (their `Display`), strings with control or non-ASCII characters (whose
//! `Debug` escapes follow Unicode tables std keeps to itself) and floats
//! outside the fast range.
//!
//! What stays as it was:
//! - the bytes: the tests format the real access event through both
//!   formatters, over every field shape, in text and JSON;
//! - filtering: `RUST_LOG` decides before any formatter runs;
//! - the writer: the line goes to the same fmt layer and its writer
//!   ([`crate::log_sink`]), in order with every other line.
//!
//! tracing-subscriber still writes the access line when the hand-written
//! path would need what it leaves out: ANSI colours (stderr is a terminal) or
//! a span in scope (its name and fields prefix the line).

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use chatgate_providers::json;
use chrono::{DateTime, Datelike, Timelike, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::clock::Clock;
use crate::server::request_log::is_access_line;

/// The event formatter of chatgate's logs: tracing-subscriber's `inner`
/// formatter for every event, but the access line written by hand (see the
/// module docs).
pub struct LogFormat<F> {
    /// tracing-subscriber's formatter, as chatgate configured it before.
    inner: F,
    /// The time of a hand-written line (tracing-subscriber's timer reads
    /// the system clock itself; [`Clock::system`] reads the same one).
    clock: Clock,
    /// JSON (`CHATGATE_LOG_FORMAT=json`) rather than text.
    json: bool,
    /// Which events are written by hand: [`is_access_line`].
    hand_written: fn(&Metadata<'_>) -> bool,
}

impl LogFormat<Format<Full, SystemTime>> {
    /// The text format: tracing-subscriber's default (`Full`) format.
    pub fn text(clock: Clock) -> Self {
        Self::text_timed(clock, SystemTime)
    }
}

impl<T> LogFormat<Format<Full, T>> {
    /// [`Self::text`] with another timer for tracing-subscriber's lines.
    fn text_timed(clock: Clock, timer: T) -> Self {
        Self {
            inner: tracing_subscriber::fmt::format().with_timer(timer),
            clock,
            json: false,
            hand_written: is_access_line,
        }
    }
}

impl LogFormat<Format<Json, SystemTime>> {
    /// The JSON format: tracing-subscriber's, with the event's fields at the
    /// top level of the object (`flatten_event(true)`).
    pub fn json(clock: Clock) -> Self {
        Self::json_timed(clock, SystemTime)
    }
}

impl<T> LogFormat<Format<Json, T>> {
    /// [`Self::json`] with another timer for tracing-subscriber's lines.
    fn json_timed(clock: Clock, timer: T) -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_timer(timer),
            clock,
            json: true,
            hand_written: is_access_line,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for LogFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // JSON never paints, whatever the writer allows.
        let by_hand = (self.hand_written)(event.metadata())
            && (self.json || !writer.has_ansi_escapes())
            && ctx.event_scope().is_none();
        if !by_hand {
            return self.inner.format_event(ctx, writer, event);
        }
        thread_local! {
            static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => self.write_line(&mut scratch, &mut writer, event),
            // Only if a field's `Display` logged an access line itself.
            Err(_) => self.write_line(&mut Scratch::new(), &mut writer, event),
        })
    }
}

/// What a thread keeps from one hand-written line to the next.
struct Scratch {
    /// The line being written: reused, so no allocation per line.
    line: Vec<u8>,
    /// The last timestamp's whole second, and its `YYYY-MM-DDTHH:MM:SS`:
    /// the calendar is worked out once a second, not once a line.
    second: Option<(i64, [u8; 19])>,
}

impl Scratch {
    const fn new() -> Self {
        Self {
            line: Vec::new(),
            second: None,
        }
    }
}

impl<F> LogFormat<F> {
    /// Builds the line in `scratch`, then hands it to the fmt layer's
    /// `writer`. An error is a field's `Display` failing, as it fails
    /// tracing-subscriber's formatter: the fmt layer then drops the line.
    fn write_line(
        &self,
        scratch: &mut Scratch,
        writer: &mut Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = &mut scratch.line;
        line.clear();
        let now = self.clock.utc();
        if self.json {
            line.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(line, now, &mut scratch.second);
            json_line(line, event)?;
        } else {
            timestamp(line, now, &mut scratch.second);
            text_line(line, event, writer.sanitizes_ansi_escapes())?;
        }
        writer.write_str(std::str::from_utf8(line).map_err(|_| fmt::Error)?)
    }
}

/// After the timestamp, `  INFO target: message name=value…` and a
/// newline, as tracing-subscriber's `Full` format without colours and spans.
fn text_line(out: &mut Vec<u8>, event: &Event<'_>, sanitize: bool) -> fmt::Result {
    let meta = event.metadata();
    out.push(b' ');
    out.extend_from_slice(padded_level(meta.level()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(meta.target().as_bytes());
    out.extend_from_slice(b": ");
    let mut fields = TextFields {
        out,
        sanitize,
        empty: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.push(b'\n');
    Ok(())
}

/// After `{"timestamp":"` and the timestamp (ASCII digits and punctuation:
/// nothing to escape), `","level":"INFO",<fields>,"target":"…"}` and a
/// newline, as tracing-subscriber's flattened JSON format writes it
/// (serde_json's compact output) when no span is in scope.
fn json_line(out: &mut Vec<u8>, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(meta.level().as_str().as_bytes());
    out.push(b'"');
    let mut fields = JsonFields {
        out,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.extend_from_slice(b",\"target\":");
    json::string(out, meta.target());
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// The level as the text format pads it to five characters.
fn padded_level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, the microseconds truncated, as
/// tracing-subscriber's `SystemTime` timer writes it: a year past 9999 as
/// `+10000`, one before year 0 as `-0001`. `last` is the last second written
/// and its text, reused while the second lasts.
fn timestamp(out: &mut Vec<u8>, t: DateTime<Utc>, last: &mut Option<(i64, [u8; 19])>) {
    let (mut secs, mut nanos) = (t.timestamp(), t.timestamp_subsec_nanos());
    // chrono writes a leap second as nanoseconds past 10^9; a `SystemTime`,
    // what tracing-subscriber formats, runs on into the next second.
    if let Some(past) = nanos.checked_sub(1_000_000_000) {
        secs = secs.saturating_add(1);
        nanos = past;
    }
    match last {
        Some((second, text)) if *second == secs => out.extend_from_slice(text),
        _ => {
            let start = out.len();
            date_and_time(out, DateTime::from_timestamp(secs, 0).unwrap_or(t));
            // Four-digit years only.
            *last = <[u8; 19]>::try_from(&out[start..])
                .ok()
                .map(|text| (secs, text));
        }
    }
    let mut fraction = *b".uuuuuuZ";
    put_digits(&mut fraction[1..7], nanos / 1000);
    out.extend_from_slice(&fraction);
}

/// `YYYY-MM-DDTHH:MM:SS`, with [`timestamp`]'s years.
fn date_and_time(out: &mut Vec<u8>, t: DateTime<Utc>) {
    let year = t.year();
    match u32::try_from(year) {
        Ok(year @ 0..=9999) => {
            let mut digits = [b'0'; 4];
            put_digits(&mut digits, year);
            out.extend_from_slice(&digits);
        }
        // Writing to a Vec cannot fail.
        _ if year > 9999 => {
            let _ = write!(Bytes(out), "+{year}");
        }
        _ => {
            let _ = write!(Bytes(out), "{year:05}");
        }
    }
    let mut rest = *b"-MM-DDTHH:MM:SS";
    put_digits(&mut rest[1..3], t.month());
    put_digits(&mut rest[4..6], t.day());
    put_digits(&mut rest[7..9], t.hour());
    put_digits(&mut rest[10..12], t.minute());
    put_digits(&mut rest[13..15], t.second());
    out.extend_from_slice(&rest);
}

/// Writes `n`'s last `slot.len()` decimal digits into `slot`, zero-padded.
fn put_digits(slot: &mut [u8], mut n: u32) {
    for digit in slot.iter_mut().rev() {
        // `n % 10` is below 10.
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The largest value [`thousandths`] writes itself: 10^12 ms (31 years) is
/// far below 2^43, where doubles are still closer together than 0.001.
const THOUSANDTHS_MAX: f64 = 1e12;

/// Writes `v` as both `{:?}` and serde_json (ryu) write it, when `v` is a
/// whole number of thousandths `k / 1000` (the access line's milliseconds,
/// to the microsecond) below [`THOUSANDTHS_MAX`]: the integer part, a dot,
/// the thousandths without trailing zeros, or `.0` when whole. Returns false,
/// writing nothing, for any other value.
///
/// Why the digits of `k / 1000` are the float's shortest decimal: below
/// 2^43 consecutive doubles are less than 0.001 apart, so the interval of
/// reals rounding to `v` holds a single multiple of 0.001, `k / 1000`; any
/// decimal with three places or fewer other than it rounds to another double,
/// and one with more places is longer. Both printers write that shortest
/// decimal without an exponent from 10^-4 up to 10^16, and 0 as `0.0`.
fn thousandths(out: &mut Vec<u8>, v: f64) -> bool {
    if !(0.0..THOUSANDTHS_MAX).contains(&v) {
        return false;
    }
    // Rounds to `k` whenever `v` came from `k / 1000`: the product's error is
    // far below a half at this size (and adding a half is cheaper than
    // `round`, a libm call).
    let k = (v * 1000.0 + 0.5) as u64;
    // Also refuses -0.0, which is `{:?}`-printed with its sign.
    if (k as f64 / 1000.0).to_bits() != v.to_bits() {
        return false;
    }
    out.extend_from_slice(itoa::Buffer::new().format(k / 1000).as_bytes());
    let frac = (k % 1000) as u32;
    let mut digits = *b".000";
    put_digits(&mut digits[1..], frac);
    let len = match frac {
        _ if frac % 100 == 0 => 2,
        _ if frac % 10 == 0 => 3,
        _ => 4,
    };
    out.extend_from_slice(&digits[..len]);
    true
}

/// A `fmt::Write` appending to a byte buffer, for what still goes through
/// `core::fmt`.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes the message as tracing-subscriber's text format does when it
/// sanitizes ANSI escapes: ESC, BEL, BS, FF and DEL as `\x1b`…, C1 control
/// characters as `\u{9b}`…, everything else as it is (a newline included).
struct AnsiEscaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for AnsiEscaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.bytes().all(|b| (b' '..0x7f).contains(&b)) {
            self.0.extend_from_slice(s.as_bytes());
            return Ok(());
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.extend_from_slice(b"\\x1b"),
                '\x07' => self.0.extend_from_slice(b"\\x07"),
                '\x08' => self.0.extend_from_slice(b"\\x08"),
                '\x0c' => self.0.extend_from_slice(b"\\x0c"),
                '\x7f' => self.0.extend_from_slice(b"\\x7f"),
                '\u{80}'..='\u{9f}' => write!(Bytes(self.0), "\\u{{{:x}}}", u32::from(ch))?,
                _ => Bytes(self.0).write_char(ch)?,
            }
        }
        Ok(())
    }
}

/// The fields of the text format: ` name=value` in the event's order, the
/// first without its space; strings quoted and escaped (`Debug`), `%` fields
/// and numbers as they print.
struct TextFields<'a> {
    out: &'a mut Vec<u8>,
    /// Whether the fmt layer sanitizes ANSI escapes in the message.
    sanitize: bool,
    /// No field written yet.
    empty: bool,
    /// The first failure of a field's `Display`/`Debug`.
    result: fmt::Result,
}

impl TextFields<'_> {
    /// Writes `name=` (after a space unless first), or returns false for the
    /// `log.` fields of events from the `log` crate, which the text format
    /// leaves out.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        self.pad();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'=');
        true
    }

    fn pad(&mut self) {
        if self.empty {
            self.empty = false;
        } else {
            self.out.push(b' ');
        }
    }

    fn fail_on(&mut self, result: fmt::Result) {
        if self.result.is_ok() {
            self.result = result;
        }
    }
}

impl Visit for TextFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else if self.name(field) {
            let result = debug_str(self.out, value);
            self.fail_on(result);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.name(field) {
            let mut digits = itoa::Buffer::new();
            self.out.extend_from_slice(digits.format(value).as_bytes());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.name(field) {
            let mut digits = itoa::Buffer::new();
            self.out.extend_from_slice(digits.format(value).as_bytes());
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field) {
            let text: &[u8] = if value { b"true" } else { b"false" };
            self.out.extend_from_slice(text);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.name(field) && !thousandths(self.out, value) {
            let result = write!(Bytes(self.out), "{value:?}");
            self.fail_on(result);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let result = if field.name() == "message" {
            self.pad();
            if self.sanitize {
                write!(AnsiEscaping(self.out), "{value:?}")
            } else {
                write!(Bytes(self.out), "{value:?}")
            }
        } else if self.name(field) {
            write!(Bytes(self.out), "{value:?}")
        } else {
            Ok(())
        };
        self.fail_on(result);
    }
}

/// Writes `s` as `{:?}` does: quoted, `"` and `\` escaped, printable ASCII as
/// it is; anything else through `Debug` itself.
fn debug_str(out: &mut Vec<u8>, s: &str) -> fmt::Result {
    let mark = out.len();
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' | b'\\' => {
                out.extend_from_slice(&bytes[start..i]);
                out.push(b'\\');
                start = i;
            }
            b' '..=b'~' => {}
            _ => {
                out.truncate(mark);
                return write!(Bytes(out), "{s:?}");
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
    Ok(())
}

/// The fields of the JSON format: `,"name":value` in the event's order;
/// strings and `%` fields as JSON strings (serde_json's escapes), numbers
/// and booleans bare.
struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
    /// The first failure of a field's `Display`/`Debug`.
    result: fmt::Result,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        self.out.push(b',');
        json::string(self.out, field.name());
        self.out.push(b':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json::string(self.out, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let mut digits = itoa::Buffer::new();
        self.out.extend_from_slice(digits.format(value).as_bytes());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let mut digits = itoa::Buffer::new();
        self.out.extend_from_slice(digits.format(value).as_bytes());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.out.extend_from_slice(text);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if !thousandths(self.out, value) {
            // serde_json: shortest digits by ryu, `null` when not finite.
            let result = serde_json::to_writer(&mut *self.out, &value).map_err(|_| fmt::Error);
            if self.result.is_ok() {
                self.result = result;
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        // Written as it prints, then escaped only if it needs to be (a
        // request id, a method and a path almost never do).
        let quote = self.out.len();
        self.out.push(b'"');
        let result = write!(Bytes(self.out), "{value:?}");
        let text = &self.out[quote + 1..];
        if text.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            let raw = self.out.split_off(quote);
            self.out.truncate(quote);
            json::string(self.out, &String::from_utf8_lossy(&raw[1..]));
        } else {
            self.out.push(b'"');
        }
        if self.result.is_ok() {
            self.result = result;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use chrono::{NaiveDate, SubsecRound, TimeZone};
    use tracing_subscriber::fmt::time::FormatTime;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::EnvFilter;

    use super::*;
    use crate::clock::ManualClock;
    use crate::server::request_log::{log_access, Access};

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// tracing-subscriber's timer at the test clock's time, written by chrono
    /// (a formatter independent of [`timestamp`]).
    struct ChronoTimer(Clock);

    impl FormatTime for ChronoTimer {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            write!(w, "{}", self.0.utc().format("%Y-%m-%dT%H:%M:%S%.6fZ"))
        }
    }

    /// The timer of tracing-subscriber's formatter inside a [`LogFormat`]
    /// under test: a line carrying it was not written by hand.
    struct NotByHand;

    impl FormatTime for NotByHand {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("<not written by hand>")
        }
    }

    /// How the logs are set up, before and after [`LogFormat`].
    #[derive(Clone, Copy)]
    struct Setup {
        json: bool,
        ansi: bool,
        /// Replaces [`LogFormat::hand_written`] (else the access line's).
        hand_written: Option<fn(&Metadata<'_>) -> bool>,
        /// Whether the inner formatter gets [`NotByHand`] (the lines must be
        /// written by hand) or the test clock's time (they may not be).
        must_be_by_hand: bool,
    }

    impl Setup {
        const TEXT: Self = Self {
            json: false,
            ansi: false,
            hand_written: None,
            must_be_by_hand: true,
        };
        const JSON: Self = Self {
            json: true,
            ..Self::TEXT
        };
    }

    /// Runs `emit` once per step under chatgate's subscriber as it was
    /// (main.rs before [`LogFormat`]: tracing-subscriber formats every event)
    /// and as it is, each on a manual clock starting at `start`; returns what
    /// each step wrote, before and after.
    fn before_and_after(
        setup: Setup,
        start: DateTime<Utc>,
        steps: usize,
        emit: impl Fn(usize, &ManualClock),
    ) -> (Vec<String>, Vec<String>) {
        let run = |subscriber: Box<dyn Subscriber + Send + Sync>,
                   manual: &ManualClock,
                   out: &Captured| {
            tracing::subscriber::with_default(subscriber, || {
                (0..steps)
                    .map(|step| {
                        emit(step, manual);
                        out.take()
                    })
                    .collect::<Vec<_>>()
            })
        };
        let builder = |out: &Captured| {
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new("info"))
                .with_ansi(setup.ansi)
                .with_writer(out.clone())
        };

        let manual = ManualClock::starting_at(start);
        let out = Captured::default();
        let timer = ChronoTimer(Clock::from(manual.clone()));
        let before: Box<dyn Subscriber + Send + Sync> = if setup.json {
            Box::new(
                builder(&out)
                    .with_timer(timer)
                    .json()
                    .flatten_event(true)
                    .finish(),
            )
        } else {
            Box::new(builder(&out).with_timer(timer).finish())
        };
        let before = run(before, &manual, &out);

        let manual = ManualClock::starting_at(start);
        let out = Captured::default();
        let clock = Clock::from(manual.clone());
        let after: Box<dyn Subscriber + Send + Sync> = match (setup.json, setup.must_be_by_hand) {
            (false, true) => {
                let format = recognizing(LogFormat::text_timed(clock, NotByHand), setup);
                Box::new(builder(&out).event_format(format).finish())
            }
            (false, false) => {
                let format = LogFormat::text_timed(clock.clone(), ChronoTimer(clock));
                Box::new(
                    builder(&out)
                        .event_format(recognizing(format, setup))
                        .finish(),
                )
            }
            (true, true) => {
                let format = recognizing(LogFormat::json_timed(clock, NotByHand), setup);
                Box::new(builder(&out).json().event_format(format).finish())
            }
            (true, false) => {
                let format = LogFormat::json_timed(clock.clone(), ChronoTimer(clock));
                Box::new(
                    builder(&out)
                        .json()
                        .event_format(recognizing(format, setup))
                        .finish(),
                )
            }
        };
        let after = run(after, &manual, &out);
        (before, after)
    }

    /// `format` recognizing what `setup` says.
    fn recognizing<F>(mut format: LogFormat<F>, setup: Setup) -> LogFormat<F> {
        if let Some(recognize) = setup.hand_written {
            format.hand_written = recognize;
        }
        format
    }

    fn assert_same_lines(before: &[String], after: &[String]) {
        assert_eq!(before.len(), after.len());
        for (step, (before, after)) in before.iter().zip(after).enumerate() {
            assert!(!before.is_empty(), "step {step} logged nothing");
            assert_eq!(after, before, "step {step}");
        }
    }

    const OPTIONAL: [Option<&str>; 8] = [
        None,
        Some("ops"),
        Some(""),
        Some("say \"hi\" \\ back 'quoted'"),
        Some("tab\tnl\nnul\0cr\resc\u{1b}[31m del\u{7f} c1\u{9b} bs\u{8}"),
        Some("na\u{ef}ve \u{2713} caf\u{e9} \u{1F600}"),
        Some("e\u{301} zero-width\u{200b} nbsp\u{a0}"),
        Some("upstream: vendor said: bad\n2026-01-01T00:00:00.000000Z  INFO chatgate: FORGED"),
    ];

    const DURATIONS: [Duration; 14] = [
        Duration::ZERO,
        Duration::from_nanos(999),
        Duration::from_micros(1),
        Duration::from_micros(7),
        Duration::from_micros(10),
        Duration::from_micros(100),
        Duration::from_nanos(16_658_299),
        Duration::from_secs(1),
        Duration::from_millis(1_500),
        Duration::from_nanos(16_658_299_000_000),
        // Just below and at 10^12 ms, where the hand-written digits stop.
        Duration::from_micros(999_999_999_999_999),
        Duration::from_micros(1_000_000_000_000_000),
        Duration::from_secs(1 << 50),
        Duration::MAX,
    ];

    /// The `step`th access line of a sweep over every field's shapes, each
    /// list walked at its own pace so values meet in many combinations.
    fn access(step: usize) -> Access<'static> {
        let pick = |list_len: usize, pace: usize| (step / pace) % list_len;
        let ids = ["0b7e7a8e-2f5a-4c1e-9d1b-3f0c2a9b8e71", "abc-123_x.y"];
        let methods = ["GET", "POST", "PURGE"];
        let paths = [
            "/api/v1/get-conversations",
            "/api/v1/conversations/8047955098",
            "/a\"b\\c'd",
            "/caf\u{e9}/\u{1F600}/%22",
            "/ctl\n\u{1b}[31m\t\u{7f}\u{9b}",
            "/",
            "/only\"quote",
            "/only\\backslash",
            "/only-esc\u{1b}",
            "/unit-separator\u{1f}",
        ];
        let statuses = [200, 401, 502, 65_535];
        let caches = [None, Some("HIT"), Some("MISS"), Some("STALE")];
        let calls = [0, 1, 3, u32::MAX];
        Access {
            request_id: ids[pick(ids.len(), 1)],
            method: methods[pick(methods.len(), 1)],
            path: paths[pick(paths.len(), 2)],
            status: statuses[pick(statuses.len(), 1)],
            client: OPTIONAL[pick(OPTIONAL.len(), 1)],
            bot: OPTIONAL[pick(OPTIONAL.len(), 3)],
            provider: OPTIONAL[pick(OPTIONAL.len(), 5)],
            cache: caches[pick(caches.len(), 2)],
            upstream_calls: calls[pick(calls.len(), 3)],
            upstream: DURATIONS[pick(DURATIONS.len(), 1)],
            total: DURATIONS[pick(DURATIONS.len(), 5)],
            error: OPTIONAL[pick(OPTIONAL.len(), 7)],
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 45, 36).unwrap()
    }

    /// Moves the clock by an uneven amount, sub-microsecond nanoseconds
    /// included, so the timestamps' every digit varies.
    fn tick(step: usize, manual: &ManualClock) {
        manual.advance(Duration::from_nanos(
            7_919_993 * step as u64 % 2_345_678_901,
        ));
    }

    const STEPS: usize = 8 * 3 * 5 * 7 * 14;

    #[test]
    fn the_access_line_is_written_by_hand_exactly_as_tracing_subscriber_writes_it() {
        for setup in [Setup::TEXT, Setup::JSON] {
            let (before, after) = before_and_after(setup, start(), STEPS, |step, manual| {
                tick(step, manual);
                log_access(&access(step));
            });
            assert_same_lines(&before, &after);
        }
    }

    #[test]
    fn the_access_line_reads_as_it_always_has() {
        let line = Access {
            request_id: "abc-123",
            method: "GET",
            path: "/api/v1/get-conversations",
            status: 200,
            client: Some("ops"),
            bot: Some("support"),
            provider: Some("chatbase"),
            cache: Some("HIT"),
            upstream_calls: 0,
            upstream: Duration::ZERO,
            total: Duration::from_nanos(16_658_299),
            error: None,
        };
        for (setup, expected) in [
            (
                Setup::TEXT,
                "2026-12-03T09:45:36.000000Z  INFO chatgate::server::request_log: request \
                 request_id=abc-123 method=GET path=/api/v1/get-conversations status=200 \
                 client=\"ops\" bot=\"support\" provider=\"chatbase\" cache=\"HIT\" \
                 upstream_calls=0 upstream_ms=0.0 total_ms=16.658\n",
            ),
            (
                Setup::JSON,
                "{\"timestamp\":\"2026-12-03T09:45:36.000000Z\",\"level\":\"INFO\",\
                 \"message\":\"request\",\"request_id\":\"abc-123\",\"method\":\"GET\",\
                 \"path\":\"/api/v1/get-conversations\",\"status\":200,\"client\":\"ops\",\
                 \"bot\":\"support\",\"provider\":\"chatbase\",\"cache\":\"HIT\",\
                 \"upstream_calls\":0,\"upstream_ms\":0.0,\"total_ms\":16.658,\
                 \"target\":\"chatgate::server::request_log\"}\n",
            ),
        ] {
            let (before, after) = before_and_after(setup, start(), 1, |_, _| log_access(&line));
            assert_eq!(before, [expected]);
            assert_eq!(after, [expected]);
        }
    }

    #[test]
    fn any_event_of_these_field_kinds_is_written_by_hand_exactly_as_tracing_subscriber_writes_it() {
        let events = |step: usize, manual: &ManualClock| {
            tick(step, manual);
            match step {
                0 => tracing::info!(
                    yes = true,
                    no = false,
                    negative = -5_i64,
                    big = u64::MAX,
                    small = i64::MIN,
                    inexact = 0.1 + 0.2,
                    nan = f64::NAN,
                    infinite = f64::INFINITY,
                    minus_zero = -0.0,
                    huge = 1e300,
                    tiny = 1e-7,
                    debug = ?Some("dbg \"q\""),
                    display = %"disp \"q\" \\ \n \u{1b} \u{e9}",
                    text = "text",
                    "message with esc \u{1b}[31m, c1 \u{9b}, del \u{7f}, bel \u{7}, ff \u{c}, \
                     bs \u{8}, a newline\nand {}", 5
                ),
                1 => tracing::warn!(r#type = "keyword", "no fields but this"),
                2 => tracing::info!(message = "an explicit message", after = 1),
                _ => tracing::info!(only = "fields"),
            }
        };
        for setup in [Setup::TEXT, Setup::JSON] {
            let setup = Setup {
                hand_written: Some(|_| true),
                ..setup
            };
            let (before, after) = before_and_after(setup, start(), 4, events);
            assert_same_lines(&before, &after);
        }
    }

    #[test]
    fn other_events_and_access_lines_in_a_span_or_in_colour_are_left_to_tracing_subscriber() {
        let events = |step: usize, manual: &ManualClock| {
            tick(step, manual);
            match step {
                0 => tracing::warn!(error = %"bots.support.provider", "configuration rejected"),
                1 => {
                    tracing::info!(addr = %"127.0.0.1:8080", config = %"chatgate.toml", "chatgate listening")
                }
                2 => {
                    let span = tracing::info_span!("vendor call", vendor = "chatbase");
                    let _entered = span.enter();
                    log_access(&access(step));
                }
                _ => log_access(&access(step)),
            }
        };
        for setup in [
            Setup::TEXT,
            Setup::JSON,
            Setup {
                ansi: true,
                ..Setup::TEXT
            },
        ] {
            let setup = Setup {
                must_be_by_hand: false,
                ..setup
            };
            let (before, after) = before_and_after(setup, start(), 4, events);
            assert_same_lines(&before, &after);
            assert!(after[2].contains("vendor call"), "{}", after[2]);
        }
    }

    #[test]
    fn timestamps_are_written_as_tracing_subscribers_timer_writes_them() {
        let clock = Clock::system();
        let earliest = clock.utc().trunc_subsecs(6);
        let mut stock = String::new();
        SystemTime
            .format_time(&mut Writer::new(&mut stock))
            .unwrap();
        let latest = clock.utc();
        let printed = DateTime::parse_from_rfc3339(&stock).unwrap().to_utc();
        assert!(earliest <= printed && printed <= latest, "{stock}");
        let mut ours = Vec::new();
        timestamp(&mut ours, printed, &mut None);
        assert_eq!(String::from_utf8(ours).unwrap(), stock);
    }

    #[test]
    fn timestamps_of_any_year_are_written_as_chrono_writes_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let fixed = [
            -62_167_219_201, // year -1
            -62_167_219_200, // year 0
            -62_135_596_800, // year 1
            -1,
            0,
            951_782_400, // 2000-02-29
            1_735_689_600,
            253_402_300_799, // 9999-12-31T23:59:59
            253_402_300_800, // year 10000
        ];
        let span = 400_000_000_000_i64;
        let times = fixed
            .iter()
            .map(|&secs| (secs, 999_999_999))
            .chain((0..100_000).map(|_| {
                let secs = (random() % span as u64) as i64 - span / 2;
                (secs, (random() % 1_000_000_000) as u32)
            }));
        for (secs, nanos) in times {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let mut ours = Vec::new();
            timestamp(&mut ours, t, &mut None);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "{secs} {nanos}"
            );
        }
        // A leap second runs on into the next second, as a `SystemTime` does.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        let mut ours = Vec::new();
        timestamp(&mut ours, leap, &mut None);
        assert_eq!(ours, b"2017-01-01T00:00:00.500000Z");
    }

    #[test]
    fn a_timestamp_reusing_the_last_second_is_the_same_as_one_worked_out_anew() {
        let mut t = Utc.with_ymd_and_hms(2024, 2, 28, 23, 59, 58).unwrap();
        let mut last = None;
        for step in 0..20_000_u32 {
            let mut reused = Vec::new();
            timestamp(&mut reused, t, &mut last);
            let mut anew = Vec::new();
            timestamp(&mut anew, t, &mut None);
            assert_eq!(reused, anew, "{t}");
            t += chrono::TimeDelta::microseconds(i64::from(step * 7_919 % 250_000));
        }
        assert!(t > Utc.with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap());
        // Seconds past year 9999 are not kept, and do not disturb the last.
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        for t in [t, far, far, t] {
            let mut reused = Vec::new();
            timestamp(&mut reused, t, &mut last);
            let mut anew = Vec::new();
            timestamp(&mut anew, t, &mut None);
            assert_eq!(reused, anew, "{t}");
        }
    }

    #[test]
    fn thousandths_are_written_as_debug_and_serde_json_write_them() {
        let mut state = 1_u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges = [
            999_999_999_999_999,
            999_999_999_999_000,
            123_456_789_012_345,
            (1 << 49) - 1,
        ];
        let mut ks: Vec<u64> = (0..300_000).chain(edges).collect();
        for _ in 0..100_000 {
            ks.push(random() % 1_000_000_000_000_000);
            ks.push(random() % 100_000_000);
        }
        for k in ks {
            let v = k as f64 / 1000.0;
            let mut ours = Vec::new();
            assert!(thousandths(&mut ours, v), "{k}");
            let ours = String::from_utf8(ours).unwrap();
            assert_eq!(ours, format!("{v:?}"), "{k}");
            assert_eq!(ours, serde_json::to_string(&v).unwrap(), "{k}");
        }
        for v in [
            -0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            0.1 + 0.2,
            1e-7,
            0.0005,
            1e12,
            1e16,
        ] {
            let mut ours = Vec::new();
            assert!(!thousandths(&mut ours, v), "{v}");
            assert!(ours.is_empty());
        }
    }
}
