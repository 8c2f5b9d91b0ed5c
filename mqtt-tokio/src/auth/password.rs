//! Password files in mosquitto_passwd format, read and written.
//!
//! One line per user, `user:hash`, where `hash` is either
//! `$7$<iterations>$<base64 salt>$<base64 key>` (PBKDF2-HMAC-SHA512, 64-byte key; what
//! mosquitto_passwd 2.x writes, 101 iterations by default) or the older
//! `$6$<base64 salt>$<base64 SHA-512(password || salt)>`. Salts are 12 bytes. Lines starting with
//! `#` and lines without `:` are skipped, as mosquitto does; malformed hashes drop their user
//! with a warning. Comparison of hashes takes the same time wherever they differ.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha512};

/// Salt length used by mosquitto for both hash kinds.
pub const SALT_LEN: usize = 12;
/// Length of the stored hash (SHA-512 output).
pub const HASH_LEN: usize = 64;
/// PBKDF2 iterations used by mosquitto_passwd 2.x, and by us when writing.
pub const DEFAULT_ITERATIONS: u32 = 101;

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$6$`: one SHA-512 over the password followed by the salt.
    Sha512 {
        /// The salt.
        salt: [u8; SALT_LEN],
        /// The digest.
        hash: [u8; HASH_LEN],
    },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// Iteration count (at least 1).
        iterations: u32,
        /// The salt.
        salt: [u8; SALT_LEN],
        /// The derived key.
        hash: [u8; HASH_LEN],
    },
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { .. } => f.write_str("PasswordHash::Sha512(..)"),
            PasswordHash::Pbkdf2Sha512 { iterations, .. } => {
                write!(f, "PasswordHash::Pbkdf2Sha512({iterations} iterations, ..)")
            }
        }
    }
}

/// Why a hash or a password file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// The hash is not `$6$salt$hash` or `$7$iterations$salt$hash`.
    Format,
    /// The hash kind is neither 6 nor 7.
    UnknownKind,
    /// The iteration count is missing, zero or not a number.
    Iterations,
    /// Salt or hash is not base64 of the right length.
    Encoding,
    /// A user name is empty, contains `:` or a control character.
    BadUsername,
    /// The system random source failed.
    Random,
    /// The file could not be read or written.
    Io(String),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::Format => f.write_str("password hash is not in $6$ or $7$ format"),
            PasswordError::UnknownKind => f.write_str("unknown password hash kind"),
            PasswordError::Iterations => f.write_str("invalid PBKDF2 iteration count"),
            PasswordError::Encoding => {
                f.write_str("salt or hash is not valid base64 of the right length")
            }
            PasswordError::BadUsername => {
                f.write_str("user name must be non-empty, without ':' or control characters")
            }
            PasswordError::Random => f.write_str("system random source failed"),
            PasswordError::Io(why) => write!(f, "password file: {why}"),
        }
    }
}

impl std::error::Error for PasswordError {}

impl PasswordHash {
    /// Parses the part after `user:`.
    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        let rest = text.trim().strip_prefix('$').ok_or(PasswordError::Format)?;
        let mut parts = rest.split('$');
        let kind = parts.next().ok_or(PasswordError::Format)?;
        let parsed = match kind {
            "6" => {
                let salt = decode_fixed(parts.next())?;
                let hash = decode_fixed(parts.next())?;
                PasswordHash::Sha512 { salt, hash }
            }
            "7" => {
                let iterations = parts
                    .next()
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|&n| n >= 1)
                    .ok_or(PasswordError::Iterations)?;
                let salt = decode_fixed(parts.next())?;
                let hash = decode_fixed(parts.next())?;
                PasswordHash::Pbkdf2Sha512 {
                    iterations,
                    salt,
                    hash,
                }
            }
            _ => return Err(PasswordError::UnknownKind),
        };
        if parts.next().is_some() {
            return Err(PasswordError::Format);
        }
        Ok(parsed)
    }

    /// A new PBKDF2-HMAC-SHA512 hash of `password` with a fresh random salt.
    pub fn new_pbkdf2(password: &[u8], iterations: u32) -> Result<Self, PasswordError> {
        if iterations == 0 {
            return Err(PasswordError::Iterations);
        }
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|_| PasswordError::Random)?;
        Ok(PasswordHash::Pbkdf2Sha512 {
            iterations,
            salt,
            hash: pbkdf2_sha512(password, &salt, iterations),
        })
    }

    /// Whether `password` hashes to this value (constant-time comparison).
    pub fn verify(&self, password: &[u8]) -> bool {
        let (computed, stored) = match self {
            PasswordHash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                let mut out = [0u8; HASH_LEN];
                out.copy_from_slice(&digest.finalize());
                (out, hash)
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => (pbkdf2_sha512(password, salt, *iterations), hash),
        };
        constant_time_eq(&computed, stored)
    }
}

impl fmt::Display for PasswordHash {
    /// The mosquitto_passwd text of this hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", BASE64.encode(salt), BASE64.encode(hash))
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                BASE64.encode(salt),
                BASE64.encode(hash)
            ),
        }
    }
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

fn decode_fixed<const N: usize>(part: Option<&str>) -> Result<[u8; N], PasswordError> {
    let bytes = BASE64
        .decode(part.ok_or(PasswordError::Format)?)
        .map_err(|_| PasswordError::Encoding)?;
    bytes.try_into().map_err(|_| PasswordError::Encoding)
}

/// Compares two equal-length arrays without an early exit.
fn constant_time_eq(a: &[u8; HASH_LEN], b: &[u8; HASH_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Checks a user name for a password file line (mosquitto_passwd's rules).
pub fn validate_username(user: &str) -> Result<(), PasswordError> {
    if user.is_empty()
        || user.len() > 65535
        || user.contains(':')
        || user.chars().any(char::is_control)
    {
        return Err(PasswordError::BadUsername);
    }
    Ok(())
}

/// The users of a password file and their hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
}

impl PasswordFile {
    /// Parses a password file; returns it with one warning per line that was skipped.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut users = HashMap::new();
        let mut warnings = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                continue;
            };
            let user = user.trim();
            match PasswordHash::parse(hash) {
                Ok(hash) if validate_username(user).is_ok() => {
                    users.insert(user.to_owned(), hash);
                }
                Ok(_) => warnings.push(format!("password file line {}: bad user name", index + 1)),
                Err(e) => warnings.push(format!(
                    "password file line {}: user `{user}` removed: {e}",
                    index + 1
                )),
            }
        }
        (PasswordFile { users }, warnings)
    }

    /// Reads and parses a password file.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), PasswordError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PasswordError::Io(format!("{}: {e}", path.display())))?;
        Ok(Self::parse(&text))
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` is theirs. An unknown user costs about as much time
    /// as a known one, so timing does not reveal which names exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                let decoy = PasswordHash::Pbkdf2Sha512 {
                    iterations: DEFAULT_ITERATIONS,
                    salt: [0; SALT_LEN],
                    hash: [0; HASH_LEN],
                };
                let _ = std::hint::black_box(decoy.verify(password));
                false
            }
        }
    }
}

/// Returns `text` (a password file) with `user`'s line replaced by `user:hash`, or the line
/// appended when the user is new. Other lines, comments included, are kept as they are.
pub fn set_user_line(text: &str, user: &str, hash: &PasswordHash) -> String {
    edit_user_line(text, user, Some(&format!("{user}:{hash}")))
}

/// Returns `text` without `user`'s line; `None` if the user is not in it.
pub fn remove_user_line(text: &str, user: &str) -> Option<String> {
    let edited = edit_user_line(text, user, None);
    (edited.lines().count() != text.lines().count()).then_some(edited)
}

fn edit_user_line(text: &str, user: &str, replacement: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() + 128);
    let mut replaced = false;
    for line in text.lines() {
        let is_user = !line.starts_with('#')
            && line
                .split_once(':')
                .is_some_and(|(name, _)| name.trim() == user);
        if is_user {
            if let (Some(new), false) = (replacement, replaced) {
                out.push_str(new);
                out.push('\n');
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let (Some(new), false) = (replacement, replaced) {
        out.push_str(new);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with mosquitto_passwd 2.0.11 (`-b file user secret`).
    const MOSQUITTO_PBKDF2: &str = "alice:$7$101$fMbI18P5KQynup1t$5sTp6E6Qu7I3cqwNJfmP0jv+6IC3KyEKu4pMUPCdOrPpB0FMW8VGAlT08jLLahJHY/oDX0QU/klC8Zm5a1LZFA==\n";

    #[test]
    fn pbkdf2_round_trip() {
        let hash = PasswordHash::new_pbkdf2(b"secret", DEFAULT_ITERATIONS).unwrap();
        let text = hash.to_string();
        assert!(text.starts_with("$7$101$"));
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.verify(b"secret"));
        assert!(!parsed.verify(b"Secret"));
        assert!(!parsed.verify(b""));
    }

    #[test]
    fn sha512_kind_verifies() {
        let salt = [7u8; SALT_LEN];
        let mut digest = Sha512::new();
        digest.update(b"pw");
        digest.update(salt);
        let mut hash = [0u8; HASH_LEN];
        hash.copy_from_slice(&digest.finalize());
        let text = PasswordHash::Sha512 { salt, hash }.to_string();
        assert!(text.starts_with("$6$"));
        let parsed = PasswordHash::parse(&text).unwrap();
        assert!(parsed.verify(b"pw"));
        assert!(!parsed.verify(b"pw2"));
    }

    #[test]
    fn file_from_mosquitto_passwd_verifies() {
        let (file, warnings) = PasswordFile::parse(MOSQUITTO_PBKDF2);
        assert!(warnings.is_empty());
        assert!(file.verify("alice", b"secret"));
        assert!(!file.verify("alice", b"wrong"));
        assert!(!file.verify("bob", b"secret"));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "",
            "plain",
            "$5$abc$def",
            "$7$0$AAAAAAAAAAAAAAAA$AAAA",
            "$7$x$AAAAAAAAAAAAAAAA$AAAA",
            "$6$AAAA$AAAA",
            "$6$AAAAAAAAAAAAAAAA$not base64!",
            "$7$101$AAAAAAAAAAAAAAAA",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_skips_comments_and_reports_bad_lines() {
        let good = PasswordHash::new_pbkdf2(b"x", 1).unwrap();
        let text = format!("# comment\nno colon\nbob:$9$zz\ncarol:{good}\n");
        let (file, warnings) = PasswordFile::parse(&text);
        assert_eq!(file.len(), 1);
        assert!(file.verify("carol", b"x"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("line 3") && warnings[0].contains("bob"));
    }

    #[test]
    fn editing_lines_keeps_the_rest() {
        let hash = PasswordHash::new_pbkdf2(b"new", 1).unwrap();
        let text = "# users\nalice:$6$old\nbob:$6$old\n";
        let edited = set_user_line(text, "alice", &hash);
        assert_eq!(edited.lines().count(), 3);
        assert!(edited.starts_with("# users\nalice:$7$1$"));
        assert!(edited.ends_with("bob:$6$old\n"));
        let added = set_user_line(text, "carol", &hash);
        assert!(added.lines().nth(3).unwrap().starts_with("carol:$7$"));
        assert_eq!(
            remove_user_line(text, "bob").unwrap(),
            "# users\nalice:$6$old\n"
        );
        assert_eq!(remove_user_line(text, "dave"), None);
    }

    #[test]
    fn usernames_are_checked() {
        assert!(validate_username("a:b").is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username("a\nb").is_err());
        assert!(validate_username("Gerät").is_ok());
    }
}
