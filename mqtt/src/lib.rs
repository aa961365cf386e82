//! # crabby-mqtt: one test on several machines, through an MQTT broker
//!
//! A lab splits a bench across machines: a Raspberry Pi on the furnace, the PC with the
//! camera. On machine A, [`MqttPublish`] sends what it receives to a broker as a labelled
//! *stream*; on machine B, [`MqttSubscribe`] receives it and feeds B's Blocks as if the
//! furnace were local. Commands go the other way the same way (a publisher on B, a
//! subscriber on A).
//!
//! ```no_run
//! use crabby::Test;
//! use crabby_mqtt::{MqttPublish, MqttSubscribe};
//! # struct Furnace;
//! # impl crabby::Block for Furnace {
//! #     fn step(&mut self, _: &mut crabby::Context) -> crabby::Result<crabby::Flow> {
//! #         Ok(crabby::Flow::Continue)
//! #     }
//! # }
//! # struct Recorder;
//! # impl crabby::Block for Recorder {
//! #     fn step(&mut self, _: &mut crabby::Context) -> crabby::Result<crabby::Flow> {
//! #         Ok(crabby::Flow::Continue)
//! #     }
//! # }
//! // Machine A
//! let mut a = Test::new("furnace-rig");
//! let furnace = a.add(Furnace);
//! let publish = a.add(
//!     MqttPublish::new("mqtt://broker.lab:1883")
//!         .stream("furnace", ["t(s)", "T(°C)"])
//!         .credentials("lab", "secret"),
//! );
//! a.link(furnace, publish);
//! a.run()?;
//!
//! // Machine B
//! let mut b = Test::new("camera-rig");
//! let remote = b.add(
//!     MqttSubscribe::new("mqtt://broker.lab:1883")
//!         .test("furnace-rig")
//!         .stream("furnace")
//!         .labels(["T(°C)"])
//!         .credentials("lab", "secret"),
//! );
//! let rec = b.add(Recorder);
//! b.link(remote, rec);
//! b.run()?;
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! ## Where the network runs
//!
//! Both Blocks are plain configuration until the test forks them. In `prepare`, in the
//! Block's own process, each starts one thread running the [`rumqttc`] client on a
//! single-threaded tokio runtime, and waits for the broker (a wrong password or an
//! unreachable broker fails `prepare`, before the test starts). The coordinator never holds
//! a thread or a socket of the bridge.
//!
//! ## Wire format
//!
//! Topics `crabby/<test>/<stream>` (batches), `…/desc` (a retained [`Descriptor`]: labels,
//! units, types, source Blocks, rate, encoding), `…/status` (retained `online`, `ended`, or
//! `offline` as the publisher's last will) and `crabby/<test>/stop` (remote stops). Batches
//! are JSON by default, readable by any tool:
//!
//! ```json
//! {"seq":12,"i0":1200,"t0":1796300000.123456,"t":[12.0,12.01],"F(N)":[10.5,10.7]}
//! ```
//!
//! `seq` numbers the batches, `i0` the first sample, `t0` is the source test's start on its
//! wall clock (seconds since the Unix epoch) and `t` each sample's time since then; every
//! other key is a label. The [`payload`] module documents every field; the compact
//! [`Encoding::Binary`] is an option (see the bench for what it saves).
//!
//! ## No silent loss
//!
//! - Data goes with QoS 1 by default (configurable, [`Qos`]); control messages (descriptor,
//!   status, stop) always with QoS 1. Commands are a stream like any other: keep them at the
//!   default QoS 1.
//! - The publisher keeps each batch until the broker acknowledges it. When the broker is
//!   lost, the test goes on: batches are buffered (at most
//!   [`MqttPublish::buffer_samples`]; beyond, the oldest are dropped and counted), the
//!   client reconnects with a doubling backoff, and everything unacknowledged is sent again.
//!   Its log (and [`MqttPublish::stats_file`]) gives the outages, their total time, the
//!   re-sent messages and the dropped samples.
//! - The subscriber checks the batch numbers: a gap is counted and logged with the samples
//!   it held, a duplicate (re-sent after an outage) is dropped, a payload that does not
//!   decode is rejected and counted. It keeps a persistent session, so the broker queues the
//!   stream while it reconnects. When the publisher's connection drops, the broker
//!   publishes its last will (`offline`) and the subscriber logs that its source went
//!   silent.
//!
//! ## Remote stop
//!
//! Opt-in on either Block with `.remote_stop(true)`: when the test stops, the Block
//! publishes `{"from":…, "cause":…}` on `crabby/<test>/stop`; the others with the option
//! stop their own tests, the cause in their logs ("remote stop from …"), the report naming
//! the bridge Block that stopped the test.
//!
//! ## Remote pause
//!
//! Opt-in with `.remote_pause(true)`: a pause of the test (a Pause Block, a safety limit,
//! the web view) is published on `crabby/<test>/pause` at QoS 1, and pauses the tests of the
//! other machines with the same option until it ends; each report lists the relayed pause
//! with its cause ("remote pause from …"). See [`remote_pause`].
//!
//! ## Security
//!
//! Give `.credentials(user, password)` (the broker's `password_file`), or `.anonymous()` to
//! connect without: anonymous MQTT is never a default. With `mqtts://` and the `tls` cargo
//! feature, the connection is TLS (rustls with the ring provider), checked against the CA
//! file given to `.tls_ca_file(path)`. Payloads are data, never code: a subscriber decodes
//! JSON (or the binary record) and rejects anything else.
//!
//! ## Broker settings worth knowing
//!
//! For the subscriber's session to survive a broker restart, the broker must persist
//! sessions (`persistence true` in mosquitto) and queue enough messages for a client that
//! is reconnecting (`max_queued_messages`, 1000 by default in mosquitto).

#![deny(unsafe_code)]

mod broker;
mod net;
pub mod payload;
mod publish;
pub mod remote_pause;
mod subscribe;

pub use net::NetStats;
pub use payload::{DecodeError, Descriptor, Encoding};
pub use publish::{MqttPublish, PublishStats};
pub use subscribe::{MqttSubscribe, SubscribeStats};

use crabby::{Error, ErrorKind, Result};

/// Quality of service of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Sent once, never acknowledged: lost if the connection drops at the wrong time.
    AtMostOnce = 0,
    /// Acknowledged by the broker, sent again until then (the default).
    AtLeastOnce = 1,
}

impl From<Qos> for rumqttc::QoS {
    fn from(q: Qos) -> Self {
        match q {
            Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }
}

/// A client id unique to this Block's process: `crabby-<test>-<block>-<pid>`.
fn client_id(test: &str, block: &str) -> String {
    format!("crabby-{test}-{block}-{}", std::process::id())
}

/// Waits for the first connection (and subscriptions) of `net`; a clear error otherwise.
fn wait_connected(net: &net::Net, broker: &broker::Broker, block: &str, subs: bool) -> Result<()> {
    let timeout = broker.connect_timeout;
    net.wait_for(timeout, |s| {
        matches!(s.first, net::First::Refused(_))
            || (s.first == net::First::Connected && (!subs || s.subscribed))
    });
    let (first, subscribed, refused, last) = {
        let g = net.lock();
        (
            g.first.clone(),
            g.subscribed,
            g.refused_subscriptions.clone(),
            g.stats.last_error.clone(),
        )
    };
    let err = match first {
        net::First::Refused(code) => Some(Error::config(format!(
            "the broker {} refused the connection ({code}): check the user name and password given to .credentials()",
            broker.url
        ))),
        net::First::Pending => Some(Error::new(
            ErrorKind::Communication,
            format!(
                "cannot reach the broker {} within {timeout:?} ({}): check that it runs, the host and the port",
                broker.url,
                last.as_deref().unwrap_or("no answer")
            ),
        )),
        net::First::Connected if !subscribed => Some(Error::new(
            ErrorKind::Timeout,
            format!("the broker {} did not acknowledge the subscriptions within {timeout:?}", broker.url),
        )),
        net::First::Connected if !refused.is_empty() => Some(Error::new(
            ErrorKind::NotAllowed,
            format!(
                "the broker {} refused the subscriptions to {refused:?}: check its access control list",
                broker.url
            ),
        )),
        net::First::Connected => None,
    };
    match err {
        Some(e) => {
            net.shutdown(std::time::Duration::from_millis(200));
            Err(e.with_origin(block))
        }
        None => Ok(()),
    }
}
