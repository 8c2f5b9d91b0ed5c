//! Validated MQTT topic names and filters, shared-subscription parsing, a
//! wildcard subscription trie and a tree of retained-message topics.
//!
//! The broker's routing in four types:
//!
//! - [`TopicName`] and [`TopicFilter`] validate the bytes the codec received
//!   (§4.7) and keep them as a [`bytes::Bytes`], without copying;
//!   [`TopicLimits`] adds the broker's own length and depth limits.
//! - [`SubscriptionFilter`] is one SUBSCRIBE entry: a filter, or a
//!   `$share/{ShareName}/{filter}` shared subscription (MQTT 5.0 §4.8.2).
//! - [`SubscriptionTrie`] answers "who receives this PUBLISH?" by walking the
//!   topic's levels once and calling a closure per match ([`Match`]); shared
//!   groups are reported with their members, and the broker picks one.
//! - [`RetainedTree`] answers the reverse question on SUBSCRIBE: "which
//!   retained topics match this filter?", walking the filter through a tree of
//!   topic names.
//!
//! ```text
//!  PUBLISH tele/dev7/SENSOR ──► SubscriptionTrie::for_each_match ──► Match::Subscriber / Match::Shared
//!  SUBSCRIBE tele/+/SENSOR  ──► SubscriptionTrie::insert
//!                           └─► RetainedTree::for_each_match ──► (TopicName, retained message)
//! ```
//!
//! ```
//! use mqtt_topic::{
//!     Match, RetainedTree, SubscriptionFilter, SubscriptionTrie, TopicLimits, TopicName,
//! };
//!
//! let limits = TopicLimits { max_levels: 16, ..TopicLimits::default() };
//! let mut trie: SubscriptionTrie<u32, u8> = SubscriptionTrie::new();
//! let filter = |s: &str| SubscriptionFilter::parse(s.to_owned().into(), &limits);
//! trie.insert(&filter("sport/tennis/player1/#")?, 1, 0)?;
//! trie.insert(&filter("sport/+/player1")?, 2, 1)?;
//! trie.insert(&filter("$share/g/sport/#")?, 3, 1)?;
//! trie.insert(&filter("$share/g/sport/#")?, 4, 1)?;
//!
//! let topic = TopicName::with_limits("sport/tennis/player1".into(), &limits)?;
//! let (mut plain, mut groups) = (Vec::new(), Vec::new());
//! trie.for_each_match(&topic, |m| match m {
//!     Match::Subscriber(member) => plain.push(member.key),
//!     Match::Shared { share, members } => groups.push((share.to_owned(), members.len())),
//! });
//! plain.sort();
//! assert_eq!(plain, [1, 2]);
//! assert_eq!(groups, [("g".to_owned(), 2)]);
//!
//! let mut retained = RetainedTree::new();
//! retained.insert(TopicName::from_static("sport/tennis/player1")?, "ace");
//! retained.insert(TopicName::from_static("sport/golf/player1")?, "birdie");
//! let mut hits = Vec::new();
//! retained.for_each_match(&filter("sport/+/player1")?.filter().clone(), |name, msg| {
//!     hits.push((name.as_str().to_owned(), *msg));
//! });
//! hits.sort();
//! assert_eq!(hits.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod filter;
mod glob;
mod limits;
mod name;
mod retained;
mod share;
mod topic_bytes;
mod trie;
mod validate;

pub use error::{TopicError, TrieFull};
pub use filter::TopicFilter;
pub use glob::TopicGlob;
pub use limits::{PROTOCOL_MAX_LEN, TopicLimits};
pub use name::TopicName;
pub use retained::RetainedTree;
pub use share::{ShareName, SubscriptionFilter};
pub use trie::{Match, Member, SubscriptionTrie};

/// The examples of `README.md`, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
