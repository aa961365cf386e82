//! [`Mean`]: averages everything received in each time window.
//!
//! Windows are `[k·w, (k+1)·w)` on the samples' own time label (`t(s)`), or on the arrival
//! time for samples without it. When a window is over (a sample of a later window arrived, or
//! the clock passed its end by one more window), one sample is sent: every numeric label's
//! mean over the window, the last value of the others (text, arrays), and the time label set
//! to the **window's centre** `(k + ½)·w`. (Crappy's MeanBlock sends `t(s)` ≈ −1.8·10⁹
//! because it subtracts `t0` twice; this one does not.) Empty windows send nothing.
//!
//! ```
//! use crabby::Sample;
//! use crabby_blocks::{Mean, MeanCore};
//! let block = Mean::new(0.5); // one averaged sample every 0.5 s
//! let mut core = MeanCore::new(1.0, "t(s)");
//! assert!(core.push(0.2, &Sample::new().with("F(N)", 1.0)).is_none());
//! assert!(core.push(0.7, &Sample::new().with("F(N)", 3.0)).is_none());
//! let out = core.push(1.1, &Sample::new().with("F(N)", 10.0)).unwrap();
//! assert_eq!(out.get_f64("F(N)"), Some(2.0));
//! assert_eq!(out.get_f64("t(s)"), Some(0.5));
//! ```

use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Sample, Settings, Value};

#[derive(Debug, Clone)]
struct Acc {
    k: i64,
    order: Vec<Label>,
    sums: Vec<(f64, u64)>,
    last: Vec<Option<Value>>,
}

/// The windowing logic, with the time given by the caller.
#[derive(Debug, Clone)]
pub struct MeanCore {
    window: f64,
    time: Label,
    acc: Option<Acc>,
}

impl MeanCore {
    /// Windows of `window` seconds; `time` is the label set to the window's centre.
    pub fn new(window: f64, time: impl Into<Label>) -> Self {
        MeanCore {
            window,
            time: time.into(),
            acc: None,
        }
    }

    /// Adds a sample stamped `t`; returns the previous window's mean if `t` is past it.
    pub fn push(&mut self, t: f64, s: &Sample) -> Option<Sample> {
        let k = (t / self.window).floor() as i64;
        let done = match &self.acc {
            Some(a) if k > a.k => self.acc.take().map(|a| self.emit(a)),
            _ => None,
        };
        let acc = self.acc.get_or_insert_with(|| Acc {
            k,
            order: Vec::new(),
            sums: Vec::new(),
            last: Vec::new(),
        });
        for (l, v) in s.iter() {
            if *l == self.time {
                continue;
            }
            let i = match acc.order.iter().position(|x| x == l) {
                Some(i) => i,
                None => {
                    acc.order.push(l.clone());
                    acc.sums.push((0.0, 0));
                    acc.last.push(None);
                    acc.order.len() - 1
                }
            };
            match v {
                Value::Float(_) | Value::Int(_) | Value::Bool(_) => {
                    let x = v.as_f64().unwrap_or(0.0);
                    acc.sums[i].0 += x;
                    acc.sums[i].1 += 1;
                }
                other => acc.last[i] = Some(other.clone()),
            }
        }
        done
    }

    /// The current window's mean if the clock `now` is past its end by one more window.
    pub fn flush_if_stale(&mut self, now: f64) -> Option<Sample> {
        match &self.acc {
            Some(a) if now >= (a.k + 2) as f64 * self.window => {
                self.acc.take().map(|a| self.emit(a))
            }
            _ => None,
        }
    }

    fn emit(&self, a: Acc) -> Sample {
        let mut s = Sample::with_capacity(a.order.len() + 1);
        s.insert(self.time.clone(), (a.k as f64 + 0.5) * self.window);
        for ((l, (sum, n)), last) in a.order.into_iter().zip(a.sums).zip(a.last) {
            if n > 0 {
                s.insert(l, sum / n as f64);
            } else if let Some(v) = last {
                s.insert(l, v);
            }
        }
        s
    }
}

/// Averages its inputs over windows of a given duration. See the [module docs](self).
#[derive(Debug)]
pub struct Mean {
    window: f64,
    time: Label,
    core: Option<MeanCore>,
}

impl Mean {
    /// Windows of `window` seconds.
    pub fn new(window: f64) -> Self {
        Mean {
            window,
            time: Label::new("t(s)"),
            core: None,
        }
    }
    /// The time label (default `t(s)`).
    pub fn time_label(mut self, l: impl Into<Label>) -> Self {
        self.time = l.into();
        self
    }
}

impl Block for Mean {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(100.0)
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if !(self.window.is_finite() && self.window > 0.0) {
            return Err(Error::config(format!(
                "parameter 'window' is {} s; give a duration above 0",
                self.window
            ))
            .with_origin(graph.name()));
        }
        if graph.inputs().is_empty() {
            return Err(Error::config(
                "a Mean needs an input link; link the Block whose labels it averages",
            )
            .with_origin(graph.name()));
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("window {} s", self.window)
    }
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        self.core = Some(MeanCore::new(self.window, self.time.clone()));
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let now = ctx.t();
        let mut out = Vec::new();
        let core = self.core.as_mut().expect("prepared");
        let time = self.time.clone();
        ctx.recv_each(|_, s| {
            let t = s.get_f64(&time).unwrap_or(now);
            out.extend(core.push(t, &s));
        });
        out.extend(core.flush_if_stale(now));
        for s in &out {
            ctx.send(s)?;
        }
        Ok(Flow::Continue)
    }
    /// The senders' last samples are averaged too (the last, partial window is not sent).
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(core) = self.core.as_mut() else {
            return Ok(());
        };
        let now = ctx.t();
        let mut out = Vec::new();
        for s in ctx
            .drain_until_ended(std::time::Duration::from_secs(1))
            .into_iter()
            .flatten()
        {
            let t = s.get_f64(&self.time).unwrap_or(now);
            out.extend(core.push(t, &s));
        }
        for s in &out {
            ctx.send(s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_per_window_with_the_centre_time_and_carried_text() {
        let mut c = MeanCore::new(0.5, "t(s)");
        let mut out = Vec::new();
        for i in 0..20 {
            let t = i as f64 * 0.1;
            let s = Sample::new()
                .with("x", t * 2.0)
                .with("n", i as i64)
                .with("tag", format!("s{i}"));
            out.extend(c.push(t, &s));
        }
        // windows [0,0.5), [0.5,1), [1,1.5) complete; [1.5,2) pending
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].get_f64("t(s)"), Some(0.25));
        assert!((out[0].get_f64("x").unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(out[1].get_f64("n"), Some(7.0));
        assert_eq!(out[2].get("tag").unwrap().as_text(), Some("s14"));
        assert!(c.flush_if_stale(2.4).is_none());
        let last = c.flush_if_stale(2.5).unwrap();
        assert_eq!(last.get_f64("t(s)"), Some(1.75));
        assert_eq!(last.get_f64("n"), Some(17.0));
    }

    #[test]
    fn empty_windows_send_nothing() {
        let mut c = MeanCore::new(1.0, "t(s)");
        assert!(c.push(0.5, &Sample::new().with("x", 1.0)).is_none());
        let a = c.push(5.5, &Sample::new().with("x", 3.0)).unwrap();
        assert_eq!(a.get_f64("t(s)"), Some(0.5));
        assert!(c.flush_if_stale(6.9).is_none());
        assert_eq!(c.flush_if_stale(7.0).unwrap().get_f64("t(s)"), Some(5.5));
    }
}
