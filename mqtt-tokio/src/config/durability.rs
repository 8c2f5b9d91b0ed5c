//! The `durability` setting: when an acknowledgement may leave the broker relative to the disk.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// When acknowledged state reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// A PUBACK / PUBREC / SUBACK leaves only once what it acknowledges is on disk; commits of
    /// all connections are grouped (`"sync"`).
    #[default]
    Sync,
    /// Every change reaches the operating system (a journal appended with `write`) before what
    /// it acknowledges leaves, and the disk (fsync) every interval and at shutdown, like
    /// mosquitto's autosave: a crash of the process loses nothing, a power cut up to one interval
    /// (`"periodic 30s"`).
    Periodic(Duration),
    /// As `Periodic`, but synced after this many journaled changes instead of an interval:
    /// mosquitto's `autosave_on_changes true` (`"every 1000 changes"`).
    Changes(u64),
}

impl Durability {
    /// What this mode keeps through a crash, in one sentence for the log.
    pub fn guarantee(&self) -> String {
        match self {
            Durability::Sync => "durability sync: everything acknowledged is on disk (fsync) \
                                 first; a crash of the process or of the machine loses nothing"
                .to_owned(),
            Durability::Periodic(every) => format!(
                "durability periodic {}s: everything acknowledged is journaled first (a crash of \
                 the process loses nothing) and synced to disk every {}s (a power cut loses at \
                 most that)",
                every.as_secs(),
                every.as_secs()
            ),
            Durability::Changes(count) => format!(
                "durability every {count} changes: everything acknowledged is journaled first (a \
                 crash of the process loses nothing) and synced to disk after every {count} \
                 changes (a power cut loses at most those)"
            ),
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "sync" {
            return Ok(Durability::Sync);
        }
        let bad = || {
            format!(
                "durability must be \"sync\", \"periodic <seconds>s\" or \"every <n> changes\", \
                 not {text:?}"
            )
        };
        if let Some(rest) = text.strip_prefix("every") {
            let count = rest.trim().strip_suffix("changes").ok_or_else(bad)?.trim();
            let count: u64 = count.parse().map_err(|_| bad())?;
            if count == 0 {
                return Err(bad());
            }
            return Ok(Durability::Changes(count));
        }
        let rest = text.strip_prefix("periodic").ok_or_else(bad)?.trim();
        let digits = rest.strip_suffix('s').unwrap_or(rest).trim();
        let seconds: u64 = digits.parse().map_err(|_| bad())?;
        if seconds == 0 {
            return Err(bad());
        }
        Ok(Durability::Periodic(Duration::from_secs(seconds)))
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Sync => f.write_str("sync"),
            Durability::Periodic(every) => write!(f, "periodic {}s", every.as_secs()),
            Durability::Changes(count) => write!(f, "every {count} changes"),
        }
    }
}

impl<'de> Deserialize<'de> for Durability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sync_and_periodic() {
        assert_eq!("sync".parse(), Ok(Durability::Sync));
        assert_eq!(
            "periodic 30s".parse(),
            Ok(Durability::Periodic(Duration::from_secs(30)))
        );
        assert_eq!(
            "periodic 5".parse(),
            Ok(Durability::Periodic(Duration::from_secs(5)))
        );
        assert!("periodic 0s".parse::<Durability>().is_err());
        assert!("sometimes".parse::<Durability>().is_err());
        assert_eq!("every 1000 changes".parse(), Ok(Durability::Changes(1000)));
        assert!("every 0 changes".parse::<Durability>().is_err());
        assert!("every 10".parse::<Durability>().is_err());
    }
}
