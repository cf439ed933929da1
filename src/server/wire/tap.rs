//! The response stream of one connection as the HTTP layer writes it, read as a
//! sequence of messages so each response head is found where it starts, and the
//! heads the HTTP layer wrote on its own are replaced.
//!
//! Sans-IO: [`Tap::step`] looks at the bytes the HTTP layer offers and says what
//! to write; [`Tap::passed`] is told how many of them reached the socket. A head
//! is decided once whole: it belongs to the app when the app announced an answer
//! for it (see [`super::track`](mod@super::track)), else the HTTP layer wrote it (no request
//! reached the app) and an error head is replaced by the documented JSON error.
//!
//! Why the replaced head is always the connection's last, and why heads arrive
//! whole (actix-http 3's `h1/dispatcher.rs`): the dispatcher queues its own error
//! behind the requests already decoded, sends it after their answers, and stops
//! reading; its only other answer (408, the head timer) is sent before any request
//! was decoded; and it encodes each head whole into its write buffer before
//! writing. A head offered in pieces anyway (by another writer) is still handled:
//! its first bytes are held until it is whole. A partial socket write inside a
//! decided message needs nothing: the rest of that message simply passes.
//!
//! One stream the tap cannot follow is actix-http's own mis-framing: it leaves
//! out the body of an answer encoded while the last request it decoded was a
//! pipelined `HEAD`, though the answer's `Content-Length` announces one. The
//! client is desynchronized already; the tap loses the next head, cannot parse
//! what it finds there, and passes the rest of that connection unchanged.

use std::mem::MaybeUninit;
use std::sync::LazyLock;

use actix_web::http::StatusCode;
use memchr::memmem::Finder;

use super::super::error::{ApiError, Failure};
use super::super::JSON;
use crate::clock::Clock;

/// The longest response head looked at. Ours are a few hundred bytes; past this
/// the stream is passed on untouched rather than buffered without bound.
const MAX_HEAD: usize = 64 * 1024;

/// What the app said about one answer it is producing, in answer order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Announced {
    /// The request was `HEAD`: its answer has no body (see [`super::track`](mod@super::track)).
    pub head_request: bool,
}

/// A replaced answer of the HTTP layer, for the log line and metrics.
#[derive(Debug)]
pub struct Replaced {
    /// The error that now answers.
    pub failure: Failure,
    /// Its status.
    pub status: StatusCode,
}

/// What to do with the front of the bytes offered.
#[derive(Debug)]
pub enum Step {
    /// Write the first `n` bytes unchanged.
    Pass(usize),
    /// The first `n` bytes are taken; nothing is written for them now.
    Take(usize),
    /// The first `consumed` bytes are taken; write `bytes` in their place.
    Emit {
        /// Input bytes this stands for.
        consumed: usize,
        /// What goes on the wire instead.
        bytes: Vec<u8>,
        /// Set when an answer of the HTTP layer was replaced.
        replaced: Option<Replaced>,
    },
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a response head (its first bytes may be held).
    Head,
    /// This many bytes of a decided message pass unchanged, then `then`.
    Pass { left: u64, then: After },
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Framing unknown from here on (a body ended by the connection's end, an
    /// upgrade, a head that does not parse): everything passes unchanged.
    Through,
    /// A replaced answer was the connection's last: nothing more is written.
    Done,
}

/// What follows a decided head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Head,
    Chunked,
}

/// One connection's response stream.
#[derive(Debug)]
pub struct Tap {
    state: State,
    held: Vec<u8>,
    closing: bool,
    answered: bool,
    /// Dates a replacement when the replaced head had no `Date`.
    clock: Clock,
}

impl Tap {
    /// A tap at the start of a connection's stream.
    pub fn new(clock: Clock) -> Self {
        Self {
            state: State::Head,
            held: Vec::new(),
            closing: false,
            answered: false,
            clock,
        }
    }

    /// Whether a head announcing `Connection: close` has been decided: the
    /// connection reads nothing useful after it.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Whether every answer begun has been written whole, and there was one:
    /// the connection waits for its next request.
    pub fn between_answers(&self) -> bool {
        self.answered && self.state == State::Head && self.held.is_empty()
    }

    /// The connection's own last answer was written around the HTTP layer:
    /// nothing the layer writes afterwards reaches the wire.
    pub fn finish(&mut self) {
        self.state = State::Done;
        self.held.clear();
        self.closing = true;
    }

    /// Decides what to do with the front of `input`, the bytes the HTTP layer
    /// wants written next. `announced` yields the app's next announced answer.
    pub fn step(&mut self, input: &[u8], announced: impl FnOnce() -> Option<Announced>) -> Step {
        match self.state {
            State::Head => self.head(input, announced),
            _ => self.within_message(input),
        }
    }

    /// [`Self::step`] once the head is decided (`Head` is never seen here).
    fn within_message(&self, input: &[u8]) -> Step {
        match self.state {
            State::Done => Step::Take(input.len()),
            State::Through | State::Head => Step::Pass(input.len()),
            State::Pass { left, .. } => Step::Pass(clamp(left, input.len())),
            State::Chunked(chunk) => Step::Pass(chunk.scan(input).0),
        }
    }

    /// `bytes`, the front of a [`Step::Pass`], reached the socket.
    pub fn passed(&mut self, bytes: &[u8]) {
        match self.state {
            State::Pass { left, then } => {
                let left = left.saturating_sub(bytes.len() as u64);
                self.state = match (left, then) {
                    (0, After::Head) => State::Head,
                    (0, After::Chunked) => State::Chunked(Chunk::START),
                    (left, then) => State::Pass { left, then },
                };
            }
            State::Chunked(chunk) => {
                self.state = match chunk.scan(bytes).1 {
                    Scan::Within(next) => State::Chunked(next),
                    Scan::Ended => State::Head,
                    Scan::Broken => State::Through,
                };
            }
            State::Head | State::Through | State::Done => {}
        }
    }

    fn head(&mut self, input: &[u8], announced: impl FnOnce() -> Option<Announced>) -> Step {
        let was_held = self.held.len();
        let search_from = was_held.saturating_sub(3);
        let end = if was_held == 0 {
            find_head_end(input, 0)
        } else {
            self.held.extend_from_slice(input);
            find_head_end(&self.held, search_from)
        };
        let Some(end) = end else {
            if was_held == 0 {
                self.held.extend_from_slice(input);
            }
            if self.held.len() > MAX_HEAD {
                self.state = State::Through;
                return Step::Emit {
                    consumed: input.len(),
                    bytes: std::mem::take(&mut self.held),
                    replaced: None,
                };
            }
            return Step::Take(input.len());
        };
        let (head, consumed) = if was_held == 0 {
            (&input[..end], end)
        } else {
            (&self.held[..end], end - was_held)
        };
        let decision = decide(head, announced, &self.clock);
        self.closing |= decision.closes;
        self.answered |= decision.answer;
        match decision.what {
            Decided::Replace(bytes, replaced) => {
                self.state = State::Done;
                self.held.clear();
                self.closing = true;
                Step::Emit {
                    consumed,
                    bytes,
                    replaced: Some(replaced),
                }
            }
            Decided::Pass(framing) if was_held == 0 => {
                let head_len = end as u64;
                self.state = match framing {
                    Framing::None => State::Pass {
                        left: head_len,
                        then: After::Head,
                    },
                    Framing::Sized(n) => State::Pass {
                        left: head_len.saturating_add(n),
                        then: After::Head,
                    },
                    Framing::Chunked => State::Pass {
                        left: head_len,
                        then: After::Chunked,
                    },
                    Framing::Unknown => State::Through,
                };
                self.within_message(input)
            }
            Decided::Pass(framing) => {
                let mut bytes = std::mem::take(&mut self.held);
                bytes.truncate(end);
                self.state = match framing {
                    Framing::None | Framing::Sized(0) => State::Head,
                    Framing::Sized(n) => State::Pass {
                        left: n,
                        then: After::Head,
                    },
                    Framing::Chunked => State::Chunked(Chunk::START),
                    Framing::Unknown => State::Through,
                };
                Step::Emit {
                    consumed,
                    bytes,
                    replaced: None,
                }
            }
        }
    }
}

fn clamp(left: u64, len: usize) -> usize {
    usize::try_from(left).map_or(len, |left| left.min(len))
}

/// The blank line ending a head, found with a vectorized substring search
/// built once: every answer's head is searched, and `memmem::find` would build
/// the searcher again each time (about a third of the cost of a search).
static HEAD_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));

/// The index just past the blank line ending a head, searching from `from`.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    HEAD_END.find(bytes.get(from..)?).map(|i| from + i + 4)
}

/// How a passed message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Sized(u64),
    Chunked,
    Unknown,
}

enum Decided {
    Pass(Framing),
    Replace(Vec<u8>, Replaced),
}

struct Decision {
    what: Decided,
    closes: bool,
    /// A final answer (not an interim 1xx head).
    answer: bool,
}

/// The most header fields a head may have to be followed; a head with more is
/// passed on unparsed ([`Framing::Unknown`]).
const MAX_FIELDS: usize = 64;

/// The fields of a head the tap acts on, read in one pass.
#[derive(Default)]
struct Fields<'a> {
    /// A `Connection` field lists `close`.
    closes: bool,
    /// A `Transfer-Encoding` field lists `chunked`.
    chunked: bool,
    /// The first `Content-Length` (in UTF-8), as written.
    length: Option<&'a str>,
    /// The first `Date`, as written.
    date: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn read(headers: &[httparse::Header<'a>]) -> Self {
        let lists = |value: &[u8], token: &str| {
            std::str::from_utf8(value)
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        let mut fields = Self::default();
        for h in headers {
            let name = h.name;
            if name.eq_ignore_ascii_case("connection") {
                fields.closes |= lists(h.value, "close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                fields.chunked |= lists(h.value, "chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                if fields.length.is_none() {
                    fields.length = std::str::from_utf8(h.value).ok();
                }
            } else if name.eq_ignore_ascii_case("date") && fields.date.is_none() {
                fields.date = Some(h.value);
            }
        }
        fields
    }
}

/// Decides one whole head; `clock` dates a replacement for a head without `Date`.
fn decide(head: &[u8], announced: impl FnOnce() -> Option<Announced>, clock: &Clock) -> Decision {
    // Left uninitialized: httparse fills only the fields a head has, and this
    // runs for every answer.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let result = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        head,
        &mut headers,
    );
    let unknown = Decision {
        what: Decided::Pass(Framing::Unknown),
        closes: false,
        answer: true,
    };
    let (Ok(httparse::Status::Complete(_)), Some(code)) = (result, parsed.code) else {
        return unknown;
    };
    let Ok(status) = StatusCode::from_u16(code) else {
        return unknown;
    };
    let fields = Fields::read(parsed.headers);
    let closes = fields.closes;
    if status.is_informational() {
        let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
            Framing::Unknown
        } else {
            Framing::None
        };
        return Decision {
            what: Decided::Pass(framing),
            closes,
            answer: false,
        };
    }
    let announced = announced();
    if announced.is_none() && (status.is_client_error() || status.is_server_error()) {
        let version = parsed.version.unwrap_or(1);
        let (bytes, replaced) = replacement(version, status, fields.date, clock);
        return Decision {
            what: Decided::Replace(bytes, replaced),
            closes: true,
            answer: true,
        };
    }
    let bodyless = announced.is_some_and(|a| a.head_request)
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = fields.length.map(|v| v.trim().parse::<u64>());
    let framing = match (bodyless, fields.chunked, length) {
        (true, _, _) => Framing::None,
        (false, true, _) => Framing::Chunked,
        (false, false, Some(Ok(n))) => Framing::Sized(n),
        (false, false, _) => Framing::Unknown,
    };
    Decision {
        what: Decided::Pass(framing),
        closes,
        answer: true,
    }
}

/// The documented JSON error in place of the HTTP layer's empty `status`, with a
/// fresh request id, ending the connection; `date` is the replaced head's, or
/// else `clock`'s time.
pub fn replacement(
    minor_version: u8,
    status: StatusCode,
    date: Option<&[u8]>,
    clock: &Clock,
) -> (Vec<u8>, Replaced) {
    let failure = Failure {
        error: ApiError::HttpLayer(status),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let body = failure.body();
    let mut out = format!(
        "HTTP/1.{minor_version} {} {}\r\ncontent-type: {JSON}\r\ncontent-length: {}\r\n\
         x-request-id: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        failure.request_id,
    )
    .into_bytes();
    out.extend_from_slice(b"date: ");
    match date {
        Some(date) => out.extend_from_slice(date),
        None => out.extend_from_slice(httpdate::fmt_http_date(clock.system_time()).as_bytes()),
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&body);
    (out, Replaced { failure, status })
}

/// Where a chunked body is (RFC 9112 §7.1): a size line, data, CRLF, …, the
/// last chunk, trailer lines, a blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Hex digits of a chunk size.
    Size { size: u64, digits: bool },
    /// A chunk extension, up to CR.
    Extension { size: u64 },
    /// The LF ending a size line.
    SizeLf { size: u64 },
    /// Chunk data.
    Data { left: u64 },
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// A trailer line (or the final blank line when `blank`).
    Trailer { blank: bool },
    /// The LF ending a trailer line.
    TrailerLf { blank: bool },
}

/// How far a scan got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// All input belongs to the body; it continues in this state.
    Within(Chunk),
    /// The body ended within the input.
    Ended,
    /// Not chunked framing after all.
    Broken,
}

impl Chunk {
    const START: Self = Self::Size {
        size: 0,
        digits: false,
    };

    /// How many leading bytes of `input` belong to this body, and where it is
    /// after them. A broken body takes all the input (it passes unchanged).
    fn scan(self, input: &[u8]) -> (usize, Scan) {
        let mut state = self;
        let mut i = 0;
        while i < input.len() {
            if let Self::Data { left } = state {
                let n = clamp(left, input.len() - i);
                i += n;
                let left = left - n as u64;
                state = if left == 0 {
                    Self::DataCr
                } else {
                    Self::Data { left }
                };
                continue;
            }
            let byte = input[i];
            i += 1;
            state = match (state, byte) {
                (Self::Size { size, .. }, b) if b.is_ascii_hexdigit() => {
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                    match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                        Some(size) => Self::Size { size, digits: true },
                        None => return (input.len(), Scan::Broken),
                    }
                }
                (Self::Size { size, digits: true }, b'\r') | (Self::Extension { size }, b'\r') => {
                    Self::SizeLf { size }
                }
                (Self::Size { size, digits: true }, _) => Self::Extension { size },
                (Self::Extension { size }, _) => Self::Extension { size },
                (Self::SizeLf { size: 0 }, b'\n') => Self::Trailer { blank: true },
                (Self::SizeLf { size }, b'\n') => Self::Data { left: size },
                (Self::DataCr, b'\r') => Self::DataLf,
                (Self::DataLf, b'\n') => Self::START,
                (Self::Trailer { blank }, b'\r') => Self::TrailerLf { blank },
                (Self::Trailer { .. }, _) => Self::Trailer { blank: false },
                (Self::TrailerLf { blank: true }, b'\n') => return (i, Scan::Ended),
                (Self::TrailerLf { blank: false }, b'\n') => Self::Trailer { blank: true },
                _ => return (input.len(), Scan::Broken),
            };
        }
        (i, Scan::Within(state))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::VecDeque;

    use super::*;
    use crate::clock::ManualClock;

    const APP_GET: Announced = Announced {
        head_request: false,
    };
    const APP_HEAD: Announced = Announced { head_request: true };

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n\
        x-request-id: abc\r\ndate: Wed, 02 Dec 2026 15:32:40 GMT\r\n\r\n{\"status\":\"ok\"}";
    const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\
        date: Wed, 02 Dec 2026 15:32:45 GMT\r\n\r\n";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        5\r\nHTTP/\r\nA;x=1\r\n1.1 400 Ba\r\n0\r\n\r\n";

    /// Runs the tap over `writes` as a writer would (re-offering what was not
    /// taken), the socket accepting at most `accept` bytes per write. Returns
    /// what reached the wire and the replaced answers.
    fn run(
        writes: &[&[u8]],
        announced: &[Announced],
        accept: usize,
    ) -> (Vec<u8>, Vec<Replaced>, Tap) {
        let mut tap = Tap::new(ManualClock::new().into());
        let mut queue: VecDeque<Announced> = announced.iter().copied().collect();
        let mut wire = Vec::new();
        let mut replaced = Vec::new();
        for write in writes {
            let mut rest: &[u8] = write;
            while !rest.is_empty() {
                let n = match tap.step(rest, || queue.pop_front()) {
                    Step::Pass(n) => {
                        let n = n.min(accept);
                        wire.extend_from_slice(&rest[..n]);
                        tap.passed(&rest[..n]);
                        n
                    }
                    Step::Take(n) => n,
                    Step::Emit {
                        consumed,
                        bytes,
                        replaced: r,
                    } => {
                        wire.extend_from_slice(&bytes);
                        replaced.extend(r);
                        consumed
                    }
                };
                assert!(n > 0, "the tap always makes progress");
                rest = &rest[n..];
            }
        }
        (wire, replaced, tap)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Splits the one response the wire holds into head and body.
    fn parse_one(wire: &[u8]) -> (u16, Vec<(String, String)>, serde_json::Value) {
        let end = find_head_end(wire, 0).unwrap();
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut res = httparse::Response::new(&mut headers);
        res.parse(&wire[..end]).unwrap();
        let headers: Vec<(String, String)> = res
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert_eq!(wire.len() - end, length, "the body is exactly its length");
        (
            res.code.unwrap(),
            headers,
            serde_json::from_slice(&wire[end..]).unwrap(),
        )
    }

    #[test]
    fn app_answers_pass_unchanged() {
        let (wire, replaced, _) = run(&[OK, OK], &[APP_GET, APP_GET], usize::MAX);
        assert_eq!(wire, cat(&[OK, OK]));
        assert!(replaced.is_empty());
    }

    #[test]
    fn an_unannounced_error_head_becomes_the_json_error() {
        let (wire, replaced, tap) = run(&[BAD], &[], usize::MAX);
        let (status, headers, body) = parse_one(&wire);
        assert_eq!(status, 400);
        let get = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("content-type"), Some(JSON));
        assert_eq!(get("connection"), Some("close"));
        assert_eq!(get("date"), Some("Wed, 02 Dec 2026 15:32:45 GMT"));
        assert_eq!(body["code"], "invalid_request");
        assert_eq!(body["request_id"].as_str(), get("x-request-id"));
        assert!(!body["message"].as_str().unwrap().is_empty());
        assert_eq!(replaced.len(), 1);
        assert!(tap.closing());
    }

    #[test]
    fn each_http_layer_status_keeps_its_status_and_gets_its_code() {
        for (status, code) in [
            (408, "request_timeout"),
            (431, "headers_too_large"),
            (413, "payload_too_large"),
            (505, "http_version_not_supported"),
            (500, "internal_error"),
        ] {
            let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            let (wire, _, _) = run(&[head.as_bytes()], &[], usize::MAX);
            let (got, headers, body) = parse_one(&wire);
            assert_eq!((got, body["code"].as_str().unwrap()), (status, code));
            // These heads carry no `Date`: the replacement is dated by the clock.
            assert!(
                headers.contains(&(
                    "date".to_owned(),
                    "Wed, 01 Jan 2025 00:00:00 GMT".to_owned()
                )),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn an_error_after_pipelined_app_answers_in_one_write_is_found() {
        let write = cat(&[OK, OK, BAD]);
        let (wire, replaced, _) = run(&[&write], &[APP_GET, APP_GET], usize::MAX);
        let ok_ok = cat(&[OK, OK]);
        assert_eq!(&wire[..ok_ok.len()], &ok_ok[..]);
        assert_eq!(parse_one(&wire[ok_ok.len()..]).0, 400);
        assert_eq!(replaced.len(), 1);
    }

    #[test]
    fn heads_and_bodies_split_at_every_byte_are_tracked() {
        let stream = cat(&[OK, CHUNKED, BAD]);
        let announced = [APP_GET, APP_GET];
        let (whole, _, _) = run(&[&stream], &announced, usize::MAX);
        for cut in 1..stream.len() {
            let (wire, replaced, _) =
                run(&[&stream[..cut], &stream[cut..]], &announced, usize::MAX);
            assert_eq!(replaced.len(), 1, "cut at {cut}");
            let replaced_at = OK.len() + CHUNKED.len();
            assert_eq!(&wire[..replaced_at], &whole[..replaced_at], "cut at {cut}");
            assert_eq!(parse_one(&wire[replaced_at..]).0, 400, "cut at {cut}");
        }
        for accept in 1..8 {
            let (wire, replaced, _) = run(&[&stream], &announced, accept);
            assert_eq!(replaced.len(), 1, "socket taking {accept} bytes a write");
            assert_eq!(&wire[..OK.len()], OK);
        }
    }

    #[test]
    fn a_status_line_inside_a_body_is_not_a_head() {
        let body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let stream = cat(&[head.as_bytes(), body, CHUNKED]);
        let (wire, replaced, _) = run(&[&stream], &[APP_GET, APP_GET], usize::MAX);
        assert_eq!(wire, stream);
        assert!(replaced.is_empty());
    }

    #[test]
    fn a_head_answer_has_no_body_and_interim_heads_are_not_answers() {
        let head_answer = b"HTTP/1.1 405 Method Not Allowed\r\nx-request-id: a\r\n\r\n";
        let stream = cat(&[b"HTTP/1.1 100 Continue\r\n\r\n", head_answer, OK, BAD]);
        let (wire, replaced, _) = run(&[&stream], &[APP_HEAD, APP_GET], usize::MAX);
        let kept = stream.len() - BAD.len();
        assert_eq!(&wire[..kept], &stream[..kept]);
        assert_eq!(replaced.len(), 1);
    }

    #[test]
    fn announced_errors_and_close_heads_pass_but_mark_the_connection_closing() {
        let app_error =
            b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 2\r\nconnection: close\r\n\
            x-request-id: a\r\n\r\n{}";
        let (wire, replaced, tap) = run(&[app_error], &[APP_GET], usize::MAX);
        assert_eq!(wire, app_error);
        assert!(replaced.is_empty());
        assert!(tap.closing());
        let (_, _, tap) = run(&[OK], &[APP_GET], usize::MAX);
        assert!(!tap.closing());
        assert!(tap.between_answers());
    }

    #[test]
    fn nothing_is_written_after_a_replaced_answer_and_unparsable_streams_pass() {
        let (wire, _, _) = run(&[BAD, OK], &[], usize::MAX);
        assert_eq!(parse_one(&wire).0, 400);
        let garbage = b"not http\r\n\r\nat all";
        let (wire, replaced, _) = run(&[garbage, BAD], &[], usize::MAX);
        assert_eq!(wire, cat(&[garbage, BAD]));
        assert!(replaced.is_empty());
        let unframed = b"HTTP/1.0 200 OK\r\n\r\nuntil the end";
        let (wire, _, _) = run(&[unframed, BAD], &[APP_GET], usize::MAX);
        assert_eq!(wire, cat(&[unframed, BAD]));
    }

    #[test]
    fn a_body_actix_left_out_loses_the_stream_which_then_passes_unchanged() {
        let suppressed = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\nx-request-id: a\r\n\r\n";
        let head_answer = b"HTTP/1.1 405 Method Not Allowed\r\nx-request-id: b\r\n\r\n";
        let stream = cat(&[suppressed, head_answer, OK, BAD]);
        let (wire, replaced, tap) = run(&[&stream], &[APP_GET, APP_HEAD, APP_GET], usize::MAX);
        assert_eq!(wire, stream);
        assert!(replaced.is_empty());
        assert_eq!(tap.state, State::Through);
    }

    #[test]
    fn field_names_match_in_any_case_and_the_first_length_frames_the_body() {
        let head = b"HTTP/1.1 200 OK\r\nCONTENT-Length: 2\r\nContent-Length: 9\r\n\
            Connection: Keep-Alive, Close\r\n\r\n{}";
        let (wire, replaced, tap) = run(&[head, BAD], &[APP_GET], usize::MAX);
        assert_eq!(&wire[..head.len()], head);
        assert_eq!(
            parse_one(&wire[head.len()..]).0,
            400,
            "the next head is found"
        );
        assert_eq!(replaced.len(), 1);
        assert!(tap.closing());
    }

    #[test]
    fn an_endless_head_is_passed_on_not_buffered() {
        let endless = vec![b'a'; MAX_HEAD + 10];
        let (wire, _, tap) = run(
            &[&endless[..MAX_HEAD / 2], &endless[MAX_HEAD / 2..]],
            &[],
            7,
        );
        assert_eq!(wire, endless);
        assert_eq!(tap.state, State::Through);
    }
}
