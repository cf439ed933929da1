//! The `chatgate` command line (SPEC §4).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chatgate::config::{self, Config};
use chatgate::{demo, export, server};
use chatgate_emulator as emulator;
use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: glibc keeps per-thread arenas
/// and rarely returns freed memory, so after bursts of large vendor bodies the
/// process kept hundreds of MiB it no longer used; mimalloc returns it, which
/// is what lets memory stay within the documented budget (README "Hostile
/// vendors and clients", memory budget).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One normalized get-conversations API in front of Chatbase, Chatzuri and Chatling.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (else $CHATGATE_CONFIG, else ./config.toml).
    #[arg(long, global = true, env = "CHATGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Start the vendor emulators and the gateway on loopback and print curl
    /// commands that work as printed.
    Demo {
        /// Gateway address (falls back to a free port when taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
    },
    /// Validate the config and exit 0 (valid) or 1 (invalid).
    CheckConfig,
    /// Print the API's OpenAPI document (what `GET /openapi.json` serves), to
    /// regenerate the committed `openapi.json`: `chatgate openapi > openapi.json`.
    Openapi,
    /// Run the built-in vendor emulators alone (all three vendors on one address).
    Emulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        bind: SocketAddr,
    },
    /// Write every conversation of a bot to a JSON Lines file, resumably.
    Export {
        /// The bot's name in config.
        #[arg(long)]
        bot: String,
        /// First day included (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Last day included (YYYY-MM-DD, UTC).
        #[arg(long)]
        until: Option<String>,
        /// Only these sources (comma-separated canonical ids or vendor labels).
        #[arg(long)]
        sources: Option<String>,
        /// The output file (one normalized conversation per line).
        #[arg(long)]
        out: PathBuf,
        /// Continue an interrupted export of the same bot and filters.
        #[arg(long)]
        resume: bool,
        /// Add each conversation's original vendor object as `raw`.
        #[arg(long)]
        include_raw: bool,
        /// Conversations per page read (1-100).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held until the process ends: dropping it flushes the log writer.
    let _log_flush: Option<chatgate::log_sink::SinkGuard>;
    let path = config::resolve_path(cli.config);
    match cli.command {
        Command::CheckConfig => match config::load(&path) {
            Ok(c) => {
                println!(
                    "{}: valid ({} provider(s), {} bot(s), {} client(s))",
                    path.display(),
                    c.providers.len(),
                    c.bots.len(),
                    c.clients.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        Command::Openapi => {
            print!("{}", server::openapi::pretty());
            ExitCode::SUCCESS
        }
        Command::Serve => {
            _log_flush = init_logging("info");
            let Some(config) = load_or_report(&path) else {
                return ExitCode::FAILURE;
            };
            run(serve(config))
        }
        Command::Demo { bind } => {
            _log_flush = init_logging("warn");
            run(demo::run(bind))
        }
        Command::Emulate { bind } => {
            _log_flush = init_logging("info");
            run(emulate(bind))
        }
        Command::Export {
            bot,
            since,
            until,
            sources,
            out,
            resume,
            include_raw,
            page_size,
        } => {
            _log_flush = init_logging("warn");
            let Some(config) = load_or_report(&path) else {
                return ExitCode::FAILURE;
            };
            let args = export::ExportArgs {
                bot,
                since,
                until,
                sources,
                out,
                resume,
                include_raw,
                page_size,
            };
            match actix_rt::System::new().block_on(export::run(config, args)) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chatgate export: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Loads the config, printing every problem on failure.
fn load_or_report(path: &std::path::Path) -> Option<Config> {
    config::load(path)
        .map_err(|e| eprintln!("{}: {e}", path.display()))
        .ok()
}

fn run(fut: impl std::future::Future<Output = std::io::Result<()>>) -> ExitCode {
    match actix_rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatgate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> std::io::Result<()> {
    let path = config.path.display().to_string();
    let running = server::start(config, true).await?;
    tracing::info!(addr = %running.addr, config = %path, "chatgate listening");
    running.wait().await
}

async fn emulate(bind: SocketAddr) -> std::io::Result<()> {
    let state = emulator::EmulatorState::new(emulator::DEFAULT_SEED);
    let emu = emulator::start(bind, state, 0).await?;
    for vendor in [
        emulator::Vendor::Chatbase,
        emulator::Vendor::Chatzuri,
        emulator::Vendor::Chatling,
        emulator::Vendor::ChatbaseV2,
    ] {
        println!("{vendor:?}: {}", emu.base_url(vendor));
    }
    println!("emulating on {}; Ctrl-C to stop", emu.addr);
    tokio::signal::ctrl_c().await?;
    emu.stop().await;
    Ok(())
}

/// Logs go to stderr: `RUST_LOG` sets the level (default `default`), and
/// `CHATGATE_LOG_FORMAT=json` switches to one JSON object per line. Lines
/// are tracing-subscriber's, the access line's bytes included, though that
/// one is written by a cheaper hand-written formatter
/// ([`chatgate::log_format`]).
///
/// A background thread does the writing ([`chatgate::log_sink`]), so a slow
/// stderr never holds a request, and under load many lines leave in one
/// `write`. It is not lossy: when its buffer is full, logging waits rather than
/// drop a line. Should that thread fail to start, lines are written to stderr
/// directly. The returned guard flushes the lines still pending when dropped.
fn init_logging(default: &str) -> Option<chatgate::log_sink::SinkGuard> {
    use chatgate::log_format::LogFormat;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = match chatgate::log_sink::LogSink::new(std::io::stderr()) {
        Ok((sink, guard)) => (BoxMakeWriter::new(sink), Some(guard)),
        Err(e) => {
            eprintln!("could not start the log writer thread ({e}); writing logs directly");
            (BoxMakeWriter::new(std::io::stderr), None)
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal, never into files or collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let clock = chatgate::clock::Clock::system();
    if std::env::var("CHATGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder.json().event_format(LogFormat::json(clock)).init();
    } else {
        builder.event_format(LogFormat::text(clock)).init();
    }
    guard
}
