//! Simulated sensors: [`FakeFurnace`], a furnace with a heater (power command) and a noisy
//! thermocouple, readable one sample at a time or streamed like a DAQ board; and
//! [`Prng`], the small seeded generator behind its noise.
//!
//! Everything is deterministic under a seed and integrates its physics over the time
//! elapsed since the previous call; [`FakeFurnace::advance`] integrates a given duration
//! for unit tests.

use crabby::hardware::{
    device_error, now_ns, Chunk, InOut, Input, Output, Reading, Status, Stream,
};
use crabby::{Error, ErrorKind, Result};

/// A small seeded pseudo-random generator (SplitMix64), with Gaussian draws (Box–Muller).
/// Not for cryptography; for reproducible simulated noise.
#[derive(Debug, Clone)]
pub struct Prng {
    state: u64,
    spare: Option<f64>,
}

impl Prng {
    /// A generator; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Self {
        Prng {
            state: seed,
            spare: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (mean 0, standard deviation 1).
    pub fn normal(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1 = 1.0 - self.uniform(); // in (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

/// A simulated furnace: a heater driven in percent of its power and a thermocouple.
///
/// Command ([`Output::write`], one value): heater power in % (0–100). Reading
/// ([`Input::read`], one channel, label `T(C)`): the furnace temperature in °C plus the
/// thermocouple's Gaussian noise (seeded).
///
/// The thermal model is first order: a lumped heat capacity `C` (J/K) heated by
/// `P = power%/100 · max_power` (W) and losing heat to the room through a thermal resistance
/// `R` (K/W):
///
/// ```text
/// C · dT/dt = P − (T − T_ambient) / R
/// ```
///
/// For a constant power between two calls it is solved exactly:
/// `T(t+dt) = T_ss + (T(t) − T_ss)·exp(−dt/τ)` with `T_ss = T_ambient + P·R` and `τ = R·C`.
/// With the defaults (500 W, 1 K/W, 5 J/K, 20 °C) full power settles at 520 °C with τ = 5 s.
///
/// Streaming ([`Stream::start_stream`]) simulates a DAQ sampling at `sample_rate` (at most
/// [`FakeFurnace::MAX_SAMPLE_RATE`]): each [`Stream::read_stream`] returns the samples due
/// since the previous one. The model is integrated along one simulated time line that never
/// goes back: a command written while streaming first generates the samples due up to that
/// instant (with the power in force until then), then changes the power.
///
/// Its [`status`](InOut::status) text says whether the heater is on; it holds no live value
/// (read the temperature from the readings).
#[derive(Debug, Clone)]
pub struct FakeFurnace {
    /// Room temperature and initial temperature, °C (default 20).
    pub ambient: f64,
    /// Heater power at 100 %, W (default 500).
    pub max_power: f64,
    /// Thermal resistance to the room, K/W (default 1).
    pub thermal_resistance: f64,
    /// Heat capacity, J/K (default 5).
    pub heat_capacity: f64,
    /// Standard deviation of the thermocouple noise, °C (default 0.1).
    pub noise: f64,
    /// Seed of the noise (default 0).
    pub seed: u64,
    /// Stream sampling rate, Hz (default 1000).
    pub sample_rate: f64,
    /// How much faster than real time the simulation runs (default 1).
    pub simulation_speed: f64,
    temp: f64,
    power_pct: f64,
    rng: Prng,
    /// The instant (`now_ns`) up to which the model is integrated; never decreases.
    model_ns: Option<u64>,
    stream_next_ns: Option<u64>,
    /// Samples generated (due) but not yet returned by `read_stream`.
    pending: Chunk,
    open: bool,
}

impl Default for FakeFurnace {
    fn default() -> Self {
        FakeFurnace {
            ambient: 20.0,
            max_power: 500.0,
            thermal_resistance: 1.0,
            heat_capacity: 5.0,
            noise: 0.1,
            seed: 0,
            sample_rate: 1000.0,
            simulation_speed: 1.0,
            temp: 20.0,
            power_pct: 0.0,
            rng: Prng::new(0),
            model_ns: None,
            stream_next_ns: None,
            pending: Chunk::default(),
            open: false,
        }
    }
}

const NAME: &str = "FakeFurnace";

impl FakeFurnace {
    /// A furnace with the default parameters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the room (and initial) temperature, °C.
    pub fn ambient(mut self, t: f64) -> Self {
        self.ambient = t;
        self.temp = t;
        self
    }
    /// Sets the noise standard deviation (°C) and its seed.
    pub fn noise(mut self, sigma: f64, seed: u64) -> Self {
        self.noise = sigma;
        self.seed = seed;
        self.rng = Prng::new(seed);
        self
    }
    /// Sets the thermal parameters: heater power (W), resistance (K/W), capacity (J/K).
    pub fn thermal(mut self, max_power: f64, resistance: f64, capacity: f64) -> Self {
        self.max_power = max_power;
        self.thermal_resistance = resistance;
        self.heat_capacity = capacity;
        self
    }
    /// Sets the stream sampling rate, Hz.
    pub fn sample_rate(mut self, hz: f64) -> Self {
        self.sample_rate = hz;
        self
    }
    /// Runs the simulation this many times faster than real time.
    pub fn simulation_speed(mut self, v: f64) -> Self {
        self.simulation_speed = v;
        self
    }

    /// The true furnace temperature (no noise), °C.
    pub fn temperature(&self) -> f64 {
        self.temp
    }

    /// The time constant τ = R·C, s.
    pub fn time_constant(&self) -> f64 {
        self.thermal_resistance * self.heat_capacity
    }

    /// The temperature the furnace settles at for the current power, °C.
    pub fn steady_state(&self) -> f64 {
        self.ambient + self.power_pct / 100.0 * self.max_power * self.thermal_resistance
    }

    /// Integrates the thermal model over `dt` seconds of simulated time.
    pub fn advance(&mut self, dt: f64) {
        if dt > 0.0 {
            let ss = self.steady_state();
            self.temp = ss + (self.temp - ss) * (-dt / self.time_constant()).exp();
        }
    }

    /// Sets the heater power (%) without reading the clock.
    pub fn set_power(&mut self, pct: f64) -> Result<()> {
        if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                NAME,
                format!("heater power command {pct} % is outside 0..=100 %"),
            ));
        }
        self.power_pct = pct;
        Ok(())
    }

    /// One thermocouple reading of the current temperature (with noise), without reading
    /// the clock.
    pub fn measure(&mut self) -> f64 {
        self.temp + self.noise * self.rng.normal()
    }

    /// The highest stream sampling rate accepted, Hz.
    pub const MAX_SAMPLE_RATE: f64 = 1e6;

    /// Integrates the model up to the instant `t_ns` (nothing if it is already there).
    fn advance_to(&mut self, t_ns: u64) {
        match self.model_ns {
            Some(m) if t_ns > m => {
                self.advance((t_ns - m) as f64 * 1e-9 * self.simulation_speed);
                self.model_ns = Some(t_ns);
            }
            Some(_) => {}
            None => self.model_ns = Some(t_ns),
        }
    }

    /// Brings the model to now: while streaming, first generates the samples due up to now
    /// (each at its own instant) into the pending chunk.
    fn sync(&mut self) {
        let now = now_ns();
        if let Some(mut next) = self.stream_next_ns {
            let period_ns = ((1e9 / self.sample_rate) as u64).max(1);
            if self.pending.channels.is_empty() {
                self.pending.channels.push(Vec::new());
            }
            while next <= now {
                self.advance_to(next);
                let v = self.measure();
                self.pending.t_ns.push(next);
                self.pending.channels[0].push(v);
                next += period_ns;
            }
            self.stream_next_ns = Some(next);
        }
        self.advance_to(now);
    }
}

impl InOut for FakeFurnace {
    fn channels(&self) -> Vec<String> {
        vec!["T(C)".to_owned()]
    }

    fn check(&self) -> Result<()> {
        for (name, v, unit) in [
            ("max_power", self.max_power, "W"),
            ("thermal_resistance", self.thermal_resistance, "K/W"),
            ("heat_capacity", self.heat_capacity, "J/K"),
            ("sample_rate", self.sample_rate, "Hz"),
            ("simulation_speed", self.simulation_speed, ""),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(format!(
                    "parameter '{name}' is {v}; it must be a finite number above 0 {unit}"
                ))
                .with_origin(NAME));
            }
        }
        if self.sample_rate > Self::MAX_SAMPLE_RATE {
            return Err(Error::config(format!(
                "parameter 'sample_rate' is {} Hz; the simulated DAQ samples at most {} Hz",
                self.sample_rate,
                Self::MAX_SAMPLE_RATE
            ))
            .with_origin(NAME));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0 && self.ambient.is_finite()) {
            return Err(Error::config(format!(
                "parameters 'noise' ({}) must be ≥ 0 and 'ambient' ({}) finite",
                self.noise, self.ambient
            ))
            .with_origin(NAME));
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        self.temp = self.ambient;
        self.power_pct = 0.0;
        self.rng = Prng::new(self.seed);
        self.model_ns = Some(now_ns());
        self.stream_next_ns = None;
        self.pending = Chunk::default();
        self.open = true;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.sync();
        self.power_pct = 0.0;
        self.stream_next_ns = None;
        self.pending = Chunk::default();
        self.open = false;
        Ok(())
    }

    fn status(&self) -> Status {
        if !self.open {
            Status::off()
        } else {
            Status::on(if self.power_pct > 0.0 {
                "heating"
            } else {
                "heater off"
            })
        }
    }
}

impl Input for FakeFurnace {
    fn read(&mut self) -> Result<Reading> {
        self.sync();
        let t = now_ns();
        Ok(Reading::new(t, vec![self.measure()]))
    }
}

impl Output for FakeFurnace {
    fn n_commands(&self) -> Option<usize> {
        Some(1)
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        let Some(&p) = cmd.first() else {
            return Err(device_error(
                ErrorKind::Configuration,
                NAME,
                "the command needs one value: heater power in %",
            ));
        };
        self.sync();
        self.set_power(p)
    }
}

impl Stream for FakeFurnace {
    fn start_stream(&mut self) -> Result<()> {
        self.sync();
        self.stream_next_ns = self.model_ns;
        Ok(())
    }

    fn read_stream(&mut self) -> Result<Chunk> {
        if self.stream_next_ns.is_none() {
            return Err(device_error(
                ErrorKind::NotAllowed,
                NAME,
                "read_stream before start_stream",
            ));
        }
        // The model is sampled at each due instant (exact between instants: constant power).
        self.sync();
        let mut chunk = std::mem::take(&mut self.pending);
        if chunk.channels.is_empty() {
            chunk.channels.push(Vec::new());
        }
        Ok(chunk)
    }

    fn stop_stream(&mut self) -> Result<()> {
        self.stream_next_ns = None;
        self.pending = Chunk::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_is_deterministic_and_normal_has_unit_variance() {
        let mut a = Prng::new(42);
        let mut b = Prng::new(42);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Prng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.01, "{var}");
        assert!((0..1000)
            .map(|_| r.uniform())
            .all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn furnace_first_order_response_matches_hand_computation() {
        let mut f = FakeFurnace::new();
        f.set_power(100.0).unwrap();
        assert_eq!(f.steady_state(), 520.0);
        assert_eq!(f.time_constant(), 5.0);
        // After one time constant: 20 + 500·(1 − e⁻¹) = 336.06 °C.
        f.advance(5.0);
        assert!(
            (f.temperature() - 336.0603).abs() < 1e-3,
            "{}",
            f.temperature()
        );
        // The exact solution does not depend on how the time is cut.
        let mut g = FakeFurnace::new();
        g.set_power(100.0).unwrap();
        for _ in 0..500 {
            g.advance(0.01);
        }
        assert!((g.temperature() - f.temperature()).abs() < 1e-9);
        // Power off: back towards the room.
        f.set_power(0.0).unwrap();
        f.advance(50.0);
        assert!((f.temperature() - 20.0).abs() < 0.02);
    }

    #[test]
    fn furnace_noise_is_seeded_and_has_the_set_deviation() {
        let mut a = FakeFurnace::new().noise(0.5, 7);
        let mut b = FakeFurnace::new().noise(0.5, 7);
        let xa: Vec<f64> = (0..5000).map(|_| a.measure()).collect();
        let xb: Vec<f64> = (0..5000).map(|_| b.measure()).collect();
        assert_eq!(xa, xb);
        let mean = xa.iter().sum::<f64>() / 5000.0;
        let sd = (xa.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5000.0).sqrt();
        assert!((mean - 20.0).abs() < 0.05, "{mean}");
        assert!((sd - 0.5).abs() < 0.03, "{sd}");
    }

    #[test]
    fn furnace_rejects_bad_commands_and_configs() {
        let mut f = FakeFurnace::new();
        assert_eq!(
            f.set_power(120.0).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(f.write(&[]).unwrap_err().kind(), ErrorKind::Configuration);
        let e = FakeFurnace::new()
            .thermal(500.0, 0.0, 5.0)
            .check()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("thermal_resistance"));
        assert_eq!(e.origin(), Some("FakeFurnace"));
    }

    #[test]
    fn furnace_commands_written_while_streaming_follow_the_closed_form() {
        // No noise: every sample is the model's exact temperature at its instant.
        let mut f = FakeFurnace::new().noise(0.0, 0).sample_rate(10_000.0);
        f.open().unwrap();
        f.start_stream().unwrap();
        let t_start = f.stream_next_ns.unwrap();
        let sleep = || std::thread::sleep(std::time::Duration::from_millis(30));
        sleep();
        // Full power from somewhere in [w1a, w1b], off again from somewhere in [w2a, w2b].
        let w1a = now_ns();
        f.write(&[100.0]).unwrap();
        let w1b = now_ns();
        sleep();
        let w2a = now_ns();
        f.write(&[0.0]).unwrap();
        let w2b = now_ns();
        sleep();
        let c = f.read_stream().unwrap();
        c.validate("f").unwrap();
        // Every sample due since the start, evenly spaced: none lost, none repeated.
        assert_eq!(c.t_ns[0], t_start);
        assert!(c.t_ns.windows(2).all(|w| w[1] - w[0] == 100_000));
        assert!(*c.t_ns.last().unwrap() >= w2b);
        // The closed form: 20 °C until w1, heating towards 520 °C (τ = 5 s) until w2, then
        // cooling towards 20 °C.
        let tau = 5.0;
        let model = |t: u64, w1: u64, w2: u64| -> f64 {
            if t <= w1 {
                return 20.0;
            }
            let heat = |dt: f64| 520.0 - 500.0 * (-dt / tau).exp();
            if t <= w2 {
                return heat((t - w1) as f64 * 1e-9);
            }
            let at_w2 = heat((w2 - w1) as f64 * 1e-9);
            20.0 + (at_w2 - 20.0) * (-((t - w2) as f64 * 1e-9) / tau).exp()
        };
        for (&t, &v) in c.t_ns.iter().zip(&c.channels[0]) {
            // The switching instants are known within [a, b]: the model lies between.
            let lo = model(t, w1b, w2a).min(model(t, w1a, w2b));
            let hi = model(t, w1a, w2b).max(model(t, w1b, w2a));
            assert!(
                v >= lo - 1e-9 && v <= hi + 1e-9,
                "sample at {} ms: {v} °C, model [{lo}, {hi}]",
                (t - t_start) as f64 * 1e-6
            );
        }
        // The model's own state agrees at the end (simulated time never ran twice).
        f.advance_to(*c.t_ns.last().unwrap());
        let end = *c.t_ns.last().unwrap();
        assert!(f.temperature() <= model(end, w1a, w2b).max(model(end, w1b, w2a)) + 1e-9);
    }

    #[test]
    fn furnace_sample_rate_is_capped() {
        let e = FakeFurnace::new().sample_rate(2e6).check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("sample_rate"), "{e}");
        FakeFurnace::new().sample_rate(1e6).check().unwrap();
    }

    #[test]
    fn furnace_stream_returns_evenly_spaced_samples() {
        let mut f = FakeFurnace::new().sample_rate(10_000.0);
        f.open().unwrap();
        f.write(&[100.0]).unwrap();
        f.start_stream().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let c = f.read_stream().unwrap();
        c.validate("f").unwrap();
        assert!(c.len() >= 150, "{}", c.len());
        assert!(c.t_ns.windows(2).all(|w| w[1] - w[0] == 100_000));
        // The furnace heats during the chunk: the last samples are warmer than the first.
        let n = c.len();
        let first: f64 = c.channels[0][..20].iter().sum::<f64>() / 20.0;
        let last: f64 = c.channels[0][n - 20..].iter().sum::<f64>() / 20.0;
        assert!(last > first, "{first} {last}");
        let c2 = f.read_stream().unwrap();
        if let (Some(a), Some(b)) = (c.t_ns.last(), c2.t_ns.first()) {
            assert_eq!(b - a, 100_000);
        }
    }
}
