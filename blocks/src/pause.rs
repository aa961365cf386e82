//! [`Pause`]: pauses the test while a criterion holds.
//!
//! Criteria are [`Condition`]s, as for the [`StopBlock`](crate::StopBlock): text such as
//! `"T(C) > 250"` or closures. Each loop the criteria are evaluated on what was received
//! since the last loop; when any holds the test is paused ([`Context::pause`], the cause
//! being the criterion), when none holds it is resumed. A loop that received nothing keeps
//! the current state (a criterion cannot be proven false without data), except for the
//! time criteria (`"t(s) > 10"`), which need no data.
//!
//! Unlike Crappy's, a pause here makes hardware safe: the Machine holds its actuators
//! stopped, the IOBlock writes no new command, and the Generator's path clock stops (a 60 s
//! hold stays 60 s of unpaused time). Blocks with `pausable(false)` keep running: the Pause
//! Block itself, [`StopBlock`](crate::StopBlock) and [`Limits`](crate::Limits) by default.
//! The report lists each pause with its start, end and cause.
//!
//! ```
//! use crabby_blocks::Pause;
//! // hold the test while the technician's door switch is open
//! let pause = Pause::new(["door > 0.5"]).unwrap();
//! ```

use crate::condition::{Condition, IntoCondition};
use crabby::{Block, Columns, Context, Error, Flow, GraphView, Label, Result, Settings};

/// Pauses the test while any criterion holds. See the [module docs](self).
#[derive(Debug)]
pub struct Pause {
    criteria: Vec<Condition>,
    holding: Option<String>,
}

impl Pause {
    /// A Pause Block with these criteria (text or [`Condition`]s).
    pub fn new<C: IntoCondition>(criteria: impl IntoIterator<Item = C>) -> Result<Pause> {
        let criteria = criteria
            .into_iter()
            .map(|c| c.into_condition().map(|c| c.time_label_as_elapsed("t(s)")))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_origin("Pause"))?;
        if criteria.is_empty() {
            return Err(
                Error::config("a Pause Block needs at least one criterion").with_origin("Pause")
            );
        }
        Ok(Pause {
            criteria,
            holding: None,
        })
    }

    /// The decision for one loop: `Some(Some(cause))` pause, `Some(None)` resume, `None` keep
    /// the current state.
    pub fn decide(&self, now_s: f64, data: &Columns) -> Option<Option<String>> {
        if let Some(c) = self.criteria.iter().find(|c| c.eval(now_s, 0.0, data)) {
            return Some(Some(format!("criterion \"{c}\" met")));
        }
        let decidable = !data.is_empty() || self.criteria.iter().all(|c| c.is_time_only());
        decidable.then_some(None)
    }
}

impl Block for Pause {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0).pausable(false)
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(Vec::new())
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        for c in &self.criteria {
            for l in c.labels() {
                graph.require_label(&l, &format!("the pause criterion \"{c}\""))?;
            }
        }
        Ok(())
    }
    fn describe(&self) -> String {
        let list: Vec<String> = self.criteria.iter().map(|c| format!("\"{c}\"")).collect();
        format!("pause the test while any holds: {}", list.join(", "))
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let data = ctx.recv_all();
        let now = ctx.t();
        match self.decide(now, &data) {
            Some(Some(cause)) if self.holding.is_none() => {
                ctx.pause(&cause);
                self.holding = Some(cause);
            }
            Some(None) if self.holding.is_some() => {
                ctx.resume();
                self.holding = None;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        // Leave nothing unread in the links (the test is stopping: no decision is taken).
        ctx.drain_until_ended(std::time::Duration::from_millis(500));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::Sample;

    fn data(label: &str, v: f64) -> Columns {
        let mut c = Columns::new();
        c.push(&Sample::new().with(label, v));
        c
    }

    #[test]
    fn pauses_while_a_criterion_holds_and_keeps_state_without_data() {
        let p = Pause::new(["door > 0.5"]).unwrap();
        assert_eq!(
            p.decide(0.0, &data("door", 1.0)),
            Some(Some("criterion \"door > 0.5\" met".into()))
        );
        assert_eq!(p.decide(0.0, &Columns::new()), None);
        assert_eq!(p.decide(0.0, &data("door", 0.0)), Some(None));
        let t = Pause::new(["t(s) > 2"]).unwrap();
        assert_eq!(t.decide(1.0, &Columns::new()), Some(None));
        assert!(matches!(t.decide(3.0, &Columns::new()), Some(Some(_))));
        assert!(Pause::new(Vec::<&str>::new()).is_err());
        assert_eq!(
            Pause::new(["t(s) > 1"])
                .unwrap()
                .default_settings()
                .pausable,
            Some(false)
        );
    }
}
