//! The `flowstate` command line: arguments (clap derive), the admin commands, and how errors become exit codes.
//!
//! Every command prints either aligned tables for people or, with `--json`, one JSON document on stdout for
//! scripts; errors go to stderr as one line, `error: <message>` (with `--json`, one JSON object:
//! `{"error": {"kind": "usage"|"runtime", "message": ..., "exit_code": N}}`, clap's own argument errors included).
//! Exit codes: 0 success, 1 a runtime failure (database, file, unknown run), 2 a usage error (bad arguments,
//! including values the store rejects).

mod audit;
mod cleanup;
mod copy;
mod demo;
mod error;
mod failures;
mod migrate;
mod open;
mod output;
mod pipelines;
mod reclaim;
mod runs;
mod show;
mod stats;
mod when;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowstate_model::limits::{DEFAULT_PAGE_SIZE, MAX_CLEANUP_DAYS, MAX_PAGE_SIZE};
use flowstate_model::status::KNOWN_LIST;
use flowstate_store::{ListSort, Status};

pub use error::CliError;
use when::When;

/// flowstate: inspect, triage and clean up durable workflow runs stored in flujo's table, in a SQLite file or a
/// PostgreSQL database.
#[derive(Debug, Parser)]
#[command(name = "flowstate", version, about, propagate_version = true)]
pub struct Cli {
    /// The database: a SQLite file's path (or `sqlite:PATH`), or a PostgreSQL URL
    /// (`postgres://user:password@host:5432/dbname`; the password may also come from PGPASSWORD or ~/.pgpass).
    #[arg(long, global = true, env = "FLOWSTATE_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,

    /// Print one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of `runs`'s arguments costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Totals: runs, runs created in the last 24 hours, runs per status, average execution time.
    Stats,
    /// List runs (newest first, or slowest, most memory, longest idle first) with filters, pages and the total.
    // `--version` is the pipeline version filter here (flowstate's own version: `flowstate --version`).
    #[command(disable_version_flag = true)]
    Runs(RunsArgs),
    /// Failed runs whose last update lies in the last hours, newest first.
    Failed(FailedArgs),
    /// Per pipeline over a window: runs, failures, the failure rate of finished runs, times, memory.
    Pipelines(PipelinesArgs),
    /// Every field of one run, and its steps as the run page lists them.
    Show(ShowArgs),
    /// Failures of a window grouped by error signature: count, pipelines, first and last seen, sample runs.
    // `--version` is the pipeline version filter here, as on `runs`.
    #[command(disable_version_flag = true)]
    Failures(FailuresArgs),
    /// Delete old runs (terminal ones unless --status names others); preview with --dry-run first.
    Cleanup(CleanupArgs),
    /// The record of changes (cleanups, deletions, copies); with an entry's id, the run ids it deleted.
    Audit(AuditArgs),
    /// Give back the space deleted runs left: SQLite, an incremental file's free pages in small steps (or, with
    /// --convert, one blocking VACUUM that makes the file incremental); PostgreSQL, VACUUM.
    Reclaim(ReclaimArgs),
    /// Bring the database to the current schema (flujo's table plus flowstate's indexes and counters) and say
    /// what changed.
    Migrate(MigrateArgs),
    /// Write realistic demo runs into a new or empty database.
    Demo(DemoArgs),
    /// Copy every run from one database to another (SQLite or PostgreSQL, either way), resumably, and verify
    /// the copy.
    Copy(CopyArgs),
    /// Serve the dashboard (http://127.0.0.1:3000 by default); --demo serves a fresh demo database.
    Serve(ServeArgs),
}

/// Arguments of `flowstate runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs with this status (repeat, or separate with commas, for several).
    #[arg(long = "status", value_name = "STATUS", value_delimiter = ',', value_parser = parse_status)]
    pub statuses: Vec<Status>,
    /// Only runs of this pipeline id.
    #[arg(long, value_name = "ID")]
    pub pipeline: Option<String>,
    /// Only runs created at or after this time: RFC 3339, `2026-01-31 12:00` (UTC), a date, or a duration before
    /// now such as 30m, 24h, 7d.
    #[arg(long, value_name = "TIME", value_parser = When::parse_arg)]
    pub since: Option<When>,
    /// Only runs created before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = When::parse_arg)]
    pub until: Option<When>,
    /// Only runs whose error message contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only runs whose id starts with this text.
    #[arg(long, value_name = "RUNID_PREFIX")]
    pub prefix: Option<String>,
    /// Only the background tasks this run started (flujo's `parent_run_id`).
    #[arg(long, value_name = "RUN_ID")]
    pub parent: Option<String>,
    /// Only background tasks (flujo's `is_background_task`).
    #[arg(long, conflicts_with = "no_background")]
    pub background: bool,
    /// Only runs that are not background tasks.
    #[arg(long)]
    pub no_background: bool,
    /// Only runs of this pipeline version (exact).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Only runs that took at least this long: 90s, 5m, 2h, or milliseconds such as 1500ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub min_duration: Option<i64>,
    /// Only runs that took at most this long (same forms as --min-duration).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub max_duration: Option<i64>,
    /// Only runs that used at least this many MB.
    #[arg(long, value_name = "MB", value_parser = parse_memory_mb)]
    pub min_memory: Option<f64>,
    /// Only runs that used at most this many MB.
    #[arg(long, value_name = "MB", value_parser = parse_memory_mb)]
    pub max_memory: Option<f64>,
    /// Order: newest (default), slowest (runs with a time only), heaviest (runs with a memory figure only), idle
    /// (oldest last update first).
    #[arg(long, value_name = "ORDER", default_value = "newest", value_parser = parse_sort)]
    pub sort: ListSort,
    /// Runs per page.
    #[arg(
        long,
        default_value_t = DEFAULT_PAGE_SIZE,
        help = format!("Runs per page (1-{MAX_PAGE_SIZE})"),
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE))
    )]
    pub limit: u32,
    /// Continue after a previous page: its `next_cursor`.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Skip this many runs (after the cursor, if any).
    #[arg(long, value_name = "N")]
    pub offset: Option<u64>,
}

/// Arguments of `flowstate pipelines`.
#[derive(Debug, Args)]
pub struct PipelinesArgs {
    /// Runs last updated at or after this time (rounded down to the hour): a span before now such as 3h, 7d, or
    /// an instant; 24h by default.
    #[arg(long, value_name = "TIME", value_parser = When::parse_arg)]
    pub since: Option<When>,
}

fn parse_duration_ms(text: &str) -> Result<i64, String> {
    flowstate_model::bounds::parse_duration_ms(text)
}

fn parse_memory_mb(text: &str) -> Result<f64, String> {
    flowstate_model::bounds::parse_memory_mb(text)
}

/// A pipeline id or version to match exactly: at most as long as a lookup accepts (as the Failures page checks).
fn parse_exact(text: &str) -> Result<String, String> {
    let max = flowstate_model::limits::MAX_LOOKUP_ID_BYTES;
    if text.len() > max {
        return Err(format!("is {} bytes; at most {max}", text.len()));
    }
    Ok(text.to_string())
}

fn parse_sort(text: &str) -> Result<ListSort, String> {
    ListSort::parse(text)
        .ok_or_else(|| format!("“{text}” is not an order; use newest, slowest, heaviest or idle"))
}

/// Arguments of `flowstate failed`.
#[derive(Debug, Args)]
pub struct FailedArgs {
    /// How many hours back to look, by last update.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=87_840))]
    pub hours: u32,
    /// At most this many runs.
    #[arg(
        long,
        default_value_t = DEFAULT_PAGE_SIZE,
        help = format!("At most this many runs (1-{MAX_PAGE_SIZE})"),
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE))
    )]
    pub limit: u32,
}

/// Arguments of `flowstate failures`.
#[derive(Debug, Args)]
pub struct FailuresArgs {
    /// Failed runs last updated at or after this time: a span before now (90m, 3h, 24h, 7d; up to 365d) or an
    /// instant (RFC 3339, `2026-01-31 12:00` UTC, a date).
    #[arg(long, value_name = "TIME", default_value = "24h", value_parser = When::parse_arg)]
    pub since: When,
    /// Only the failures of this pipeline id (every figure is then that pipeline's, as on the Failures page).
    #[arg(long, value_name = "ID", value_parser = parse_exact)]
    pub pipeline: Option<String>,
    /// Only the failures of this pipeline version (exact; with --pipeline, that pipeline's version).
    #[arg(long, value_name = "VERSION", value_parser = parse_exact)]
    pub version: Option<String>,
    /// At most this many groups (largest first).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

/// Arguments of `flowstate audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// One entry: what it did and the run ids it deleted, a page at a time.
    #[arg(value_name = "ID")]
    pub id: Option<i64>,
    /// Entries (or, with ID, run ids) per page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// With ID: the run ids after this one (the previous page's last, `next_after` in --json).
    #[arg(long, value_name = "RUN_ID", requires = "id")]
    pub after: Option<String>,
}

/// Arguments of `flowstate reclaim`.
#[derive(Debug, Args)]
pub struct ReclaimArgs {
    /// SQLite: set auto_vacuum to INCREMENTAL with one VACUUM, which rewrites the whole file holding the write
    /// lock throughout (stop the writers first; needs free disk about the file's size). Once per file.
    #[arg(long)]
    pub convert: bool,
}

/// Arguments of `flowstate migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Then recount the overview counters from every row (reads the whole table), and rebuild them if any
    /// differs.
    #[arg(long)]
    pub check_counters: bool,
}

/// Arguments of `flowstate show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run's id.
    #[arg(value_name = "RUN_ID")]
    pub run_id: String,
}

/// Arguments of `flowstate cleanup`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).multiple(false).args(["dry_run", "yes"]))]
pub struct CleanupArgs {
    /// Runs whose last update is more than this many days ago.
    #[arg(
        long,
        value_name = "N",
        help = format!("Runs whose last update is more than this many days ago (1-{MAX_CLEANUP_DAYS})"),
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLEANUP_DAYS))
    )]
    pub days: u32,
    /// Only runs with this status (repeat or separate with commas). Default: completed, failed and cancelled;
    /// running and paused runs are deleted only when named here.
    #[arg(long = "status", value_name = "STATUS", value_delimiter = ',', value_parser = parse_status)]
    pub statuses: Vec<Status>,
    /// Only runs of this pipeline id.
    #[arg(long, value_name = "ID")]
    pub pipeline: Option<String>,
    /// Only show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the matching runs.
    #[arg(long)]
    pub yes: bool,
}

/// Arguments of `flowstate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many runs to write (1-1000000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub runs: u64,
    /// The generator's seed: the same seed gives the same runs.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
    /// Add demo runs even when the database already holds runs (nothing is ever deleted or replaced).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `flowstate copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The database to read: a SQLite file or a postgres:// URL (opened read-only; never changed).
    #[arg(long, value_name = "SRC")]
    pub from: PathBuf,
    /// The database to write: a SQLite file (created when missing) or a postgres:// URL (migrated when needed).
    #[arg(long, value_name = "DST")]
    pub to: PathBuf,
    /// Runs per transaction [default: 5000; 20000 between two SQLite files, where a batch is never held in memory].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: Option<u32>,
    /// Copy even when the destination already holds runs (runs with the same id are replaced).
    #[arg(long)]
    pub force: bool,
    /// Between two SQLite files, copy through the store's API (each run read, validated and written) instead of
    /// inside SQLite: the slower path, kept for comparisons.
    #[arg(long, hide = true)]
    pub no_raw: bool,
}

/// Arguments of `flowstate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen. An address other machines can reach needs --public-url, and --read-only or
    /// FLOWSTATE_ADMIN_TOKEN.
    #[arg(
        long,
        env = "FLOWSTATE_BIND",
        default_value = "127.0.0.1:3000",
        value_name = "ADDR"
    )]
    pub bind: std::net::SocketAddr,
    /// Refuse every change (the database is opened read-only).
    #[arg(long)]
    pub read_only: bool,
    /// Serve a fresh demo database in a temporary directory instead of --db.
    #[arg(long)]
    pub demo: bool,
    /// Create the SQLite file --db names when it does not exist (without it, a missing file is an error: a
    /// mistyped path never becomes a new, empty database).
    #[arg(long, conflicts_with_all = ["demo", "read_only"])]
    pub create: bool,
    /// Serve the site (pkg/, CSS, favicon) from this folder instead of the copy inside the binary.
    #[arg(long, env = "FLOWSTATE_SITE_ROOT", value_name = "DIR")]
    pub site_root: Option<PathBuf>,
    /// How long a rendered page is answered again to the readers that follow, in milliseconds (0: never). Pages
    /// say their age (`Age` header); this server's own changes empty the cache at once.
    #[arg(
        long,
        env = "FLOWSTATE_PAGE_CACHE_MS",
        default_value_t = 1000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub page_cache_ms: u64,
    /// A URL operators reach the dashboard at, such as https://flowstate.example.com (repeatable, or
    /// comma-separated). Requests naming another host than this machine or these are refused (DNS rebinding).
    /// Required with a --bind other machines can reach; behind a reverse proxy, the proxy's public URL.
    #[arg(
        long = "public-url",
        env = "FLOWSTATE_PUBLIC_URL",
        value_name = "URL",
        value_delimiter = ',',
        value_parser = parse_public_url
    )]
    pub public_url: Vec<flowstate_server::web::security::PublicUrl>,
}

/// A `--public-url` value.
fn parse_public_url(text: &str) -> Result<flowstate_server::web::security::PublicUrl, String> {
    text.parse()
}

/// `flowstate serve`: runs the dashboard until Ctrl-C or SIGTERM (see `flowstate_server::web`).
async fn serve(db: Option<PathBuf>, args: ServeArgs) -> Result<String, CliError> {
    use flowstate_server::web;
    let cfg = web::ServeConfig {
        db: db.filter(|p| !p.as_os_str().is_empty()),
        bind: args.bind,
        read_only: args.read_only,
        demo: args.demo,
        create: args.create,
        site_root: args.site_root,
        admin_token: web::admin_token_from_env(),
        page_cache: std::time::Duration::from_millis(args.page_cache_ms),
        public_urls: args.public_url,
    };
    match web::serve(cfg).await {
        Ok(()) => Ok(String::new()),
        Err(e) if e.is_usage() => Err(CliError::Usage(e.to_string())),
        Err(e) => Err(CliError::Runtime(e.to_string())),
    }
}

/// A status as typed on the command line: one of the five known ones, any case.
fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(&text.to_ascii_lowercase())
        .map_err(|_| format!("{text:?} is not a status; use one of {KNOWN_LIST}"))
}

/// Parses the arguments, runs the command, prints the result and returns the exit code. Never panics on bad
/// input; clap's own errors (and `--help`, `--version`) exit through clap.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_failure(e),
    };
    init_tracing();
    let json = cli.json;
    // The dashboard serves many requests at once and uses every core; admin commands need only one thread.
    // A copy reads and writes at once (reader and writer tasks), so it uses them too.
    let mut builder = if matches!(cli.command, Command::Serve(_) | Command::Copy(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                &CliError::Runtime(format!("cannot start the async runtime: {e}")),
                json,
            )
        }
    };
    // A copy's errors are also one JSON document on stdout with --json (scripts drive long copies).
    let json_errors = cli.json && matches!(cli.command, Command::Copy(_));
    match runtime.block_on(run(cli)) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                // A reader that went away (`flowstate runs | head`) is not an error worth a message.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => fail(&CliError::Runtime(format!("cannot write the output: {e}")), json),
            }
        }
        Err(e) => {
            if json_errors {
                println!("{}", output::json_error(&e).trim_end());
            }
            fail(&e, json)
        }
    }
}

/// clap's own outcome when the arguments do not parse: `--help` and `--version` print as clap prints them; an
/// error does too, unless `--json` was among the arguments: then it is one JSON object on stderr like every
/// other error (clap's message, without its terminal styling), with clap's exit code (2).
fn clap_failure(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let text = e.render().to_string();
    let message = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message).to_string();
    fail(&CliError::Usage(message), true)
}

/// Prints the error on stderr, one line (one JSON object with `--json`: [`output::json_error_line`]), and
/// returns its exit code.
fn fail(err: &CliError, json: bool) -> ExitCode {
    tracing::debug!(?err, "command failed");
    let message = err.to_string();
    if json {
        eprintln!("{}", output::json_error_line(err));
    } else {
        // One line: a message with line breaks (a server's or the OS's words) is joined.
        let line: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        eprintln!("error: {}", line.join(" "));
    }
    ExitCode::from(err.exit_code())
}

/// Logs go to stderr, so stdout stays clean for `--json`. The filter comes from `FLOWSTATE_LOG` (default warn).
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var("FLOWSTATE_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("warn"), Some(format!("{spec:?}: {e}"))),
        },
        _ => (EnvFilter::new("warn"), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(bad) = bad {
        tracing::warn!("FLOWSTATE_LOG is not a valid filter ({bad}); using warn");
    }
}

/// Runs a parsed command and returns what to print on stdout.
///
/// # Errors
/// [`CliError::Usage`] for arguments that are wrong; [`CliError::Runtime`] for anything else.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    let json = cli.json;
    // Asked for only by the commands that need it: `serve --demo` needs no database.
    let given = cli.db;
    let db = move || {
        given
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| CliError::Usage("no database given: pass --db PATH or set FLOWSTATE_DB".into()))
    };
    match cli.command {
        Command::Stats => stats::run(&db()?, json).await,
        Command::Runs(args) => runs::list(&db()?, args, json).await,
        Command::Failed(args) => runs::failed(&db()?, args, json).await,
        Command::Pipelines(args) => pipelines::run(&db()?, args.since, json).await,
        Command::Show(args) => show::run(&db()?, &args.run_id, json).await,
        Command::Failures(args) => failures::run(&db()?, args, json).await,
        Command::Cleanup(args) => cleanup::run(&db()?, args, json).await,
        Command::Reclaim(args) => reclaim::run(&db()?, args, json).await,
        Command::Audit(args) => audit::run(&db()?, args, json).await,
        Command::Migrate(args) => migrate::run(&db()?, args.check_counters, json).await,
        Command::Demo(args) => demo::run(&db()?, args, json).await,
        Command::Copy(args) => copy::run(args, json).await,
        Command::Serve(args) => serve(db().ok(), args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn statuses_parse_in_any_case_and_name_the_valid_ones_otherwise() {
        assert_eq!(parse_status("Failed"), Ok(Status::Failed));
        let err = parse_status("done").unwrap_err();
        assert!(
            err.contains("running, paused, completed, failed, cancelled"),
            "{err}"
        );
    }
}
