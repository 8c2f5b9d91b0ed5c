//! The `mqtt-broker` binary: parses the command line (mosquitto-like `-c`, `-p`, `-v`), loads
//! the configuration, sets up logging and runs the server until SIGINT/SIGTERM; or runs the
//! `passwd` subcommand. It allocates with jemalloc (default feature `jemalloc`), tuned to give
//! freed memory back to the system promptly.

mod man;
mod passwd;
mod systemd;
mod watch;

use std::fs::File;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use clap::{Parser, Subcommand};
use mqtt_tokio::Server;
use mqtt_tokio::config::{
    ListenerConfig, LoadedConfig, LogDest, Logging, Protocol, ServerConfig, load_file,
};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt as _};
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// jemalloc (feature `jemalloc`, on by default): unlike glibc's malloc, it returns the memory
/// freed after a burst of connections to the system (see [`return_freed_memory_promptly`]).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Lets jemalloc purge freed pages after about a second (instead of 10 s), from its own
/// background threads, so an idle broker shrinks too (purging otherwise happens only while it
/// allocates). Set before the runtime's threads exist: `arenas.*` applies to the arenas they
/// will get, `arena.0.*` to the one the main thread already has. A failure only leaves
/// jemalloc's defaults.
#[cfg(feature = "jemalloc")]
fn return_freed_memory_promptly() {
    use tikv_jemalloc_ctl::{Access as _, AsName as _};
    const DECAY_MS: isize = 1000;
    for key in [&b"arenas.dirty_decay_ms\0"[..], b"arena.0.dirty_decay_ms\0"] {
        if let Err(e) = key.name().write(DECAY_MS) {
            let name = String::from_utf8_lossy(key);
            eprintln!("mqtt-broker: jemalloc {}: {e}", name.trim_end_matches('\0'));
        }
    }
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("mqtt-broker: jemalloc background threads: {e}");
    }
}

/// An MQTT 3.1 / 3.1.1 / 5.0 broker.
#[derive(Debug, Parser)]
#[command(
    name = "mqtt-broker",
    version,
    about = "An MQTT 3.1 / 3.1.1 / 5.0 broker that reads mosquitto's configuration, password and ACL files",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Configuration file: TOML (`*.toml`) or mosquitto.conf.
    #[arg(short = 'c', long = "config-file")]
    config: Option<PathBuf>,
    /// Listen on this loopback port (repeatable) instead of the local-only 127.0.0.1:1883;
    /// ignored when the configuration file declares listeners, as in mosquitto.
    #[arg(short = 'p', long = "port")]
    ports: Vec<u16>,
    /// Verbose logging (debug level); `RUST_LOG` overrides.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Start on an empty store if the existing one is corrupt (the damaged file is kept aside).
    #[arg(long = "start-fresh")]
    start_fresh: bool,
    /// Run in the background (as mosquitto's `-d`), once the configuration is read; standard
    /// input and output go to /dev/null, so log to a file (`log_dest file`).
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Without a configuration file: where the metrics listener (`/metrics`, `/healthz`,
    /// `/readyz`) listens, a loopback `ADDRESS:PORT`, or `off`. With a file, its listeners
    /// decide (`protocol http`).
    #[arg(
        long = "http",
        default_value = "127.0.0.1:8080",
        value_name = "ADDRESS:PORT|off"
    )]
    http: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or edit a password file (mosquitto_passwd format).
    Passwd(passwd::PasswdArgs),
    /// Read a configuration (mosquitto.conf with its include_dir, or TOML) and say what this
    /// broker does with each option, which listeners it would open, and any error, without
    /// starting. The exit status is 0 only for a configuration it can run.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the messages of any MQTT broker whose topics match patterns MQTT cannot express
    /// (a `*` or `?` inside a level, `--exclude`), like `mosquitto_sub -v`.
    Watch(watch::WatchArgs),
    /// Write the manual pages (mqtt-broker.8, mqtt-broker.conf.5) into a directory.
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
    /// Import mosquitto's persistence file (mosquitto.db of mosquitto 1.6 or 2.0) into this
    /// broker's empty store: retained messages, persistent sessions with their subscriptions,
    /// and the messages queued or in flight for them. The mosquitto file is only read.
    ImportMosquittoDb {
        /// The mosquitto.db to read.
        file: PathBuf,
        /// The configuration whose `persistence_location` holds the store (default: ./data).
        #[arg(short = 'c', long = "config-file")]
        config: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Passwd(args)) => passwd::run(args),
        Some(Command::ImportMosquittoDb { file, config }) => import(&file, config.as_deref()),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::Man { dir }) => man::write(&dir),
        Some(Command::Watch(args)) => watch::run(args),
        None => serve(
            cli.config,
            &cli.ports,
            &cli.http,
            cli.verbose,
            (cli.start_fresh, cli.daemon),
        ),
    };
    if let Err(message) = result {
        eprintln!("mqtt-broker: {message}");
        std::process::exit(1);
    }
}

fn serve(
    config: Option<PathBuf>,
    ports: &[u16],
    http: &str,
    verbose: bool,
    (start_fresh, daemon): (bool, bool),
) -> Result<(), String> {
    // Checked before anything starts: a bad address is a usage error.
    let http = match (&config, http) {
        (Some(_), _) | (None, "off") => None,
        (None, address) => Some(local_http(address)?),
    };
    let loaded = match &config {
        Some(path) => load_file(path).map_err(|e| e.to_string())?,
        None => LoadedConfig::from(ServerConfig::default()),
    };
    if daemon {
        // Before any thread exists (a fork keeps only the calling one); the working directory
        // stays, so relative paths in the configuration keep their meaning.
        nix::unistd::daemon(true, false)
            .map_err(|e| format!("cannot run in the background: {e}"))?;
    }
    #[cfg(feature = "jemalloc")]
    return_freed_memory_promptly();
    let logs = start_logging(&loaded.config.log, verbose)?;
    loaded.warnings.iter().for_each(|w| warn!("{w}"));
    let mut config = loaded.config;
    if config.listeners.is_empty() {
        for &port in ports {
            config.add_local_listener(port);
        }
        if let Some(http) = http {
            if config.listeners.is_empty() {
                config.listeners = config.effective_listeners();
            }
            config.listeners.push(http);
        }
    } else if !ports.is_empty() {
        // As mosquitto: `-p` only replaces the local-only listener.
        warn!("-p ignored: the configuration file declares listeners");
    }
    // The binary keeps its state on disk (./data) unless the configuration says otherwise (a
    // mosquitto.conf says so unless it has `persistence true`, as in mosquitto).
    config.persistence.get_or_insert(true);
    config.start_fresh |= start_fresh;
    let pid_file = config.pid_file.clone();
    let user = config.user.clone();
    // The store keeps writing after the switch: its directory must be the user's to write.
    let store_dir = (config.persistence == Some(true))
        .then(|| (config.persistence_location.clone()).unwrap_or_else(|| PathBuf::from("data")));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let cluster = config.cluster.clone();
    runtime.block_on(async {
        let mut server = Server::builder(config)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        // A node of a cluster (`[cluster]`) joins it before it is ready: NATS and JetStream
        // must answer, or the broker does not start.
        let _node = match &cluster {
            Some(cluster) => Some(
                mqtt_cluster::join(cluster, &mut server)
                    .await
                    .map_err(|e| format!("cluster: {e}"))?,
            ),
            None => None,
        };
        // Written once the listeners are bound, as mosquitto does; removed when it stops.
        let _pid_file = pid_file.map(PidFile::write).transpose()?;
        if let Some(user) = &user {
            drop_privileges(user)?;
            if let Some(dir) = &store_dir {
                writable(dir).map_err(|e| {
                    format!(
                        "user {user} cannot write persistence_location {}: {e}",
                        dir.display()
                    )
                })?;
            }
        }
        // systemd (Type=notify): ready once bound, the privileges dropped, the pid file written
        // and every signal handler installed (a SIGHUP right after READY=1 reloads); then
        // reloads and the stop.
        let handle = server.handle();
        let serving = server.run_until_signalled();
        let reopening = tokio::spawn(reopen_logs_on_hangup(logs.files));
        let notifying = tokio::spawn(systemd::Notifier::from_env().ready_then_follow_signals());
        let publishing = logs
            .topic
            .map(|lines| tokio::spawn(publish_logs(lines, handle)));
        let served = serving.await.map_err(|e| {
            error!(%e, "signal handling failed");
            e.to_string()
        });
        reopening.abort();
        notifying.abort();
        if let Some(publishing) = publishing {
            publishing.abort();
        }
        served
    })
}

/// `check-config`: every option and what is done with it, the listeners, the store, then the
/// checks that need no socket (files, TLS, limits).
fn check_config(path: &std::path::Path) -> Result<(), String> {
    use mqtt_tokio::config::Support;
    let loaded = load_file(path).map_err(|e| e.to_string())?;
    if loaded.options.is_empty() {
        println!(
            "{}: TOML (every key is honoured; unknown keys are errors)",
            path.display()
        );
    }
    for option in &loaded.options {
        let (treatment, note) = match option.support {
            Support::Honoured(note) => ("honoured", note),
            Support::Ignored(note) => ("IGNORED", note),
            Support::Refused(note) => ("REFUSED", note),
        };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        println!("{}: {}: {treatment}{note}", option.at, option.line);
    }
    // The ignored options are listed above already.
    let ignored = |warning: &&String| {
        loaded.options.iter().any(|o| {
            matches!(o.support, Support::Ignored(_)) && warning.starts_with(&format!("{}: ", o.at))
        })
    };
    for warning in loaded.warnings.iter().filter(|w| !ignored(w)) {
        println!("warning: {warning}");
    }
    let config = &loaded.config;
    println!("listeners:");
    for listener in config.effective_listeners() {
        println!("  {}", describe_listener(config, &listener));
    }
    match config.persistence {
        Some(true) => println!(
            "persistence: {}, durability {}",
            config
                .persistence_location
                .as_deref()
                .unwrap_or(std::path::Path::new("data"))
                .join("mqtt-broker.redb")
                .display(),
            config.durability
        ),
        _ => println!("persistence: off (nothing kept across restarts)"),
    }
    mqtt_tokio::check_config(config).map_err(|e| e.to_string())?;
    println!("{}: OK", path.display());
    Ok(())
}

/// One listener as `check-config` shows it: where, what, and who gets in.
fn describe_listener(config: &ServerConfig, listener: &ListenerConfig) -> String {
    let scheme = listener.scheme();
    let host = match &listener.bind_interface {
        Some(interface) => format!("<{interface}>"),
        None if listener.bind_address.contains(':') => format!("[{}]", listener.bind_address),
        None => listener.bind_address.clone(),
    };
    let mut facts = vec![if listener.allow_anonymous {
        "anonymous allowed".to_owned()
    } else {
        "anonymous refused".to_owned()
    }];
    let (passwords, acl) = config.security_files(listener);
    if let Some(file) = passwords {
        facts.push(format!("passwords {}", file.display()));
    }
    if let Some(file) = acl {
        facts.push(format!("ACL {}", file.display()));
    }
    if listener.require_certificate {
        facts.push("client certificates required".to_owned());
    }
    if let Some(mount) = &listener.mount_point {
        facts.push(format!("mount point {mount}"));
    }
    if let Some(max) = listener.max_connections {
        facts.push(format!("at most {max} connections"));
    }
    format!("{scheme}://{host}:{} ({})", listener.port, facts.join(", "))
}

/// `import-mosquitto-db`: into the store the configuration (or the default) names.
fn import(file: &std::path::Path, config: Option<&std::path::Path>) -> Result<(), String> {
    let config = match config {
        Some(path) => load_file(path).map_err(|e| e.to_string())?.config,
        None => ServerConfig::default(),
    };
    let dir = config
        .persistence_location
        .unwrap_or_else(|| PathBuf::from("data"));
    let import = mqtt_tokio::import_mosquitto_db(file, &dir)?;
    println!(
        "imported into {}: {}",
        dir.display(),
        mqtt_tokio::describe_import(&import)
    );
    Ok(())
}

/// The metrics listener of a start without a configuration file: a loopback address (it admits
/// anyone, as the local-only MQTT listener does).
fn local_http(address: &str) -> Result<ListenerConfig, String> {
    let address: std::net::SocketAddr = address
        .parse()
        .map_err(|_| format!("--http {address}: expected ADDRESS:PORT or off"))?;
    if !address.ip().is_loopback() {
        return Err(format!(
            "--http {address}: only a loopback address (a configuration file can open others, with logins)"
        ));
    }
    let mut listener = ListenerConfig::default();
    listener.bind_address = address.ip().to_string();
    listener.port = address.port();
    listener.protocol = Protocol::Http;
    listener.allow_anonymous = true;
    Ok(listener)
}

/// A log file, reopened on SIGHUP so that logrotate's renamed file is let go, as mosquitto does.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> Result<Arc<LogFile>, String> {
        Ok(Arc::new(LogFile {
            path: path.to_owned(),
            file: Mutex::new(Self::append(path)?),
        }))
    }

    fn append(path: &Path) -> Result<File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("log_dest file {}: {e}", path.display()))
    }

    /// Opens the path again: later lines go to the file now there.
    fn reopen(&self) -> Result<(), String> {
        let file = Self::append(&self.path)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = file;
        Ok(())
    }
}

/// A log line written to a [`LogFile`], under its lock (the line is formatted first, then
/// written at once).
impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// Log lines waiting to be published under `$SYS/broker/log/...`, at most this many (more are
/// dropped: logging never waits for the broker).
const TOPIC_LOG_BACKLOG: usize = 1024;

/// mosquitto's `log_dest topic`: errors, warnings and information go to
/// `$SYS/broker/log/E`, `W` and `I` (debug lines are not published: publishing logs at debug
/// level itself).
struct TopicLog(tokio::sync::mpsc::Sender<(char, String)>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TopicLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let letter = match *event.metadata().level() {
            tracing::Level::ERROR => 'E',
            tracing::Level::WARN => 'W',
            tracing::Level::INFO => 'I',
            _ => return,
        };
        let mut line = LogLine(String::new());
        event.record(&mut line);
        let _ = self.0.try_send((letter, line.0));
    }
}

/// mosquitto's `log_dest syslog`: each event as one datagram to the local syslog daemon's
/// socket, `<PRI>mqtt-broker[PID]: line` (RFC 3164 without a time stamp: the daemon stamps
/// what it receives). A daemon that is not there, or is restarting, loses the line, as
/// syslog(3) does; logging never waits.
struct SyslogLog {
    socket: std::os::unix::net::UnixDatagram,
    /// Facility times 8: `daemon` (3), or `local0` to `local7` (16 to 23).
    facility: u8,
    pid: u32,
}

/// Where the local syslog daemon listens.
const SYSLOG_SOCKET: &str = "/dev/log";

impl SyslogLog {
    fn new(facility: Option<u8>) -> Result<SyslogLog, String> {
        let socket = std::os::unix::net::UnixDatagram::unbound()
            .map_err(|e| format!("log_dest syslog: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("log_dest syslog: {e}"))?;
        Ok(SyslogLog {
            socket,
            facility: facility.map_or(3, |local| 16 + local) * 8,
            pid: std::process::id(),
        })
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SyslogLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let severity = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        let mut line = LogLine(String::new());
        event.record(&mut line);
        let datagram = format!(
            "<{}>mqtt-broker[{}]: {}",
            self.facility + severity,
            self.pid,
            line.0
        );
        let _ = self.socket.send_to(datagram.as_bytes(), SYSLOG_SOCKET);
    }
}

/// A log event's message and fields as one line.
struct LogLine(String);

impl tracing::field::Visit for LogLine {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let separator = if self.0.is_empty() { "" } else { " " };
        let _ = if field.name() == "message" {
            write!(self.0, "{separator}{value:?}")
        } else {
            write!(self.0, "{separator}{}={value:?}", field.name())
        };
    }
}

/// What logging hands the rest of the binary: the log files, to reopen on SIGHUP, and the
/// lines to publish, with `log_dest topic`.
struct Logs {
    files: Vec<Arc<LogFile>>,
    topic: Option<tokio::sync::mpsc::Receiver<(char, String)>>,
}

/// Publishes the log lines under `$SYS/broker/log/...` as they come.
async fn publish_logs(
    mut lines: tokio::sync::mpsc::Receiver<(char, String)>,
    server: mqtt_tokio::ServerHandle,
) {
    while let Some((letter, line)) = lines.recv().await {
        let topic = format!("$SYS/broker/log/{letter}");
        if server
            .publish(&topic, line, mqtt_tokio::mqtt_wire::QoS::AtMostOnce, false)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sets up logging to the configured destinations (standard error when none), at the
/// configured level (`info` by default, `debug` with `-v`); `RUST_LOG` overrides both.
fn start_logging(log: &Logging, verbose: bool) -> Result<Logs, String> {
    let level = match (&log.level, verbose) {
        (_, true) => "debug",
        (Some(level), false) => level.as_str(),
        (None, false) => "info",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    if !log.connection_messages {
        let quiet = format!("{}=warn", mqtt_tokio::config::CONNECTIONS_LOG_TARGET);
        filter = filter.add_directive(quiet.parse().map_err(|e| format!("{e}"))?);
    }
    let mut to_terminal = log.dest.is_empty();
    let mut writer: Option<BoxMakeWriter> = None;
    let mut files = Vec::new();
    let mut topic = None;
    let mut syslog = None;
    for dest in &log.dest {
        let next = match dest {
            LogDest::Syslog => {
                syslog = Some(SyslogLog::new(log.facility)?);
                continue;
            }
            LogDest::Topic => {
                let (lines, published) = tokio::sync::mpsc::channel(TOPIC_LOG_BACKLOG);
                topic = Some((TopicLog(lines), published));
                continue;
            }
            LogDest::Stderr => {
                to_terminal = log.dest.len() == 1;
                BoxMakeWriter::new(std::io::stderr)
            }
            LogDest::Stdout => BoxMakeWriter::new(std::io::stdout),
            LogDest::None => BoxMakeWriter::new(std::io::sink),
            LogDest::File(path) => {
                let file = LogFile::open(path)?;
                files.push(file.clone());
                BoxMakeWriter::new(file)
            }
        };
        writer = Some(match writer {
            Some(before) => BoxMakeWriter::new(before.and(next)),
            None => next,
        });
    }
    let writer = writer.unwrap_or_else(|| {
        if log.dest.is_empty() {
            BoxMakeWriter::new(std::io::stderr)
        } else {
            BoxMakeWriter::new(std::io::sink) // only `topic` and `syslog`
        }
    });
    let (topic_layer, topic) = match topic {
        Some((layer, published)) => (Some(layer), Some(published)),
        None => (None, None),
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(to_terminal && std::io::stderr().is_terminal());
    // mosquitto's `log_timestamp false` and `log_timestamp_format` (validated with the
    // configuration).
    let lines = match (log.timestamp, &log.timestamp_format) {
        (false, _) => lines.without_time().boxed(),
        (true, Some(format)) => lines
            .with_timer(tracing_subscriber::fmt::time::ChronoLocal::new(
                format.clone(),
            ))
            .boxed(),
        (true, None) => lines.boxed(),
    };
    tracing_subscriber::registry()
        .with(lines)
        .with(filter)
        .with(topic_layer)
        .with(syslog)
        .init();
    Ok(Logs { files, topic })
}

/// Reopens the log files on every SIGHUP (the server itself reloads its security files then).
/// The handler is installed by this call, before the future is first polled.
fn reopen_logs_on_hangup(files: Vec<Arc<LogFile>>) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = (!files.is_empty()).then(|| signal(SignalKind::hangup()));
    async move {
        let Some(Ok(mut hangup)) = hangup else {
            return;
        };
        reopen_on_each(&mut hangup, &files).await;
    }
}

/// Reopens `files` each time `hangup` fires.
async fn reopen_on_each(hangup: &mut tokio::signal::unix::Signal, files: &[Arc<LogFile>]) {
    while hangup.recv().await.is_some() {
        for file in files {
            match file.reopen() {
                Ok(()) => info!(file = %file.path.display(), "log file reopened"),
                Err(e) => error!("{e}"),
            }
        }
    }
}

/// Switches the whole process to `name` and its primary group, as mosquitto does once its
/// ports are bound and its files open: only when running as root (otherwise there is nothing
/// to drop); a user that does not exist is an error.
fn drop_privileges(name: &str) -> Result<(), String> {
    use nix::unistd::{Uid, User, setgid, setgroups, setuid};
    if !Uid::effective().is_root() {
        info!(
            user = name,
            "not started as root: the user option has nothing to drop"
        );
        return Ok(());
    }
    let user = User::from_name(name)
        .map_err(|e| format!("user {name}: {e}"))?
        .ok_or_else(|| format!("user {name}: no such user"))?;
    if user.uid.is_root() {
        return Ok(());
    }
    setgroups(&[user.gid])
        .and_then(|()| setgid(user.gid))
        .and_then(|()| setuid(user.uid))
        .map_err(|e| format!("user {name}: cannot switch to it: {e}"))?;
    info!(
        user = name,
        uid = user.uid.as_raw(),
        "switched to the configured user"
    );
    Ok(())
}

/// Whether a file can be created in `dir` (by the user the process now runs as).
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".mqtt-broker-write-check-{}", std::process::id()));
    File::create(&probe)?;
    std::fs::remove_file(probe)
}

/// The process id written to a file, removed again when dropped.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: PathBuf) -> Result<PidFile, String> {
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pid_file {}: {e}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            warn!(file = %self.0.display(), %e, "cannot remove the pid file");
        }
    }
}
