//! [`StopBlock`]: stops the test when a criterion is met.
//!
//! Criteria are [`Condition`]s: text such as `"F(N) > 120000"` or `"Exx(%) >= 1.5"`,
//! evaluated on everything received since the last loop (true when any value passes), or
//! closures ([`Condition::custom`]). As in Crappy, `"t(s) > 60"` (and `"delay=60"`) mean
//! the time since the test's start, not the value of a received label, so they work
//! without any input.
//!
//! When any criterion holds, the StopBlock asks the whole test to stop
//! ([`Context::stop_test`]): every Block finishes normally and the run ends cleanly, the
//! report naming the StopBlock ("stopped the test"). Default rate 30 Hz.

use crate::condition::{Condition, IntoCondition};
use crabby::{Block, Columns, Context, Error, Flow, GraphView, Label, Result, Settings};

/// Stops the test when any criterion holds. See the [module docs](self).
///
/// ```
/// use crabby::Columns;
/// use crabby_blocks::{Condition, StopBlock};
/// let stop = StopBlock::new(["F(N) > 120000", "t(s) > 600"]).unwrap();
/// let with_closure = StopBlock::new([
///     Condition::parse("Exx(%) >= 1.5").unwrap(),
///     Condition::custom_on(["F(N)"], |d: &Columns| d.f64s("F(N)").len() > 1000),
/// ])
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct StopBlock {
    criteria: Vec<Condition>,
}

impl StopBlock {
    /// A StopBlock with these criteria (text or [`Condition`]s). Errors if a text does not
    /// parse (naming it and the accepted forms) or if there is no criterion.
    pub fn new<C: IntoCondition>(criteria: impl IntoIterator<Item = C>) -> Result<StopBlock> {
        let criteria = criteria
            .into_iter()
            .map(|c| c.into_condition().map(|c| c.time_label_as_elapsed("t(s)")))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_origin("StopBlock"))?;
        if criteria.is_empty() {
            return Err(
                Error::config("a StopBlock needs at least one criterion").with_origin("StopBlock")
            );
        }
        Ok(StopBlock { criteria })
    }

    /// The criteria.
    pub fn criteria(&self) -> &[Condition] {
        &self.criteria
    }

    /// The first criterion that holds at `now_s` (seconds since the test's start) with
    /// `data` received since the last loop.
    pub fn first_met(&self, now_s: f64, data: &Columns) -> Option<&Condition> {
        self.criteria.iter().find(|c| c.eval(now_s, 0.0, data))
    }
}

impl Block for StopBlock {
    fn default_settings(&self) -> Settings {
        // It keeps watching during a pause.
        Settings::new().freq(30.0).pausable(false)
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(Vec::new())
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        for c in &self.criteria {
            for l in c.labels() {
                graph.require_label(&l, &format!("the criterion \"{c}\""))?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let list: Vec<String> = self.criteria.iter().map(|c| format!("\"{c}\"")).collect();
        format!("stop the test when any holds: {}", list.join(", "))
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let data = ctx.recv_all();
        let now = ctx.t();
        if let Some(c) = self.first_met(now, &data) {
            if !ctx.stopping() {
                log::info!("criterion \"{c}\" met at t={now:.3} s; stopping the test");
            }
            ctx.stop_test();
        }
        // Keep looping: the stop event ends this Block like the others (outcome "stopped
        // the test"), and its inputs keep being drained until then.
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::{ErrorKind, Sample, Test};

    fn data(label: &str, values: &[f64]) -> Columns {
        let mut c = Columns::new();
        for v in values {
            c.push(&Sample::new().with(label, *v));
        }
        c
    }

    #[test]
    fn any_criterion_stops() {
        let s = StopBlock::new(["F(N) > 100", "Exx(%) <= -1"]).unwrap();
        assert!(s.first_met(0.0, &Columns::new()).is_none());
        assert!(s.first_met(0.0, &data("F(N)", &[50.0, 99.0])).is_none());
        assert_eq!(
            s.first_met(0.0, &data("F(N)", &[50.0, 101.0, 0.0]))
                .unwrap()
                .to_string(),
            "F(N) > 100"
        );
        assert_eq!(
            s.first_met(0.0, &data("Exx(%)", &[-1.0]))
                .unwrap()
                .to_string(),
            "Exx(%) <= -1"
        );
    }

    #[test]
    fn time_criteria_use_the_elapsed_time_without_inputs() {
        let s = StopBlock::new(["t(s) > 60"]).unwrap();
        assert!(
            s.first_met(59.9, &data("t(s)", &[1000.0])).is_none(),
            "not the label value"
        );
        assert!(s.first_met(60.1, &Columns::new()).is_some());
        let d = StopBlock::new(["delay=5"]).unwrap();
        assert!(d.first_met(4.0, &Columns::new()).is_none());
        assert!(d.first_met(5.5, &Columns::new()).is_some());
    }

    #[test]
    fn closures_and_bad_text() {
        let s = StopBlock::new([Condition::custom(|d: &Columns| d.f64s("n").len() >= 3)]).unwrap();
        assert!(s.first_met(0.0, &data("n", &[1.0, 2.0])).is_none());
        assert!(s.first_met(0.0, &data("n", &[1.0, 2.0, 3.0])).is_some());
        let e = StopBlock::new(["F(N) >> 3"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("\"F(N) >> 3\""), "{e}");
        assert!(StopBlock::new(Vec::<&str>::new()).is_err());
    }

    struct Source;
    impl Block for Source {
        fn output_labels(&self) -> Option<Vec<Label>> {
            Some(vec![Label::new("t(s)"), Label::new("F(N)")])
        }
        fn step(&mut self, _: &mut Context) -> Result<Flow> {
            Ok(Flow::Stop)
        }
    }

    #[test]
    fn graph_check_requires_the_criteria_labels_but_not_t() {
        let mut t = Test::new("stop");
        let src = t.add(Source);
        let stop = t.add_with(
            StopBlock::new(["F(N) > 1", "Exx(%) > 1"]).unwrap(),
            Settings::new().name("stop"),
        );
        t.link(src, stop);
        let e = t.describe().unwrap_err();
        assert_eq!(e.origin(), Some("stop"));
        assert!(
            e.description().contains("'Exx(%)'") && e.description().contains("Exx(%) > 1"),
            "{e}"
        );

        let mut t = Test::new("alone");
        t.add(StopBlock::new(["t(s) > 10"]).unwrap());
        let text = t.describe().unwrap();
        assert!(
            text.contains("stop the test when any holds: \"t(s) > 10\""),
            "{text}"
        );
        assert_eq!(
            StopBlock::new(["t(s) > 1"])
                .unwrap()
                .default_settings()
                .rate,
            Some(crabby::Rate::Hz(30.0))
        );
    }
}
