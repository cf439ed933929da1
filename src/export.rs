//! `chatgate export` (SPEC §4, §8): every conversation of a bot as JSON Lines,
//! through the same adapters, retries, quota guard and merge as the API.
//!
//! Safe to interrupt. Each page is written, flushed and synced, and only then
//! is the checkpoint (`<out>.checkpoint`) replaced atomically with the byte length
//! of the file so far and the next page. `--resume` truncates the file to that
//! length, which drops any half-written page, and goes on from the next page.
//! Conversations already written are remembered by (provider, id), so a
//! conversation that moves to a later page between two reads (one newer arrived)
//! is not written twice. A vendor failure stops the export with the checkpoint
//! at the last complete page, and the file never holds a partial line beyond it.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate_providers::{ListQuery, Page, PageNumber, PageSize};
use serde::{Deserialize, Serialize};

use crate::cache::split_cache_budget;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::GatewayError;
use crate::gateway::{CallCtx, Gateway, UpstreamStats};
use crate::merge::{ChunkCache, ChunkSource, Merger};
use crate::metrics::Metrics;
use crate::query as params;
use crate::redis::SharedStore;
use crate::upstream::{tls_config, BodyBudget, Upstream};
use crate::waits::Waits;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// The bot's name in config.
    pub bot: String,
    /// First day included (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// Last day included.
    pub until: Option<String>,
    /// Comma-separated sources (canonical ids or vendor labels).
    pub sources: Option<String>,
    /// The JSON Lines file.
    pub out: PathBuf,
    /// Continue an interrupted export.
    pub resume: bool,
    /// Add each conversation's original vendor object.
    pub include_raw: bool,
    /// Conversations per page read (1–100).
    pub page_size: u32,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Bad arguments or an unknown bot.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing files.
    #[error("{0}")]
    Io(String),
    /// A vendor call failed mid-way; the checkpoint allows `--resume`.
    #[error("stopped at page {page}: {error}; {written} conversation(s) are safely written — run the same command with --resume to continue")]
    Upstream {
        /// The page that failed.
        page: u32,
        /// What failed.
        error: String,
        /// Conversations in the file.
        written: u64,
    },
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Conversations written.
    pub conversations: u64,
    /// Messages in them.
    pub messages: u64,
    /// Gateway pages read.
    pub pages: u64,
    /// Vendor calls made (retries included).
    pub vendor_calls: u64,
}

/// The progress file: enough to resume, and to refuse resuming something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    bot: String,
    since: Option<String>,
    until: Option<String>,
    sources: Option<String>,
    include_raw: bool,
    page_size: u32,
    /// The next page to read.
    next_page: u32,
    /// Length of the output file after the last complete page.
    bytes: u64,
    /// Dual-read bots: how far each backend has been read, in config order.
    #[serde(default)]
    positions: Option<Vec<u64>>,
    totals: Totals,
    complete: bool,
}

fn checkpoint_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

fn io_err(what: &str, path: &Path, e: io::Error) -> ExportError {
    ExportError::Io(format!("{what} {}: {e}", path.display()))
}

impl Checkpoint {
    fn load(path: &Path) -> Result<Option<Self>, ExportError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ExportError::Io(format!(
                    "{} is not a chatgate checkpoint: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", path, e)),
        }
    }

    /// Replaces the checkpoint atomically (write, sync, rename).
    fn save(&self, path: &Path) -> Result<(), ExportError> {
        let tmp = path.with_extension("checkpoint.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("a checkpoint always serializes");
        let mut f = File::create(&tmp).map_err(|e| io_err("cannot write", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("cannot write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| io_err("cannot replace", path, e))
    }

    fn same_export(&self, other: &Checkpoint) -> bool {
        (
            &self.bot,
            &self.since,
            &self.until,
            &self.sources,
            self.include_raw,
            self.page_size,
        ) == (
            &other.bot,
            &other.since,
            &other.until,
            &other.sources,
            other.include_raw,
            other.page_size,
        )
    }
}

/// Parses the filters exactly as the API does, so an export selects what the
/// same API query would.
fn query(args: &ExportArgs) -> Result<ListQuery, ExportError> {
    let mut pairs = vec![("chatbotId", args.bot.clone())];
    if let Some(s) = &args.since {
        pairs.push(("startDate", s.clone()));
    }
    if let Some(u) = &args.until {
        pairs.push(("endDate", u.clone()));
    }
    if let Some(s) = &args.sources {
        pairs.push(("filteredSources", s.clone()));
    }
    let qs = serde_urlencoded::to_string(&pairs).map_err(|e| ExportError::Usage(e.to_string()))?;
    let mut parsed = params::list_from_query(&qs).map_err(|e| {
        let text = e
            .to_string()
            .replace("`startDate`", "--since")
            .replace("`endDate`", "--until")
            .replace("`filteredSources`", "--sources");
        ExportError::Usage(text)
    })?;
    parsed.query.size = PageSize::new(args.page_size)
        .ok_or_else(|| ExportError::Usage("--page-size must be from 1 to 100".to_owned()))?;
    parsed.query.include_raw = args.include_raw;
    Ok(parsed.query)
}

/// Ids already in the file, so a resumed export never writes one twice.
fn ids_in(path: &Path) -> Result<HashSet<(String, String)>, ExportError> {
    #[derive(Deserialize)]
    struct Line {
        id: String,
        provider: String,
    }
    let file = File::open(path).map_err(|e| io_err("cannot read", path, e))?;
    let mut seen = HashSet::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| io_err("cannot read", path, e))?;
        let parsed: Line = serde_json::from_str(&line).map_err(|e| {
            ExportError::Io(format!(
                "{} has a line that is not an exported conversation: {e}",
                path.display()
            ))
        })?;
        seen.insert((parsed.provider, parsed.id));
    }
    Ok(seen)
}

/// Runs an export to completion or to its first failure. Must run on an actix
/// system (vendor calls use awc).
pub async fn run(config: Config, args: ExportArgs) -> Result<Totals, ExportError> {
    let mut query = query(&args)?;
    let bot = config.bots.get(&args.bot).cloned().ok_or_else(|| {
        ExportError::Usage(format!(
            "no bot named `{}` in the config (bots: {})",
            args.bot,
            config.bots.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let cp_path = checkpoint_path(&args.out);
    let fresh = Checkpoint {
        version: 1,
        bot: args.bot.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        sources: args.sources.clone(),
        include_raw: args.include_raw,
        page_size: args.page_size,
        next_page: 1,
        bytes: 0,
        positions: None,
        totals: Totals::default(),
        complete: false,
    };
    let (mut checkpoint, seen) = match (args.resume, Checkpoint::load(&cp_path)?) {
        (true, Some(saved)) => {
            if !saved.same_export(&fresh) {
                return Err(ExportError::Usage(format!(
                    "{} belongs to another export (bot, filters, raw or page size differ); \
                     use the same arguments, or a new --out",
                    cp_path.display()
                )));
            }
            if saved.complete {
                eprintln!("{} is already complete", args.out.display());
                return Ok(saved.totals);
            }
            let file = OpenOptions::new()
                .write(true)
                .open(&args.out)
                .map_err(|e| io_err("cannot open", &args.out, e))?;
            // Drop whatever a crash left after the last complete page.
            file.set_len(saved.bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_err("cannot truncate", &args.out, e))?;
            let seen = ids_in(&args.out)?;
            (saved, seen)
        }
        (true, None) if args.out.exists() => {
            return Err(ExportError::Usage(format!(
                "--resume: {} exists but has no checkpoint ({}); it was not written by an interrupted export",
                args.out.display(),
                cp_path.display()
            )))
        }
        (false, _) if args.out.exists() => {
            return Err(ExportError::Usage(format!(
                "{} already exists: add --resume to continue that export, or choose another --out",
                args.out.display()
            )))
        }
        _ => {
            File::create(&args.out).map_err(|e| io_err("cannot create", &args.out, e))?;
            fresh.save(&cp_path)?;
            (fresh, HashSet::new())
        }
    };

    let clock = Clock::system();
    let metrics = Arc::new(Metrics::new());
    let (_, chunk_bytes) = split_cache_budget(config.cache.max_bytes);
    let chunks = Arc::new(ChunkCache::new(&config.cache, chunk_bytes, clock.clone()));
    let budget = BodyBudget::new(config.server.max_inflight_body_bytes);
    // Its own store on the same `[redis]`: export draws from the vendor guard
    // and honours the 429 pause the serving instances share, so running it
    // beside them no longer doubles the vendor quota.
    let store = match &config.redis {
        Some(settings) => Some(
            SharedStore::new(settings.clone(), metrics.clone(), clock.clone())
                .map_err(|e| ExportError::Usage(e.to_string()))?,
        ),
        None => None,
    };
    let gateway = Gateway::new(config, metrics, chunks, None, &clock, store);
    let upstream = Upstream::new(tls_config(), budget, clock.clone());
    let mut out = OpenOptions::new()
        .append(true)
        .open(&args.out)
        .map_err(|e| io_err("cannot open", &args.out, e))?;
    let mut seen = seen;
    let mut progress = Progress::new(&checkpoint.totals, &clock);
    let started = clock.now();
    // A dual-read bot is streamed: its merge goes on from the checkpointed
    // backend positions, so each backend is read once however long the export.
    let mut merger =
        (bot.backends.len() > 1).then(|| Merger::new(&bot, checkpoint.positions.as_deref()));
    loop {
        let page_number = checkpoint.next_page;
        query.page = PageNumber::new(page_number).ok_or_else(|| {
            ExportError::Usage(format!("the bot has more than {} pages", PageNumber::MAX))
        })?;
        let request_id = format!("export-{}-p{page_number}", args.bot);
        let ctx = CallCtx {
            upstream: &upstream,
            request_id: &request_id,
            bypass: false,
            stats: UpstreamStats::default(),
            waits: Waits::new(clock.clone()),
        };
        let result = match merger.as_mut() {
            Some(merger) => next_batch(merger, &gateway.chunk_source(&ctx, &bot), &query).await,
            None => gateway
                .list_page(&ctx, &bot, &query)
                .await
                .map(|(page, _)| page),
        };
        checkpoint.totals.vendor_calls += u64::from(ctx.stats.calls());
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                progress.finish();
                checkpoint.save(&cp_path)?;
                return Err(ExportError::Upstream {
                    page: page_number,
                    error: e.to_string(),
                    written: checkpoint.totals.conversations,
                });
            }
        };
        let mut buf = Vec::new();
        for c in &page.conversations {
            if !seen.insert((c.provider.as_str().to_owned(), c.id.clone())) {
                continue;
            }
            serde_json::to_writer(&mut buf, c).map_err(|e| ExportError::Io(e.to_string()))?;
            buf.push(b'\n');
            checkpoint.totals.conversations += 1;
            checkpoint.totals.messages += c.messages.len() as u64;
        }
        out.write_all(&buf)
            .and_then(|()| out.sync_data())
            .map_err(|e| io_err("cannot write", &args.out, e))?;
        checkpoint.bytes += buf.len() as u64;
        checkpoint.positions = merger.as_ref().map(Merger::positions);
        checkpoint.totals.pages += 1;
        checkpoint.next_page = page_number + 1;
        checkpoint.complete = !page.has_more;
        checkpoint.save(&cp_path)?;
        progress.update(&checkpoint.totals);
        if checkpoint.complete {
            progress.finish();
            let t = &checkpoint.totals;
            println!(
                "exported {} conversation(s), {} message(s) from bot `{}` to {} in {} page(s), {} vendor call(s), {:.1} s",
                t.conversations,
                t.messages,
                args.bot,
                args.out.display(),
                t.pages,
                t.vendor_calls,
                clock.now().saturating_duration_since(started).as_secs_f64()
            );
            return Ok(checkpoint.totals);
        }
    }
}

/// The next `query.size` conversations of a merged stream, as a page.
async fn next_batch<S: ChunkSource>(
    merger: &mut Merger<'_, S::Loaded>,
    source: &S,
    query: &ListQuery,
) -> Result<Page, GatewayError> {
    let size = query.size.get() as usize;
    let mut conversations = Vec::with_capacity(size);
    while conversations.len() < size {
        match merger.next(source, query).await? {
            Some(c) => conversations.push(c),
            None => break,
        }
    }
    let has_more = merger.has_next(source, query).await?;
    Ok(Page {
        conversations,
        has_more,
    })
}

/// A progress bar on a terminal; plain lines every few seconds otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { clock: Clock, last: Instant },
}

impl Progress {
    const LINE_EVERY: Duration = Duration::from_secs(2);

    fn new(totals: &Totals, clock: &Clock) -> Self {
        if io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message(Self::text(totals));
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                clock: clock.clone(),
                last: clock.now(),
            }
        }
    }

    fn text(t: &Totals) -> String {
        format!(
            "{} conversation(s), {} page(s), {} vendor call(s)",
            t.conversations, t.pages, t.vendor_calls
        )
    }

    fn update(&mut self, totals: &Totals) {
        match self {
            Progress::Bar(bar) => bar.set_message(Self::text(totals)),
            Progress::Lines { clock, last } => {
                let now = clock.now();
                if now.saturating_duration_since(*last) >= Self::LINE_EVERY {
                    eprintln!("export: {}", Self::text(totals));
                    *last = now;
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
