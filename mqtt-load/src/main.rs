//! The `mqtt-load` binary: parses the options, builds a multi-threaded runtime of
//! `--threads` workers, runs the scenario and prints its `RESULT` line.

use clap::Parser as _;
use mqtt_load::{Options, run};

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
    match result {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("mqtt-load: {e}");
            println!(
                "RESULT scenario={} broker={} error=\"{}\"",
                options.scenario.name(),
                options.broker_label(),
                e.to_string().replace(char::is_whitespace, "_")
            );
            std::process::exit(1);
        }
    }
}
