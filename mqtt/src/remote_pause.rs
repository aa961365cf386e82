//! Pauses relayed between machines (opt-in, `.remote_pause(true)` on either bridge Block).
//!
//! A pause of the local test (by any other Block: a Pause Block, a safety limit, the web
//! view) is published on `crabby/<test>/pause` at QoS 1 as `{"from": …, "paused": true,
//! "cause": …}`, and its end as `"paused": false`. A bridge that receives another machine's
//! pause pauses its own test with that cause (listed in its report) and resumes it when the
//! other machine resumes. A pause relayed from another machine (its cause starts with
//! `remote pause from`) is never published again, by this bridge or another one of the same
//! test, so machines cannot echo a pause forever.

use crabby::Context;
use serde::{Deserialize, Serialize};

/// A pause, or its end, as published on `crabby/<test>/pause`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseMessage {
    /// Who sent it: the bridge's client id.
    pub from: String,
    /// Paused (true) or resumed (false).
    pub paused: bool,
    /// Why, as the sender's test knows it.
    pub cause: String,
}

/// How a relayed pause's cause begins.
const RELAYED: &str = "remote pause from ";

/// The topic of the pauses of test namespace `test`.
pub fn pause_topic(test: &str) -> String {
    format!("crabby/{test}/pause")
}

/// One bridge's side of the relay.
#[derive(Debug, Default, Clone)]
pub(crate) struct RemotePause {
    /// The local pause state last published.
    published: bool,
    /// The machine whose pause this bridge holds now.
    holding_for: Option<String>,
    /// Pauses received from other machines.
    pub received: u64,
}

impl RemotePause {
    /// Applies a message received on the pause topic. Returns an error text for a malformed
    /// one.
    pub fn on_message(
        &mut self,
        ctx: &mut Context,
        me: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        let m: PauseMessage = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if m.from == me {
            return Ok(());
        }
        if m.paused {
            if self.holding_for.is_none() {
                self.received += 1;
                ctx.pause(&format!("{RELAYED}{}: {}", m.from, m.cause));
                self.holding_for = Some(m.from);
            }
        } else if self.holding_for.as_deref() == Some(m.from.as_str()) {
            ctx.resume();
            log::info!("remote resume from {}", m.from);
            self.holding_for = None;
        }
        Ok(())
    }

    /// The message to publish when the local pause state changed (pauses of this test's own
    /// Blocks only, never one relayed from another machine).
    pub fn poll_local(&mut self, ctx: &Context, me: &str) -> Option<Vec<u8>> {
        let causes: Vec<String> = ctx
            .active_pause_causes()
            .into_iter()
            .filter(|c| !c.starts_with(RELAYED))
            .collect();
        let local = !causes.is_empty();
        if local == self.published {
            return None;
        }
        self.published = local;
        let cause = if local {
            format!("test \"{}\" paused: {}", ctx.test_name(), causes.join("; "))
        } else {
            format!("test \"{}\" resumed", ctx.test_name())
        };
        serde_json::to_vec(&PauseMessage {
            from: me.to_owned(),
            paused: local,
            cause,
        })
        .ok()
    }

    /// Publishes the local pause state on `topic` (QoS 1) when it changed (see
    /// [`poll_local`](Self::poll_local)).
    pub fn relay_local(&mut self, ctx: &Context, me: &str, topic: &str, net: &crate::net::Net) {
        if let Some(msg) = self.poll_local(ctx, me) {
            net.lock().push(crate::net::Out::new(
                topic.to_owned(),
                msg,
                rumqttc::QoS::AtLeastOnce,
                false,
                0,
            ));
            net.wake();
        }
    }

    /// At the end: a pause held for a remote machine is released.
    pub fn release(&mut self, ctx: &mut Context) {
        if self.holding_for.take().is_some() {
            ctx.resume();
        }
    }
}
