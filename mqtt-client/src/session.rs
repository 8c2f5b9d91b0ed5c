//! The client side of a session: what must survive a reconnection (and, saved by the
//! application, a restart) for QoS 1 and 2 to keep their promises [MQTT5-4.1.0-1].

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqtt_wire::{Packet, PacketId, ProtocolVersion, Publish, decode_packet};

/// A QoS 1/2 message this client sent and the server has not finished acknowledging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2); resent with DUP on a resumed
    /// session [MQTT5-4.4.0-1].
    Publish(Publish),
    /// QoS 2 after PUBREC: PUBREL sent (or due, with manual acknowledgements), waiting for
    /// PUBCOMP. The PUBLISH is never sent again [MQTT5-4.3.3-6].
    Released {
        /// The PUBREL has been sent (`false`: waiting for [`Client::release`](crate::Client::release)).
        sent: bool,
    },
}

/// What the client keeps of its session between connections: the messages it sent that are
/// not fully acknowledged, in the order they were sent, and the QoS 2 messages it received
/// and acknowledged with PUBREC whose PUBREL has not come (a duplicate of one of those is not
/// delivered again [MQTT5-4.3.3-10]).
///
/// [`SessionState::to_bytes`] and [`SessionState::from_bytes`] turn it into bytes and back,
/// for an application that keeps its session across restarts:
///
/// ```
/// use mqtt_client::SessionState;
///
/// let saved = SessionState::default().to_bytes();
/// assert_eq!(SessionState::from_bytes(saved).unwrap(), SessionState::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Unfinished outgoing messages by packet identifier, with the order they were sent in.
    pub(crate) outgoing: BTreeMap<PacketId, (u64, Outgoing)>,
    /// Received QoS 2 messages acknowledged with PUBREC, waiting for PUBREL.
    pub(crate) incoming: BTreeMap<PacketId, ()>,
    /// The next sequence number of `outgoing`.
    pub(crate) sequence: u64,
}

/// A saved session that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saved session state is damaged at byte {0}")]
pub struct DamagedState(pub usize);

const TAG_PUBLISH: u8 = 1;
const TAG_RELEASED: u8 = 2;
const TAG_INCOMING: u8 = 3;

impl SessionState {
    /// Whether nothing is unfinished.
    pub fn is_empty(&self) -> bool {
        self.outgoing.is_empty() && self.incoming.is_empty()
    }

    /// The unfinished outgoing messages, in the order they were sent.
    pub fn outgoing(&self) -> impl Iterator<Item = (PacketId, &Outgoing)> {
        let mut entries: Vec<_> = self.outgoing.iter().collect();
        entries.sort_by_key(|(_, (sequence, _))| *sequence);
        entries.into_iter().map(|(id, (_, entry))| (*id, entry))
    }

    /// The packet identifiers of received QoS 2 messages waiting for PUBREL.
    pub fn incoming(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.incoming.keys().copied()
    }

    pub(crate) fn insert(&mut self, id: PacketId, entry: Outgoing) {
        let sequence = self.sequence;
        self.sequence += 1;
        self.outgoing.insert(id, (sequence, entry));
    }

    /// The state as bytes: each outgoing PUBLISH as an MQTT 5.0 frame (so every property
    /// survives), each released or incoming identifier as two bytes, in sending order.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        for (id, entry) in self.outgoing() {
            match entry {
                Outgoing::Publish(publish) => {
                    let mut frame = BytesMut::new();
                    if Packet::Publish(publish.clone())
                        .encode(ProtocolVersion::V5, &mut frame)
                        .is_err()
                    {
                        continue; // it was encoded once to be sent: cannot fail
                    }
                    out.put_u8(TAG_PUBLISH);
                    out.put_u32(frame.len() as u32);
                    out.put_slice(&frame);
                }
                Outgoing::Released { .. } => {
                    out.put_u8(TAG_RELEASED);
                    out.put_u16(id.get());
                }
            }
        }
        for id in self.incoming.keys() {
            out.put_u8(TAG_INCOMING);
            out.put_u16(id.get());
        }
        out.freeze()
    }

    /// Reads what [`SessionState::to_bytes`] wrote. A released message comes back as
    /// waiting for its PUBCOMP with the PUBREL sent, so it is sent again on resumption.
    ///
    /// # Errors
    /// [`DamagedState`] with the offset of the first byte that does not fit.
    pub fn from_bytes(mut bytes: Bytes) -> Result<Self, DamagedState> {
        let total = bytes.len();
        let mut state = SessionState::default();
        while bytes.has_remaining() {
            let at = total - bytes.remaining();
            let damaged = DamagedState(at);
            match bytes.get_u8() {
                TAG_PUBLISH if bytes.remaining() >= 4 => {
                    let len = bytes.get_u32() as usize;
                    if bytes.remaining() < len {
                        return Err(damaged);
                    }
                    let frame = bytes.split_to(len);
                    let Ok(Packet::Publish(publish)) = decode_packet(frame, ProtocolVersion::V5)
                    else {
                        return Err(damaged);
                    };
                    let id = publish.qos.packet_id().ok_or(damaged)?;
                    state.insert(id, Outgoing::Publish(publish));
                }
                tag @ (TAG_RELEASED | TAG_INCOMING) if bytes.remaining() >= 2 => {
                    let id = PacketId::new(bytes.get_u16()).ok_or(damaged)?;
                    if tag == TAG_RELEASED {
                        state.insert(id, Outgoing::Released { sent: true });
                    } else {
                        state.incoming.insert(id, ());
                    }
                }
                _ => return Err(damaged),
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use mqtt_wire::{MqttStr, Properties, PublishQos};

    fn id(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    #[test]
    fn round_trip_keeps_order_properties_and_phases() {
        let mut state = SessionState::default();
        let mut properties = Properties::default();
        properties.content_type = Some(MqttStr::from("text/plain"));
        let publish = Publish::new(MqttStr::from("a/b"), Bytes::from_static(b"x"))
            .with_qos(PublishQos::ExactlyOnce(id(9)))
            .with_properties(properties);
        state.insert(id(9), Outgoing::Publish(publish));
        state.insert(id(2), Outgoing::Released { sent: true });
        state.incoming.insert(id(5), ());
        let back = SessionState::from_bytes(state.to_bytes()).unwrap();
        assert_eq!(
            back.outgoing().map(|(id, _)| id.get()).collect::<Vec<_>>(),
            [9, 2]
        );
        assert_eq!(
            back.outgoing().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
            state.outgoing().map(|(_, e)| e.clone()).collect::<Vec<_>>()
        );
        assert_eq!(back.incoming().map(|i| i.get()).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn damaged_bytes_are_refused_not_guessed() {
        let mut state = SessionState::default();
        state.insert(id(2), Outgoing::Released { sent: true });
        let bytes = state.to_bytes();
        for cut in 1..bytes.len() {
            assert!(SessionState::from_bytes(bytes.slice(..cut)).is_err());
        }
        assert_eq!(
            SessionState::from_bytes(Bytes::from_static(&[TAG_RELEASED, 0, 0])),
            Err(DamagedState(0))
        );
        assert_eq!(
            SessionState::from_bytes(Bytes::from_static(&[7])),
            Err(DamagedState(0))
        );
    }
}
