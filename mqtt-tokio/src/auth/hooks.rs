//! The password and ACL files as the broker core's [`Authenticator`] and [`Authorizer`] hooks,
//! with the per-listener policy (anonymous access, certificate identity as user name) and
//! reloading on demand (SIGHUP).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use mqtt_broker_core::hooks::{
    AuthDecision, Authenticator, Authorization, Authorizer, ClientRef, ConnectCredentials,
};
use mqtt_wire::{QoS, ReasonCode};

/// The listener id on which this broker's own bridges connect locally when they have no
/// `local_username`: the file authenticator and authorizer trust such connections, as
/// mosquitto trusts its bridges. An embedder's own hooks see it too.
pub const BRIDGE_LISTENER: mqtt_broker_core::ListenerId = mqtt_broker_core::ListenerId(u16::MAX);

use super::acl::{AclError, AclFile};
use super::password::{PasswordError, PasswordFile};

/// The security files in force, shared by the hooks and the code that reloads them.
#[derive(Debug, Default)]
pub struct SecurityFiles {
    password_path: Option<PathBuf>,
    acl_path: Option<PathBuf>,
    passwords: RwLock<Option<Arc<PasswordFile>>>,
    acl: RwLock<Option<Arc<AclFile>>>,
}

/// A security file that could not be loaded at start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityError {
    /// The password file.
    Password(PasswordError),
    /// The ACL file.
    Acl(AclError),
}

impl std::fmt::Display for SecurityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecurityError::Password(e) => e.fmt(f),
            SecurityError::Acl(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SecurityError {}

impl SecurityFiles {
    /// Loads the files (either may be absent); an unreadable or invalid file is an error, so a
    /// server never starts with less protection than configured. Returns the warnings met
    /// (password lines skipped).
    pub fn load(
        password_path: Option<PathBuf>,
        acl_path: Option<PathBuf>,
    ) -> Result<(Self, Vec<String>), SecurityError> {
        let mut warnings = Vec::new();
        let passwords = match &password_path {
            Some(path) => {
                let (file, skipped) = PasswordFile::load(path).map_err(SecurityError::Password)?;
                warnings.extend(skipped);
                Some(Arc::new(file))
            }
            None => None,
        };
        let acl = match &acl_path {
            Some(path) => Some(Arc::new(AclFile::load(path).map_err(SecurityError::Acl)?)),
            None => None,
        };
        let files = SecurityFiles {
            password_path,
            acl_path,
            passwords: RwLock::new(passwords),
            acl: RwLock::new(acl),
        };
        Ok((files, warnings))
    }

    /// Reads the files again. A file that fails now grants nothing until the next reload: an
    /// ACL becomes deny-all and the password file knows no user. Returns one message per
    /// problem met.
    pub fn reload(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(path) = &self.password_path {
            let file = match PasswordFile::load(path) {
                Ok((file, skipped)) => {
                    problems.extend(skipped);
                    file
                }
                Err(e) => {
                    problems.push(format!("{e}; no user can log in until fixed"));
                    PasswordFile::default()
                }
            };
            if let Ok(mut slot) = self.passwords.write() {
                *slot = Some(Arc::new(file));
            }
        }
        if let Some(path) = &self.acl_path {
            let acl = AclFile::load(path).unwrap_or_else(|e| {
                problems.push(format!("{e}; denying all access until fixed"));
                AclFile::deny_all()
            });
            if let Ok(mut slot) = self.acl.write() {
                *slot = Some(Arc::new(acl));
            }
        }
        problems
    }

    /// The filters `user` may read by the ACL file; `None` without one (everything).
    pub(crate) fn read_filters(&self, user: Option<&str>) -> Option<Vec<String>> {
        if !self.has_acl_file() {
            return None;
        }
        Some(
            self.acl()
                .map_or_else(Vec::new, |acl| acl.read_filters(user, "")),
        )
    }

    /// Whether `user` may read a message on `topic` by the ACL file (always without one).
    pub(crate) fn allows_read(&self, user: Option<&str>, topic: &str) -> bool {
        if !self.has_acl_file() {
            return true;
        }
        self.acl()
            .is_some_and(|acl| acl.allows_read(user, "", topic))
    }

    /// Whether `user` may subscribe to `filter` by the ACL file (always without one).
    pub(crate) fn allows_subscribe(&self, user: Option<&str>, filter: &str) -> bool {
        if !self.has_acl_file() {
            return true;
        }
        self.acl()
            .is_some_and(|acl| acl.allows_subscribe(user, "", filter))
    }

    /// Whether `user` and `password` match the password file; never without one.
    pub(crate) fn check_password(&self, user: &str, password: &[u8]) -> bool {
        self.passwords()
            .is_some_and(|passwords| passwords.verify(user, password))
    }

    fn passwords(&self) -> Option<Arc<PasswordFile>> {
        self.passwords.read().ok().and_then(|slot| slot.clone())
    }

    /// Whether an ACL file is configured (fixed at load: a reload never adds or removes one).
    fn has_acl_file(&self) -> bool {
        self.acl_path.is_some()
    }

    /// The ACL in force; a poisoned lock reads as deny-all, never as "no ACL".
    fn acl(&self) -> Option<Arc<AclFile>> {
        match self.acl.read() {
            Ok(slot) => slot.clone(),
            Err(_) => Some(Arc::new(AclFile::deny_all())),
        }
    }
}

/// The rules of one listener that the hooks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerPolicy {
    /// Clients without a user name are admitted.
    pub allow_anonymous: bool,
    /// The TLS client certificate's common name is the user name; no password is checked.
    pub use_identity_as_username: bool,
}

/// One listener's policy and the security files its clients are checked against.
#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    /// The listener's rules.
    pub policy: ListenerPolicy,
    /// Its password and ACL files (mosquitto's `per_listener_settings`: each listener may have
    /// its own).
    pub files: Arc<SecurityFiles>,
}

/// The same files for every listener, with each listener's policy.
fn shared(files: Arc<SecurityFiles>, policies: Vec<ListenerPolicy>) -> Vec<ListenerSecurity> {
    (policies.into_iter())
        .map(|policy| ListenerSecurity {
            policy,
            files: files.clone(),
        })
        .collect()
}

/// Checks CONNECT credentials against the password file and the listener's policy.
#[derive(Debug)]
pub struct FileAuthenticator {
    listeners: Vec<ListenerSecurity>,
}

impl FileAuthenticator {
    /// `policies[i]` applies to `ListenerId(i)`, with `files` for every listener; connections
    /// from other listeners are refused.
    pub fn new(files: Arc<SecurityFiles>, policies: Vec<ListenerPolicy>) -> Self {
        Self::per_listener(shared(files, policies))
    }

    /// `listeners[i]` applies to `ListenerId(i)`, each with its own files.
    pub fn per_listener(listeners: Vec<ListenerSecurity>) -> Self {
        FileAuthenticator { listeners }
    }
}

impl Authenticator for FileAuthenticator {
    fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision {
        let refused = AuthDecision::Reject(ReasonCode::NotAuthorized);
        if credentials.info.listener == BRIDGE_LISTENER {
            // This broker's own bridge without a local user name: trusted, as in mosquitto.
            return AuthDecision::Accept;
        }
        let Some(listener) = self.listeners.get(usize::from(credentials.info.listener.0)) else {
            return refused;
        };
        let policy = &listener.policy;
        if policy.use_identity_as_username {
            return match credentials.info.tls_identity {
                Some(_) => AuthDecision::Accept,
                None => refused,
            };
        }
        match (credentials.username, listener.files.passwords()) {
            (Some(user), Some(passwords)) => {
                if passwords.verify(user, credentials.password.unwrap_or_default()) {
                    AuthDecision::Accept
                } else {
                    AuthDecision::Reject(ReasonCode::BadUserNameOrPassword)
                }
            }
            // Without a password file a user name proves nothing: it counts as anonymous.
            _ if policy.allow_anonymous => AuthDecision::Accept,
            _ => refused,
        }
    }
}

/// Checks publications, subscriptions and every delivery (read access) against the ACL file,
/// when one is configured.
#[derive(Debug)]
pub struct FileAuthorizer {
    listeners: Vec<ListenerSecurity>,
}

impl FileAuthorizer {
    /// `policies[i]` applies to `ListenerId(i)`, with `files` for every listener.
    pub fn new(files: Arc<SecurityFiles>, policies: Vec<ListenerPolicy>) -> Self {
        Self::per_listener(shared(files, policies))
    }

    /// `listeners[i]` applies to `ListenerId(i)`, each with its own files; a client of
    /// another listener is denied everything.
    pub fn per_listener(listeners: Vec<ListenerSecurity>) -> Self {
        FileAuthorizer { listeners }
    }

    /// The name the ACL knows the client by.
    fn username<'a>(&self, client: &ClientRef<'a>) -> Option<&'a str> {
        let by_identity = self
            .listeners
            .get(usize::from(client.info.listener.0))
            .is_some_and(|l| l.policy.use_identity_as_username);
        if by_identity {
            client.info.tls_identity.as_deref()
        } else {
            client.username
        }
    }

    fn decide(
        &self,
        client: &ClientRef<'_>,
        allowed: impl FnOnce(&AclFile) -> bool,
    ) -> Authorization {
        if client.info.listener == BRIDGE_LISTENER {
            return Authorization::Allow;
        }
        let Some(listener) = self.listeners.get(usize::from(client.info.listener.0)) else {
            return Authorization::Deny(ReasonCode::NotAuthorized);
        };
        let files = &listener.files;
        if !files.has_acl_file() {
            // Without an ACL file there is nothing to look up: every publish and every
            // delivery asks, so this skips a lock and a reference count per message.
            return Authorization::Allow;
        }
        match files.acl() {
            None => Authorization::Allow,
            Some(acl) if allowed(&acl) => Authorization::Allow,
            Some(_) => Authorization::Deny(ReasonCode::NotAuthorized),
        }
    }
}

impl Authorizer for FileAuthorizer {
    fn authorize_publish(
        &mut self,
        client: &ClientRef<'_>,
        topic: &str,
        _qos: QoS,
        _retain: bool,
    ) -> Authorization {
        let user = self.username(client);
        self.decide(client, |acl| {
            acl.allows_publish(user, client.client_id, topic)
        })
    }

    fn authorize_subscribe(
        &mut self,
        client: &ClientRef<'_>,
        filter: &str,
        _qos: QoS,
    ) -> Authorization {
        let user = self.username(client);
        match self.decide(client, |acl| {
            acl.allows_subscribe(user, client.client_id, filter)
        }) {
            // A refused filter gets SUBACK 0x80 (Unspecified error) in 5.0 as in 3.1.1, not 0x87
            // (Not authorized): the spec allows either [MQTT5-3.9.3-2], 0x80 hides whether the
            // topic exists behind the ACL, and clients that only know the 3.1.1 codes (the
            // Eclipse Paho test suite among them) accept it.
            Authorization::Deny(_) => Authorization::Deny(ReasonCode::UnspecifiedError),
            Authorization::Allow => Authorization::Allow,
        }
    }

    fn authorize_delivery(
        &mut self,
        client: &ClientRef<'_>,
        topic: &str,
        _qos: QoS,
        _retain: bool,
    ) -> bool {
        let user = self.username(client);
        self.decide(client, |acl| acl.allows_read(user, client.client_id, topic))
            == Authorization::Allow
    }
}
