//! The `mqtt-broker` binary: command line parsing and the `passwd` subcommand.

mod passwd;

use clap::{Parser, Subcommand};

/// An MQTT 3.1 / 3.1.1 / 5.0 broker.
#[derive(Debug, Parser)]
#[command(name = "mqtt-broker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or edit a password file (mosquitto_passwd format).
    Passwd(passwd::PasswdArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Passwd(args)) => passwd::run(args),
        None => Err(String::from("the server is not built yet")),
    };
    if let Err(message) = result {
        eprintln!("mqtt-broker: {message}");
        std::process::exit(1);
    }
}
