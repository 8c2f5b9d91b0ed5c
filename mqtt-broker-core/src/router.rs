//! The router: every subscription of every session, and the round-robin position of each shared
//! group. Given a topic name it returns where copies go, one [`Route`] per plain subscription
//! and one per shared group (the member it picked); it knows filters and options, not the
//! sessions behind them, and asks the caller how each candidate member can be reached.
//!
//! Routing a message allocates nothing once warm: the routes are collected into a buffer the
//! router lends out ([`Router::route`]) and takes back ([`Router::recycle`]), and a shared
//! group's name is shared ([`Arc<str>`]) by the copies routed through it.

use std::collections::HashMap;
use std::sync::Arc;

use mqtt_topic::{Match, Member, SubscriptionFilter, SubscriptionTrie, TopicName, TrieFull};

use crate::ids::SessionId;
use crate::session::Subscription;

/// How a session can be reached now, for picking a shared group's member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Not connected.
    Offline,
    /// Connected, but marked overflowing (see `backpressure`): picked only when no other member
    /// is connected.
    Overflowing,
    /// Connected and taking messages.
    Ready,
}

/// One copy to make: for a plain subscription, or for the member a shared group picked.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The session the copy goes to.
    pub(crate) session: SessionId,
    /// The subscription it matched.
    pub(crate) subscription: Subscription,
    /// The ShareName, when it came through a shared subscription.
    pub(crate) share: Option<Arc<str>>,
}

/// A shared group's name and where its round-robin continues.
#[derive(Debug)]
struct Group {
    name: Arc<str>,
    cursor: usize,
}

/// Which subscriptions one routing serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope<'f> {
    /// Every matching subscription, one member per shared group.
    All,
    /// The plain subscriptions only: in a cluster the backplane picks the broker that serves
    /// each shared group.
    Plain,
    /// One member of this shared subscription (a `$share/...` filter): the broker the
    /// backplane picked for it.
    Share(&'f SubscriptionFilter),
}

/// Route buffers longer than this are not kept between routings (a fan-out to more sessions
/// allocates its buffer each time rather than holding the memory for good).
const KEPT_ROUTES: usize = 4096;

/// A change of this broker's interest (with interest reporting on): the first subscription to
/// a filter appeared, or the last one went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterestChange {
    /// The filter text, `$share/GROUP/` included.
    pub(crate) filter: Arc<str>,
    /// Whether there is a subscription to it now.
    pub(crate) present: bool,
}

/// All subscriptions of all sessions, and the shared groups' round-robin cursors.
#[derive(Debug, Default)]
pub(crate) struct Router {
    trie: SubscriptionTrie<SessionId, Subscription>,
    /// Round-robin positions, per ShareName (a group of the same name under several filters
    /// shares one cursor).
    groups: HashMap<Box<str>, Group>,
    /// The buffer lent out by `route`, kept between routings.
    spare: Vec<Route>,
    /// With interest reporting on: the number of subscriptions to each filter text.
    interest: Option<HashMap<Arc<str>, usize>>,
}

impl Router {
    /// A router that reports interest changes from `insert` and `remove` when `interest`.
    pub(crate) fn new(interest: bool) -> Self {
        Router {
            interest: interest.then(HashMap::new),
            ..Router::default()
        }
    }

    /// Adds or replaces `session`'s subscription to `filter`; the interest change it makes.
    pub(crate) fn insert(
        &mut self,
        session: SessionId,
        filter: &SubscriptionFilter,
        subscription: Subscription,
    ) -> Result<Option<InterestChange>, TrieFull> {
        let replaced = self.trie.insert(filter, session, subscription)?.is_some();
        let Some(interest) = self.interest.as_mut().filter(|_| !replaced) else {
            return Ok(None);
        };
        let text = filter_text(filter);
        let count = interest.entry(Arc::clone(&text)).or_insert(0);
        *count += 1;
        Ok((*count == 1).then_some(InterestChange {
            filter: text,
            present: true,
        }))
    }

    /// Removes `session`'s subscription to `filter`; the interest change it makes.
    pub(crate) fn remove(
        &mut self,
        session: SessionId,
        filter: &SubscriptionFilter,
    ) -> Option<InterestChange> {
        let removed = self.trie.remove(filter, session).is_some();
        let interest = self.interest.as_mut().filter(|_| removed)?;
        let text = filter_text(filter);
        let count = interest.get_mut(&text)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        interest.remove(&text);
        Some(InterestChange {
            filter: text,
            present: false,
        })
    }

    /// Subscriptions held, all sessions together.
    pub(crate) fn len(&self) -> usize {
        self.trie.len()
    }

    /// Where a message published to `topic` goes: as `scope` says, every matching plain
    /// subscription, in trie order, and for every matching shared group the member picked by
    /// [`pick`]. Give the buffer back with [`Router::recycle`].
    pub(crate) fn route(
        &mut self,
        topic: &TopicName,
        scope: Scope<'_>,
        reach: impl Fn(SessionId) -> Reach,
    ) -> Vec<Route> {
        let mut routes = std::mem::take(&mut self.spare);
        let Router { trie, groups, .. } = self;
        if let Scope::Share(filter) = scope {
            let members = trie.shared_members(filter);
            let share = filter.share().map_or("", |s| s.as_str());
            if let Some(group) = group(groups, share).filter(|_| !members.is_empty())
                && let Some(member) = pick(group, members, None, &reach)
            {
                routes.push(Route {
                    session: member.key,
                    subscription: member.value,
                    share: Some(Arc::clone(&group.name)),
                });
            }
            return routes;
        }
        trie.for_each_match(topic, |found| match found {
            Match::Subscriber(member) => routes.push(Route {
                session: member.key,
                subscription: member.value,
                share: None,
            }),
            Match::Shared { .. } if scope == Scope::Plain => {}
            Match::Shared { share, members } => {
                let Some(group) = group(groups, share) else {
                    return;
                };
                if let Some(member) = pick(group, members, None, &reach) {
                    routes.push(Route {
                        session: member.key,
                        subscription: member.value,
                        share: Some(Arc::clone(&group.name)),
                    });
                }
            }
        });
        routes
    }

    /// Whether the shared subscription `filter` has a member here.
    pub(crate) fn has_shared_members(&self, filter: &SubscriptionFilter) -> bool {
        !self.trie.shared_members(filter).is_empty()
    }

    /// Takes back a buffer lent by [`Router::route`], emptied, for the next routing.
    pub(crate) fn recycle(&mut self, mut routes: Vec<Route>) {
        routes.clear();
        if routes.capacity() <= KEPT_ROUTES {
            self.spare = routes;
        }
    }

    /// A connected member of the group `share` matching `topic`, other than `exclude`: where a
    /// copy queued for `exclude` goes when it leaves the group or the broker.
    pub(crate) fn other_member(
        &mut self,
        topic: &TopicName,
        share: &str,
        exclude: SessionId,
        reach: impl Fn(SessionId) -> Reach,
    ) -> Option<(SessionId, Subscription)> {
        let mut picked = None;
        let Router { trie, groups, .. } = self;
        trie.for_each_match(topic, |found| {
            if let Match::Shared {
                share: name,
                members,
            } = found
                && name == share
                && picked.is_none()
            {
                picked = group(groups, share)
                    .and_then(|group| pick(group, members, Some(exclude), &reach))
                    .map(|m| (m.key, m.value));
            }
        });
        picked
    }
}

/// The text of `filter` as subscribed: `$share/GROUP/FILTER` or `FILTER`.
fn filter_text(filter: &SubscriptionFilter) -> Arc<str> {
    match filter.share() {
        Some(share) => Arc::from(format!(
            "$share/{}/{}",
            share.as_str(),
            filter.filter().as_str()
        )),
        None => Arc::from(filter.filter().as_str()),
    }
}

/// The group named `share`, created at its first message (the only allocation for it).
fn group<'a>(groups: &'a mut HashMap<Box<str>, Group>, share: &str) -> Option<&'a mut Group> {
    if !groups.contains_key(share) {
        let name: Arc<str> = Arc::from(share);
        groups.insert(Box::from(share), Group { name, cursor: 0 });
    }
    groups.get_mut(share)
}

/// Round-robin over a shared group: from the group's cursor, the first member that is
/// [`Reach::Ready`], else the first connected one, and never `exclude`. With none connected the
/// member at the cursor is picked (its session queues the copy), unless `exclude` is set: then
/// only a connected member will do. The cursor moves past the member picked. No randomness.
fn pick<'m>(
    group: &mut Group,
    members: &'m [Member<SessionId, Subscription>],
    exclude: Option<SessionId>,
    reach: &impl Fn(SessionId) -> Reach,
) -> Option<&'m Member<SessionId, Subscription>> {
    let count = members.len();
    if count == 0 {
        return None;
    }
    let start = group.cursor % count;
    let order = (0..count).map(|step| (start + step) % count);
    let reached = |at: &usize, wanted: &[Reach]| {
        members
            .get(*at)
            .is_some_and(|m| Some(m.key) != exclude && wanted.contains(&reach(m.key)))
    };
    let connected = order
        .clone()
        .find(|at| reached(at, &[Reach::Ready]))
        .or_else(|| {
            order
                .clone()
                .find(|at| reached(at, &[Reach::Ready, Reach::Overflowing]))
        });
    let at = match (connected, exclude) {
        (Some(at), _) => at,
        (None, None) => start,
        (None, Some(_)) => return None,
    };
    group.cursor = (at + 1) % count;
    members.get(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt_topic::TopicLimits;
    use mqtt_wire::SubscriptionOptions;

    fn filter(text: &'static str) -> SubscriptionFilter {
        SubscriptionFilter::parse(Bytes::from_static(text.as_bytes()), &TopicLimits::default())
            .expect("valid filter")
    }

    fn topic(text: &'static str) -> TopicName {
        TopicName::new(Bytes::from_static(text.as_bytes())).expect("valid topic")
    }

    fn subscription() -> Subscription {
        Subscription {
            options: SubscriptionOptions::default(),
            identifier: None,
        }
    }

    fn sessions(routes: &[Route]) -> Vec<u64> {
        routes.iter().map(|r| r.session.0).collect()
    }

    #[test]
    fn a_group_takes_turns_and_prefers_members_that_take_messages() {
        let mut router = Router::default();
        for session in 1..=3 {
            router
                .insert(SessionId(session), &filter("$share/g/t"), subscription())
                .expect("room");
        }
        let mut picked = Vec::new();
        for _ in 0..3 {
            let routes = router.route(&topic("t"), Scope::All, |_| Reach::Ready);
            assert_eq!(routes.len(), 1);
            assert_eq!(routes[0].share.as_deref(), Some("g"));
            picked.extend(sessions(&routes));
            router.recycle(routes);
        }
        picked.sort_unstable();
        assert_eq!(picked, [1, 2, 3], "each member once in three messages");

        // Session 2 is offline and 3 overflowing: 1 takes everything.
        let reach = |s: SessionId| match s.0 {
            2 => Reach::Offline,
            3 => Reach::Overflowing,
            _ => Reach::Ready,
        };
        for _ in 0..3 {
            let routes = router.route(&topic("t"), Scope::All, reach);
            assert_eq!(sessions(&routes), [1]);
            router.recycle(routes);
        }
        // Nobody connected: the member at the cursor queues it.
        let routes = router.route(&topic("t"), Scope::All, |_| Reach::Offline);
        assert_eq!(routes.len(), 1);
        router.recycle(routes);
    }

    #[test]
    fn another_member_is_connected_and_never_the_one_leaving() {
        let mut router = Router::default();
        for session in 1..=2 {
            router
                .insert(SessionId(session), &filter("$share/g/#"), subscription())
                .expect("room");
        }
        let other = router.other_member(&topic("a/b"), "g", SessionId(1), |_| Reach::Ready);
        assert_eq!(other.map(|(s, _)| s.0), Some(2));
        let none = router.other_member(&topic("a/b"), "g", SessionId(1), |s| {
            if s.0 == 2 {
                Reach::Offline
            } else {
                Reach::Ready
            }
        });
        assert!(
            none.is_none(),
            "an offline member does not take a moving copy"
        );
        assert!(
            router
                .other_member(&topic("a/b"), "h", SessionId(1), |_| Reach::Ready)
                .is_none()
        );
    }

    #[test]
    fn interest_changes_at_the_first_and_the_last_subscription_of_a_filter() {
        let mut router = Router::new(true);
        let added = |text: &str| {
            Some(InterestChange {
                filter: Arc::from(text),
                present: true,
            })
        };
        let insert = |router: &mut Router, session, text| {
            router
                .insert(SessionId(session), &filter(text), subscription())
                .expect("room")
        };
        assert_eq!(insert(&mut router, 1, "a/+"), added("a/+"));
        assert_eq!(insert(&mut router, 2, "a/+"), None, "second subscriber");
        assert_eq!(insert(&mut router, 2, "a/+"), None, "a replacement");
        assert_eq!(
            insert(&mut router, 3, "$share/g/a/+"),
            added("$share/g/a/+")
        );
        assert_eq!(router.remove(SessionId(1), &filter("a/+")), None);
        assert_eq!(
            router.remove(SessionId(1), &filter("a/+")),
            None,
            "not subscribed"
        );
        assert_eq!(
            router.remove(SessionId(2), &filter("a/+")),
            Some(InterestChange {
                filter: Arc::from("a/+"),
                present: false,
            })
        );
        let mut quiet = Router::default();
        assert_eq!(insert(&mut quiet, 1, "a/+"), None, "reporting off");
    }

    #[test]
    fn plain_and_shared_subscriptions_route_together_and_the_buffer_is_reused() {
        let mut router = Router::default();
        router
            .insert(SessionId(1), &filter("a/+"), subscription())
            .expect("room");
        router
            .insert(SessionId(2), &filter("$share/g/a/b"), subscription())
            .expect("room");
        let routes = router.route(&topic("a/b"), Scope::All, |_| Reach::Ready);
        let mut found = sessions(&routes);
        found.sort_unstable();
        assert_eq!(found, [1, 2]);
        let buffer = routes.as_ptr();
        router.recycle(routes);
        let routes = router.route(&topic("a/c"), Scope::All, |_| Reach::Ready);
        assert_eq!(sessions(&routes), [1]);
        assert_eq!(routes.as_ptr(), buffer, "no new buffer");
    }
}
