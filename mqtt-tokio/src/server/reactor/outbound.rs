//! The way from a reactor to the broker task: its bounded input channel, with the inputs that
//! found it full kept in order until there is room (the reactor reads nothing meanwhile).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc::{self, OwnedPermit};

use crate::server::input::Input;

type RoomWait = Pin<Box<dyn Future<Output = Option<OwnedPermit<Input>>> + Send>>;

/// The broker task's input channel, with the inputs that found it full kept in order.
pub(super) struct Outbound {
    pub(super) inputs: mpsc::Sender<Input>,
    pub(super) stalled: VecDeque<Input>,
    pub(super) room: Option<RoomWait>,
    /// The broker task is gone.
    pub(super) gone: bool,
}

impl Outbound {
    pub(super) fn new(inputs: mpsc::Sender<Input>) -> Self {
        Outbound {
            inputs,
            stalled: VecDeque::new(),
            room: None,
            gone: false,
        }
    }

    pub(super) fn send(&mut self, input: Input) {
        if !self.stalled.is_empty() {
            return self.stalled.push_back(input);
        }
        match self.inputs.try_send(input) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(input)) => self.stalled.push_back(input),
            Err(mpsc::error::TrySendError::Closed(_)) => self.gone = true,
        }
    }

    /// Sends stalled inputs while there is room; `Ready` when none are left (or the broker
    /// task is gone), else the channel's room is waited for.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(input) = self.stalled.pop_front() {
            if let Some(room) = &mut self.room {
                match room.as_mut().poll(cx) {
                    Poll::Ready(Some(permit)) => {
                        self.room = None;
                        permit.send(input);
                        continue;
                    }
                    Poll::Ready(None) => self.gone = true,
                    Poll::Pending => {}
                }
            }
            match self.inputs.try_send(input) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(input)) if !self.gone => {
                    self.stalled.push_front(input);
                    if self.room.is_none() {
                        let inputs = self.inputs.clone();
                        self.room =
                            Some(Box::pin(async move { inputs.reserve_owned().await.ok() }));
                        continue; // polled once to register
                    }
                    return Poll::Pending;
                }
                Err(_) => {
                    self.gone = true;
                    self.stalled.clear();
                }
            }
        }
        // Nothing left to send: a pending reservation would hold a slot nobody uses.
        self.room = None;
        Poll::Ready(())
    }
}
