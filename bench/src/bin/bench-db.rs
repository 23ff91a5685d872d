//! Builds the bench databases without measuring anything.
//!
//! ```text
//! cargo run -p flowstate-bench --release --bin bench-db -- --rows 10000000
//!     builds (or reuses) the cached database of 10M runs under target/bench/db/
//! cargo run -p flowstate-bench --release --bin bench-db -- --rows 1000000 --order indexes-after --scratch
//!     builds a throw-away database with the given load order, prints the timings, and removes it
//! ```

use flowstate_bench::load;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench-db: {e}");
        std::process::exit(1);
    }
}

fn run() -> flowstate_bench::Result<()> {
    let mut order = load::DEFAULT_ORDER;
    let mut scratch = false;
    let mut keep = false;
    let mut gen_only = false;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--order" => order = args.next().ok_or("--order needs a value")?.parse()?,
            "--scratch" => scratch = true,
            "--keep" => keep = true,
            "--gen-only" => gen_only = true,
            "-h" | "--help" => {
                println!(
                    "bench-db [--rows N[,N...]] [--order schema-first|triggers-after|indexes-after] [--scratch [--keep]] [--gen-only]\n\
                     Without --scratch: builds or reuses the cached databases (target/bench/db/).\n\
                     With --scratch: builds a throw-away database in target/bench/tmp/ and reports the timings."
                );
                return Ok(());
            }
            _ => rest.push(arg),
        }
    }
    let config = flowstate_bench::Config::from_env_and_args(rest)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for rows in config.rows {
        if gen_only {
            // How long making the rows takes, without SQLite.
            let t = std::time::Instant::now();
            let g =
                flowstate_bench::generate::Generator::new(flowstate_bench::SEED, rows, chrono::Utc::now());
            let setup = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let bytes: usize = (0..rows).map(|i| g.row(i).pipeline_context.len()).sum();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "generated {rows} rows in {secs:.2} s ({:.0} rows/s; templates {setup:.2} s), contexts {:.0} bytes on average",
                rows as f64 / secs,
                bytes as f64 / rows as f64
            );
            continue;
        }
        if scratch {
            let dir = flowstate_bench::bench_dir().join("tmp");
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("scratch-{rows}-{order:?}.db"));
            let as_of = chrono::Utc::now();
            let report = rt.block_on(load::build(&path, rows, as_of, order, flowstate_bench::SEED))?;
            println!("{order:?}: {}", report.summary());
            println!("{}", serde_json::to_string(&report)?);
            if !keep {
                load::remove_db(&path);
            }
        } else {
            if order != load::DEFAULT_ORDER {
                return Err(format!(
                    "the cached databases are built {:?}; add --scratch",
                    load::DEFAULT_ORDER
                )
                .into());
            }
            let db = rt.block_on(load::ensure(rows))?;
            println!("{}", db.path.display());
        }
    }
    Ok(())
}
