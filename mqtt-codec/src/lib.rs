//! Zero-copy MQTT 3.1, 3.1.1 and 5.0 packet encoder and decoder.
//!
//! `mqtt-wire` turns bytes into [`Packet`]s and back, and nothing else: no I/O, no session
//! state, no topic matching. It is strict: every rule of the specifications that can be checked
//! on a single packet is checked, and a violation is a typed [`DecodeError`] that knows the
//! reason code to send ([`DecodeError::reason_code`]) and the normative statement it breaks
//! ([`DecodeError::spec_id`]). Bad input never panics and never makes the decoder reserve
//! memory beyond the configured maximum packet size.
//!
//! ```text
//!  socket bytes ──► BytesMut ──► Decoder::decode ──► split_to(frame).freeze() ──► Packet
//!                                 │ fixed header only:                         (topic, payload,
//!                                 │ Ok(None) if partial,                        strings are views
//!                                 │ PacketTooLarge at once                      into the frame;
//!                                 │                                             a PUBLISH keeps
//!                                 │                                             the frame whole)
//!
//!  many frames: Decoder::split_frames ──► Bytes ──► Decoder::packets ──► PacketRef
//!               (one split for all)                 (no refcount per     (PUBLISH borrows;
//!                                                    frame)               to_publish(): owned)
//!
//!  Packet::encode(version, &mut BytesMut): measure, reserve once, put_* ──► socket
//!  Publish::encode_header: header only, payload `Bytes` sent alongside (shared by N subscribers)
//! ```
//!
//! # Example
//!
//! Decode a client's CONNECT, answer with a CONNACK, then decode a PUBLISH:
//!
//! ```
//! use mqtt_wire::{BytesMut, ConnAck, Decoder, Packet, Properties, ProtocolVersion, ReasonCode};
//!
//! let mut decoder = Decoder::new().with_max_packet_size(1024 * 1024);
//! let mut input = BytesMut::from(&b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02id"[..]);
//! input.extend_from_slice(b"\x30\x07\x00\x03a/bhi"); // PUBLISH "hi" to a/b
//! input.extend_from_slice(b"\xc0"); // the first byte of a PINGREQ: not a whole frame yet
//!
//! let Some(Packet::Connect(connect)) = decoder.decode(&mut input)? else { unreachable!() };
//! assert_eq!(&*connect.client_id, "id");
//! let version = decoder.version().expect("set by the CONNECT");
//! assert_eq!(version, ProtocolVersion::V3_1_1);
//!
//! let reply = Packet::ConnAck(ConnAck {
//!     session_present: false,
//!     reason_code: ReasonCode::Success,
//!     properties: Properties::default(),
//! });
//! let mut output = BytesMut::new();
//! reply.encode(version, &mut output)?;
//! assert_eq!(&output[..], b"\x20\x02\x00\x00");
//!
//! let Some(Packet::Publish(publish)) = decoder.decode(&mut input)? else { unreachable!() };
//! assert_eq!((publish.topic(), publish.payload()), ("a/b", &b"hi"[..]));
//! assert_eq!(decoder.decode(&mut input)?, None); // partial frame: wait for more bytes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Streams
//!
//! [`Decoder::decode`] hands out owned packets; each holds a reference to its frame, which
//! costs two atomic reference-count updates per packet (split off, dropped). A reader that
//! takes many frames at once can instead split them off together with
//! [`Decoder::split_frames`] and decode them with [`Decoder::packets`] (or step by step with
//! [`Decoder::decode_borrowed`]): each [`PacketRef`] borrows from that buffer, and only the
//! packets the caller keeps become owned, with one slice each ([`PublishRef::to_publish`],
//! [`PacketRef::into_packet`]).
//!
//! # Versions
//!
//! A [`Decoder`] learns the connection's version from the CONNECT it decodes (a CONNECT is
//! always decoded in the version it names). MQTT 3.x packets carry default [`Properties`] and
//! `Success` reason codes; the encoder ignores properties and reason codes in 3.x, except that
//! a CONNACK's reason code is mapped to the closest [`ConnectReturnCode`].
//!
//! # Canonical form
//!
//! For every packet `p` the encoder accepts, `decode(encode(p)) == p`, and `encode(decode(f))
//! == f` holds for every frame `f` in canonical form, which is what the encoder writes:
//! remaining lengths and other Variable Byte Integers in the fewest bytes; MQTT 5.0
//! acknowledgements, DISCONNECT and AUTH in the shortest form the specification allows (no
//! reason code when it is Success without properties, no property length when there are no
//! properties); properties in ascending identifier order, repeated user properties and
//! subscription identifiers in their own order. The decoder also accepts the non-canonical
//! forms (e.g. a PUBACK with an explicit `0x00` and an empty property list) and remembers
//! nothing about them, so they re-encode in canonical form.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod borrowed;
mod decoder;
mod encoder;
mod error;
mod frame;
mod packet;
mod primitives;
mod properties;
mod reader;
mod reason;
mod string;

pub use borrowed::{PacketRef, Packets, PublishRef};
pub use bytes::{Bytes, BytesMut};
pub use decoder::{Decoder, decode_packet};
pub use error::{DecodeError, EncodeError};
pub use frame::MAX_PACKET_SIZE;
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, Publish, RetainHandling,
    SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use primitives::{PacketId, ProtocolVersion, PublishQos, QoS};
pub use properties::{Properties, PropertyValues};
pub use reason::{ConnectReturnCode, ReasonCode};
pub use string::MqttStr;

/// The examples of `README.md`, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
