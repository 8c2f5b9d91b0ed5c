//! `mqtt-broker passwd`: creates and edits password files in mosquitto_passwd format, with the
//! same command line as mosquitto_passwd (`-c` create, `-b` batch, `-D` delete, `-I` iterations).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use mqtt_tokio::auth::password::{
    DEFAULT_ITERATIONS, PasswordHash, remove_user_line, set_user_line, validate_username,
};

/// Arguments of the `passwd` subcommand.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Create (or overwrite) the file instead of updating it.
    #[arg(short = 'c', conflicts_with = "delete")]
    create: bool,
    /// Batch mode: the password is the last argument instead of being read from stdin.
    #[arg(short = 'b', conflicts_with = "delete")]
    batch: bool,
    /// Delete the user instead of setting a password.
    #[arg(short = 'D')]
    delete: bool,
    /// PBKDF2 iterations.
    #[arg(short = 'I', default_value_t = DEFAULT_ITERATIONS, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// The password file.
    file: PathBuf,
    /// The user name.
    user: String,
    /// The password (with -b only).
    password: Option<String>,
}

/// Runs the subcommand; the error is the message for the operator.
pub fn run(args: PasswdArgs) -> Result<(), String> {
    validate_username(&args.user).map_err(|e| e.to_string())?;
    let existing = if args.create {
        String::new()
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
    };
    let updated = if args.delete {
        remove_user_line(&existing, &args.user)
            .ok_or_else(|| format!("user {} not found in {}", args.user, args.file.display()))?
    } else {
        let password = match (args.batch, args.password) {
            (true, Some(password)) => password,
            (true, None) => return Err(String::from("-b needs a password argument")),
            (false, Some(_)) => return Err(String::from("a password argument needs -b")),
            (false, None) => read_password()?,
        };
        let hash = PasswordHash::new_pbkdf2(password.as_bytes(), args.iterations)
            .map_err(|e| e.to_string())?;
        set_user_line(&existing, &args.user, &hash)
    };
    write_private(&args.file, &updated)
}

/// Reads the password from stdin: twice with prompts on a terminal, once otherwise.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let read = |prompt: &str| -> Result<String, String> {
        if interactive {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let password = read("Password (echoed): ")?;
    if interactive && read("Reenter password: ")? != password {
        return Err(String::from("passwords do not match"));
    }
    if password.is_empty() {
        return Err(String::from("empty password"));
    }
    Ok(password)
}

/// Writes the file readable by its owner only (it holds password hashes).
fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
