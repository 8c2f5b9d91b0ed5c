//! The `mqtt-broker` binary. The server arrives with the `mqtt-tokio` crate.

fn main() {
    eprintln!("mqtt-broker: the server is not built yet; see the README");
    std::process::exit(2);
}
