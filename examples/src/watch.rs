//! `mqtt-broker watch`: prints the messages of any MQTT broker like `mosquitto_sub -v`, for
//! patterns MQTT itself cannot express: a wildcard inside a level (`stat/Sonoff*/POWER`) and
//! "everything except" (`--exclude tele/+/SENSOR`). It subscribes with the narrowest MQTT
//! filter covering each pattern ([`TopicGlob::filter`]) and drops what the patterns do not
//! match; the protocol stays standard (MQTT 3.1.1, QoS 0, clean session).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use clap::Args;
use mqtt_tokio::mqtt_wire::{
    Bytes, BytesMut, Connect, Decoder, MqttStr, Packet, PacketId, Properties, ProtocolVersion,
    ReasonCode, Subscribe, SubscriptionOptions,
};
use mqtt_topic::TopicGlob;

/// Keep alive asked for; a PINGREQ goes out when half of it passed quietly.
const KEEP_ALIVE: u16 = 60;

/// The arguments of `watch`, named as the mosquitto clients name them.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct WatchArgs {
    /// Topic patterns: MQTT filters, with `*` (any characters) and `?` (one) inside a level.
    #[arg(required = true)]
    patterns: Vec<String>,
    /// Leave out messages whose topic matches this pattern (repeatable).
    #[arg(short = 'x', long = "exclude")]
    exclude: Vec<String>,
    /// The broker's host.
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    host: String,
    /// The broker's port.
    #[arg(short = 'p', long = "port", default_value_t = 1883)]
    port: u16,
    /// User name.
    #[arg(short = 'u', long = "username")]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw")]
    password: Option<String>,
    /// Exit after this many messages printed.
    #[arg(short = 'C', long = "count")]
    count: Option<u64>,
    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// Subscribes and prints until the broker closes the connection (an error) or `count` messages
/// were printed.
pub fn run(args: WatchArgs) -> Result<(), String> {
    let parse =
        |text: &String| TopicGlob::parse(text).map_err(|e| format!("pattern `{text}`: {e}"));
    let patterns: Vec<TopicGlob> = args.patterns.iter().map(parse).collect::<Result<_, _>>()?;
    let exclude: Vec<TopicGlob> = args.exclude.iter().map(parse).collect::<Result<_, _>>()?;
    let mut filters: Vec<String> = patterns.iter().map(TopicGlob::filter).collect();
    filters.dedup();
    let address = format!("{}:{}", args.host, args.port);
    let stream =
        TcpStream::connect(&address).map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut connection = Connection::new(stream);
    let mut connect = Connect {
        protocol: ProtocolVersion::V3_1_1,
        bridge: false,
        clean_start: true,
        keep_alive: KEEP_ALIVE,
        client_id: string(&format!("mqtt-broker-watch-{}", std::process::id()))?,
        will: None,
        username: args.username.as_deref().map(string).transpose()?,
        password: args.password.map(Bytes::from),
        properties: Properties::default(),
    };
    if connect.username.is_none() {
        connect.password = None;
    }
    connection.send(&Packet::Connect(Box::new(connect)))?;
    match connection.receive()? {
        Packet::ConnAck(ack) if ack.reason_code == ReasonCode::Success => {}
        Packet::ConnAck(ack) => return Err(format!("the broker refused: {:?}", ack.reason_code)),
        other => return Err(format!("expected CONNACK, got {other:?}")),
    }
    let subscribe = Subscribe {
        packet_id: PacketId::new(1).ok_or("packet id")?,
        filters: filters
            .iter()
            .map(|f| Ok((string(f)?, SubscriptionOptions::default())))
            .collect::<Result<_, String>>()?,
        properties: Properties::default(),
    };
    connection.send(&Packet::Subscribe(subscribe))?;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let packet = connection.receive()?;
        match packet {
            Packet::SubAck(ack) => {
                for (filter, code) in filters.iter().zip(&ack.reason_codes) {
                    if code.is_error() {
                        return Err(format!("the broker refused the subscription {filter}"));
                    }
                }
            }
            Packet::Publish(publish) => {
                let topic = publish.topic();
                let wanted = patterns.iter().any(|p| p.matches(topic))
                    && !exclude.iter().any(|p| p.matches(topic));
                if !wanted {
                    continue;
                }
                let mut out = stdout.lock();
                let payload = String::from_utf8_lossy(publish.payload());
                writeln!(out, "{topic} {payload}")
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
                printed += 1;
                if args.count.is_some_and(|count| printed >= count) {
                    let _ = connection.send(&Packet::Disconnect(Default::default()));
                    return Ok(());
                }
            }
            _ => {}
        }
    }
}

fn string(text: &str) -> Result<MqttStr, String> {
    MqttStr::try_from(text.to_owned()).map_err(|e| format!("`{text}`: {e}"))
}

/// A blocking MQTT 3.1.1 connection that keeps itself alive.
struct Connection {
    stream: TcpStream,
    decoder: Decoder,
    buffer: BytesMut,
    last_sent: Instant,
}

impl Connection {
    fn new(stream: TcpStream) -> Connection {
        let mut decoder = Decoder::new();
        decoder.set_version(ProtocolVersion::V3_1_1);
        // Wakes up to send PINGREQ when the broker has been quiet.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(u64::from(KEEP_ALIVE) / 2)));
        Connection {
            stream,
            decoder,
            buffer: BytesMut::with_capacity(8 * 1024),
            last_sent: Instant::now(),
        }
    }

    fn send(&mut self, packet: &Packet) -> Result<(), String> {
        let mut out = BytesMut::new();
        packet
            .encode(ProtocolVersion::V3_1_1, &mut out)
            .map_err(|e| e.to_string())?;
        self.stream
            .write_all(&out)
            .map_err(|e| format!("the connection broke: {e}"))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet; PINGREQ goes out while waiting.
    fn receive(&mut self) -> Result<Packet, String> {
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.buffer)
                .map_err(|e| e.to_string())?
            {
                return Ok(packet);
            }
            let mut chunk = [0u8; 8 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(String::from("the broker closed the connection")),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.last_sent.elapsed() >= Duration::from_secs(u64::from(KEEP_ALIVE) / 2) {
                        self.send(&Packet::PingReq)?;
                    }
                }
                Err(e) => return Err(format!("the connection broke: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: WatchArgs,
    }

    #[test]
    fn takes_the_mosquitto_clients_flags() {
        let parsed = Wrapper::try_parse_from([
            "watch",
            "-h",
            "broker.lan",
            "-p",
            "1884",
            "-u",
            "me",
            "-P",
            "pw",
            "-x",
            "tele/+/SENSOR",
            "stat/Sonoff*/POWER",
            "#",
        ])
        .unwrap()
        .args;
        assert_eq!((parsed.host.as_str(), parsed.port), ("broker.lan", 1884));
        assert_eq!(parsed.patterns, ["stat/Sonoff*/POWER", "#"]);
        assert_eq!(parsed.exclude, ["tele/+/SENSOR"]);
    }
}
