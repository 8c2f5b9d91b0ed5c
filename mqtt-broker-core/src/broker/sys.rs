//! `$SYS/broker/...`: the broker's statistics, published as retained QoS 0 messages at the
//! configured interval (mosquitto's topic layout).

use std::time::Instant;

use bytes::Bytes;
use mqtt_topic::TopicName;
use mqtt_wire::{MqttStr, QoS};

use crate::broker::Broker;
use crate::message::Message;
use crate::message::Origin;
use crate::timer::TimerKey;

impl Broker {
    /// Publishes the `$SYS/broker/...` statistics as retained QoS 0 messages and re-arms the timer.
    pub(crate) fn publish_sys(&mut self, now: Instant) {
        let Some(interval) = self.config.sys_interval else {
            return;
        };
        let started = self.timers.started().unwrap_or(now);
        let stats = self.stats();
        let mut topics = stats.sys_topics(started, now, &self.config.version_string);
        topics.extend(self.sys_load.update(&stats, started, now));
        for (topic, value) in topics {
            let Ok(name) = TopicName::new(Bytes::from(topic)) else {
                continue;
            };
            let Ok(topic) = MqttStr::try_from(name.to_bytes()) else {
                continue;
            };
            let message = Message::new(topic, Bytes::from(value), QoS::AtMostOnce, true, now);
            self.route(name, message, Origin::Sys, now);
        }
        self.timers.set_after(TimerKey::Sys, now, interval);
    }
}
