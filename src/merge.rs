//! Dual-read bots (SPEC §8): one newest-first stream over several backends.
//!
//! Page N of a merged bot is exactly what a client would get by merging every
//! backend's full (filtered) stream newest first and slicing
//! `[(N-1)·size, N·size)`. Equal `created_at` values keep the backends' config
//! order, then each vendor's own order, so the result is deterministic. The same
//! vendor conversation id from the same backend is never returned twice.
//!
//! Each backend is read in fixed chunks of [`CHUNK`] conversations (its page
//! `k` of size 100) through a chunk cache, and a k-way merge walks per-backend
//! cursors over them, fetching the chunks several backends need concurrently.
//! Because chunks are cached (for the response cache's `ttl`), paging a merged bot
//! from page 1 to the end reads each backend chunk once: the upstream cost of the
//! whole walk is the same as reading every backend once, i.e. O(total
//! conversations / vendor page size) vendor calls, not O(pages²). The cost of one
//! page N is the chunks covering the first N·size + 1 merged conversations that are
//! not cached yet — at most one new chunk per backend for sequential paging.

use std::collections::HashSet;
use std::future::Future;
use std::ops::Deref;

use chatgate_providers::{Conversation, ListQuery, Page};
use futures_util::future::join_all;

use crate::cache::{BackendId, CacheStatus, SwrCache, Weigh};
use crate::config::{Backend, BotConfig};
use crate::error::GatewayError;

/// Where a merge reads backend chunks from. The gateway implements it over its
/// chunk cache and vendor-call phases; the merge itself knows nothing of HTTP,
/// caches or vendors, so it is tested over plain vectors.
pub trait ChunkSource {
    /// A loaded chunk (the gateway's is shared with its chunk cache).
    type Loaded: Deref<Target = Chunk>;

    /// Chunk `k` — conversations `[k·CHUNK, (k+1)·CHUNK)` — of `backend`'s stream
    /// filtered by `query`, and how the cache served it.
    fn chunk(
        &self,
        backend: &Backend,
        query: &ListQuery,
        k: u64,
    ) -> impl Future<Output = Result<(Self::Loaded, CacheStatus), GatewayError>>;
}

/// Conversations per backend chunk: the largest page every vendor accepts.
pub const CHUNK: u32 = 100;

/// Typed backend chunks, shared by every request for a merged bot.
pub type ChunkCache = SwrCache<ChunkKey, Chunk>;

/// One chunk of one backend's filtered stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    bot: String,
    backend: BackendId,
    /// Filters plus `page = chunk + 1`, `size = CHUNK`.
    query: ListQuery,
}

impl ChunkKey {
    /// Chunk `query` (filters, `page = chunk + 1`, `size = CHUNK`) of `backend`
    /// for `bot`.
    pub fn new(bot: &str, backend: BackendId, query: ListQuery) -> Self {
        Self {
            bot: bot.to_owned(),
            backend,
            query,
        }
    }
}

impl Weigh for ChunkKey {
    fn weigh(&self) -> usize {
        self.bot.len() + self.backend.weigh() + std::mem::size_of::<ListQuery>()
    }
}

/// Conversations `[k·CHUNK, (k+1)·CHUNK)` of a backend's stream.
#[derive(Debug)]
pub struct Chunk {
    conversations: Vec<Conversation>,
    has_more: bool,
    weight: usize,
}

impl Weigh for Chunk {
    fn weigh(&self) -> usize {
        self.weight
    }
}

impl From<Page> for Chunk {
    fn from(page: Page) -> Self {
        let weight = page.conversations.iter().map(approx_size).sum();
        Self {
            conversations: page.conversations,
            has_more: page.has_more,
            weight,
        }
    }
}

/// Roughly the memory a normalized conversation holds.
fn approx_size(c: &Conversation) -> usize {
    let messages: usize = c
        .messages
        .iter()
        .map(|m| {
            96 + m.content.escaped().len()
                + m.vendor_role.as_ref().map_or(0, String::len)
                + m.sources
                    .iter()
                    .map(|s| {
                        48 + [&s.kind, &s.title, &s.url]
                            .iter()
                            .map(|f| f.as_ref().map_or(0, |v| v.len()))
                            .sum::<usize>()
                    })
                    .sum::<usize>()
        })
        .sum();
    let raw = c.raw.as_ref().map_or(0, |r| r.get().len());
    256 + c.id.len()
        + c.chatbot_id.len()
        + c.customer.as_ref().map_or(0, String::len)
        + messages
        + raw
}

/// A position in one backend's stream.
struct Cursor<'a, L> {
    backend: &'a Backend,
    /// Index of the next conversation in the backend's stream.
    pos: u64,
    chunk: Option<L>,
    /// The chunk `chunk` holds.
    chunk_index: u64,
    exhausted: bool,
}

impl<L: Deref<Target = Chunk>> Cursor<'_, L> {
    fn head(&self) -> Option<&Conversation> {
        let chunk = self.chunk.as_ref()?;
        if self.pos / u64::from(CHUNK) != self.chunk_index {
            return None;
        }
        chunk
            .conversations
            .get((self.pos % u64::from(CHUNK)) as usize)
    }

    /// Whether the chunk for `pos` must be read (the head is not loaded and the
    /// stream may go on).
    fn needs_chunk(&mut self) -> Option<u64> {
        if self.exhausted || self.head().is_some() {
            return None;
        }
        let wanted = self.pos / u64::from(CHUNK);
        if let Some(chunk) = &self.chunk {
            if wanted == self.chunk_index {
                // Past the end of the loaded chunk: the stream ended there.
                self.exhausted = true;
                return None;
            }
            if wanted == self.chunk_index + 1 && !chunk.has_more {
                self.exhausted = true;
                return None;
            }
        }
        Some(wanted)
    }
}

/// A k-way merge over a bot's backends, from given per-backend positions.
///
/// The API builds a page by walking it from the start; `export` keeps one across
/// pages and checkpoints [`Merger::positions`], so a long export reads each
/// backend exactly once whatever the cache holds.
pub struct Merger<'a, L> {
    cursors: Vec<Cursor<'a, L>>,
    seen: HashSet<(usize, String)>,
    status: CacheStatus,
}

impl<'a, L: Deref<Target = Chunk>> Merger<'a, L> {
    /// A merge of `bot`'s backends starting at `positions` (one per backend, in
    /// config order; `None` starts every backend at its beginning).
    pub fn new(bot: &'a BotConfig, positions: Option<&[u64]>) -> Self {
        let cursors = bot
            .backends
            .iter()
            .enumerate()
            .map(|(i, backend)| Cursor {
                backend,
                pos: positions.and_then(|p| p.get(i).copied()).unwrap_or(0),
                chunk: None,
                chunk_index: 0,
                exhausted: false,
            })
            .collect();
        Self {
            cursors,
            seen: HashSet::new(),
            status: CacheStatus::Hit,
        }
    }

    /// How far each backend has been consumed, in config order.
    pub fn positions(&self) -> Vec<u64> {
        self.cursors.iter().map(|c| c.pos).collect()
    }

    /// How the chunk cache served the chunks read so far.
    pub fn status(&self) -> CacheStatus {
        self.status
    }

    /// Loads every missing head at once, one chunk per backend, concurrently.
    async fn fill<S: ChunkSource<Loaded = L>>(
        &mut self,
        source: &S,
        query: &ListQuery,
    ) -> Result<(), GatewayError> {
        let wanted: Vec<(usize, u64)> = self
            .cursors
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.needs_chunk().map(|k| (i, k)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let fetches = wanted
            .iter()
            .map(|&(i, k)| source.chunk(self.cursors[i].backend, query, k));
        // Results in config order: the first failing backend's error wins.
        for ((i, k), result) in wanted.iter().zip(join_all(fetches).await) {
            let (loaded, chunk_status) = result?;
            self.status = self.status.max(chunk_status);
            let cursor = &mut self.cursors[*i];
            cursor.chunk = Some(loaded);
            cursor.chunk_index = *k;
            if cursor.head().is_none() {
                cursor.exhausted = true;
            }
        }
        Ok(())
    }

    /// The backend whose head is newest; on equal times the earliest in config
    /// order.
    fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, c) in self.cursors.iter().enumerate() {
            let Some(head) = c.head() else { continue };
            let newer = match best.and_then(|b| self.cursors[b].head()) {
                None => true,
                Some(current) => head.created_at > current.created_at,
            };
            if newer {
                best = Some(i);
            }
        }
        best
    }

    /// Whether another conversation follows.
    pub async fn has_next<S: ChunkSource<Loaded = L>>(
        &mut self,
        source: &S,
        query: &ListQuery,
    ) -> Result<bool, GatewayError> {
        loop {
            self.fill(source, query).await?;
            let Some(i) = self.best() else {
                return Ok(false);
            };
            let head = self.cursors[i].head().expect("`best` has a head");
            if !self.seen.contains(&(i, head.id.clone())) {
                return Ok(true);
            }
            // A repeat of an id this backend already gave: skip it for good.
            self.cursors[i].pos += 1;
        }
    }

    /// The next conversation of the merged stream, or `None` at its end.
    pub async fn next<S: ChunkSource<Loaded = L>>(
        &mut self,
        source: &S,
        query: &ListQuery,
    ) -> Result<Option<Conversation>, GatewayError> {
        if !self.has_next(source, query).await? {
            return Ok(None);
        }
        let i = self.best().expect("has_next found a head");
        let cursor = &mut self.cursors[i];
        let conversation = cursor.head().cloned().expect("`best` has a head");
        cursor.pos += 1;
        self.seen.insert((i, conversation.id.clone()));
        Ok(Some(conversation))
    }
}

/// One page of a bot with several backends, and how the chunk cache served it.
pub async fn merged_page<S: ChunkSource>(
    source: &S,
    bot: &BotConfig,
    query: &ListQuery,
) -> Result<(Page, CacheStatus), GatewayError> {
    let size = query.size.get() as usize;
    let mut merger = Merger::new(bot, None);
    for _ in 0..query.window_start() {
        if merger.next(source, query).await?.is_none() {
            break;
        }
    }
    let mut conversations = Vec::with_capacity(size);
    while conversations.len() < size {
        match merger.next(source, query).await? {
            Some(c) => conversations.push(c),
            None => break,
        }
    }
    let has_more = conversations.len() == size && merger.has_next(source, query).await?;
    Ok((
        Page {
            conversations,
            has_more,
        },
        merger.status(),
    ))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use chatgate_providers::{PageNumber, PageSize, ProviderKind, Source};
    use chrono::{TimeZone, Utc};

    use super::*;

    /// Backends as plain newest-first vectors, counting chunk reads.
    struct Vectors {
        streams: Vec<(Backend, Vec<Conversation>)>,
        reads: Cell<u32>,
    }

    impl ChunkSource for Vectors {
        type Loaded = Box<Chunk>;

        async fn chunk(
            &self,
            backend: &Backend,
            _query: &ListQuery,
            k: u64,
        ) -> Result<(Box<Chunk>, CacheStatus), GatewayError> {
            self.reads.set(self.reads.get() + 1);
            let stream = &self
                .streams
                .iter()
                .find(|(b, _)| b == backend)
                .ok_or(GatewayError::Internal)?
                .1;
            let start = usize::try_from(k * u64::from(CHUNK)).unwrap();
            let end = (start + CHUNK as usize).min(stream.len());
            let conversations = stream.get(start..end).unwrap_or_default().to_vec();
            let page = Page {
                conversations,
                has_more: end < stream.len(),
            };
            Ok((Box::new(Chunk::from(page)), CacheStatus::Miss))
        }
    }

    fn backend(name: &str) -> Backend {
        Backend {
            provider: name.to_owned(),
            chatbot_id: "b".to_owned(),
        }
    }

    fn conversation(id: String, secs: i64) -> Conversation {
        Conversation {
            id,
            chatbot_id: "bot".to_owned(),
            provider: ProviderKind::Chatbase,
            created_at: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            updated_at: None,
            customer: None,
            source: Source::Api,
            messages: Vec::new(),
            raw: None,
        }
    }

    /// Two backends with interleaved times, ties, and a repeated id.
    fn source() -> (BotConfig, Vectors) {
        let a: Vec<_> = (0..250)
            .rev()
            .map(|i| conversation(format!("a{i}"), 2 * i))
            .collect();
        let mut b: Vec<_> = (0..130)
            .rev()
            .map(|i| conversation(format!("b{i}"), 3 * i))
            .collect();
        // A vendor repeating an id across its pages: given once.
        b.insert(60, b[59].clone());
        let bot = BotConfig {
            name: "bot".to_owned(),
            backends: vec![backend("a"), backend("b")],
        };
        let streams = vec![(backend("a"), a), (backend("b"), b)];
        (
            bot,
            Vectors {
                streams,
                reads: Cell::new(0),
            },
        )
    }

    /// The whole merge, the way a client expects it: newest first, equal times
    /// in backend order, each backend's ids once.
    fn expected(source: &Vectors) -> Vec<String> {
        let mut all: Vec<(i64, usize, usize, String)> = Vec::new();
        for (bi, (_, stream)) in source.streams.iter().enumerate() {
            let mut seen = HashSet::new();
            for (pos, c) in stream.iter().enumerate() {
                if seen.insert(c.id.clone()) {
                    all.push((-c.created_at.timestamp(), bi, pos, c.id.clone()));
                }
            }
        }
        all.sort();
        all.into_iter().map(|(_, _, _, id)| id).collect()
    }

    fn query(page: u32, size: u32) -> ListQuery {
        ListQuery {
            page: PageNumber::new(page).unwrap(),
            size: PageSize::new(size).unwrap(),
            ..ListQuery::default()
        }
    }

    #[actix_rt::test]
    async fn every_page_is_the_slice_of_the_whole_merge() {
        let (bot, source) = source();
        let all = expected(&source);
        assert_eq!(all.len(), 250 + 130);
        for size in [1, 7, 50, 100] {
            let pages = all.len().div_ceil(size as usize) as u32 + 1;
            for page in 1..=pages {
                let (got, _) = merged_page(&source, &bot, &query(page, size))
                    .await
                    .unwrap();
                let start = ((page - 1) * size) as usize;
                let want: Vec<_> = all.iter().skip(start).take(size as usize).collect();
                let ids: Vec<_> = got.conversations.iter().map(|c| &c.id).collect();
                assert_eq!(ids, want, "page {page} size {size}");
                assert_eq!(got.has_more, start + (size as usize) < all.len());
            }
        }
    }

    #[actix_rt::test]
    async fn a_streaming_merge_reads_each_chunk_once() {
        let (bot, source) = source();
        let mut merger = Merger::new(&bot, None);
        let q = query(1, 100);
        let mut ids = Vec::new();
        while let Some(c) = merger.next(&source, &q).await.unwrap() {
            ids.push(c.id);
        }
        assert_eq!(ids, expected(&source));
        // a: 250 → 3 chunks; b: 131 → 2 chunks; no chunk read twice.
        assert_eq!(source.reads.get(), 5);
        assert_eq!(merger.positions(), vec![250, 131]);
        let mut resumed: Merger<'_, Box<Chunk>> = Merger::new(&bot, Some(&[250, 131]));
        assert!(resumed.next(&source, &q).await.unwrap().is_none());
    }
}
