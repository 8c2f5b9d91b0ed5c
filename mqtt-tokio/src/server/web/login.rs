//! Logins of the web page: a random session token in an `HttpOnly`, `SameSite=Strict` cookie,
//! and a second random token the page sends back in a header with every change it asks for
//! (no cross-site request can read it, so none can forge a change). Kept in memory only,
//! bounded in number, ended after a day unused.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The cookie that carries the session token.
pub(crate) const COOKIE: &str = "mqtt_web";

/// Most logins kept; the least recently used goes first beyond it.
const MAX_LOGINS: usize = 1024;

/// A login unused this long is over.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// Who is logged in.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    /// The user of the password file; `None` on a local anonymous page.
    pub(crate) user: Option<String>,
    /// The password given, to connect in-process clients as that user (the broker's own
    /// authentication and ACL then apply); never sent back.
    pub(crate) password: Option<Bytes>,
    /// What the page must send in `X-CSRF-Token` with every change.
    pub(crate) csrf: String,
    last_used: Instant,
}

/// The logins of one HTTP listener.
#[derive(Debug, Default)]
pub(crate) struct Logins {
    by_token: Mutex<HashMap<String, Login>>,
}

impl Logins {
    /// A new login; its session token.
    pub(crate) fn create(&self, user: Option<String>, password: Option<Bytes>) -> (String, Login) {
        let token = random_token();
        let login = Login {
            user,
            password,
            csrf: random_token(),
            last_used: Instant::now(),
        };
        let mut logins = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        logins.retain(|_, l| now.duration_since(l.last_used) < IDLE);
        if logins.len() >= MAX_LOGINS
            && let Some(oldest) = logins
                .iter()
                .min_by_key(|(_, l)| l.last_used)
                .map(|(t, _)| t.clone())
        {
            logins.remove(&oldest);
        }
        logins.insert(token.clone(), login.clone());
        (token, login)
    }

    /// The login of `token`, if it is current (its use counts).
    pub(crate) fn get(&self, token: &str) -> Option<Login> {
        let mut logins = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        let login = logins.get_mut(token)?;
        let now = Instant::now();
        if now.duration_since(login.last_used) >= IDLE {
            logins.remove(token);
            return None;
        }
        login.last_used = now;
        Some(login.clone())
    }

    /// Ends the login of `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }
}

/// 128 random bits in hex. Without a random source (never on Linux) the token would be
/// guessable: the process stops rather than hand one out.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        tracing::error!("no random source for login tokens; stopping");
        std::process::exit(70);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_found_by_their_token_only_and_end() {
        let logins = Logins::default();
        let (token, login) = logins.create(Some("alice".into()), None);
        assert_eq!(token.len(), 32);
        assert_ne!(token, login.csrf);
        assert_eq!(logins.get(&token).unwrap().user.as_deref(), Some("alice"));
        assert!(logins.get("not-a-token").is_none());
        logins.remove(&token);
        assert!(logins.get(&token).is_none());
    }

    #[test]
    fn logins_are_bounded() {
        let logins = Logins::default();
        let (first, _) = logins.create(None, None);
        for _ in 0..MAX_LOGINS {
            logins.create(None, None);
        }
        assert!(logins.get(&first).is_none(), "the oldest went");
        assert!(logins.by_token.lock().unwrap().len() <= MAX_LOGINS);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let header = "theme=dark; mqtt_web=abc123; other=1";
        assert_eq!(cookie(header, COOKIE), Some("abc123"));
        assert_eq!(cookie(header, "missing"), None);
    }
}
