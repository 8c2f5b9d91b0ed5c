//! ACL files in mosquitto format: who may publish, read and subscribe where.
//!
//! ```text
//! # rules before any `user` line apply to anonymous clients
//! topic read public/#
//! user alice
//! topic readwrite home/#
//! topic deny home/secret
//! pattern write devices/%c/state
//! pattern read users/%u/#
//! ```
//!
//! As in mosquitto, `topic` rules belong to the user named above them, `pattern` rules apply to
//! every client with `%u` replaced by its user name and `%c` by its client identifier, `deny`
//! rules win over the grants of the same list, a user's own rules are looked at before the
//! patterns, and a rule that does not start with `$` never grants a `$` topic. Nothing matched
//! means denied: an empty file grants nothing (CVE-2018-12550). A user name or client
//! identifier containing `+`, `#` or `/` makes every `%u` / `%c` pattern match nothing, so it
//! cannot widen a pattern into someone else's topics (CVE-2017-7650).
//!
//! As in mosquitto, a subscription is checked as a whole filter and every delivery is checked
//! again by topic: a SUBSCRIBE is granted when a read rule covers every topic the filter can
//! match and no deny rule covers the whole filter; each message is then delivered only if the
//! client may read its topic ([`AclFile::allows_read`], asked by the broker core for every copy).
//! So `topic read home/#` with `topic deny home/secret` grants `home/#` and never delivers
//! `home/secret`, and a reload that revokes read access also stops retained and queued messages.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Grant {
    fn allows(self, want: Want) -> bool {
        matches!(
            (self, want),
            (Grant::ReadWrite, _) | (Grant::Read, Want::Read) | (Grant::Write, Want::Write)
        )
    }
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    grant: Grant,
    filter: String,
}

/// Why an ACL file was refused (the server then denies everything rather than allowing).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclError {
    /// The file could not be read.
    Io(String),
    /// A line is not a valid rule.
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclError::Io(why) => write!(f, "cannot read ACL file: {why}"),
            AclError::Syntax { line, why } => write!(f, "ACL file line {line}: {why}"),
        }
    }
}

impl std::error::Error for AclError {}

/// The parsed rules of an ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl AclFile {
    /// Rules that grant nothing (what an empty file means).
    pub fn deny_all() -> Self {
        AclFile::default()
    }

    /// Reads and parses an ACL file.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AclError::Io(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Parses the text of an ACL file; any invalid line refuses the whole file.
    pub fn parse(text: &str) -> Result<Self, AclError> {
        let mut acl = AclFile::default();
        let mut user: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |why: &str| AclError::Syntax {
                line: index + 1,
                why: why.to_owned(),
            };
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(error("missing user name"));
                    }
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(|why| error(&why))?;
                    let list = if keyword == "pattern" {
                        &mut acl.patterns
                    } else if let Some(name) = &user {
                        acl.users.entry(name.clone()).or_default()
                    } else {
                        &mut acl.anonymous
                    };
                    list.push(rule);
                }
                _ => return Err(error(&format!("unknown keyword `{keyword}`"))),
            }
        }
        // Denials are looked at first within each list.
        let deny_first = |rules: &mut Vec<Rule>| rules.sort_by_key(|r| r.grant != Grant::Deny);
        deny_first(&mut acl.anonymous);
        acl.users.values_mut().for_each(deny_first);
        deny_first(&mut acl.patterns);
        Ok(acl)
    }

    /// May this client publish to `topic`?
    pub fn allows_publish(&self, username: Option<&str>, client_id: &str, topic: &str) -> bool {
        self.decide_topic(username, client_id, topic, Want::Write)
    }

    /// May this client receive a message published to `topic`? Asked for every delivery, so it
    /// allocates nothing.
    pub fn allows_read(&self, username: Option<&str>, client_id: &str, topic: &str) -> bool {
        self.decide_topic(username, client_id, topic, Want::Read)
    }

    /// The filters this client may read by its rules (its own, then the patterns with `%u` /
    /// `%c` filled in), for a viewer that subscribes to what a user may see rather than to
    /// everything.
    pub fn read_filters(&self, username: Option<&str>, client_id: &str) -> Vec<String> {
        let own = self
            .own_rules(username)
            .iter()
            .filter(|rule| rule.grant.allows(Want::Read))
            .map(|rule| rule.filter.clone());
        let patterns = self
            .patterns
            .iter()
            .filter(|rule| rule.grant.allows(Want::Read))
            .filter_map(|rule| substitute(&rule.filter, username, client_id));
        own.chain(patterns).collect()
    }

    /// May this client subscribe to `filter`? Granted when a read rule covers every topic the
    /// filter can match; refused when a deny rule covers the whole filter. A deny rule covering
    /// only part of it does not refuse: those topics are filtered per delivery by
    /// [`AclFile::allows_read`]. A shared subscription `$share/NAME/FILTER` is checked by its
    /// `FILTER`, the topics it reads.
    pub fn allows_subscribe(&self, username: Option<&str>, client_id: &str, filter: &str) -> bool {
        let filter = filter
            .strip_prefix("$share/")
            .and_then(|rest| rest.split_once('/'))
            .map_or(filter, |(_, filter)| filter);
        self.decide(username, client_id, |rule| match rule.grant {
            Grant::Deny => filter_covers(&rule.filter, filter).then_some(false),
            grant => {
                (grant.allows(Want::Read) && filter_covers(&rule.filter, filter)).then_some(true)
            }
        })
    }

    /// Walks the client's rules in mosquitto's order (own list, denials first, then patterns,
    /// denials first); the first rule that gives an answer decides; none means denied.
    fn decide(
        &self,
        username: Option<&str>,
        client_id: &str,
        mut answer: impl FnMut(&Rule) -> Option<bool>,
    ) -> bool {
        for rule in self.own_rules(username) {
            if let Some(decision) = answer(rule) {
                return decision;
            }
        }
        for pattern in &self.patterns {
            let Some(filter) = substitute(&pattern.filter, username, client_id) else {
                continue;
            };
            let rule = Rule {
                grant: pattern.grant,
                filter,
            };
            if let Some(decision) = answer(&rule) {
                return decision;
            }
        }
        false
    }

    /// [`AclFile::decide`] for a topic name, without allocating: as in mosquitto, the first
    /// rule matching `topic` that denies it or grants `want` decides (a matching rule for the
    /// other direction is passed over), patterns matched with `%u` / `%c` filled in as they
    /// are compared.
    fn decide_topic(
        &self,
        username: Option<&str>,
        client_id: &str,
        topic: &str,
        want: Want,
    ) -> bool {
        let decides = |grant: Grant| grant == Grant::Deny || grant.allows(want);
        if let Some(rule) = self
            .own_rules(username)
            .iter()
            .find(|rule| decides(rule.grant) && topic_matches(&rule.filter, topic))
        {
            return rule.grant.allows(want);
        }
        self.patterns
            .iter()
            .find(|p| {
                decides(p.grant)
                    && pattern_matches(&p.filter, username, client_id, topic) == Some(true)
            })
            .is_some_and(|p| p.grant.allows(want))
    }

    /// The client's own rules: its user's, or the anonymous ones.
    fn own_rules(&self, username: Option<&str>) -> &[Rule] {
        match username {
            Some(name) => self.users.get(name).map(Vec::as_slice).unwrap_or_default(),
            None => &self.anonymous,
        }
    }
}

/// `[read|write|readwrite|deny] TOPIC` (no access word means readwrite).
fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, topic) = rest.split_once(' ').unwrap_or((rest, ""));
    let (grant, filter) = match first {
        "read" => (Grant::Read, topic.trim()),
        "write" => (Grant::Write, topic.trim()),
        "readwrite" => (Grant::ReadWrite, topic.trim()),
        "deny" => (Grant::Deny, topic.trim()),
        _ if topic.is_empty() => (Grant::ReadWrite, first),
        _ => return Err(format!("unknown access `{first}`")),
    };
    if filter.is_empty() {
        return Err(String::from("missing topic"));
    }
    if !valid_filter(filter) {
        return Err(format!("invalid topic filter `{filter}`"));
    }
    Ok(Rule {
        grant,
        filter: filter.to_owned(),
    })
}

fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i + 1 == levels.len(),
        "+" => true,
        other => !other.contains(['+', '#']),
    })
}

/// Replaces `%u` and `%c`; `None` (the pattern matches nothing) when a needed value is missing
/// or could widen the filter because it holds `+`, `#` or `/` (CVE-2017-7650).
fn substitute(pattern: &str, username: Option<&str>, client_id: &str) -> Option<String> {
    let unsafe_value = |v: &str| v.is_empty() || v.contains(['+', '#', '/']);
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('u') {
            let user = username.filter(|u| !unsafe_value(u))?;
            out.push_str(user);
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('c') {
            if unsafe_value(client_id) {
                return None;
            }
            out.push_str(client_id);
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// [`topic_matches`] of the pattern as [`substitute`] would fill it in, compared level by level
/// without allocating (a value never holds `/`, so levels stay aligned); `None` when the
/// pattern cannot apply to this client.
fn pattern_matches(
    pattern: &str,
    username: Option<&str>,
    client_id: &str,
    topic: &str,
) -> Option<bool> {
    let safe = |v: &&str| !v.is_empty() && !v.contains(['+', '#', '/']);
    let user = username.filter(safe);
    let client = Some(client_id).filter(safe);
    if (pattern.contains("%u") && user.is_none()) || (pattern.contains("%c") && client.is_none()) {
        return None;
    }
    let (user, client) = (user.unwrap_or_default(), client.unwrap_or_default());
    // A filled-in first level equals the topic's, `$` included; only wildcards need the guard.
    if topic.starts_with('$') && matches!(pattern.split('/').next(), Some("+" | "#")) {
        return Some(false);
    }
    let mut p = pattern.split('/');
    let mut t = topic.split('/');
    loop {
        match (p.next(), t.next()) {
            (Some("#"), _) => return Some(true),
            (Some("+"), Some(_)) => {}
            (Some(level), Some(actual)) if fills_to(level, user, client, actual) => {}
            (None, None) => return Some(true),
            _ => return Some(false),
        }
    }
}

/// Whether pattern `level`, with `%u` and `%c` replaced, equals `actual`.
fn fills_to(level: &str, user: &str, client: &str, actual: &str) -> bool {
    let mut rest = level;
    let mut actual = actual;
    while let Some(at) = rest.find('%') {
        let Some(tail) = actual.strip_prefix(&rest[..at]) else {
            return false;
        };
        let after = &rest[at + 1..];
        let (value, next) = if let Some(next) = after.strip_prefix('u') {
            (user, next)
        } else if let Some(next) = after.strip_prefix('c') {
            (client, next)
        } else {
            ("%", after)
        };
        let Some(tail) = tail.strip_prefix(value) else {
            return false;
        };
        actual = tail;
        rest = next;
    }
    actual == rest
}

/// Whether two filters or topics can relate at all: a rule or filter whose first level is not a
/// `$` word never reaches a `$` topic [MQTT-4.7.2-1].
fn dollar_guard(a: &str, b: &str) -> bool {
    a.starts_with('$') == b.starts_with('$')
}

/// Does topic name `topic` match `filter`?
fn topic_matches(filter: &str, topic: &str) -> bool {
    if !dollar_guard(filter, topic) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Does every topic matched by `inner` also match `outer`?
fn filter_covers(outer: &str, inner: &str) -> bool {
    if !dollar_guard(outer, inner) {
        return false;
    }
    let mut o = outer.split('/');
    let mut i = inner.split('/');
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous
topic read public/#

user alice
topic readwrite home/#
topic deny home/secret
topic write cmnd/+/POWER

user bob
topic read home/temperature

pattern write devices/%c/state
pattern read users/%u/#
pattern readwrite shared/info
";

    fn acl() -> AclFile {
        AclFile::parse(FILE).unwrap()
    }

    #[test]
    fn user_rules_grant_their_access_only() {
        let acl = acl();
        assert!(acl.allows_publish(Some("alice"), "c1", "home/kitchen/light"));
        assert!(acl.allows_read(Some("alice"), "c1", "home/kitchen/light"));
        assert!(acl.allows_publish(Some("alice"), "c1", "cmnd/lamp/POWER"));
        assert!(!acl.allows_read(Some("alice"), "c1", "cmnd/lamp/POWER"));
        assert!(acl.allows_read(Some("bob"), "c2", "home/temperature"));
        assert!(!acl.allows_publish(Some("bob"), "c2", "home/temperature"));
        assert!(!acl.allows_read(Some("bob"), "c2", "home/kitchen"));
    }

    #[test]
    fn a_matching_rule_for_the_other_direction_does_not_decide() {
        // mosquitto passes over a rule whose topic matches but whose access does not: the
        // broad read rule first does not stop the narrower write rule after it.
        let acl = AclFile::parse(
            "user CN=plug-7,O=Home Lab,C=DE\ntopic read tele/#\ntopic write tele/plug-7/#\n\
             pattern read cmnd/#\npattern write cmnd/%c/#\n",
        )
        .unwrap();
        let user = Some("CN=plug-7,O=Home Lab,C=DE");
        assert!(acl.allows_publish(user, "c", "tele/plug-7/STATE"));
        assert!(acl.allows_read(user, "c", "tele/plug-7/STATE"));
        assert!(!acl.allows_publish(user, "c", "tele/plug-8/STATE"));
        assert!(acl.allows_publish(None, "lamp", "cmnd/lamp/POWER"));
        assert!(!acl.allows_publish(None, "lamp", "cmnd/other/POWER"));
    }

    #[test]
    fn deny_wins_over_grants_of_the_same_user() {
        let acl = acl();
        assert!(!acl.allows_read(Some("alice"), "c1", "home/secret"));
        assert!(!acl.allows_publish(Some("alice"), "c1", "home/secret"));
    }

    #[test]
    fn rules_before_any_user_line_are_for_anonymous_clients() {
        let acl = acl();
        assert!(acl.allows_read(None, "anon", "public/news"));
        assert!(!acl.allows_publish(None, "anon", "public/news"));
        // A named user does not get the anonymous rules.
        assert!(!acl.allows_read(Some("bob"), "c2", "public/news"));
        // Unknown users get only the patterns.
        assert!(!acl.allows_read(Some("mallory"), "m", "home/temperature"));
        assert!(acl.allows_read(Some("mallory"), "m", "shared/info"));
    }

    #[test]
    fn patterns_substitute_user_and_client() {
        let acl = acl();
        assert!(acl.allows_publish(Some("bob"), "lamp1", "devices/lamp1/state"));
        assert!(!acl.allows_publish(Some("bob"), "lamp1", "devices/lamp2/state"));
        assert!(acl.allows_read(Some("bob"), "x", "users/bob/inbox"));
        assert!(!acl.allows_read(Some("bob"), "x", "users/alice/inbox"));
        // %u needs a user name.
        assert!(!acl.allows_read(None, "x", "users//inbox"));
    }

    #[test]
    fn cve_2017_7650_wildcards_in_names_do_not_widen_patterns() {
        let acl = acl();
        assert!(!acl.allows_publish(Some("bob"), "+", "devices/lamp2/state"));
        assert!(!acl.allows_publish(Some("bob"), "#", "devices/lamp2/state"));
        assert!(!acl.allows_publish(Some("bob"), "a/b", "devices/a/b/state"));
        assert!(!acl.allows_read(Some("#"), "x", "users/alice/inbox"));
        assert!(!acl.allows_read(Some("+"), "x", "users/alice/inbox"));
        assert!(!acl.allows_read(Some("alice/x"), "x", "users/alice/x/inbox"));
        // Patterns without substitutions still apply to such clients.
        assert!(acl.allows_read(Some("#"), "+", "shared/info"));
    }

    #[test]
    fn cve_2018_12550_empty_file_denies_everything() {
        let acl = AclFile::parse("").unwrap();
        assert!(!acl.allows_publish(None, "c", "a"));
        assert!(!acl.allows_read(Some("alice"), "c", "a"));
        assert!(!acl.allows_subscribe(Some("alice"), "c", "#"));
        assert_eq!(acl, AclFile::deny_all());
        let comments = AclFile::parse("# only a comment\n\n").unwrap();
        assert!(!comments.allows_publish(None, "c", "a"));
    }

    #[test]
    fn unreadable_file_is_an_error() {
        assert!(matches!(
            AclFile::load(Path::new("/nonexistent/acl")),
            Err(AclError::Io(_))
        ));
    }

    #[test]
    fn dollar_topics_need_dollar_rules() {
        let acl = AclFile::parse("topic read #\ntopic read $SYS/broker/#\n").unwrap();
        assert!(acl.allows_read(None, "c", "a/b"));
        assert!(!acl.allows_read(None, "c", "$share/x"));
        assert!(acl.allows_read(None, "c", "$SYS/broker/uptime"));
        assert!(!acl.allows_subscribe(None, "c", "$SYS/#"));
        assert!(acl.allows_subscribe(None, "c", "$SYS/broker/+"));
    }

    #[test]
    fn subscriptions_must_be_covered_and_not_wholly_denied() {
        let acl = acl();
        assert!(acl.allows_subscribe(Some("alice"), "c", "home/kitchen/#"));
        assert!(acl.allows_subscribe(Some("alice"), "c", "home/+/light"));
        // Partly denied: granted, and home/secret is filtered out per delivery.
        assert!(acl.allows_subscribe(Some("alice"), "c", "home/#"));
        assert!(acl.allows_subscribe(Some("alice"), "c", "home/+"));
        assert!(!acl.allows_read(Some("alice"), "c", "home/secret"));
        assert!(acl.allows_read(Some("alice"), "c", "home/door"));
        // Wholly denied.
        assert!(!acl.allows_subscribe(Some("alice"), "c", "home/secret"));
        // Shared subscriptions by their filter.
        assert!(acl.allows_subscribe(Some("alice"), "c", "$share/g/home/#"));
        assert!(!acl.allows_subscribe(Some("alice"), "c", "$share/g/home/secret"));
        assert!(!acl.allows_subscribe(Some("bob"), "c", "$share/g/home/+"));
        // Write-only rules do not grant subscriptions.
        assert!(!acl.allows_subscribe(Some("alice"), "c", "cmnd/lamp/POWER"));
        // Wider than the grant.
        assert!(!acl.allows_subscribe(Some("bob"), "c", "home/+"));
        assert!(acl.allows_subscribe(Some("bob"), "c", "home/temperature"));
        assert!(acl.allows_subscribe(Some("bob"), "c", "users/bob/#"));
        assert!(!acl.allows_subscribe(Some("bob"), "c", "users/#"));
        assert!(!acl.allows_subscribe(None, "c", "#"));
    }

    #[test]
    fn rule_without_access_word_is_readwrite() {
        let acl = AclFile::parse("topic a/b\n").unwrap();
        assert!(acl.allows_publish(None, "c", "a/b"));
        assert!(acl.allows_read(None, "c", "a/b"));
    }

    #[test]
    fn invalid_lines_refuse_the_file() {
        for bad in [
            "topic",
            "topic read",
            "topic readonly a",
            "user",
            "frobnicate a",
            "topic read a/#/b",
            "topic read a+",
        ] {
            assert!(
                matches!(AclFile::parse(bad), Err(AclError::Syntax { line: 1, .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn patterns_match_in_place_as_substituted() {
        let patterns = [
            "%u/#",
            "a/%c",
            "a/x%uy/+",
            "%%u/b",
            "+/%c",
            "#",
            "a/%z",
            "%c%u",
            "a/%u/%c/b",
        ];
        let clients = [
            (Some("bob"), "c1"),
            (Some("$SYS"), "c"),
            (None, "c1"),
            (Some("b+"), "c/d"),
            (Some(""), "c1"),
        ];
        let topics = [
            "bob/x",
            "a/c1",
            "a/xboby/q",
            "%bob/b",
            "q/c1",
            "$SYS/x",
            "a/%z",
            "c1bob",
            "a/bob/c1/b",
            "a/bob/c1",
            "c/d",
            "$SYS",
            "",
        ];
        for pattern in patterns {
            for (user, client) in clients {
                for topic in topics {
                    let expected = substitute(pattern, user, client)
                        .map(|filter| topic_matches(&filter, topic));
                    assert_eq!(
                        pattern_matches(pattern, user, client, topic),
                        expected,
                        "{pattern} {user:?} {client} {topic}"
                    );
                }
            }
        }
    }

    #[test]
    fn filter_relations() {
        assert!(filter_covers("a/#", "a"));
        assert!(filter_covers("a/#", "a/+/c"));
        assert!(filter_covers("+/b", "x/b"));
        assert!(!filter_covers("a/+", "a/#"));
        assert!(!filter_covers("a/b", "a/+"));
        assert!(topic_matches("stat/+/POWER", "stat/lamp/POWER"));
        assert!(!topic_matches("stat/+/POWER", "stat/lamp/x/POWER"));
        assert!(topic_matches("a/#", "a"));
    }
}
