//! The network side of a bridge Block: one thread, started in the Block's `prepare`, that
//! runs the MQTT client's event loop on a single-threaded tokio runtime.
//!
//! The Block never talks to the client directly: it queues messages in an *outbox*
//! (shared, bounded by the Block) and rings a [`Notify`]; the thread hands them to the
//! client in order, at most `window` unacknowledged at a time, and removes each one only
//! once the broker acknowledged it (QoS 1) or it was written to the socket (QoS 0). When the
//! connection drops, every message not yet acknowledged goes back to "queued" and is sent
//! again after the reconnection (the client's own session state is not relied upon: it is
//! lost when the broker restarts). Nothing here runs in the coordinator.

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Outgoing, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One message waiting to be delivered.
#[derive(Debug)]
pub(crate) struct Out {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
    /// Samples it carries (0 for control messages).
    pub samples: u64,
    id: u64,
    state: OutState,
    /// Changed while in flight: send again once acknowledged.
    resend: bool,
    /// Handed to the client at least once (it may have reached the broker).
    sent_once: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    Queued,
    Submitted,
    Done,
}

impl Out {
    pub fn new(topic: String, payload: Vec<u8>, qos: QoS, retain: bool, samples: u64) -> Out {
        Out {
            topic,
            payload,
            qos,
            retain,
            samples,
            id: 0,
            state: OutState::Queued,
            resend: false,
            sent_once: false,
        }
    }
}

/// What [`Shared::trim`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Trimmed {
    pub messages: u64,
    pub samples: u64,
    /// Samples in dropped messages that had been sent once (unacknowledged).
    pub maybe_delivered_samples: u64,
}

/// State of the first connection, which `prepare` waits for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum First {
    Pending,
    Connected,
    /// The broker refused us (credentials, authorisation): retrying will not help.
    Refused(String),
}

/// Counters of the connection, for the log, the stats file and the tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NetStats {
    /// Successful connections (1 without outage).
    pub connections: u64,
    /// Times the connection was lost after being up.
    pub outages: u64,
    /// Total time without a connection after the first one, in seconds (the current outage
    /// included).
    pub outage_s: f64,
    /// Messages handed to the client again after a reconnection.
    pub resent: u64,
    /// Messages delivered (acknowledged by the broker for QoS 1).
    pub delivered: u64,
    /// Samples in delivered data messages.
    pub delivered_samples: u64,
    /// The last connection error, if any.
    pub last_error: Option<String>,
}

pub(crate) struct Shared {
    pub outbox: VecDeque<Out>,
    next_id: u64,
    pub connected: bool,
    pub first: First,
    /// Subscriptions acknowledged on the current connection.
    pub subscribed: bool,
    pub refused_subscriptions: Vec<String>,
    pub stats: NetStats,
    outage_since: Option<Instant>,
    pub shutdown: bool,
    pub done: bool,
    /// Published first at every connection (descriptor, status): replaced, not queued.
    pub on_connect: Vec<Out>,
}

impl Shared {
    /// Queues a message.
    pub fn push(&mut self, mut out: Out) {
        out.id = self.next_id;
        self.next_id += 1;
        self.outbox.push_back(out);
    }

    /// Replaces the payload of the `i`-th message published at every connection, and sends
    /// it again.
    pub fn set_on_connect(&mut self, i: usize, payload: Vec<u8>) {
        if let Some(o) = self.on_connect.get_mut(i) {
            o.payload = payload;
            match o.state {
                OutState::Done => {
                    o.state = OutState::Queued;
                }
                OutState::Submitted => o.resend = true,
                OutState::Queued => {}
            }
        }
    }

    /// Samples in data messages not yet delivered.
    pub fn pending_samples(&self) -> u64 {
        self.outbox.iter().map(|o| o.samples).sum()
    }

    /// Drops data messages waiting to be (re)sent until at most `limit` samples are
    /// pending: first the oldest never sent, then the oldest sent once without an
    /// acknowledgement (those may have reached the broker). Returns what was dropped.
    pub fn trim(&mut self, limit: u64) -> Trimmed {
        let mut pending = self.pending_samples();
        let mut t = Trimmed::default();
        for sent_before in [false, true] {
            while pending > limit {
                let Some(i) = self.outbox.iter().position(|o| {
                    o.samples > 0 && o.state == OutState::Queued && o.sent_once == sent_before
                }) else {
                    break;
                };
                if let Some(o) = self.outbox.remove(i) {
                    pending -= o.samples;
                    t.messages += 1;
                    t.samples += o.samples;
                    if sent_before {
                        t.maybe_delivered_samples += o.samples;
                    }
                }
            }
        }
        t
    }

    /// Whether everything queued was delivered.
    pub fn flushed(&self) -> bool {
        self.outbox.is_empty()
    }

    /// The stats, with the current outage counted.
    pub fn stats_now(&self) -> NetStats {
        let mut s = self.stats.clone();
        if let Some(since) = self.outage_since {
            s.outage_s += since.elapsed().as_secs_f64();
        }
        s
    }
}

/// What the Block holds of its network thread.
pub(crate) struct Net {
    pub shared: Arc<(Mutex<Shared>, Condvar)>,
    notify: Arc<Notify>,
    client: AsyncClient,
    pub incoming: std::sync::mpsc::Receiver<rumqttc::Publish>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").finish_non_exhaustive()
    }
}

/// What the thread needs besides the client.
pub(crate) struct NetConfig {
    pub options: rumqttc::MqttOptions,
    pub backoff: (Duration, Duration),
    pub window: u16,
    pub subscriptions: Vec<(String, QoS)>,
    pub on_connect: Vec<Out>,
    pub name: String,
}

impl Net {
    /// Starts the network thread (in the Block's process).
    pub fn start(cfg: NetConfig) -> std::io::Result<Net> {
        let mut options = cfg.options;
        // Every message not acknowledged is re-sent by us after a reconnection; a persistent
        // session would make the client replay it as well.
        options.set_inflight(cfg.window.max(1));
        let (client, mut eventloop) = AsyncClient::new(options, cfg.window as usize + 16);
        // Small messages must leave at once (Nagle would hold them for the previous ack).
        let mut net_options = eventloop.network_options();
        net_options.set_tcp_nodelay(true);
        eventloop.set_network_options(net_options);
        let mut on_connect = cfg.on_connect;
        for (i, o) in on_connect.iter_mut().enumerate() {
            o.id = u64::MAX - i as u64;
        }
        let shared = Arc::new((
            Mutex::new(Shared {
                outbox: VecDeque::new(),
                next_id: 0,
                connected: false,
                first: First::Pending,
                subscribed: cfg.subscriptions.is_empty(),
                refused_subscriptions: Vec::new(),
                stats: NetStats::default(),
                outage_since: None,
                shutdown: false,
                done: false,
                on_connect,
            }),
            Condvar::new(),
        ));
        let notify = Arc::new(Notify::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let th = Thread {
            shared: shared.clone(),
            notify: notify.clone(),
            client: client.clone(),
            tx,
            backoff: cfg.backoff,
            window: cfg.window.max(1) as usize,
            subscriptions: cfg.subscriptions,
            order: VecDeque::new(),
            by_pkid: HashMap::new(),
            submitted: 0,
        };
        std::thread::Builder::new()
            .name(format!("{}-mqtt", cfg.name))
            .spawn(move || {
                let shared = th.shared.clone();
                runtime.block_on(th.run(eventloop));
                let (m, cv) = &*shared;
                lock(m).done = true;
                cv.notify_all();
            })?;
        Ok(Net {
            shared,
            notify,
            client,
            incoming: rx,
        })
    }

    /// The shared state, locked.
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared.0)
    }

    /// Wakes the thread (after queueing messages).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Waits until `cond` holds or `timeout` passes; returns whether it holds.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut(&Shared) -> bool) -> bool {
        let (m, cv) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut g = lock(m);
        loop {
            if cond(&g) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = match cv.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Disconnects cleanly and waits (up to `timeout`) for the thread to end.
    pub fn shutdown(&self, timeout: Duration) {
        self.lock().shutdown = true;
        let _ = self.client.try_disconnect();
        self.wake();
        if !self.wait_for(timeout, |s| s.done) {
            log::debug!("the MQTT thread did not end within {timeout:?}; the process exit ends it");
        }
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Thread {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    notify: Arc<Notify>,
    client: AsyncClient,
    tx: std::sync::mpsc::Sender<rumqttc::Publish>,
    backoff: (Duration, Duration),
    window: usize,
    subscriptions: Vec<(String, QoS)>,
    /// Ids of the messages handed to the client, waiting for their `Outgoing::Publish` event
    /// (which gives their packet id), in order.
    order: VecDeque<u64>,
    by_pkid: HashMap<u16, u64>,
    /// Messages handed to the client and not yet delivered.
    submitted: usize,
}

impl Thread {
    async fn run(mut self, mut eventloop: EventLoop) {
        let mut backoff = self.backoff.0;
        loop {
            let event = {
                let poll = eventloop.poll();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        biased;
                        e = &mut poll => break e,
                        _ = self.notify.notified() => self.submit(),
                    }
                }
            };
            match event {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    backoff = self.backoff.0;
                    self.connected();
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(id) = self.order.pop_front() {
                        let qos0 = {
                            let g = lock(&self.shared.0);
                            g.outbox
                                .iter()
                                .chain(g.on_connect.iter())
                                .find(|o| o.id == id)
                                .map(|o| o.qos == QoS::AtMostOnce)
                        };
                        match qos0 {
                            Some(true) => self.delivered(id),
                            Some(false) => {
                                self.by_pkid.insert(pkid, id);
                            }
                            None => {}
                        }
                    }
                    self.submit();
                }
                Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                    if let Some(id) = self.by_pkid.remove(&ack.pkid) {
                        self.delivered(id);
                    }
                    self.submit();
                }
                Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                    let (m, cv) = &*self.shared;
                    let mut g = lock(m);
                    for (code, (topic, _)) in ack.return_codes.iter().zip(&self.subscriptions) {
                        if matches!(code, rumqttc::SubscribeReasonCode::Failure)
                            && !g.refused_subscriptions.contains(topic)
                        {
                            g.refused_subscriptions.push(topic.clone());
                        }
                    }
                    g.subscribed = true;
                    cv.notify_all();
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let _ = self.tx.send(p);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    if lock(&self.shared.0).shutdown {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if self.disconnected(&e) {
                        return;
                    }
                    // Back off, but leave at once on shutdown.
                    let sleep = tokio::time::sleep(backoff);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            _ = self.notify.notified() => {
                                if lock(&self.shared.0).shutdown {
                                    return;
                                }
                            }
                        }
                    }
                    backoff = (backoff * 2).min(self.backoff.1);
                }
            }
        }
    }

    /// Hands queued messages to the client, oldest first, up to the window.
    fn submit(&mut self) {
        let mut g = lock(&self.shared.0);
        if !g.connected {
            return;
        }
        let g = &mut *g;
        for o in g.on_connect.iter_mut().chain(g.outbox.iter_mut()) {
            if self.submitted >= self.window {
                break;
            }
            if o.state != OutState::Queued {
                continue;
            }
            match self
                .client
                .try_publish(o.topic.clone(), o.qos, o.retain, o.payload.clone())
            {
                Ok(()) => {
                    o.state = OutState::Submitted;
                    o.sent_once = true;
                    self.order.push_back(o.id);
                    self.submitted += 1;
                }
                Err(_) => break, // the request channel is full: the next event makes room
            }
        }
    }

    fn delivered(&mut self, id: u64) {
        let (m, cv) = &*self.shared;
        let mut g = lock(m);
        self.submitted = self.submitted.saturating_sub(1);
        if let Some(o) = g.on_connect.iter_mut().find(|o| o.id == id) {
            o.state = if std::mem::take(&mut o.resend) {
                OutState::Queued
            } else {
                OutState::Done
            };
            return;
        }
        let mut samples = None;
        if let Some(o) = g.outbox.iter_mut().find(|o| o.id == id) {
            o.state = OutState::Done;
            samples = Some(o.samples);
        }
        if let Some(n) = samples {
            g.stats.delivered += 1;
            g.stats.delivered_samples += n;
        }
        while g.outbox.front().is_some_and(|o| o.state == OutState::Done) {
            g.outbox.pop_front();
        }
        cv.notify_all();
    }

    fn connected(&mut self) {
        let (m, cv) = &*self.shared;
        let mut g = lock(m);
        g.connected = true;
        g.stats.connections += 1;
        if let Some(since) = g.outage_since.take() {
            let s = since.elapsed().as_secs_f64();
            g.stats.outage_s += s;
            log::warn!(
                "reconnected to the broker after {s:.2} s; {} messages to (re)send",
                g.outbox.len()
            );
        }
        g.first = First::Connected;
        for o in g.on_connect.iter_mut() {
            o.state = OutState::Queued;
        }
        if !self.subscriptions.is_empty() {
            g.subscribed = false;
            let subs = self
                .subscriptions
                .iter()
                .map(|(t, q)| rumqttc::SubscribeFilter::new(t.clone(), *q));
            let _ = self.client.try_subscribe_many(subs);
        }
        cv.notify_all();
        drop(g);
        self.submit();
    }

    /// After a connection error; returns whether the thread should end.
    fn disconnected(&mut self, e: &rumqttc::ConnectionError) -> bool {
        let (m, cv) = &*self.shared;
        let mut g = lock(m);
        if g.shutdown {
            return true;
        }
        let text = e.to_string();
        if g.connected {
            g.stats.outages += 1;
            g.outage_since = Some(Instant::now());
            log::warn!(
                "lost the broker ({text}); buffering and reconnecting ({} messages pending)",
                g.outbox.len()
            );
        } else if g.stats.last_error.as_deref() != Some(text.as_str()) {
            log::debug!("cannot connect to the broker: {text}");
        }
        g.connected = false;
        g.stats.last_error = Some(text.clone());
        if let rumqttc::ConnectionError::ConnectionRefused(code) = e {
            if g.first == First::Pending {
                g.first = First::Refused(format!("{code:?}"));
            }
        }
        // Everything not acknowledged is sent again on the next connection.
        let g = &mut *g;
        for o in g.on_connect.iter_mut().chain(g.outbox.iter_mut()) {
            if o.state == OutState::Submitted {
                o.state = OutState::Queued;
                g.stats.resent += 1;
            }
        }
        self.order.clear();
        self.by_pkid.clear();
        self.submitted = 0;
        cv.notify_all();
        false
    }
}
