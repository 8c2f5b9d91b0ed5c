//! `mqtt-sim`: runs seeds of the deterministic simulation and reports violations with the
//! command that replays each.
//!
//! ```text
//! mqtt-sim --seeds 10000 [--start 0] [--clients 6] [--duration 60] [--jobs 2]
//! mqtt-sim --seed 1234 --trace 200           # replay one seed, print its last events
//! mqtt-sim --seeds 2000 --mutation ack-before-commit   # how soon does the oracle notice?
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mqtt_sim::{Durability, Mutation, Options, Report, replay_command, run};

struct Args {
    start: u64,
    seeds: u64,
    jobs: u64,
    opts: Options,
    /// Stop at the first failing seed.
    first: bool,
    /// Look for the smallest run (fewer clients, shorter) that still fails, for the first
    /// failing seed.
    shrink: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: mqtt-sim [--seed S | --seeds N [--start S]] [--clients N] [--duration SECS] \
         [--no-faults] [--durable | --periodic | --in-memory] [--mutation NAME] [--trace EVENTS] [--faults-off N,N,..] [--jobs N] [--first] [--shrink]\n\
         mutations: {}",
        Mutation::ALL.map(|(_, n)| n).join(", ")
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut args = Args {
        start: 0,
        seeds: 100,
        jobs: 1,
        opts: Options::default(),
        first: false,
        shrink: false,
    };
    let mut it = std::env::args().skip(1);
    let num =
        |v: Option<String>| -> u64 { v.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()) };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seed" => {
                args.start = num(it.next());
                args.seeds = 1;
            }
            "--seeds" => args.seeds = num(it.next()),
            "--start" => args.start = num(it.next()),
            "--clients" => args.opts.clients = num(it.next()) as usize,
            "--duration" => args.opts.duration_ms = num(it.next()) * 1000,
            "--no-faults" => args.opts.faults = false,
            "--durable" => args.opts.durability = Some(Durability::Sync),
            "--periodic" => args.opts.durability = Some(Durability::Periodic),
            "--in-memory" => args.opts.durability = Some(Durability::Memory),
            "--mutation" => {
                let name = it.next().unwrap_or_else(|| usage());
                args.opts.mutation = Some(Mutation::named(&name).unwrap_or_else(|| usage()));
            }
            "--trace" => args.opts.trace = num(it.next()) as usize,
            "--faults-off" => {
                let list = it.next().unwrap_or_else(|| usage());
                let mut off: Vec<u64> = list
                    .split(',')
                    .map(|n| n.trim().parse().unwrap_or_else(|_| usage()))
                    .collect();
                off.sort_unstable();
                args.opts.faults_off = off;
            }
            "--jobs" => args.jobs = num(it.next()).max(1),
            "--first" => args.first = true,
            "--shrink" => args.shrink = true,
            _ => usage(),
        }
    }
    args
}

fn print_failure(report: &Report, opts: &Options) {
    println!("seed {} FAILED:", report.seed);
    for v in &report.violations {
        println!("  {v}");
    }
    for line in &report.trace {
        println!("    {line}");
    }
    println!("  replay: {}", replay_command(report.seed, opts));
}

/// Shrinks the failing run of `seed` (see [`mqtt_sim::shrink`]) and prints the result.
fn shrink(seed: u64, opts: &Options) {
    let traced = Options {
        trace: opts.trace.max(400),
        ..opts.clone()
    };
    let Some((best, report)) = mqtt_sim::shrink(seed, &traced) else {
        println!("seed {seed} does not fail: nothing to shrink");
        return;
    };
    let faults_on = report.counts.faults - best.faults_off.len() as u64;
    println!(
        "shrunk seed {seed} to {} clients, {} s active, {faults_on} of {} faults, {} events:",
        best.clients,
        best.duration_ms / 1000,
        report.counts.faults,
        report.counts.events
    );
    print_failure(&report, &best);
}

fn main() -> ExitCode {
    let args = parse();
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let started = &started;
    let next = Arc::new(AtomicU64::new(args.start));
    let end = args.start + args.seeds;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let totals = Arc::new(Mutex::new((0u64, 0u64, 0u64, 0u64, 0u64)));
    let workers: Vec<_> = (0..args.jobs)
        .map(|_| {
            let (next, stop, failures, totals) =
                (next.clone(), stop.clone(), failures.clone(), totals.clone());
            let opts = args.opts.clone();
            let first = args.first;
            let started = *started;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let report = run(seed, &opts);
                    {
                        let mut t = totals.lock().unwrap_or_else(|e| e.into_inner());
                        t.0 += 1;
                        t.1 += report.counts.events;
                        t.2 += report.counts.sim_ms;
                        t.4 += report.counts.owed;
                        t.3 ^= report.counts.digest.rotate_left((seed % 64) as u32);
                        if t.0 % 10_000 == 0 {
                            let failed = failures.lock().map_or(0, |f| f.len());
                            println!(
                                "progress: {} seeds run, {failed} failed, {:.0} s",
                                t.0,
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    if report.violations.is_empty() && end - seed == 1 && opts.trace > 0 {
                        // One seed asked for with a trace: show it even when it passes.
                        for line in &report.trace {
                            println!("    {line}");
                        }
                    }
                    if !report.violations.is_empty() {
                        print_failure(&report, &opts);
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(seed);
                        if first {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        if w.join().is_err() {
            eprintln!("a worker panicked (the panic message above names the seed's event)");
            return ExitCode::FAILURE;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (runs, events, sim_ms, digest, owed) = *totals.lock().unwrap_or_else(|e| e.into_inner());
    let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!(
        "{runs} seeds from {} in {secs:.1} s: {:.1} seeds/s, {:.0} events/s, {:.0} simulated client-seconds per second; {owed} owed deliveries checked; digest {digest:016x}; {} failed{}",
        args.start,
        runs as f64 / secs,
        events as f64 / secs,
        (sim_ms as f64 / 1000.0) * args.opts.clients as f64 / secs,
        failures.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(": {failures:?}")
        }
    );
    if args.shrink
        && let Some(&seed) = failures.iter().min()
    {
        shrink(seed, &args.opts);
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
