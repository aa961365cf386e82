//! [`MqttSubscribe`]: receives a stream from a broker and sends its samples on its links.

use crate::broker::{broker_methods, Broker};
use crate::net::{Net, NetConfig, NetStats, Out};
use crate::payload::{check_topic_level, Batch, Descriptor, StopMessage, Topics};
use crate::{client_id, Qos};
use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Settings};
use std::path::PathBuf;
use std::time::Duration;

/// Receives the stream `crabby/<test>/<stream>` and sends each of its samples on its output
/// links, as if the source were local.
///
/// Each sample carries the stream's labels and the time label (`t(s)` by default): the
/// source's time, shifted onto this test's clock (`t0` of the source minus `t0` of this
/// test, from the wall clocks: keep the machines' clocks synchronised, e.g. with NTP), or
/// as sent with [`raw_time`](Self::raw_time).
///
/// Losses are never silent: a gap in the batch numbers is counted and logged with the
/// samples it held; a duplicate (a batch sent again after an outage) is dropped and counted;
/// a payload that does not decode is rejected, counted and logged. See the
/// [crate docs](crate).
///
/// ```
/// use crabby_mqtt::MqttSubscribe;
/// let furnace = MqttSubscribe::new("mqtt://192.168.1.10:1883")
///     .test("furnace-rig")
///     .stream("furnace")
///     .labels(["T(°C)"])
///     .credentials("lab", "secret");
/// # let _ = furnace;
/// ```
#[derive(Debug)]
pub struct MqttSubscribe {
    pub(crate) broker: Broker,
    pub(crate) namespace: Option<String>,
    stream: Option<String>,
    labels: Option<Vec<Label>>,
    time_label: Label,
    raw_time: bool,
    qos: Qos,
    remote_stop: bool,
    remote_pause: bool,
    end_with_source: bool,
    stats_file: Option<PathBuf>,
    run: Option<Run>,
    net: Option<Net>,
}

#[derive(Debug)]
struct Run {
    topics: Topics,
    id: String,
    next_seq: Option<u64>,
    next_sample: Option<u64>,
    src_t0: Option<f64>,
    stats: SubscribeStats,
    /// The client options, to end the persistent session in `finish`.
    options: rumqttc::MqttOptions,
    remote_stopped: bool,
    pause: crate::remote_pause::RemotePause,
    pause_topic: String,
    source_ended: bool,
}

/// What the subscriber counts (written as JSON to its stats file at the end).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SubscribeStats {
    /// The MQTT client id it used (`crabby-<test>-<block>-<pid>`).
    pub client_id: String,
    /// Batches received and accepted.
    pub batches: u64,
    /// Samples sent on the links.
    pub samples: u64,
    /// Batches missing between received ones (a gap in `seq`).
    pub lost_batches: u64,
    /// Samples in those batches (from `i0`, when the payload has it).
    pub lost_samples: u64,
    /// Samples published before this subscriber's first batch (it joined late).
    pub missed_at_start: u64,
    /// Batches received twice (re-sent after an outage), dropped.
    pub duplicates: u64,
    /// Payloads that did not decode, dropped.
    pub rejected: u64,
    /// Times the source went silent (its last will: `offline`).
    pub source_offline: u64,
    /// The source's descriptor, once received.
    pub descriptor: Option<Descriptor>,
    /// The connection's counters.
    pub net: NetStats,
}

impl MqttSubscribe {
    /// A subscriber to the broker at `url` (`mqtt://host:port` or `mqtts://host:port`).
    /// Give it a [`stream`](Self::stream) and [`credentials`](Self::credentials) (or
    /// [`anonymous`](Self::anonymous)).
    pub fn new(url: &str) -> MqttSubscribe {
        MqttSubscribe {
            broker: Broker::new(url),
            namespace: None,
            stream: None,
            labels: None,
            time_label: Label::new("t(s)"),
            raw_time: false,
            qos: Qos::AtLeastOnce,
            remote_stop: false,
            remote_pause: false,
            end_with_source: false,
            stats_file: None,
            run: None,
            net: None,
        }
    }

    /// The stream to receive.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// The labels the stream carries, besides the time label: declares them to the graph
    /// check (so a typo downstream is caught before the start), and a descriptor that
    /// disagrees is logged.
    pub fn labels<L: Into<Label>>(mut self, labels: impl IntoIterator<Item = L>) -> Self {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }

    /// The label given to each sample's time (default `t(s)`).
    pub fn time_label(mut self, label: impl Into<Label>) -> Self {
        self.time_label = label.into();
        self
    }

    /// Keeps the source's times (seconds since the source's `t0`) instead of shifting
    /// them onto this test's clock.
    pub fn raw_time(mut self) -> Self {
        self.raw_time = true;
        self
    }

    /// QoS of the subscription (default [`Qos::AtLeastOnce`]).
    pub fn qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// Opt-in: relays this test's pauses to the other machines of the namespace on
    /// `crabby/<test>/pause`, and pauses this test when another one pauses (see
    /// [`crate::remote_pause`]). QoS 1.
    pub fn remote_pause(mut self, yes: bool) -> Self {
        self.remote_pause = yes;
        self
    }

    /// Opt-in: stop this test when another one publishes a stop on `crabby/<test>/stop`,
    /// and publish one there when this test stops.
    pub fn remote_stop(mut self, yes: bool) -> Self {
        self.remote_stop = yes;
        self
    }

    /// End this Block (and so this test) when the source's test ends (default: no).
    pub fn end_with_source(mut self, yes: bool) -> Self {
        self.end_with_source = yes;
        self
    }

    /// Writes the [`SubscribeStats`] as JSON to this file when the Block ends.
    pub fn stats_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.stats_file = Some(path.into());
        self
    }

    broker_methods!();

    fn handle(&mut self, ctx: &mut Context, p: rumqttc::Publish) -> Result<Flow> {
        let Some(r) = self.run.as_mut() else {
            return Ok(Flow::Continue);
        };
        if p.topic == r.topics.data {
            let batch = match Batch::decode(&p.payload) {
                Ok(b) => b,
                Err(e) => {
                    r.stats.rejected += 1;
                    let start =
                        String::from_utf8_lossy(&p.payload[..p.payload.len().min(60)]).into_owned();
                    log::warn!(
                        "rejected a payload on {} ({e}): {start:?}; {} rejected so far",
                        p.topic,
                        r.stats.rejected
                    );
                    return Ok(Flow::Continue);
                }
            };
            if let Some(expected) = r.next_seq {
                if batch.seq < expected {
                    r.stats.duplicates += 1;
                    log::debug!("dropped batch {} (already received)", batch.seq);
                    return Ok(Flow::Continue);
                }
                if batch.seq > expected {
                    let lost_b = batch.seq - expected;
                    let lost_s = match (batch.i0, r.next_sample) {
                        (Some(i0), Some(n)) => i0.saturating_sub(n),
                        _ => 0,
                    };
                    r.stats.lost_batches += lost_b;
                    r.stats.lost_samples += lost_s;
                    log::warn!(
                        "gap in stream {}: {lost_b} batches ({lost_s} samples) lost before batch {}; {} samples lost so far",
                        r.topics.data,
                        batch.seq,
                        r.stats.lost_samples
                    );
                }
            } else if batch.seq > 0 || batch.i0.unwrap_or(0) > 0 {
                let i0 = batch.i0.unwrap_or(0);
                r.stats.missed_at_start += i0;
                log::warn!(
                    "joined stream {} at batch {} (sample {i0}): the earlier samples were published before this subscriber connected",
                    r.topics.data,
                    batch.seq
                );
            }
            r.next_seq = Some(batch.seq + 1);
            r.next_sample = batch.i0.map(|i| i + batch.len() as u64);
            r.stats.batches += 1;
            let shift = match (self.raw_time, batch.t0, ctx.t0_epoch_ns()) {
                (false, Some(src), Some(local)) => src - local as f64 * 1e-9,
                _ => 0.0,
            };
            for s in batch.samples(&self.time_label, shift) {
                ctx.send(&s)?;
                r.stats.samples += 1;
            }
        } else if p.topic == r.topics.desc {
            match serde_json::from_slice::<Descriptor>(&p.payload) {
                Ok(d) => {
                    if d.t0.is_some() && d.t0 != r.src_t0 {
                        if r.src_t0.is_some() {
                            log::info!("the source of {} started a new run", r.topics.data);
                        }
                        r.src_t0 = d.t0;
                        r.next_seq = None;
                        r.next_sample = None;
                    }
                    if let Some(want) = &self.labels {
                        let missing: Vec<&Label> = want
                            .iter()
                            .filter(|l| {
                                **l != self.time_label && !d.labels.iter().any(|x| x == l.as_str())
                            })
                            .collect();
                        if !missing.is_empty() {
                            log::warn!(
                                "stream {} does not carry {missing:?} (it carries {:?})",
                                r.topics.data,
                                d.labels
                            );
                        }
                    }
                    if r.stats.descriptor.is_none() {
                        log::info!(
                            "stream {} from {} ({:?}): labels {:?}, units {:?}, {}",
                            r.topics.data,
                            d.publisher,
                            d.sources,
                            d.labels,
                            d.units,
                            d.encoding
                        );
                    }
                    r.stats.descriptor = Some(d);
                }
                Err(e) => {
                    r.stats.rejected += 1;
                    log::warn!("rejected a malformed descriptor on {}: {e}", p.topic);
                }
            }
        } else if p.topic == r.topics.status {
            let status = String::from_utf8_lossy(&p.payload).into_owned();
            match (status.as_str(), p.retain) {
                ("offline", false) => {
                    r.stats.source_offline += 1;
                    log::warn!(
                        "the source of {} went silent: its connection to the broker dropped (last will)",
                        r.topics.data
                    );
                }
                ("online", false) => log::info!("the source of {} is online", r.topics.data),
                ("ended", false) => {
                    log::info!("the source of {} ended", r.topics.data);
                    r.source_ended = true;
                }
                (s, true) => log::info!("the source of {} is {s} (retained status)", r.topics.data),
                (s, false) => log::warn!("unknown status {s:?} on {}", p.topic),
            }
        } else if p.topic == r.pause_topic {
            if let Err(e) = r.pause.on_message(ctx, &r.id, &p.payload) {
                r.stats.rejected += 1;
                log::warn!("ignored a malformed pause message on {}: {e}", p.topic);
            }
        } else if p.topic == r.topics.stop {
            match serde_json::from_slice::<StopMessage>(&p.payload) {
                Ok(m) if m.from == r.id => {}
                Ok(m) => {
                    if !r.remote_stopped && !ctx.stopping() {
                        log::warn!(
                            "remote stop from {}: {}; stopping this test",
                            m.from,
                            m.cause
                        );
                        r.remote_stopped = true;
                        ctx.stop_test();
                    }
                }
                Err(e) => {
                    r.stats.rejected += 1;
                    log::warn!("ignored a malformed stop message on {}: {e}", p.topic);
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn drain(&mut self, ctx: &mut Context, wait: Duration) -> Result<Flow> {
        let first = match self.net.as_ref() {
            Some(net) => net.incoming.recv_timeout(wait).ok(),
            None => None,
        };
        let Some(first) = first else {
            return Ok(Flow::Continue);
        };
        self.handle(ctx, first)?;
        while let Some(p) = self.net.as_ref().and_then(|n| n.incoming.try_recv().ok()) {
            self.handle(ctx, p)?;
        }
        Ok(Flow::Continue)
    }
}

/// Ends the persistent session on the broker (a clean-session connection with the same
/// client id), so nothing of this run stays queued there. Best effort, at most 1 s.
fn end_session(options: &rumqttc::MqttOptions) {
    let mut o = options.clone();
    o.set_clean_session(true);
    let net = Net::start(NetConfig {
        options: o,
        backoff: (Duration::from_millis(100), Duration::from_millis(100)),
        window: 1,
        subscriptions: Vec::new(),
        on_connect: Vec::new(),
        name: "end-session".into(),
    });
    match net {
        Ok(net) => {
            if !net.wait_for(Duration::from_secs(1), |s| {
                s.first != crate::net::First::Pending
            }) {
                log::debug!("could not end the persistent session on the broker");
            }
            net.shutdown(Duration::from_millis(300));
        }
        Err(e) => log::debug!("could not end the persistent session: {e}"),
    }
}

impl Block for MqttSubscribe {
    fn kind(&self) -> &str {
        "MqttSubscribe"
    }

    fn default_settings(&self) -> Settings {
        // It waits on the network itself (event-driven).
        Settings::new().free_run()
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        self.labels.as_ref().map(|l| {
            let mut v = vec![self.time_label.clone()];
            v.extend(l.iter().filter(|x| **x != self.time_label).cloned());
            v
        })
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let block = graph.name();
        self.broker.check(block)?;
        let err = |m: String| Error::config(m).with_origin(block);
        let Some(stream) = &self.stream else {
            return Err(err(
                "no stream: call .stream(\"name\") to say what to receive".into(),
            ));
        };
        check_topic_level("stream", stream).map_err(err)?;
        if let Some(ns) = &self.namespace {
            check_topic_level("test", ns).map_err(err)?;
        }
        if graph.n_outputs() == 0 && !self.remote_stop && !self.end_with_source {
            return Err(err(
                "the subscriber has no output link; link it to the Blocks that use the stream"
                    .into(),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "receive stream \"{}\" from {} (QoS {}, time {}, remote stop {})",
            self.stream.as_deref().unwrap_or("?"),
            self.broker.url,
            self.qos as u8,
            if self.raw_time {
                "as sent"
            } else {
                "on this test's clock"
            },
            if self.remote_stop { "on" } else { "off" }
        )
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        let name = ctx.name().to_owned();
        let stream = self
            .stream
            .clone()
            .ok_or_else(|| Error::config("no stream configured").with_origin(name.as_str()))?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| ctx.test_name().to_owned());
        check_topic_level("test", &namespace)
            .map_err(|m| Error::config(m).with_origin(name.as_str()))?;
        let topics = Topics::new(&namespace, &stream);
        let id = client_id(ctx.test_name(), &name);
        let mut options = self.broker.options(&id, &name)?;
        // A persistent session: the broker keeps our subscriptions and queues the stream for
        // us while we reconnect (and across its own restart, if it persists sessions).
        options.set_clean_session(false);
        let mut subscriptions = vec![
            (topics.desc.clone(), rumqttc::QoS::AtLeastOnce),
            (topics.status.clone(), rumqttc::QoS::AtLeastOnce),
            (topics.data.clone(), self.qos.into()),
        ];
        if self.remote_stop {
            subscriptions.push((topics.stop.clone(), rumqttc::QoS::AtLeastOnce));
        }
        let pause_topic = topics.stop.trim_end_matches("/stop").to_owned() + "/pause";
        if self.remote_pause {
            subscriptions.push((pause_topic.clone(), rumqttc::QoS::AtLeastOnce));
        }
        let net = Net::start(NetConfig {
            options: options.clone(),
            backoff: self.broker.backoff,
            window: 16,
            subscriptions,
            on_connect: Vec::new(),
            name: name.clone(),
        })
        .map_err(|e| {
            Error::io("cannot start the MQTT client thread", e).with_origin(name.as_str())
        })?;
        crate::wait_connected(&net, &self.broker, &name, true)?;
        log::info!(
            "connected to {}; receiving {}",
            self.broker.url,
            topics.data
        );
        self.net = Some(net);
        self.run = Some(Run {
            topics,
            id: id.clone(),
            next_seq: None,
            next_sample: None,
            src_t0: None,
            stats: SubscribeStats {
                client_id: id,
                ..SubscribeStats::default()
            },
            options,
            remote_stopped: false,
            pause: Default::default(),
            pause_topic,
            source_ended: false,
        });
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.drain(ctx, Duration::from_millis(20))?;
        if self.remote_pause {
            if let (Some(r), Some(net)) = (self.run.as_mut(), self.net.as_ref()) {
                r.pause.relay_local(ctx, &r.id, &r.pause_topic, net);
            }
        }
        if self.end_with_source && self.run.as_ref().is_some_and(|r| r.source_ended) {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(net) = self.net.take() else {
            return Ok(());
        };
        // What already arrived still reaches the links.
        while let Ok(p) = net.incoming.try_recv() {
            self.handle(ctx, p)?;
        }
        let Some(r) = self.run.as_mut() else {
            return Ok(());
        };
        r.pause.release(ctx);
        if self.remote_stop && !r.remote_stopped {
            let msg = StopMessage {
                from: r.id.clone(),
                cause: format!("test \"{}\" stopped", ctx.test_name()),
            };
            net.lock().push(Out::new(
                r.topics.stop.clone(),
                serde_json::to_vec(&msg).unwrap_or_default(),
                rumqttc::QoS::AtLeastOnce,
                false,
                0,
            ));
            net.wake();
            if !net.wait_for(Duration::from_secs(1), |s| s.flushed()) {
                log::warn!("the remote stop could not be published (no broker)");
            }
        }
        r.stats.net = net.lock().stats_now();
        net.shutdown(Duration::from_millis(500));
        end_session(&r.options);
        let s = &r.stats;
        let summary = format!(
            "received {} samples in {} batches; lost {} batches ({} samples); {} joined late; {} duplicates and {} rejected payloads dropped; source went silent {} times; {} outages ({:.2} s without broker){}",
            s.samples,
            s.batches,
            s.lost_batches,
            s.lost_samples,
            s.missed_at_start,
            s.duplicates,
            s.rejected,
            s.source_offline,
            s.net.outages,
            s.net.outage_s,
            if r.remote_stopped { "; stopped by a remote stop" } else { "" }
        );
        log::info!("{summary}");
        ctx.report_note(summary);
        if let Some(path) = &self.stats_file {
            let text = serde_json::to_string_pretty(&r.stats).unwrap_or_default();
            std::fs::write(path, text).map_err(|e| {
                Error::io(format!("cannot write the stats file {}", path.display()), e)
                    .with_origin(ctx.name())
            })?;
        }
        Ok(())
    }
}
