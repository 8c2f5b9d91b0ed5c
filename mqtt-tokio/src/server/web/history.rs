//! Histories of numeric JSON fields the page's users chose to plot (say `ENERGY.Power` of
//! `tele/plug/SENSOR`): the broker keeps the last hour of each, one point per second at most,
//! in a bounded ring, so the plot is there when the page opens. At most [`MAX_HISTORIES`]
//! fields are followed; each by an in-process client of the user who chose it, so the broker's
//! ACL decides what it may read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mqtt_wire::QoS;
use serde_json::Value;

use crate::LocalClient;

/// Most fields followed at once.
pub(crate) const MAX_HISTORIES: usize = 16;

/// How far back a history reaches.
const SPAN: Duration = Duration::from_secs(3600);

/// Points kept per history: one a second over the span.
const MAX_POINTS: usize = 3600;

/// One field's points: milliseconds since 1970 and the value.
type Points = VecDeque<(u64, f64)>;

/// A followed field: its topic and its path.
type Field = (String, String);

/// The histories of one HTTP listener, by topic and field.
#[derive(Debug, Default)]
pub(crate) struct Histories {
    by_field: Mutex<HashMap<Field, Arc<Mutex<Points>>>>,
}

impl Histories {
    /// Starts following `field` of `topic` with `client` (connected as the user who asked),
    /// unless it is followed already. `Err` when [`MAX_HISTORIES`] are followed.
    pub(crate) async fn follow(
        &self,
        topic: &str,
        field: &str,
        client: LocalClient,
    ) -> Result<(), String> {
        let key = (topic.to_owned(), field.to_owned());
        let points = {
            let mut histories = self.by_field.lock().unwrap_or_else(PoisonError::into_inner);
            if histories.contains_key(&key) {
                return Ok(());
            }
            if histories.len() >= MAX_HISTORIES {
                return Err(format!("at most {MAX_HISTORIES} fields are followed"));
            }
            let points = Arc::new(Mutex::new(Points::new()));
            histories.insert(key, points.clone());
            points
        };
        if let Err(e) = client.subscribe(topic, QoS::AtMostOnce).await {
            self.by_field
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&(topic.to_owned(), field.to_owned()));
            return Err(e.to_string());
        }
        let path: Vec<String> = field.split('.').map(str::to_owned).collect();
        drop(tokio::spawn(record(client, path, points)));
        Ok(())
    }

    /// The points of `field` of `topic`, oldest first; `None` if it is not followed.
    pub(crate) fn points(&self, topic: &str, field: &str) -> Option<Vec<(u64, f64)>> {
        let histories = self.by_field.lock().unwrap_or_else(PoisonError::into_inner);
        let points = histories.get(&(topic.to_owned(), field.to_owned()))?;
        let points = points.lock().unwrap_or_else(PoisonError::into_inner);
        Some(points.iter().copied().collect())
    }

    /// The fields followed: (topic, field).
    pub(crate) fn followed(&self) -> Vec<(String, String)> {
        let histories = self.by_field.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<(String, String)> = histories.keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// Records the field of every message `client` receives until its connection ends.
async fn record(mut client: LocalClient, path: Vec<String>, points: Arc<Mutex<Points>>) {
    while let Some(delivery) = client.recv().await {
        let Some(value) = field_value(&delivery.payload, &path) else {
            continue;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        push(
            &mut points.lock().unwrap_or_else(PoisonError::into_inner),
            now,
            value,
        );
    }
}

/// Adds a point: within the same second as the last one it replaces it; points older than the
/// span, and beyond the bound, go.
fn push(points: &mut Points, at_ms: u64, value: f64) {
    if let Some(last) = points.back_mut()
        && last.0 / 1000 == at_ms / 1000
    {
        *last = (at_ms, value);
        return;
    }
    points.push_back((at_ms, value));
    let oldest = at_ms.saturating_sub(u64::try_from(SPAN.as_millis()).unwrap_or(u64::MAX));
    while points.front().is_some_and(|p| p.0 < oldest) || points.len() > MAX_POINTS {
        points.pop_front();
    }
}

/// The number at `path` (object keys, `.`-separated) of a JSON payload.
fn field_value(payload: &[u8], path: &[String]) -> Option<f64> {
    let mut value: Value = serde_json::from_slice(payload).ok()?;
    for key in path {
        value = value.get_mut(key)?.take();
    }
    value.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_their_path() {
        let payload = br#"{"ENERGY":{"Power":12.5,"Today":0.3},"Time":"2026-12-07T12:00:00"}"#;
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(field_value(payload, &path("ENERGY.Power")), Some(12.5));
        assert_eq!(field_value(payload, &path("ENERGY.Missing")), None);
        assert_eq!(field_value(payload, &path("Time")), None, "not a number");
        assert_eq!(field_value(b"not json", &path("x")), None);
    }

    #[test]
    fn a_history_keeps_one_point_a_second_over_the_span_and_is_bounded() {
        let mut points = Points::new();
        push(&mut points, 1_000, 1.0);
        push(&mut points, 1_500, 2.0); // the same second: replaces
        push(&mut points, 2_000, 3.0);
        assert_eq!(
            points.iter().copied().collect::<Vec<_>>(),
            [(1_500, 2.0), (2_000, 3.0)]
        );
        // An hour later the old points are gone.
        push(&mut points, 2_000 + 3_600_000, 4.0);
        assert_eq!(points.len(), 2);
        for second in 0..2 * MAX_POINTS as u64 {
            push(&mut points, 10_000_000 + second * 1000, 0.0);
        }
        assert!(points.len() <= MAX_POINTS);
    }
}
