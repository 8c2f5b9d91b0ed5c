//! The `mqtt-load` binary: parses the options, builds a multi-threaded runtime of
//! `--threads` workers, runs the scenario or mode and prints its `RESULT` line (and, with
//! `--json` / `--json-file`, its JSON summary).

use clap::Parser as _;
use mqtt_load::{Options, Report, run};

fn main() {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads as usize)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(&options)),
        Err(e) => Err(e.into()),
    };
    let (report, failed) = match result {
        Ok(report) => (report, false),
        Err(e) => {
            eprintln!("mqtt-load: {e}");
            let mut report = Report::new(options.scenario.name(), &options.broker_label());
            report.add("error", format_args!("\"{e}\""));
            (report, true)
        }
    };
    println!("{report}");
    if options.json {
        println!("{}", report.to_json());
    }
    if let Some(path) = &options.json_file
        && let Err(e) = std::fs::write(path, report.to_json() + "\n")
    {
        eprintln!("mqtt-load: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    if failed {
        std::process::exit(1);
    }
}
