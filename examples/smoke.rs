use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
use std::time::Duration;
struct Src { n: u64 }
impl Block for Src {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.n += 1;
        ctx.send(&Sample::new().with("t(s)", ctx.t()).with("n", self.n as i64))?;
        Ok(if self.n >= 1000 { Flow::Stop } else { Flow::Continue })
    }
}
struct Sink { got: u64 }
impl Block for Sink {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.wait(Duration::from_millis(100));
        self.got += ctx.recv_all_per_link().iter().map(|v| v.len() as u64).sum::<u64>();
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        self.got += ctx.drain_until_ended(Duration::from_secs(1)).iter().map(|v| v.len() as u64).sum::<u64>();
        log::info!("sink got {}", self.got);
        Ok(())
    }
}
fn main() {
    let mut t = Test::new("smoke");
    t.log_file(None);
    let a = t.add_with(Src { n: 0 }, Settings::new().freq(1000.0));
    let b = t.add_with(Sink { got: 0 }, Settings::new().free_run());
    t.link(a, b);
    match t.run() {
        Ok(r) => println!("OK\n{r}"),
        Err(e) => println!("ERR {e}\n{:?}", e.report().map(|r| r.to_string())),
    }
}
