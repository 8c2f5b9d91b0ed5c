//! The oracle: what every client saw, what the network and the disk did, and the guarantees of
//! MQTT and of docs/STORAGE.md checked against it. It knows nothing of the broker's insides; it
//! is told facts in time order (a publish was acknowledged, a SUBACK arrived, a PUBLISH was
//! received, a DISCONNECT reached the broker, the broker crashed) and reports a violation as
//! soon as one is certain, or at the end of the run for what must have happened by then.
//!
//! Where the outside cannot know what the broker knew (a CONNECT whose CONNACK was lost, a
//! subscription whose SUBACK never came back, a will whose connection was taken over), the
//! oracle asks nothing rather than guess: every rule below is one a correct broker cannot break.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Time in simulated milliseconds.
pub type Ms = u64;

/// Slack for clocks that differ between the two ends of a connection: the longest a packet can
/// be on its way, stalls included, with margin.
pub const SLACK: Ms = 10_000;

/// The longest a close can wait for a durable commit before it goes out (the simulated group
/// commit takes a few milliseconds), with margin.
const CLOSE_HELD: Ms = 100;

/// The identity of a message, carried in the first 8 bytes of its payload.
pub type MsgId = u64;

/// A published message, as the oracle follows it.
#[derive(Debug, Clone)]
struct Published {
    publisher: usize,
    topic: String,
    qos: u8,
    /// First sent (or, for a will, when its connection ended at the broker).
    sent_at: Ms,
    /// Acknowledged to the publisher (PUBACK, PUBREC), or a will known to be due.
    acked_at: Option<Ms>,
    /// Published with RETAIN.
    retain: bool,
    /// Sent again by its publisher (DUP) on a resumed session: routed again, as a new message
    /// [MQTT-4.3.2-2], so its copies may follow later messages.
    resent: bool,
    /// Message Expiry Interval in seconds (5.0), if set: such a message is not owed (it may
    /// expire first) and its copies must carry what is left of it.
    expiry: Option<u32>,
}

/// A subscription the broker confirmed.
#[derive(Debug, Clone)]
struct Subscription {
    epoch: u64,
    filter: String,
    qos: u8,
    /// No Local: its client's own messages are not owed through it.
    no_local: bool,
    confirmed_at: Ms,
    /// When its client asked to remove it (UNSUBSCRIBE sent), if it did.
    ended_at: Option<Ms>,
}

/// What the next CONNACK's Session Present must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A session is there: resumed unless expired before `until`.
    Present { until: Option<Ms> },
    /// No session can be there.
    Absent,
    /// The broker may or may not have one (a CONNECT without CONNACK, a crash that may have
    /// undone a change).
    Unknown,
}

/// A will armed by a CONNECT.
#[derive(Debug, Clone)]
struct Will {
    client: usize,
    conn: u64,
    topic: String,
    qos: u8,
    retain: bool,
    delay: Ms,
    /// How long its session outlives the connection (`None`: for ever): the will waits at
    /// most that [MQTT5-3.1.3-9].
    session: Option<Ms>,
    /// A normal DISCONNECT reached the broker at this time.
    cancelled_at: Option<Ms>,
    /// The broker saw the connection end without DISCONNECT at this time.
    ended_at: Option<Ms>,
    /// When a copy of it first arrived anywhere.
    first_seen: Option<Ms>,
}

#[derive(Debug)]
struct ClientFacts {
    name: String,
    /// Session identity as the broker confirmed it: changes when a session starts anew.
    epoch: u64,
    /// The client's own session state (inbound QoS 2 identifiers): reset with Session Present 0.
    chain: u64,
    expect: Expect,
    subs: Vec<Subscription>,
    /// Messages received per (epoch, message).
    received: HashSet<(u64, MsgId)>,
    /// Messages received per (chain, message).
    first_copies: HashSet<(u64, MsgId)>,
    /// Copies received per (chain, message) at QoS 2, not counting retained copies.
    qos2_copies: HashMap<(u64, MsgId), u32>,
    /// Newest message seen per (chain, publisher, topic, QoS of the copy).
    newest: HashMap<(u64, usize, String, u8), MsgId>,
    /// Whether the broker reported a message dropped for this client (queue limits): loss is
    /// then allowed, as documented.
    dropped: bool,
    /// Whether its last connection is up at the end of the run (its epoch is checked).
    up_at_end: bool,
    /// When its last CONNECT reached the broker.
    connect_at: Ms,
    /// When each of its CONNECTs reached the broker.
    connects: Vec<Ms>,
    /// Every SUBSCRIBE and UNSUBSCRIBE sent, per filter: filter, number, time.
    filter_changes: Vec<(String, u64, Ms)>,
    /// Every subscription ever asked for: filter, No Local, Retain As Published.
    requested: Vec<(String, bool, bool)>,
    /// Filters it ever asked for at QoS 0 (whether or not the SUBACK came back).
    asked_qos0: HashSet<String>,
    /// The numbers of the SUBSCRIBEs asking for No Local.
    no_local: HashSet<u64>,
    /// Filters it ever sent UNSUBSCRIBE for.
    left: HashSet<String>,
}

/// A retained value a topic may hold at the end.
#[derive(Debug, Clone)]
struct RetainedWrite {
    /// The publish.
    msg: MsgId,
    /// Whether it clears the topic (empty payload).
    clear: bool,
    sent_at: Ms,
    acked_at: Option<Ms>,
    /// Sent with a Message Expiry Interval: expired by the end-of-run audit, which comes long
    /// after the last publish.
    expires: bool,
}

/// Facts and checks of one run.
#[derive(Debug)]
pub struct Oracle {
    durable: bool,
    messages: BTreeMap<MsgId, Published>,
    clients: Vec<ClientFacts>,
    wills: BTreeMap<MsgId, Will>,
    retained: BTreeMap<String, Vec<RetainedWrite>>,
    /// Topic and clear flag of every retained publish, by message.
    retained_publishes: HashMap<MsgId, (String, bool)>,
    crashes: Vec<Ms>,
    /// Power cuts of a broker with periodic durability.
    power_cuts: Vec<Ms>,
    violations: Vec<String>,
    /// Deliveries the final check required (and found, unless reported).
    owed_checked: u64,
}

/// Whether `filter` matches `topic` (§4.7), by `mqtt-topic`'s plain matcher, not the
/// subscription trie the broker routes with. A shared subscription's filter
/// (`$share/GROUP/FILTER`) matches as its FILTER.
pub fn matches(filter: &str, topic: &str) -> bool {
    // Written out from §4.7 rather than borrowed from the broker's matcher, so the oracle does
    // not share its bugs.
    let filter = unshared(filter).1;
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false; // [MQTT-4.7.2-1]
    }
    let mut levels = topic.split('/');
    for wanted in filter.split('/') {
        if wanted == "#" {
            return true; // and the parent level too (§4.7.1.2)
        }
        match levels.next() {
            Some(level) if wanted == "+" || wanted == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// The group of a shared subscription's filter, if it is one, and the filter proper.
fn unshared(filter: &str) -> (Option<&str>, &str) {
    match filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((group, filter)) => (Some(group), filter),
        None => (None, filter),
    }
}

impl Oracle {
    /// An oracle for `clients` clients named as given, for a broker whose acknowledgements are
    /// durable (`durable`) or that keeps everything in memory.
    pub fn new(names: Vec<String>, durable: bool) -> Oracle {
        let clients = names
            .into_iter()
            .map(|name| ClientFacts {
                name,
                epoch: 0,
                chain: 0,
                expect: Expect::Absent,
                subs: Vec::new(),
                received: HashSet::new(),
                first_copies: HashSet::new(),
                qos2_copies: HashMap::new(),
                newest: HashMap::new(),
                dropped: false,
                up_at_end: false,
                connect_at: 0,
                connects: Vec::new(),
                filter_changes: Vec::new(),
                requested: Vec::new(),
                asked_qos0: HashSet::new(),
                no_local: HashSet::new(),
                left: HashSet::new(),
            })
            .collect();
        Oracle {
            durable,
            messages: BTreeMap::new(),
            clients,
            wills: BTreeMap::new(),
            retained: BTreeMap::new(),
            retained_publishes: HashMap::new(),
            crashes: Vec::new(),
            power_cuts: Vec::new(),
            violations: Vec::new(),
            owed_checked: 0,
        }
    }

    fn violation(&mut self, at: Ms, text: String) {
        self.violations.push(format!("at {at} ms: {text}"));
    }

    /// Deliveries the final check required of the broker.
    pub fn owed_checked(&self) -> u64 {
        self.owed_checked
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    // ---- publishing ----

    /// `client` sent message `msg` for the first time.
    #[allow(clippy::too_many_arguments)]
    pub fn published(
        &mut self,
        client: usize,
        msg: MsgId,
        topic: &str,
        qos: u8,
        retain: bool,
        clear: bool,
        expiry: Option<u32>,
        now: Ms,
    ) {
        // A clear has an empty payload: its copies cannot be told apart, so only its effect
        // on the retained set is followed.
        if !clear {
            self.follow(client, msg, topic, qos, retain, now);
            if let Some(m) = self.messages.get_mut(&msg) {
                m.expiry = expiry;
            }
        }
        if retain {
            self.retained_publishes
                .insert(msg, (topic.to_owned(), clear));
            self.retained_write(topic, msg, clear, expiry.is_some(), now);
        }
    }

    /// Follows message `msg` of `client`, sent now.
    fn follow(&mut self, client: usize, msg: MsgId, topic: &str, qos: u8, retain: bool, now: Ms) {
        let published = Published {
            publisher: client,
            topic: topic.to_owned(),
            qos,
            retain,
            sent_at: now,
            acked_at: None,
            resent: false,
            expiry: None,
        };
        self.messages.insert(msg, published);
    }

    /// `msg`, sent now, may set (or, `clear`, clear) the retained message of `topic`.
    fn retained_write(&mut self, topic: &str, msg: MsgId, clear: bool, expires: bool, now: Ms) {
        let write = RetainedWrite {
            msg,
            clear,
            sent_at: now,
            acked_at: None,
            expires,
        };
        self.retained
            .entry(topic.to_owned())
            .or_default()
            .push(write);
    }

    /// The publisher sent `msg` again (DUP) after resuming its session. Its effect on the
    /// retained set counts from now if a crash of an in-memory broker forgot the first send.
    pub fn resent(&mut self, msg: MsgId, now: Ms) {
        if let Some(m) = self.messages.get_mut(&msg) {
            m.resent = true;
        }
        if let Some((topic, clear)) = self.retained_publishes.get(&msg) {
            let (topic, clear) = (topic.clone(), *clear);
            let expires = self.messages.get(&msg).is_some_and(|m| m.expiry.is_some());
            let known = self
                .retained
                .get(&topic)
                .is_some_and(|writes| writes.iter().any(|w| w.msg == msg));
            if !known {
                self.retained_write(&topic, msg, clear, expires, now);
            }
        }
    }

    /// The broker acknowledged `msg` (PUBACK, or PUBREC for QoS 2): from now on it owns it.
    pub fn acknowledged(&mut self, msg: MsgId, now: Ms) {
        // An acknowledgement that arrives after a power cut for a message sent before it may
        // come from the process that died, whose journal the cut shortened: it promises
        // nothing.
        let cuts = &self.power_cuts;
        let trusted = |sent_at: Ms| !cuts.iter().any(|&c| c >= sent_at && c <= now);
        if let Some(m) = self.messages.get_mut(&msg).filter(|m| trusted(m.sent_at)) {
            m.acked_at.get_or_insert(now);
        }
        for writes in self.retained.values_mut() {
            for w in writes
                .iter_mut()
                .filter(|w| w.msg == msg && trusted(w.sent_at))
            {
                w.acked_at.get_or_insert(now);
            }
        }
    }

    // ---- sessions and subscriptions ----

    /// `client` received a CONNACK accepting a CONNECT with `clean_start`; `persistent` says
    /// whether the session outlives the connection, `expiry` for how long (ms; `None`: no
    /// limit). Returns whether the client keeps its session state.
    pub fn connack(
        &mut self,
        client: usize,
        clean_start: bool,
        flag: Option<bool>,
        persistent: bool,
        now: Ms,
    ) -> bool {
        let facts = &self.clients[client];
        let name = facts.name.clone();
        // A CONNACK still on its way when an in-memory broker crashed speaks of a session the
        // crash took with it; when a broker with periodic durability lost power, of one the
        // cut may have taken.
        let since_connect = |t: &Ms| *t >= facts.connect_at;
        let cut = self.power_cuts.iter().any(since_connect);
        let lost_in_crash = cut || (!self.durable && self.crashes.iter().any(since_connect));
        let expect = if lost_in_crash {
            Expect::Unknown
        } else {
            facts.expect
        };
        let after = if cut {
            Expect::Unknown
        } else if persistent && !lost_in_crash {
            Expect::Present { until: None }
        } else {
            Expect::Absent
        };
        // MQTT 3.1 has no Session Present flag: its client can only assume its session was
        // resumed, unless it is known gone.
        let Some(session_present) = flag else {
            let present = !clean_start && expect != Expect::Absent;
            let facts = &mut self.clients[client];
            if !present || expect == Expect::Unknown {
                facts.epoch += 1;
                facts.chain += 1;
            }
            facts.expect = after;
            return present;
        };
        if clean_start && session_present {
            self.violation(
                now,
                format!(
                    "{name}: Session Present 1 after a clean start [MQTT-3.2.2-1] [MQTT5-3.2.2-2]"
                ),
            );
        } else if !clean_start {
            match expect {
                Expect::Present { until } if !session_present && until.is_none_or(|u| now < u) => {
                    self.violation(
                        now,
                        format!(
                            "{name}: its persistent session was lost (Session Present 0) [MQTT-3.2.2-2] [MQTT5-3.2.2-3]"
                        ),
                    );
                }
                Expect::Absent if session_present => self.violation(
                    now,
                    format!(
                        "{name}: Session Present 1 though no session can exist [MQTT-3.2.2-3] [MQTT5-3.2.2-3]"
                    ),
                ),
                _ => {}
            }
        }
        let facts = &mut self.clients[client];
        if !session_present || expect == Expect::Unknown {
            facts.epoch += 1;
        }
        if !session_present {
            facts.chain += 1;
        }
        facts.expect = after;
        session_present
    }

    /// `client` discarded its session state (a clean start asked for, or a session that ended
    /// with its connection): a QoS 2 message the broker still holds for an older session may
    /// then reach the application again, which no broker can prevent.
    pub fn client_state_reset(&mut self, client: usize) {
        self.clients[client].chain += 1;
    }

    /// `client` sent a CONNECT; until its CONNACK arrives nothing is certain about its session.
    /// A CONNECT of `client` asking for `clean_start` and a session that outlives the
    /// connection (`persistent`) or not reached the broker. Until its CONNACK arrives the
    /// session is uncertain, unless the CONNECT can only resume it as it is (no clean start,
    /// persistent again).
    pub fn connect_sent(&mut self, client: usize, clean_start: bool, persistent: bool, now: Ms) {
        let facts = &mut self.clients[client];
        let resumes = !clean_start && persistent && matches!(facts.expect, Expect::Present { .. });
        if !resumes {
            facts.expect = Expect::Unknown;
        }
        facts.connect_at = now;
        facts.connects.push(now);
    }

    /// `client`'s connection ended (as it saw it); a persistent session lasts `expiry` ms more
    /// from when the broker notices (`None`: forever).
    pub fn connection_lost(&mut self, client: usize, expiry: Option<Ms>, now: Ms) {
        let facts = &mut self.clients[client];
        if let Expect::Present { .. } = facts.expect {
            facts.expect = Expect::Present {
                until: expiry.map(|e| (now + e).saturating_sub(SLACK)),
            };
        }
    }

    /// The broker confirmed a subscription (SUBACK with a granted QoS) asked for by the
    /// SUBSCRIBE numbered `asked` (see [`Oracle::subscribing`]).
    pub fn subscribed(&mut self, client: usize, filter: &str, qos: u8, asked: u64, now: Ms) {
        let facts = &mut self.clients[client];
        let epoch = facts.epoch;
        // A SUBSCRIBE or UNSUBSCRIBE of the same filter sent after this one replaces or ends
        // it, even when this SUBACK arrives later.
        let ended_at = facts
            .filter_changes
            .iter()
            .filter(|(f, n, _)| f == filter && *n > asked)
            .map(|(_, _, t)| *t)
            .min();
        let no_local = facts.no_local.contains(&asked);
        facts.subs.push(Subscription {
            epoch,
            filter: filter.to_owned(),
            qos,
            no_local,
            confirmed_at: now,
            ended_at,
        });
    }

    /// `client` sent SUBSCRIBE for `filter` with No Local and Retain As Published as given:
    /// it replaces a subscription of the same filter, QoS included [MQTT-3.8.4-3]
    /// [MQTT5-3.8.4-3], so what was owed at the old QoS stops being owed now. Returns the
    /// number to confirm it by.
    pub fn subscribing(
        &mut self,
        client: usize,
        filter: &str,
        qos: u8,
        no_local: bool,
        retain_as_published: bool,
        now: Ms,
    ) -> u64 {
        if qos == 0 {
            self.clients[client].asked_qos0.insert(filter.to_owned());
        }
        let wanted = (filter.to_owned(), no_local, retain_as_published);
        if !self.clients[client].requested.contains(&wanted) {
            self.clients[client].requested.push(wanted);
        }
        let asked = self.change_filter(client, filter, now);
        if no_local {
            self.clients[client].no_local.insert(asked);
        }
        asked
    }

    /// `client` sent UNSUBSCRIBE for `filter`.
    pub fn unsubscribing(&mut self, client: usize, filter: &str, now: Ms) {
        self.clients[client].left.insert(filter.to_owned());
        self.change_filter(client, filter, now);
    }

    fn change_filter(&mut self, client: usize, filter: &str, now: Ms) -> u64 {
        let facts = &mut self.clients[client];
        let number = facts.filter_changes.len() as u64;
        facts.filter_changes.push((filter.to_owned(), number, now));
        let epoch = facts.epoch;
        for s in facts
            .subs
            .iter_mut()
            .filter(|s| s.epoch == epoch && s.filter == filter && s.ended_at.is_none())
        {
            s.ended_at = Some(now);
        }
        number
    }

    /// The broker reported a message dropped for the client named `name` (queue limits).
    pub fn dropped_for(&mut self, name: &str) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.name == name) {
            c.dropped = true;
        }
    }

    // ---- deliveries ----

    /// `client` received message `msg` at `qos` with the RETAIN flag `retain`; `duplicate` when
    /// its own QoS 2 state recognised the packet identifier (not handed to the application).
    #[allow(clippy::too_many_arguments)]
    pub fn received(
        &mut self,
        client: usize,
        msg: MsgId,
        qos: u8,
        retain: bool,
        duplicate: bool,
        expiry: Option<Option<u32>>,
        now: Ms,
    ) {
        let Some(published) = self.messages.get(&msg).cloned() else {
            self.violation(
                now,
                format!(
                    "{}: received a message never published ({msg})",
                    self.clients[client].name
                ),
            );
            return;
        };
        let name = self.clients[client].name.clone();
        if qos > published.qos {
            self.violation(
                now,
                format!("{name}: message {msg} published at QoS {} arrived at QoS {qos} [MQTT-3.8.4-6] [MQTT5-3.8.4-8]", published.qos),
            );
        }
        self.check_flags(client, msg, &published, retain, now);
        if let Some(will) = self.wills.get_mut(&msg) {
            will.first_seen.get_or_insert(now);
        }
        if let (Some(sent), Some(left)) = (published.expiry, expiry) {
            self.check_expiry(&name, msg, &published, sent, left, now);
        }
        let facts = &mut self.clients[client];
        facts.received.insert((facts.epoch, msg));
        let chain = facts.chain;
        let first = facts.first_copies.insert((chain, msg));
        // A power cut of a broker with periodic durability may roll sessions back to the last
        // checkpoint: what was sent before it may come again, QoS 2 included, and out of order.
        let rolled_back = self
            .power_cuts
            .iter()
            .any(|&c| c >= published.sent_at && c <= now);
        if duplicate || rolled_back {
            return;
        }
        // Retained copies (a SUBSCRIBE's, one per matching filter) are new deliveries each.
        if qos == 2 && !retain {
            let copies = facts.qos2_copies.entry((chain, msg)).or_insert(0);
            *copies += 1;
            if *copies == 2 {
                self.violation(
                    now,
                    format!("{name}: QoS 2 message {msg} on {} handed over twice [MQTT-4.3.3-2] [MQTT5-4.3.3-13]", published.topic),
                );
            }
        }
        // Order binds first copies: a QoS 1 message resent by its publisher is routed again,
        // as a new message, after later ones.
        // Copies through a shared subscription may be handed from member to member.
        let shared = self.clients[client]
            .requested
            .iter()
            .any(|(f, _, _)| unshared(f).0.is_some() && matches(f, &published.topic));
        if first && qos >= 1 && !retain && published.qos >= 1 && !published.resent && !shared {
            let key = (chain, published.publisher, published.topic.clone(), qos);
            let newest = self.clients[client].newest.entry(key).or_insert(0);
            if msg < *newest {
                let older = *newest;
                self.violation(
                    now,
                    format!(
                        "{name}: message {msg} on {} arrived after {older}, sent later by the same client at the same QoS [MQTT-4.6.0-6] [MQTT5-4.6.0-6]",
                        published.topic
                    ),
                );
            } else {
                *newest = msg;
            }
        }
    }

    /// A copy of a message published with a Message Expiry Interval of `sent` seconds, as a 5.0
    /// client received it with `left`: the broker forwards what is left of the interval
    /// [MQTT5-3.3.2-6] and delivers nothing expired [MQTT5-3.3.2-5]; time left never shows 0
    /// (it rounds up), and a QoS 2 copy resent after it expired may show 1 [MQTT5-4.3.3-7].
    fn check_expiry(
        &mut self,
        name: &str,
        msg: MsgId,
        published: &Published,
        sent: u32,
        left: Option<u32>,
        now: Ms,
    ) {
        let topic = &published.topic;
        let Some(left) = left else {
            self.violation(now, format!("{name}: message {msg} on {topic}, published with a Message Expiry Interval of {sent} s, arrived without one [MQTT5-3.3.2-6]"));
            return;
        };
        // The broker received it after it was sent and handed it on before it arrived.
        let waited_at_most = now - published.sent_at;
        if left == 0 || left > sent {
            self.violation(now, format!("{name}: message {msg} on {topic} arrived with {left} s of its {sent} s expiry interval left [MQTT5-3.3.2-6]"));
        } else if left > 1 && u64::from(left) * 1000 + waited_at_most < u64::from(sent) * 1000 {
            self.violation(now, format!("{name}: message {msg} on {topic} arrived {waited_at_most} ms after it was sent with {left} s of {sent} s left: more than it waited was taken off [MQTT5-3.3.2-6]"));
        }
    }

    /// The RETAIN flag and No Local, as far as every subscription the client ever asked for
    /// that matches the topic agrees.
    fn check_flags(
        &mut self,
        client: usize,
        msg: MsgId,
        published: &Published,
        retain: bool,
        now: Ms,
    ) {
        let facts = &self.clients[client];
        let name = facts.name.clone();
        let mut matching = facts
            .requested
            .iter()
            .filter(|(f, _, _)| matches(f, &published.topic))
            .peekable();
        let any = matching.peek().is_some();
        let (mut all_no_local, mut all_as_published) = (any, any);
        for (_, no_local, as_published) in matching {
            all_no_local &= *no_local;
            all_as_published &= *as_published;
        }
        let topic = &published.topic;
        if retain && !published.retain {
            self.violation(
                now,
                format!("{name}: message {msg} on {topic}, published without RETAIN, arrived with it [MQTT-3.3.1-9] [MQTT5-3.3.1-12]"),
            );
        }
        if published.retain && !retain && all_as_published {
            self.violation(
                now,
                format!("{name}: retained message {msg} on {topic} arrived without RETAIN through Retain As Published subscriptions [MQTT5-3.3.1-13]"),
            );
        }
        // (A will is published by the broker for a connection that is gone; whether No Local
        // covers it the spec leaves open.)
        let will = self.wills.contains_key(&msg);
        if published.publisher == client && !retain && all_no_local && !will {
            self.violation(
                now,
                format!("{name}: its own message {msg} on {topic} came back through No Local subscriptions [MQTT5-3.8.3-3]"),
            );
        }
    }

    // ---- wills ----

    /// A CONNECT on `conn` carrying will message `msg` went out.
    #[allow(clippy::too_many_arguments)]
    pub fn will_armed(
        &mut self,
        client: usize,
        conn: u64,
        msg: MsgId,
        topic: &str,
        qos: u8,
        retain: bool,
        delay: Ms,
        session: Option<Ms>,
        now: Ms,
    ) {
        self.follow(client, msg, topic, qos, retain, now);
        if retain {
            self.retained_write(topic, msg, false, false, now);
        }
        self.wills.insert(
            msg,
            Will {
                client,
                conn,
                topic: topic.to_owned(),
                qos,
                retain,
                delay,
                session,
                cancelled_at: None,
                ended_at: None,
                first_seen: None,
            },
        );
    }

    /// A normal DISCONNECT of `conn` reached the broker: its will must not be published.
    pub fn disconnect_delivered(&mut self, conn: u64, now: Ms) {
        for will in self.wills.values_mut().filter(|w| w.conn == conn) {
            will.cancelled_at.get_or_insert(now);
        }
    }

    /// The broker saw `conn` end without DISCONNECT at `now` (the network dropped it, or the
    /// broker closed it for keep alive), no other connection of its client being open: a will
    /// without delay is due now; a delayed one is judged at the end, when the oracle knows
    /// whether its client came back in time.
    pub fn abnormal_end(&mut self, conn: u64, now: Ms) {
        for will in self
            .wills
            .values_mut()
            .filter(|w| w.conn == conn && w.cancelled_at.is_none())
        {
            will.ended_at.get_or_insert(now);
        }
        let due: Vec<MsgId> = self
            .wills
            .iter()
            .filter(|(_, w)| w.conn == conn && w.cancelled_at.is_none() && w.delay == 0)
            .map(|(m, _)| *m)
            .collect();
        for msg in due {
            if let Some(m) = self.messages.get_mut(&msg) {
                // Routed at the close: like a publish sent and acknowledged then.
                m.sent_at = now;
                m.acked_at = Some(now);
            }
        }
    }

    /// A guarantee the world saw broken itself: the store does not open or read after a
    /// restart, a memory limit passed.
    pub fn seen(&mut self, now: Ms, text: String) {
        self.violation(now, text);
    }

    /// The broker process ended at `now` (crash or power cut); restarting, it keeps what its
    /// durability mode promises.
    pub fn crashed(&mut self, now: Ms) {
        self.crashes.push(now);
        if !self.durable {
            // In memory only: every session and retained message is gone, and nothing
            // acknowledged before is owed any more.
            for facts in &mut self.clients {
                facts.expect = Expect::Absent;
            }
            for m in self.messages.values_mut() {
                m.acked_at = None;
            }
            for writes in self.retained.values_mut() {
                writes.clear();
            }
        }
    }

    /// A power cut hit a broker with periodic durability whose last checkpoint was at
    /// `checkpoint`: what was acknowledged after it may be lost (docs/STORAGE.md), and the
    /// sessions may be as they were then, their QoS 2 exchanges included (see `received`).
    pub fn power_cut(&mut self, checkpoint: Ms, now: Ms) {
        self.power_cuts.push(now);
        let lost = |at: &mut Option<Ms>| {
            if at.is_some_and(|a| a > checkpoint) {
                *at = None;
            }
        };
        for m in self.messages.values_mut() {
            lost(&mut m.acked_at);
        }
        for w in self.retained.values_mut().flatten() {
            lost(&mut w.acked_at);
        }
        for facts in &mut self.clients {
            facts.expect = Expect::Unknown;
        }
    }

    // ---- the end ----

    /// Whether a crash happened within `[from, to]`.
    fn crash_between(&self, from: Ms, to: Ms) -> bool {
        self.crashes.iter().any(|&c| c >= from && c <= to)
    }

    /// `client`'s final connection is up: its session's messages are checked.
    pub fn up_at_end(&mut self, client: usize) {
        self.clients[client].up_at_end = true;
    }

    /// Checks what must have happened by the end: every acknowledged QoS 1/2 message reached
    /// every surviving session subscribed before it was sent; wills fired when due and never
    /// after a normal DISCONNECT; and `retained` (topic → message, read by a fresh client at the
    /// end) holds for each topic a value the publishes allow.
    pub fn finish(&mut self, retained: &BTreeMap<String, MsgId>, now: Ms) -> Vec<String> {
        self.check_wills(now);
        self.check_delayed_wills(now);
        self.check_deliveries(now);
        self.check_retained(retained, now);
        std::mem::take(&mut self.violations)
    }

    fn check_wills(&mut self, now: Ms) {
        let mut found = Vec::new();
        for (msg, will) in &self.wills {
            let Some(at) = will.cancelled_at else {
                continue;
            };
            if self.crash_between(at.saturating_sub(SLACK), now) {
                continue; // a crash may undo the DISCONNECT's record
            }
            let fired: Vec<&str> = self
                .clients
                .iter()
                .filter(|c| c.received.iter().any(|(_, m)| m == msg))
                .map(|c| c.name.as_str())
                .collect();
            if !fired.is_empty() {
                found.push(format!(
                    "will {msg} of {} on {} (QoS {}, retain {}) published after a normal DISCONNECT reached the broker at {at} ms (received by {fired:?}) [MQTT-3.1.2-10] [MQTT5-3.1.2-10]",
                    self.clients[will.client].name, will.topic, will.qos, will.retain
                ));
            }
        }
        for text in found {
            self.violation(now, text);
        }
    }

    /// A will with a delay, of a connection that ended without DISCONNECT: the broker publishes
    /// it when the delay or the session ends, whichever comes first, unless the client comes
    /// back first [MQTT5-3.1.3-9] [MQTT5-3.1.2-8]. Where no crash came near and no CONNECT of
    /// its client reached the broker until then, it must not arrive before that time, and from
    /// then on it is owed like an acknowledged message.
    fn check_delayed_wills(&mut self, now: Ms) {
        let mut due_wills = Vec::new();
        let mut found = Vec::new();
        for (msg, will) in &self.wills {
            let Some(ended) = will.ended_at else { continue };
            if will.delay == 0 || will.cancelled_at.is_some() {
                continue;
            }
            let due = ended + will.delay.min(will.session.unwrap_or(Ms::MAX));
            // One clock runs the broker and the oracle: a second of margin covers a CONNECT
            // that reaches the broker in the same instant the delay runs out.
            let came_back = self.clients[will.client]
                .connects
                .iter()
                .any(|&at| at >= ended && at <= due + 1_000);
            if came_back || self.crash_between(ended.saturating_sub(SLACK), due + 1_000) {
                continue;
            }
            // The broker ends a connection when it decides to (a protocol error, keep alive) and
            // starts the delay then; the network sees the end once the close, held for the
            // durability of what came before it, goes out a few milliseconds later.
            if let Some(seen) = will.first_seen.filter(|&seen| seen + CLOSE_HELD < due) {
                found.push(format!(
                    "will {msg} of {} on {} arrived at {seen} ms, before its delay ran out at {due} ms (connection ended at {ended} ms, delay {} ms) [MQTT5-3.1.3-9]",
                    self.clients[will.client].name, will.topic, will.delay
                ));
            }
            if due + SLACK < now {
                due_wills.push((*msg, due));
            }
        }
        for (msg, due) in due_wills {
            if let Some(m) = self.messages.get_mut(&msg) {
                m.sent_at = due;
                m.acked_at = Some(due);
            }
        }
        for text in found {
            self.violation(now, text);
        }
    }

    fn check_deliveries(&mut self, now: Ms) {
        let mut found = Vec::new();
        let mut owed_checked = 0;
        for facts in &self.clients {
            if !facts.up_at_end || facts.dropped {
                continue;
            }
            for (msg, m) in &self.messages {
                let Some(acked) = m.acked_at else { continue };
                if m.qos == 0 || m.expiry.is_some() {
                    continue;
                }
                if self.wills.contains_key(msg)
                    && self.crash_between(m.sent_at.saturating_sub(SLACK), acked + SLACK)
                {
                    continue;
                }
                let own = std::ptr::eq(&self.clients[m.publisher], facts);
                let owed = facts.subs.iter().find(|s| {
                    s.epoch == facts.epoch
                        && unshared(&s.filter).0.is_none()
                        && s.qos >= 1
                        && !(s.no_local && own)
                        && s.confirmed_at < m.sent_at
                        && s.ended_at.is_none_or(|e| e > acked)
                        && matches(&s.filter, &m.topic)
                });
                if let Some(s) = owed {
                    owed_checked += 1;
                    if !facts.received.contains(&(facts.epoch, *msg)) {
                        found.push(format!(
                            "{}: QoS {} message {msg} on {} from {} (sent {} ms, acknowledged {acked} ms) never arrived though subscribed to {} at QoS {} since {} ms [MQTT-4.3.2-2] [MQTT5-4.3.2-3]",
                            facts.name,
                            m.qos,
                            m.topic,
                            self.clients[m.publisher].name,
                            m.sent_at,
                            s.filter,
                            s.qos,
                            s.confirmed_at
                        ));
                    }
                }
            }
        }
        self.owed_checked += owed_checked;
        for text in found {
            self.violation(now, text);
        }
        self.check_groups(now);
    }

    /// Shared subscriptions: an acknowledged QoS 1/2 message matching a group's filter reaches
    /// one of its members (§4.8.2, which gives it no statement of its own), checked where the outside can be sure
    /// which members could have taken it: every client that ever joined the group kept its
    /// session to the end, at QoS 1 or 2, and none had a message dropped.
    fn check_groups(&mut self, now: Ms) {
        let mut groups: Vec<&str> = self
            .clients
            .iter()
            .flat_map(|c| c.requested.iter().map(|(f, _, _)| f.as_str()))
            .filter(|f| unshared(f).0.is_some())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let mut found = Vec::new();
        let mut owed_checked = 0;
        for group in groups {
            let members: Vec<&ClientFacts> = self
                .clients
                .iter()
                .filter(|c| c.requested.iter().any(|(f, _, _)| f == group))
                .collect();
            // A member that ever asked for the group at QoS 0 may have been handed a message
            // at QoS 0 (lost when it was offline), whether or not its SUBACK came back.
            let certain = members.iter().all(|c| {
                c.up_at_end
                    && !c.dropped
                    && !c.left.contains(group)
                    && !c.asked_qos0.contains(group)
                    && c.subs
                        .iter()
                        .filter(|s| s.filter == group)
                        .all(|s| s.epoch == c.epoch && s.qos >= 1)
            });
            if !certain {
                continue;
            }
            for (msg, m) in &self.messages {
                let Some(acked) = m.acked_at else { continue };
                if m.qos == 0
                    || m.expiry.is_some()
                    || self.wills.contains_key(msg)
                    || !matches(group, &m.topic)
                {
                    continue;
                }
                let subscribed = members.iter().any(|c| {
                    c.subs
                        .iter()
                        .any(|s| s.filter == group && s.confirmed_at < m.sent_at)
                });
                if !subscribed {
                    continue;
                }
                owed_checked += 1;
                if !members
                    .iter()
                    .any(|c| c.received.contains(&(c.epoch, *msg)))
                {
                    found.push(format!(
                        "QoS {} message {msg} on {} from {} (acknowledged {acked} ms) reached no member of {group} (§4.8.2)",
                        m.qos, m.topic, self.clients[m.publisher].name
                    ));
                }
            }
        }
        self.owed_checked += owed_checked;
        for text in found {
            self.violation(now, text);
        }
    }

    fn check_retained(&mut self, retained: &BTreeMap<String, MsgId>, now: Ms) {
        let mut found = Vec::new();
        for (topic, writes) in &self.retained {
            let held = retained.get(topic).copied();
            // A write is certainly superseded when an acknowledged write was sent after it was
            // acknowledged.
            let superseded = |w: &RetainedWrite| {
                w.acked_at.is_some_and(|a| {
                    writes
                        .iter()
                        .any(|later| later.acked_at.is_some() && later.sent_at > a)
                })
            };
            let candidates: Vec<Option<MsgId>> = writes
                .iter()
                .filter(|w| !superseded(w))
                .map(|w| (!w.clear && !w.expires).then_some(w.msg))
                .collect();
            let any_certain = writes.iter().any(|w| w.acked_at.is_some());
            let allowed = candidates.contains(&held) || (held.is_none() && !any_certain);
            if !allowed {
                found.push(format!(
                    "retained message of {topic} is {held:?}; the acknowledged publishes allow only {candidates:?} (a message with an expiry interval has expired by now) [MQTT-3.3.1-5] [MQTT5-3.3.1-5] [MQTT5-3.3.2-5]"
                ));
            }
        }
        for (topic, msg) in retained {
            if !self.retained.contains_key(topic) {
                found.push(format!(
                    "{topic} retains message {msg}, never published with RETAIN"
                ));
            }
        }
        for text in found {
            self.violation(now, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_the_spec() {
        assert!(matches("#", "a/b"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/+", "a/b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("+/+", "/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }

    #[test]
    fn an_acknowledged_message_owed_to_a_subscriber_is_missed() {
        let mut oracle = Oracle::new(vec!["p".into(), "s".into()], true);
        oracle.connack(1, true, Some(false), true, 0);
        let asked = oracle.subscribing(1, "t/#", 1, false, false, 5);
        oracle.subscribed(1, "t/#", 1, asked, 10);
        oracle.published(0, 1, "t/a", 1, false, false, None, 20);
        oracle.acknowledged(1, 30);
        oracle.up_at_end(1);
        let violations = oracle.finish(&BTreeMap::new(), 100);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("never arrived"));
    }

    #[test]
    fn expiry_must_be_forwarded_counted_down_and_never_owed() {
        let mut oracle = Oracle::new(vec!["p".into(), "s".into()], true);
        oracle.connack(1, true, Some(false), true, 0);
        let asked = oracle.subscribing(1, "t/#", 1, false, false, 5);
        oracle.subscribed(1, "t/#", 1, asked, 10);
        for msg in 1..=5 {
            oracle.published(0, msg, "t/a", 1, false, false, Some(10), 1_000);
            oracle.acknowledged(msg, 1_010);
        }
        oracle.received(1, 1, 1, false, false, Some(Some(8)), 3_500); // waited 2.5 s: fine
        oracle.received(1, 2, 1, false, false, Some(None), 3_500); // no interval [MQTT5-3.3.2-6]
        oracle.received(1, 3, 1, false, false, Some(Some(11)), 3_500); // more than sent
        oracle.received(1, 4, 1, false, false, Some(Some(3)), 2_000); // 7 s taken in 1 s
        oracle.received(1, 5, 1, false, false, None, 2_000); // a 3.x client is told nothing
        assert_eq!(oracle.violations().len(), 3, "{:?}", oracle.violations());
        // Message 5 never reached it again, and others were not re-sent: nothing is owed,
        // as each may have expired first.
        oracle.up_at_end(1);
        let mut retained = BTreeMap::new();
        retained.insert("t/r".to_owned(), 9);
        oracle.published(0, 9, "t/r", 1, true, false, Some(2), 1_100);
        oracle.acknowledged(9, 1_110);
        let violations = oracle.finish(&retained, 100_000);
        assert_eq!(violations.len(), 4, "{violations:?}");
        assert!(violations[3].contains("has expired"), "{violations:?}");
    }

    #[test]
    fn qos2_twice_and_out_of_order_are_caught() {
        let mut oracle = Oracle::new(vec!["p".into(), "s".into()], true);
        oracle.published(0, 1, "t", 2, false, false, None, 0);
        oracle.published(0, 2, "t", 2, false, false, None, 1);
        oracle.received(1, 2, 2, false, false, None, 5);
        oracle.received(1, 1, 2, false, false, None, 6);
        oracle.received(1, 1, 2, false, false, None, 7);
        oracle.received(1, 1, 2, false, true, None, 8); // recognised by the client: fine
        assert_eq!(oracle.violations().len(), 2, "{:?}", oracle.violations());
    }

    #[test]
    fn no_local_and_the_retain_flag_are_checked_where_every_subscription_agrees() {
        let mut oracle = Oracle::new(vec!["c".into()], true);
        oracle.subscribing(0, "t/#", 1, true, true, 0);
        oracle.published(0, 1, "t/a", 1, false, false, None, 1);
        oracle.received(0, 1, 1, false, false, None, 2); // its own, through No Local
        oracle.published(0, 2, "t/b", 1, false, false, None, 3);
        oracle.received(0, 2, 1, true, true, None, 4); // RETAIN on a message published without
        assert_eq!(oracle.violations().len(), 2, "{:?}", oracle.violations());
        // Another subscription without No Local makes its own messages allowed.
        oracle.subscribing(0, "t/a", 1, false, true, 5);
        oracle.published(0, 3, "t/a", 1, false, false, None, 6);
        oracle.received(0, 3, 1, false, false, None, 7);
        assert_eq!(oracle.violations().len(), 2, "{:?}", oracle.violations());
    }

    #[test]
    fn retained_state_must_be_the_last_acknowledged_write_or_a_later_one() {
        let mut oracle = Oracle::new(vec!["p".into()], true);
        oracle.published(0, 1, "r", 1, true, false, None, 0);
        oracle.acknowledged(1, 5);
        oracle.published(0, 2, "r", 1, true, false, None, 10);
        oracle.acknowledged(2, 15);
        oracle.published(0, 3, "r", 0, true, false, None, 20);
        let held = |m: Option<MsgId>| m.map(|m| (String::from("r"), m)).into_iter().collect();
        for (value, ok) in [
            (Some(2), true),
            (Some(3), true),
            (Some(1), false),
            (None, false),
        ] {
            let mut o = Oracle::new(vec!["p".into()], true);
            o.retained = oracle.retained.clone();
            o.messages = oracle.messages.clone();
            assert_eq!(o.finish(&held(value), 30).is_empty(), ok, "{value:?}");
        }
    }
}
