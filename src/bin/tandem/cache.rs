//! `tandem cache`: what the embedding caches hold, per backbone graph and kind, and pruning
//! them by age or to a size cap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use tandem::cache::usage::{
    default_root, format_age, format_size, parse_age, parse_size, prune, scan, CacheFile,
    PruneOptions,
};
use tandem::{Error, Result};

#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// The embedding cache directory (default: <cache dir>/embcache, under $TANDEM_HOME when set).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Action {
    /// Size, records and last use per backbone graph and kind (the default).
    Show,
    /// Remove whole cache files: those unused for longer than --older-than, then the least
    /// recently used until the cache fits in --max-size.
    Prune(PruneArgs),
}

#[derive(Args)]
struct PruneArgs {
    /// Remove the least recently used files until the cache holds at most this much: bytes, or
    /// a number with a unit (500MB, 1.5GB, 2GiB; kB/MB/GB are powers of 1000).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// Remove files not used for longer than this: a number with s, m, h, d or w (30d).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
}

/// Seconds since the Unix epoch, now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn file_json(f: &CacheFile) -> serde_json::Value {
    json!({
        "path": f.path.display().to_string(),
        "graph": f.graph,
        "backbone": f.backbone,
        "kind": f.kind.name(),
        "bytes": f.bytes,
        "records": f.records,
        "last_used": f.last_used,
    })
}

/// `tandem cache`.
pub fn run(args: CacheArgs) -> Result<ExitCode> {
    let root = args.dir.clone().unwrap_or_else(default_root);
    match args.action {
        None | Some(Action::Show) => show(&root, args.json),
        Some(Action::Prune(p)) => run_prune(&root, &p, args.json),
    }
}

fn show(root: &std::path::Path, as_json: bool) -> Result<ExitCode> {
    let files = scan(root)?;
    // One row per graph and kind (a graph holds one file per kind, save stray files).
    let mut rows: BTreeMap<(String, String, tandem::cache::usage::CacheKind), Vec<&CacheFile>> =
        BTreeMap::new();
    for f in &files {
        rows.entry((f.label().to_string(), f.graph.clone(), f.kind))
            .or_default()
            .push(f);
    }
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    if as_json {
        let entries: Vec<_> = rows
            .values()
            .map(|fs| {
                let records: Option<u64> = fs.iter().map(|f| f.records).sum();
                json!({
                    "graph": fs[0].graph,
                    "backbone": fs[0].backbone,
                    "kind": fs[0].kind.name(),
                    "bytes": fs.iter().map(|f| f.bytes).sum::<u64>(),
                    "records": records,
                    "last_used": fs.iter().map(|f| f.last_used).max(),
                    "files": fs.iter().map(|f| file_json(f)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({
            "root": root.display().to_string(),
            "total_bytes": total,
            "entries": entries,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if files.is_empty() {
        println!("{}: empty", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    let now = now();
    let width = rows.keys().map(|k| k.0.len()).max().unwrap_or(0).max(8);
    println!("{}", root.display());
    println!(
        "{:<width$}  {:<11}  {:>9}  {:>9}  last used",
        "backbone", "kind", "size", "records"
    );
    for ((label, _, kind), fs) in &rows {
        let bytes: u64 = fs.iter().map(|f| f.bytes).sum();
        let records: Option<u64> = fs.iter().map(|f| f.records).sum();
        let last = fs.iter().map(|f| f.last_used).max().unwrap_or(0);
        println!(
            "{label:<width$}  {:<11}  {:>9}  {:>9}  {} ago",
            kind.name(),
            format_size(bytes),
            records.map_or("-".to_string(), |r| r.to_string()),
            format_age(now.saturating_sub(last)),
        );
    }
    println!("{:<width$}  {:<11}  {:>9}", "total", "", format_size(total));
    Ok(ExitCode::SUCCESS)
}

fn run_prune(root: &std::path::Path, args: &PruneArgs, as_json: bool) -> Result<ExitCode> {
    if args.max_size.is_none() && args.older_than.is_none() {
        return Err(Error::invalid(
            "cache prune: give --max-size SIZE, --older-than AGE, or both",
        ));
    }
    let options = PruneOptions {
        max_bytes: args.max_size.as_deref().map(parse_size).transpose()?,
        older_than: args.older_than.as_deref().map(parse_age).transpose()?,
        dry_run: args.dry_run,
    };
    let pruned = prune(root, &options, &[])?;
    if as_json {
        let out = json!({
            "root": root.display().to_string(),
            "dry_run": args.dry_run,
            "freed_bytes": pruned.freed,
            "remaining_bytes": pruned.remaining,
            "removed": pruned.removed.iter().map(file_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for f in &pruned.removed {
        println!(
            "{verb} {} {} ({}): {}",
            f.label(),
            f.kind.name(),
            format_size(f.bytes),
            f.path.display()
        );
    }
    println!(
        "{} {} in {} files; the cache {} {}",
        if args.dry_run { "would free" } else { "freed" },
        format_size(pruned.freed),
        pruned.removed.len(),
        if args.dry_run { "would hold" } else { "holds" },
        format_size(pruned.remaining)
    );
    Ok(ExitCode::SUCCESS)
}
