//! [`MqttPublish`]: sends what it receives to a broker, as one labelled stream.

use crate::broker::{broker_methods, Broker};
use crate::net::{Net, NetConfig, NetStats, Out};
use crate::payload::{
    check_topic_level, type_name, unit_of, Batch, Descriptor, Encoding, StopMessage, Topics,
    RESERVED,
};
use crate::{client_id, Qos};
use crabby::{Block, Context, Error, ErrorKind, Flow, GraphView, Label, Result, Settings};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Publishes the samples it receives as the stream `crabby/<test>/<stream>`.
///
/// Link the Blocks whose labels you want to share to it. Each received sample goes into the
/// current batch (its declared labels only, its time from the time label `t(s)`); a batch
/// is published when it holds [`batch`](Self::batch)`.0` samples or is `batch.1` old.
/// See the [crate docs](crate) for the payload, the buffering during an outage and the
/// remote stop.
///
/// ```
/// use crabby_mqtt::MqttPublish;
/// let publish = MqttPublish::new("mqtt://192.168.1.10:1883")
///     .stream("furnace", ["t(s)", "T(°C)"])
///     .credentials("lab", "secret");
/// # let _ = publish;
/// ```
#[derive(Debug)]
pub struct MqttPublish {
    pub(crate) broker: Broker,
    pub(crate) namespace: Option<String>,
    stream: Option<(String, Vec<Label>)>,
    time_label: Label,
    qos: Qos,
    encoding: Encoding,
    batch_max: usize,
    batch_age: Duration,
    buffer_samples: u64,
    window: u16,
    remote_stop: bool,
    remote_pause: bool,
    flush_timeout: Duration,
    stats_file: Option<PathBuf>,
    run: Option<Run>,
    net: Option<Net>,
}

/// What exists only in the Block's process.
#[derive(Debug, Clone)]
struct Run {
    topics: Topics,
    labels: Vec<Label>,
    batch: Batch,
    batch_started: Option<Instant>,
    next_seq: u64,
    next_sample: u64,
    received: u64,
    dropped_samples: u64,
    dropped_batches: u64,
    dropped_maybe_delivered: u64,
    max_pending: u64,
    typed: bool,
    /// Time of the first sample, until the rate is known.
    first_t: Option<f64>,
    rated: bool,
    descriptor: Descriptor,
    id: String,
    remote_stopped: Option<String>,
    pause: crate::remote_pause::RemotePause,
    pause_topic: String,
    enc: Vec<u8>,
}

/// What the publisher writes in its stats file at the end (JSON).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PublishStats {
    /// Samples received from its links.
    pub received: u64,
    /// Samples put in batches (all received ones).
    pub batched: u64,
    /// Batches made.
    pub batches: u64,
    /// Samples dropped because the buffer was full during an outage.
    pub dropped_samples: u64,
    /// Batches dropped for the same reason.
    pub dropped_batches: u64,
    /// Of the dropped samples, those sent once before the connection dropped without an
    /// acknowledgement: they may have reached the broker (the subscriber's count is exact).
    pub dropped_maybe_delivered: u64,
    /// Samples still undelivered when the Block ended (broker unreachable at the end).
    pub undelivered_samples: u64,
    /// Most samples buffered at once.
    pub max_buffered_samples: u64,
    /// The connection's counters.
    pub net: NetStats,
}

impl MqttPublish {
    /// A publisher to the broker at `url` (`mqtt://host:port` or `mqtts://host:port`).
    /// Give it a [`stream`](Self::stream) and [`credentials`](Self::credentials) (or
    /// [`anonymous`](Self::anonymous)). Mistakes are reported by the graph check, naming
    /// the Block.
    pub fn new(url: &str) -> MqttPublish {
        MqttPublish {
            broker: Broker::new(url),
            namespace: None,
            stream: None,
            time_label: Label::new("t(s)"),
            qos: Qos::AtLeastOnce,
            encoding: Encoding::Json,
            batch_max: 100,
            batch_age: Duration::from_millis(20),
            buffer_samples: 1_000_000,
            window: 64,
            remote_stop: false,
            remote_pause: false,
            flush_timeout: Duration::from_secs(2),
            stats_file: None,
            run: None,
            net: None,
        }
    }

    /// The stream's name and the labels it carries (the time label need not be listed).
    pub fn stream<L: Into<Label>>(
        mut self,
        name: impl Into<String>,
        labels: impl IntoIterator<Item = L>,
    ) -> Self {
        self.stream = Some((name.into(), labels.into_iter().map(Into::into).collect()));
        self
    }

    /// The label holding each sample's time in seconds since the test's start (default
    /// `t(s)`); a sample without it is stamped with the time the publisher received it.
    pub fn time_label(mut self, label: impl Into<Label>) -> Self {
        self.time_label = label.into();
        self
    }

    /// QoS of the data (default [`Qos::AtLeastOnce`]; control messages always use it).
    pub fn qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// JSON (default) or the compact binary encoding.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// A batch is published once it holds `max_samples` or is `max_age` old (default 100
    /// samples, 20 ms).
    pub fn batch(mut self, max_samples: usize, max_age: Duration) -> Self {
        self.batch_max = max_samples;
        self.batch_age = max_age;
        self
    }

    /// At most this many samples wait for the broker (default 1 000 000); beyond, the
    /// oldest batches are dropped and counted.
    pub fn buffer_samples(mut self, n: u64) -> Self {
        self.buffer_samples = n;
        self
    }

    /// At most this many messages await the broker's acknowledgement (default 64).
    pub fn window(mut self, n: u16) -> Self {
        self.window = n;
        self
    }

    /// Opt-in: relays this test's pauses to the other machines of the namespace on
    /// `crabby/<test>/pause`, and pauses this test when another one pauses (see
    /// [`crate::remote_pause`]). QoS 1.
    pub fn remote_pause(mut self, yes: bool) -> Self {
        self.remote_pause = yes;
        self
    }

    /// Opt-in: when this test stops, publish a stop on `crabby/<test>/stop` (and stop this
    /// test when another one publishes it there).
    pub fn remote_stop(mut self, yes: bool) -> Self {
        self.remote_stop = yes;
        self
    }

    /// How long `finish` waits for the broker to acknowledge what is buffered (default 2 s;
    /// keep it under the test's finish grace period).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Writes the [`PublishStats`] as JSON to this file when the Block ends.
    pub fn stats_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.stats_file = Some(path.into());
        self
    }

    broker_methods!();

    fn name_err(&self, block: &str, msg: String) -> Error {
        Error::config(msg).with_origin(block)
    }

    fn stats(&self) -> PublishStats {
        let r = self.run.as_ref();
        let (undelivered, netstats) = match &self.net {
            Some(n) => {
                let g = n.lock();
                (g.pending_samples(), g.stats_now())
            }
            None => (0, NetStats::default()),
        };
        PublishStats {
            received: r.map_or(0, |r| r.received),
            batched: r.map_or(0, |r| r.next_sample),
            batches: r.map_or(0, |r| r.next_seq),
            dropped_samples: r.map_or(0, |r| r.dropped_samples),
            dropped_batches: r.map_or(0, |r| r.dropped_batches),
            dropped_maybe_delivered: r.map_or(0, |r| r.dropped_maybe_delivered),
            undelivered_samples: undelivered,
            max_buffered_samples: r.map_or(0, |r| r.max_pending),
            net: netstats,
        }
    }
}

impl Block for MqttPublish {
    fn kind(&self) -> &str {
        "MqttPublish"
    }

    fn default_settings(&self) -> Settings {
        // It waits on its inputs itself (event-driven).
        Settings::new().free_run()
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(Vec::new())
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let block = graph.name();
        self.broker.check(block)?;
        let Some((stream, labels)) = &self.stream else {
            return Err(self.name_err(
                block,
                "no stream: call .stream(\"name\", [labels]) to say what to publish".into(),
            ));
        };
        check_topic_level("stream", stream).map_err(|m| self.name_err(block, m))?;
        if let Some(ns) = &self.namespace {
            check_topic_level("test", ns).map_err(|m| self.name_err(block, m))?;
        }
        if labels.iter().all(|l| *l == self.time_label) {
            return Err(self.name_err(
                block,
                format!("stream \"{stream}\" has no label besides its time label; list the labels to publish"),
            ));
        }
        for l in labels {
            if RESERVED.contains(&l.as_str()) {
                return Err(self.name_err(
                    block,
                    format!("label \"{l}\" is a reserved key of the payload ({RESERVED:?}); rename it with a modifier on the link"),
                ));
            }
            if *l != self.time_label {
                graph.require_label(l, &format!("stream \"{stream}\""))?;
            }
        }
        if graph.inputs().is_empty() {
            return Err(self.name_err(
                block,
                "the publisher has no input link; link the Blocks whose samples it publishes"
                    .into(),
            ));
        }
        if self.batch_max == 0 || self.batch_age.is_zero() {
            return Err(self.name_err(
                block,
                "the batch size and age must be above zero (e.g. .batch(100, 20 ms))".into(),
            ));
        }
        if self.buffer_samples < self.batch_max as u64 {
            return Err(self.name_err(
                block,
                format!(
                    "the buffer ({} samples) is smaller than one batch ({}); raise .buffer_samples()",
                    self.buffer_samples, self.batch_max
                ),
            ));
        }
        if self.window == 0 {
            return Err(self.name_err(block, "the window must be at least 1".into()));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let (s, l) = self
            .stream
            .as_ref()
            .map(|(s, l)| (s.as_str(), l.iter().map(|l| l.to_string()).collect()))
            .unwrap_or(("?", Vec::new()));
        format!(
            "publish stream \"{s}\" {l:?} to {} (QoS {}, {}, batches of {} or {:?}, buffer {} samples, remote stop {})",
            self.broker.url,
            self.qos as u8,
            self.encoding.as_str(),
            self.batch_max,
            self.batch_age,
            self.buffer_samples,
            if self.remote_stop { "on" } else { "off" }
        )
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        let name = ctx.name().to_owned();
        let (stream, declared) = self
            .stream
            .clone()
            .ok_or_else(|| Error::config("no stream configured").with_origin(name.as_str()))?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| ctx.test_name().to_owned());
        check_topic_level("test", &namespace).map_err(|m| self.name_err(&name, m))?;
        let topics = Topics::new(&namespace, &stream);
        let labels: Vec<Label> = declared
            .into_iter()
            .filter(|l| *l != self.time_label)
            .collect();
        let descriptor = Descriptor {
            crabby_mqtt: 1,
            test: namespace.clone(),
            stream: stream.clone(),
            publisher: name.clone(),
            sources: ctx.input_senders().iter().map(|s| s.to_string()).collect(),
            time_label: self.time_label.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            units: labels.iter().map(|l| unit_of(l)).collect(),
            types: None,
            rate_hz: None,
            encoding: self.encoding.as_str().into(),
            qos: self.qos as u8,
            batch_max: self.batch_max,
            t0: None,
        };
        let id = client_id(ctx.test_name(), &name);
        let mut options = self.broker.options(&id, &name)?;
        options.set_last_will(rumqttc::LastWill::new(
            topics.status.clone(),
            "offline",
            rumqttc::QoS::AtLeastOnce,
            true,
        ));
        let mut subscriptions = Vec::new();
        if self.remote_stop {
            subscriptions.push((topics.stop.clone(), rumqttc::QoS::AtLeastOnce));
        }
        let pause_topic = topics.stop.trim_end_matches("/stop").to_owned() + "/pause";
        if self.remote_pause {
            subscriptions.push((pause_topic.clone(), rumqttc::QoS::AtLeastOnce));
        }
        let desc_json = serde_json::to_vec(&descriptor).unwrap_or_default();
        let net = Net::start(NetConfig {
            options,
            backoff: self.broker.backoff,
            window: self.window,
            subscriptions,
            on_connect: vec![
                Out::new(
                    topics.desc.clone(),
                    desc_json,
                    rumqttc::QoS::AtLeastOnce,
                    true,
                    0,
                ),
                Out::new(
                    topics.status.clone(),
                    b"online".to_vec(),
                    rumqttc::QoS::AtLeastOnce,
                    true,
                    0,
                ),
            ],
            name: name.clone(),
        })
        .map_err(|e| {
            Error::io("cannot start the MQTT client thread", e).with_origin(name.as_str())
        })?;
        crate::wait_connected(&net, &self.broker, &name, true)?;
        log::info!(
            "connected to {}; publishing {:?} on {}",
            self.broker.url,
            descriptor.labels,
            topics.data
        );
        self.run = Some(Run {
            batch: Batch::new(0, 0, None, &labels),
            topics,
            labels,
            batch_started: None,
            next_seq: 0,
            next_sample: 0,
            received: 0,
            dropped_samples: 0,
            dropped_batches: 0,
            dropped_maybe_delivered: 0,
            max_pending: 0,
            typed: false,
            first_t: None,
            rated: false,
            descriptor,
            id,
            remote_stopped: None,
            pause: Default::default(),
            pause_topic,
            enc: Vec::new(),
        });
        self.net = Some(net);
        Ok(())
    }

    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        let t0 = ctx.t0_epoch_ns().map(|ns| ns as f64 * 1e-9);
        if let Some(r) = &mut self.run {
            r.descriptor.t0 = t0;
            r.batch.t0 = t0;
        }
        self.publish_descriptor();
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let deadline = self
            .run
            .as_ref()
            .and_then(|r| r.batch_started)
            .map(|s| s + self.batch_age);
        let timeout = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_millis(50),
        };
        ctx.wait(timeout);
        self.take_inputs(ctx);
        let due = self
            .run
            .as_ref()
            .and_then(|r| r.batch_started)
            .is_some_and(|s| s.elapsed() >= self.batch_age);
        if due {
            self.flush_batch();
        }
        self.check_remote_stop(ctx);
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        if self.run.is_none() {
            return Ok(());
        }
        // Everything sent before the stop is published.
        let per_link = ctx.drain_until_ended(Duration::from_millis(500));
        for s in per_link.into_iter().flatten() {
            self.add_sample(ctx, &s);
        }
        self.flush_batch();
        self.check_remote_stop(ctx);
        if let Some(r) = self.run.as_mut() {
            r.pause.release(ctx);
        }
        {
            let Some(net) = self.net.as_ref() else {
                return Ok(());
            };
            let Some(r) = self.run.as_ref() else {
                return Ok(());
            };
            if self.remote_stop && r.remote_stopped.is_none() {
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
            }
            net.lock().push(Out::new(
                r.topics.status.clone(),
                b"ended".to_vec(),
                rumqttc::QoS::AtLeastOnce,
                true,
                0,
            ));
            net.wake();
            let flushed = net.wait_for(self.flush_timeout, |s| s.flushed());
            let stats = self.stats();
            net.shutdown(Duration::from_millis(500));
            self.report(ctx, &stats, flushed)
        }
    }
}

impl MqttPublish {
    fn take_inputs(&mut self, ctx: &mut Context) {
        let mut got = Vec::new();
        ctx.recv_each(|_, s| got.push(s));
        for s in &got {
            self.add_sample(ctx, s);
        }
    }

    fn add_sample(&mut self, ctx: &Context, s: &crabby::Sample) {
        let Some(r) = self.run.as_mut() else { return };
        r.received += 1;
        if !r.labels.iter().any(|l| s.contains(l)) {
            return; // nothing of this stream in it
        }
        if !r.typed {
            r.typed = true;
            r.descriptor.types = Some(
                r.labels
                    .iter()
                    .map(|l| type_name(s.get(l)).to_owned())
                    .collect(),
            );
            self.publish_descriptor();
        }
        let r = self.run.as_mut().expect("run");
        let t = s.get_f64(&self.time_label).unwrap_or_else(|| ctx.t());
        if r.batch.is_empty() {
            r.batch_started = Some(Instant::now());
        }
        r.batch.push(t, s);
        if r.batch.len() >= self.batch_max {
            self.flush_batch();
        }
    }

    fn publish_descriptor(&self) {
        let Some(r) = &self.run else { return };
        let json = serde_json::to_vec(&r.descriptor).unwrap_or_default();
        if let Some(net) = &self.net {
            net.lock().set_on_connect(0, json);
            net.wake();
        }
    }

    fn flush_batch(&mut self) {
        let Some(r) = self.run.as_mut() else { return };
        if r.batch.is_empty() {
            return;
        }
        let n = r.batch.len() as u64;
        if !r.rated {
            // The stream's rate, measured over its first samples (at least 100 or 1 s).
            let first = *r.first_t.get_or_insert(r.batch.t[0]);
            let last = r.batch.t[r.batch.len() - 1];
            let count = r.next_sample + n;
            if (count >= 100 || last - first >= 1.0) && last > first {
                let hz = (count - 1) as f64 / (last - first);
                r.descriptor.rate_hz = Some((hz * 1000.0).round() / 1000.0);
                r.rated = true;
                if let Some(net) = &self.net {
                    net.lock()
                        .set_on_connect(0, serde_json::to_vec(&r.descriptor).unwrap_or_default());
                }
            }
        }
        let next = Batch::new(r.next_seq + 1, r.next_sample + n, r.batch.t0, &r.labels);
        let batch = std::mem::replace(&mut r.batch, next);
        r.next_seq += 1;
        r.next_sample += n;
        r.batch_started = None;
        batch.encode(self.encoding, &mut r.enc);
        let out = Out::new(
            r.topics.data.clone(),
            r.enc.clone(),
            self.qos.into(),
            false,
            n,
        );
        {
            let Some(net) = self.net.as_ref() else { return };
            let mut g = net.lock();
            g.push(out);
            let dropped = g.trim(self.buffer_samples);
            let pending = g.pending_samples();
            drop(g);
            net.wake();
            r.max_pending = r.max_pending.max(pending);
            if dropped.messages > 0 {
                if r.dropped_batches == 0 {
                    log::warn!(
                        "buffer full ({} samples) while the broker is unreachable: dropping the oldest batches (counted)",
                        self.buffer_samples
                    );
                }
                r.dropped_batches += dropped.messages;
                r.dropped_samples += dropped.samples;
                r.dropped_maybe_delivered += dropped.maybe_delivered_samples;
            }
        }
    }

    fn check_remote_stop(&mut self, ctx: &mut Context) {
        if !self.remote_stop && !self.remote_pause {
            return;
        }
        let Some(r) = self.run.as_mut() else { return };
        {
            let Some(net) = self.net.as_ref() else { return };
            if self.remote_pause {
                r.pause.relay_local(ctx, &r.id, &r.pause_topic, net);
            }
            while let Ok(p) = net.incoming.try_recv() {
                if p.topic == r.pause_topic {
                    if let Err(e) = r.pause.on_message(ctx, &r.id, &p.payload) {
                        log::warn!("ignored a malformed pause message on {}: {e}", p.topic);
                    }
                    continue;
                }
                if p.topic != r.topics.stop {
                    continue;
                }
                match serde_json::from_slice::<StopMessage>(&p.payload) {
                    Ok(m) if m.from == r.id => {}
                    Ok(m) => {
                        if r.remote_stopped.is_none() && !ctx.stopping() {
                            log::warn!(
                                "remote stop from {}: {}; stopping this test",
                                m.from,
                                m.cause
                            );
                            r.remote_stopped = Some(m.from);
                            ctx.stop_test();
                        }
                    }
                    Err(e) => log::warn!("ignored a malformed stop message on {}: {e}", p.topic),
                }
            }
        }
    }

    fn report(&self, ctx: &Context, stats: &PublishStats, flushed: bool) -> Result<()> {
        let name = self
            .run
            .as_ref()
            .map(|r| r.descriptor.publisher.clone())
            .unwrap_or_default();
        let summary = format!(
            "published {} samples in {} batches; delivered {} samples; {} outages ({:.2} s without broker); {} messages re-sent; {} samples dropped (buffer full){}",
            stats.batched,
            stats.batches,
            stats.net.delivered_samples,
            stats.net.outages,
            stats.net.outage_s,
            stats.net.resent,
            stats.dropped_samples,
            if let Some(r) = self.run.as_ref().and_then(|r| r.remote_stopped.as_ref()) {
                format!("; stopped by a remote stop from {r}")
            } else {
                String::new()
            }
        );
        log::info!("{summary}");
        // The outage time and counts belong in the run report, beside the Block.
        ctx.report_note(summary);
        if let Some(path) = &self.stats_file {
            let text = serde_json::to_string_pretty(stats).unwrap_or_default();
            std::fs::write(path, text).map_err(|e| {
                Error::io(format!("cannot write the stats file {}", path.display()), e)
                    .with_origin(name.as_str())
            })?;
        }
        if !flushed {
            return Err(Error::new(
                ErrorKind::Communication,
                format!(
                    "{} samples were not delivered: the broker did not acknowledge them within {:?} of the stop ({})",
                    stats.undelivered_samples,
                    self.flush_timeout,
                    stats.net.last_error.as_deref().unwrap_or("no connection")
                ),
            )
            .with_origin(name.as_str()));
        }
        Ok(())
    }
}
