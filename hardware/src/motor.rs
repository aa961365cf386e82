//! Simulated motors: [`FakeDCMotor`] (a DC motor driven in voltage) and
//! [`FakeStepperMotor`] (a stepper with a trapezoidal motion profile).
//!
//! Both are real simulations, always compiled, that need no hardware. They integrate their
//! physics on each API call over the time elapsed since the previous call (no background
//! thread), scaled by `simulation_speed`. [`FakeDCMotor::advance`] and
//! [`FakeStepperMotor::advance`] integrate a given duration directly: unit tests use them to
//! be deterministic.

use crabby::hardware::{
    device_error, now_ns, Actuator, PositionFeedback, Positioner, SpeedFeedback, Status,
};
use crabby::{Error, ErrorKind, Result};

/// Simulated time of a fake device: real elapsed time × `speed`, measured on each call.
#[derive(Debug, Clone)]
pub(crate) struct SimClock {
    last_ns: Option<u64>,
    speed: f64,
}

impl SimClock {
    pub(crate) fn new(speed: f64) -> Self {
        SimClock {
            last_ns: None,
            speed,
        }
    }
    /// Simulated seconds since the previous call (0 on the first call).
    pub(crate) fn elapsed(&mut self) -> f64 {
        let now = now_ns();
        let dt = match self.last_ns {
            Some(l) => now.saturating_sub(l) as f64 * 1e-9 * self.speed,
            None => 0.0,
        };
        self.last_ns = Some(now);
        dt
    }
}

fn check_positive(device: &str, name: &str, v: f64, unit: &str) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::config(format!(
            "parameter '{name}' is {v}; it must be a finite number above 0 {unit}"
        ))
        .with_origin(device));
    }
    Ok(())
}

fn check_finite(device: &str, name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(
            Error::config(format!("parameter '{name}' is {v}; it must be finite"))
                .with_origin(device),
        );
    }
    Ok(())
}

/// A simulated DC motor driven in voltage (Crappy's model, with coherent units).
///
/// Units: the command of [`set_speed`](Actuator::set_speed) is the **voltage** (V);
/// [`speed`](SpeedFeedback::speed) reads **rpm**; [`position`](PositionFeedback::position) reads
/// **turns** (Crappy's model integrated rpm over seconds, so its position was 60× the number
/// of turns).
///
/// The model, integrated with explicit Euler steps of at most 10 ms (Crappy's effective step
/// at 100 Hz, so the figures match it) and smaller when the dynamics are fast; once the
/// speed is steady (a step would change it by less than 1e-12 relative), the rest of the
/// interval is integrated in one go, so a long gap between calls (a long test at a high
/// `simulation_speed`) costs no more than reaching the steady state:
///
/// ```text
/// f      = V·kv − torque − rpm·(1 + rv) − fv·rpm·|rpm|
/// Δrpm   = f / inertia · dt
/// turns += dt · (rpm + Δrpm/2) / 60
/// ```
///
/// Crappy wrote the fluid friction `fv·rpm²`, which pushes the motor forward when it turns
/// backwards; here it always opposes the motion. At 1 V with the defaults, the steady state
/// solves `2e-5·rpm² + 1.4·rpm − 1000 = 0`: 707.14 rpm.
#[derive(Debug, Clone)]
pub struct FakeDCMotor {
    /// Inertia (in rpm-force units per rpm/s; default 0.5).
    pub inertia: f64,
    /// Constant load torque, in the same units as `V·kv` (default 0).
    pub torque: f64,
    /// Speed constant: rpm-force per volt (default 1000).
    pub kv: f64,
    /// Resistive (viscous) friction coefficient (default 0.4).
    pub rv: f64,
    /// Fluid friction coefficient (default 2e-5).
    pub fv: f64,
    /// How much faster than real time the simulation runs (default 1).
    pub simulation_speed: f64,
    /// Speed at start, rpm (default 0).
    pub initial_speed: f64,
    /// Position at start, turns (default 0).
    pub initial_position: f64,
    /// Largest voltage accepted, V (default 24).
    pub max_voltage: f64,
    rpm: f64,
    turns: f64,
    volt: f64,
    clock: SimClock,
    open: bool,
}

impl Default for FakeDCMotor {
    fn default() -> Self {
        FakeDCMotor {
            inertia: 0.5,
            torque: 0.0,
            kv: 1000.0,
            rv: 0.4,
            fv: 2e-5,
            simulation_speed: 1.0,
            initial_speed: 0.0,
            initial_position: 0.0,
            max_voltage: 24.0,
            rpm: 0.0,
            turns: 0.0,
            volt: 0.0,
            clock: SimClock::new(1.0),
            open: false,
        }
    }
}

impl FakeDCMotor {
    /// A motor with Crappy's default parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the inertia.
    pub fn inertia(mut self, v: f64) -> Self {
        self.inertia = v;
        self
    }
    /// Sets the load torque.
    pub fn torque(mut self, v: f64) -> Self {
        self.torque = v;
        self
    }
    /// Sets the speed constant.
    pub fn kv(mut self, v: f64) -> Self {
        self.kv = v;
        self
    }
    /// Sets the resistive friction.
    pub fn rv(mut self, v: f64) -> Self {
        self.rv = v;
        self
    }
    /// Sets the fluid friction.
    pub fn fv(mut self, v: f64) -> Self {
        self.fv = v;
        self
    }
    /// Runs the simulation this many times faster than real time.
    pub fn simulation_speed(mut self, v: f64) -> Self {
        self.simulation_speed = v;
        self.clock = SimClock::new(v);
        self
    }
    /// Sets the initial speed (rpm) and position (turns).
    pub fn initial(mut self, rpm: f64, turns: f64) -> Self {
        self.initial_speed = rpm;
        self.initial_position = turns;
        self.rpm = rpm;
        self.turns = turns;
        self
    }

    /// The voltage applied.
    pub fn voltage(&self) -> f64 {
        self.volt
    }

    /// Integrates the model over `dt` seconds of simulated time.
    pub fn advance(&mut self, dt: f64) {
        self.advance_counted(dt);
    }

    /// [`advance`](Self::advance), returning the number of integration steps taken.
    fn advance_counted(&mut self, mut dt: f64) -> u64 {
        let mut steps = 0;
        while dt > 0.0 {
            steps += 1;
            // Explicit Euler is stable for h·λ < 2; keep h·λ ≤ 0.2 with λ the local decay rate.
            let lambda = (1.0 + self.rv + 2.0 * self.fv * self.rpm.abs()) / self.inertia;
            let h = dt.min(0.01).min(0.2 / lambda);
            let f = self.volt * self.kv
                - self.torque
                - self.rpm * (1.0 + self.rv)
                - self.fv * self.rpm * self.rpm.abs();
            let drpm = f / self.inertia * h;
            if drpm.abs() <= 1e-12 * self.rpm.abs().max(1.0) {
                // Steady: constant speed for the rest of the interval.
                self.turns += dt * self.rpm / 60.0;
                break;
            }
            self.turns += h * (self.rpm + drpm / 2.0) / 60.0;
            self.rpm += drpm;
            dt -= h;
        }
        steps
    }

    /// Applies the voltage without reading the clock (with [`advance`](Self::advance)).
    pub fn apply_voltage(&mut self, volt: f64) -> Result<()> {
        if !volt.is_finite() || volt.abs() > self.max_voltage {
            return Err(device_error(
                ErrorKind::OutOfRange,
                "FakeDCMotor",
                format!(
                    "voltage {volt} V is outside ±{} V (max_voltage)",
                    self.max_voltage
                ),
            ));
        }
        self.volt = volt;
        Ok(())
    }

    /// Speed (rpm) without reading the clock.
    pub fn rpm(&self) -> f64 {
        self.rpm
    }

    /// Position (turns) without reading the clock.
    pub fn turns(&self) -> f64 {
        self.turns
    }

    fn sync(&mut self) {
        let dt = self.clock.elapsed();
        self.advance(dt);
    }
}

impl Actuator for FakeDCMotor {
    fn check(&self) -> Result<()> {
        let n = "FakeDCMotor";
        check_positive(n, "inertia", self.inertia, "")?;
        check_positive(n, "simulation_speed", self.simulation_speed, "")?;
        check_positive(n, "max_voltage", self.max_voltage, "V")?;
        for (name, v) in [
            ("torque", self.torque),
            ("kv", self.kv),
            ("rv", self.rv),
            ("fv", self.fv),
        ] {
            check_finite(n, name, v)?;
        }
        if self.rv < -1.0 || self.fv < 0.0 {
            return Err(Error::config("parameters 'rv' must be ≥ −1 and 'fv' ≥ 0, or friction would feed energy into the motor")
                .with_origin(n));
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        self.rpm = self.initial_speed;
        self.turns = self.initial_position;
        self.volt = 0.0;
        self.clock = SimClock::new(self.simulation_speed);
        self.clock.elapsed();
        self.open = true;
        Ok(())
    }

    /// Applies a voltage (V).
    fn set_speed(&mut self, volt: f64) -> Result<()> {
        self.sync();
        self.apply_voltage(volt)
    }

    fn close(&mut self) -> Result<()> {
        self.sync();
        self.volt = 0.0;
        self.open = false;
        Ok(())
    }

    fn status(&self) -> Status {
        if !self.open {
            Status::off()
        } else if self.volt != 0.0 || self.rpm.abs() > 1e-3 {
            Status::moving(format!("{:.1} V, {:.1} rpm", self.volt, self.rpm))
        } else {
            Status::on("idle")
        }
    }
}

impl PositionFeedback for FakeDCMotor {
    /// Position in turns.
    fn position(&mut self) -> Result<f64> {
        self.sync();
        Ok(self.turns)
    }
}

impl SpeedFeedback for FakeDCMotor {
    /// Speed in rpm.
    fn speed(&mut self) -> Result<f64> {
        self.sync();
        Ok(self.rpm)
    }
}

/// What a [`FakeStepperMotor`] is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Speed(f64),
    Position { target: f64, vmax: f64 },
}

/// A simulated stepper motor and driver, in mm and mm/s.
///
/// It follows Crappy's model: in speed mode it accelerates at `acceleration` towards the
/// commanded speed (limited to ±`max_speed`); in position mode it follows the time-optimal
/// trapezoidal (or triangular) profile: accelerate to the speed limit, cruise, and brake at
/// `acceleration` so it stops on the target. [`stop`](Actuator::stop) halts at once, like a
/// driver's halt command. Positions are reported in whole microsteps
/// (`1 / (steps_per_mm·microsteps)` mm).
///
/// Unlike Crappy's, a speed below −`max_speed` is not turned into +`max_speed`: a command
/// beyond the limit is refused with [`ErrorKind::OutOfRange`].
///
/// The profile is integrated in steps of 0.1 ms on each call over the elapsed time: at each
/// step the speed moves by at most `acceleration·dt` towards the fastest speed from which the
/// motor can still stop on the target after that step (the discrete form of
/// `sqrt(2·acceleration·distance)`), so it brakes exactly onto the target without overshoot.
/// The phases without acceleration are integrated in one go (constant speed, cruising far
/// from the braking point, holding on the target), so a long gap between calls costs only
/// the steps of the ramps.
#[derive(Debug, Clone)]
pub struct FakeStepperMotor {
    /// Full steps per mm (default 100).
    pub steps_per_mm: f64,
    /// Microsteps per full step (default 256).
    pub microsteps: u32,
    /// Acceleration and deceleration, mm/s² (default 20).
    pub acceleration: f64,
    /// Speed limit, mm/s (default 10).
    pub max_speed: f64,
    /// How much faster than real time the simulation runs (default 1).
    pub simulation_speed: f64,
    pos: f64,
    v: f64,
    target: Target,
    clock: SimClock,
    open: bool,
}

impl Default for FakeStepperMotor {
    fn default() -> Self {
        FakeStepperMotor {
            steps_per_mm: 100.0,
            microsteps: 256,
            acceleration: 20.0,
            max_speed: 10.0,
            simulation_speed: 1.0,
            pos: 0.0,
            v: 0.0,
            target: Target::Speed(0.0),
            clock: SimClock::new(1.0),
            open: false,
        }
    }
}

const STEPPER_DT: f64 = 1e-4;

impl FakeStepperMotor {
    /// A stepper with Crappy's default parameters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the acceleration (mm/s²).
    pub fn acceleration(mut self, a: f64) -> Self {
        self.acceleration = a;
        self
    }
    /// Sets the speed limit (mm/s).
    pub fn max_speed(mut self, v: f64) -> Self {
        self.max_speed = v;
        self
    }
    /// Sets full steps per mm and microsteps per step.
    pub fn steps(mut self, steps_per_mm: f64, microsteps: u32) -> Self {
        self.steps_per_mm = steps_per_mm;
        self.microsteps = microsteps;
        self
    }
    /// Runs the simulation this many times faster than real time.
    pub fn simulation_speed(mut self, v: f64) -> Self {
        self.simulation_speed = v;
        self.clock = SimClock::new(v);
        self
    }

    /// Integrates the motion over `dt` seconds of simulated time.
    pub fn advance(&mut self, dt: f64) {
        self.advance_counted(dt);
    }

    /// [`advance`](Self::advance), returning the number of integration steps taken.
    fn advance_counted(&mut self, mut dt: f64) -> u64 {
        let a = self.acceleration;
        let mut steps = 0;
        while dt > 0.0 {
            steps += 1;
            let v0 = self.v;
            // Closed forms for the phases without acceleration.
            match self.target {
                Target::Speed(vt) if v0 == vt => {
                    self.pos += vt * dt;
                    break;
                }
                Target::Position { target, .. } if v0 == 0.0 && self.pos == target => break,
                Target::Position { target, vmax } if v0 != 0.0 && v0.abs() == vmax => {
                    let d = target - self.pos;
                    if d * v0 > 0.0 {
                        // Cruising: constant speed until a few steps before the braking point.
                        let cruise = (d.abs() - v0 * v0 / (2.0 * a)) / vmax - 4.0 * STEPPER_DT;
                        if cruise > STEPPER_DT {
                            let t = cruise.min(dt);
                            self.pos += v0 * t;
                            dt -= t;
                            continue;
                        }
                    }
                }
                _ => {}
            }
            let h = dt.min(STEPPER_DT);
            dt -= h;
            match self.target {
                Target::Speed(vt) => {
                    let v1 = approach(v0, vt, a * h);
                    // Exact for constant acceleration within the step (it may reach vt midway).
                    let t_reach = if a > 0.0 {
                        (vt - v0).abs() / a
                    } else {
                        f64::INFINITY
                    };
                    if t_reach >= h {
                        self.pos += (v0 + v1) / 2.0 * h;
                    } else {
                        self.pos += (v0 + vt) / 2.0 * t_reach + vt * (h - t_reach);
                    }
                    self.v = v1;
                }
                Target::Position { target, vmax } => {
                    let d = target - self.pos;
                    // The fastest speed v1 from which, after this step, the motor still
                    // stops on the target braking at `a`: d − (v0 + v1)/2·h = v1²/(2a).
                    let dir = if d != 0.0 { d.signum() } else { -v0.signum() };
                    let rem = d.abs() - v0 * dir * h / 2.0;
                    let half = a * h / 2.0;
                    let v_brake = if rem > 0.0 {
                        -half + (half * half + 2.0 * a * rem).sqrt()
                    } else {
                        0.0
                    };
                    let v1 = approach(v0, dir * vmax.min(v_brake.max(0.0)), a * h);
                    let step = (v0 + v1) / 2.0 * h;
                    if step * dir >= d.abs() && v1.abs() <= a * h * (1.0 + 1e-9) {
                        // Arrives within this step at a crawl: stop on the target and hold.
                        self.pos = target;
                        self.v = 0.0;
                    } else {
                        self.pos += step;
                        self.v = v1;
                    }
                }
            }
        }
        steps
    }

    /// Commands a speed (mm/s) without reading the clock.
    pub fn command_speed(&mut self, v: f64) -> Result<()> {
        self.check_speed(v)?;
        self.target = Target::Speed(v);
        Ok(())
    }

    /// Commands a position (mm), at `speed` (mm/s, not 0; its sign is ignored) or
    /// `max_speed`, without reading the clock.
    pub fn command_position(&mut self, p: f64, speed: Option<f64>) -> Result<()> {
        if !p.is_finite() {
            return Err(device_error(
                ErrorKind::OutOfRange,
                "FakeStepperMotor",
                format!("position {p} mm is not finite"),
            ));
        }
        let vmax = match speed {
            Some(s) => {
                self.check_speed(s)?;
                if s == 0.0 {
                    return Err(device_error(
                        ErrorKind::OutOfRange,
                        "FakeStepperMotor",
                        "move speed 0 mm/s: the motor would never reach the target; give a speed above 0",
                    ));
                }
                s.abs()
            }
            None => self.max_speed,
        };
        self.target = Target::Position { target: p, vmax };
        Ok(())
    }

    /// Halts at once without reading the clock.
    pub fn halt(&mut self) {
        self.v = 0.0;
        self.target = Target::Speed(0.0);
    }

    /// Exact position (mm), not rounded to the microstep.
    pub fn exact_position(&self) -> f64 {
        self.pos
    }

    /// Speed (mm/s) without reading the clock.
    pub fn current_speed(&self) -> f64 {
        self.v
    }

    fn microstep_mm(&self) -> f64 {
        1.0 / (self.steps_per_mm * self.microsteps as f64)
    }

    fn check_speed(&self, v: f64) -> Result<()> {
        if !v.is_finite() || v.abs() > self.max_speed * (1.0 + 1e-12) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                "FakeStepperMotor",
                format!(
                    "speed {v} mm/s is outside ±{} mm/s (max_speed)",
                    self.max_speed
                ),
            ));
        }
        Ok(())
    }

    fn sync(&mut self) {
        let dt = self.clock.elapsed();
        self.advance(dt);
    }
}

/// `v` moved towards `target` by at most `step`.
fn approach(v: f64, target: f64, step: f64) -> f64 {
    if (target - v).abs() <= step {
        target
    } else {
        v + step * (target - v).signum()
    }
}

impl Actuator for FakeStepperMotor {
    fn check(&self) -> Result<()> {
        let n = "FakeStepperMotor";
        check_positive(n, "steps_per_mm", self.steps_per_mm, "")?;
        check_positive(n, "acceleration", self.acceleration, "mm/s²")?;
        check_positive(n, "max_speed", self.max_speed, "mm/s")?;
        check_positive(n, "simulation_speed", self.simulation_speed, "")?;
        if self.microsteps == 0 {
            return Err(
                Error::config("parameter 'microsteps' is 0; use 1 for full steps").with_origin(n),
            );
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        self.clock = SimClock::new(self.simulation_speed);
        self.clock.elapsed();
        self.open = true;
        Ok(())
    }

    /// Speed in mm/s.
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        self.sync();
        self.command_speed(speed)
    }

    fn stop(&mut self) -> Result<()> {
        self.sync();
        self.halt();
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.halt();
        self.open = false;
        Ok(())
    }

    fn status(&self) -> Status {
        if !self.open {
            Status::off()
        } else if self.v != 0.0 {
            Status::moving(format!("{:.3} mm at {:.3} mm/s", self.pos, self.v))
        } else {
            Status::on(format!("holding at {:.3} mm", self.pos))
        }
    }
}

impl Positioner for FakeStepperMotor {
    /// Position in mm, speed in mm/s.
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        self.sync();
        self.command_position(position, speed)
    }
}

impl PositionFeedback for FakeStepperMotor {
    fn position(&mut self) -> Result<f64> {
        self.sync();
        let m = self.microstep_mm();
        Ok((self.pos / m).round() * m)
    }
}

impl SpeedFeedback for FakeStepperMotor {
    fn speed(&mut self) -> Result<f64> {
        self.sync();
        Ok(self.v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close_to(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn dc_motor_matches_crappy_figures_at_100_hz() {
        // Crappy measured (1 V at t=0, calls every 10 ms): 20.0, 176.56, 539.81, 667.78, 704.97.
        let mut m = FakeDCMotor::new();
        m.apply_voltage(1.0).unwrap();
        let mut t = 0;
        let mut at = |m: &mut FakeDCMotor, until_cs: u32| {
            while t < until_cs {
                m.advance(0.01);
                t += 1;
            }
            m.rpm()
        };
        assert!(close_to(at(&mut m, 1), 20.0, 1e-9));
        assert!(close_to(at(&mut m, 10), 176.56, 0.01), "{}", m.rpm());
        assert!(close_to(at(&mut m, 50), 539.81, 0.01), "{}", m.rpm());
        assert!(close_to(at(&mut m, 100), 667.78, 0.01), "{}", m.rpm());
        assert!(close_to(at(&mut m, 200), 704.97, 0.01), "{}", m.rpm());
    }

    #[test]
    fn dc_motor_steady_state_is_707_14_rpm_at_1_v() {
        let mut m = FakeDCMotor::new();
        m.apply_voltage(1.0).unwrap();
        m.advance(20.0);
        // 2e-5·rpm² + 1.4·rpm − 1000 = 0
        let expected = (-1.4 + (1.4f64 * 1.4 + 4.0 * 2e-5 * 1000.0).sqrt()) / (2.0 * 2e-5);
        assert!(close_to(expected, 707.14, 0.005));
        assert!(close_to(m.rpm(), expected, 1e-6), "{}", m.rpm());
        // Position in turns grows at rpm/60 per second once steady.
        let p0 = m.turns();
        m.advance(6.0);
        assert!(close_to(m.turns() - p0, expected / 60.0 * 6.0, 1e-6));
    }

    #[test]
    fn dc_motor_friction_opposes_motion_in_reverse() {
        let mut m = FakeDCMotor::new();
        m.apply_voltage(-1.0).unwrap();
        m.advance(20.0);
        assert!(close_to(m.rpm(), -707.14, 0.01), "{}", m.rpm());
        assert!(m.turns() < 0.0);
    }

    #[test]
    fn dc_motor_small_inertia_stays_stable() {
        let mut m = FakeDCMotor::new().inertia(1e-4);
        m.apply_voltage(1.0).unwrap();
        m.advance(1.0);
        assert!(close_to(m.rpm(), 707.14, 0.01), "{}", m.rpm());
    }

    #[test]
    fn dc_motor_rejects_voltage_beyond_limit_and_bad_config() {
        let mut m = FakeDCMotor::new();
        assert_eq!(
            m.apply_voltage(30.0).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            m.apply_voltage(f64::NAN).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        let e = FakeDCMotor::new().inertia(0.0).check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("inertia"));
    }

    #[test]
    fn long_gaps_cost_few_steps_and_keep_the_physics() {
        // A day of simulated time (a long test at simulation_speed 100): the DC motor
        // reaches its steady state, then runs at 707.14 rpm.
        let mut m = FakeDCMotor::new();
        m.apply_voltage(1.0).unwrap();
        let n = m.advance_counted(86_400.0);
        assert!(n < 20_000, "{n} steps");
        let mut r = FakeDCMotor::new();
        r.apply_voltage(1.0).unwrap();
        r.advance(20.0);
        let turns = r.turns() + (86_400.0 - 20.0) * r.rpm() / 60.0;
        assert!(close_to(m.rpm(), r.rpm(), 1e-6), "{}", m.rpm());
        assert!(
            close_to(m.turns(), turns, 1e-3 * turns.abs()),
            "{}",
            m.turns()
        );
        // A stepper at constant speed, holding, or cruising on a long move.
        let mut s = FakeStepperMotor::new();
        s.command_speed(-10.0).unwrap();
        let n = s.advance_counted(86_400.0);
        assert!(n < 10_000, "{n} steps");
        assert!(close_to(
            s.exact_position(),
            -2.5 - 10.0 * (86_400.0 - 0.5),
            1e-3
        ));
        s.halt();
        assert!(s.advance_counted(86_400.0) <= 1);
        let mut s = FakeStepperMotor::new();
        s.command_position(100_000.0, None).unwrap();
        let n = s.advance_counted(86_400.0);
        assert!(n < 100_000, "{n} steps");
        assert_eq!(s.exact_position(), 100_000.0);
        assert_eq!(s.current_speed(), 0.0);
        // The cruise shortcut keeps the trapezoid: 10 mm/s over 100 mm arrives at 10.5 s.
        let mut s = FakeStepperMotor::new();
        s.command_position(100.0, None).unwrap();
        s.advance(10.45);
        assert!(s.current_speed() > 0.0 && s.exact_position() < 100.0);
        assert!(close_to(
            s.exact_position(),
            100.0 - 0.5 * 20.0 * 0.05 * 0.05,
            1e-3
        ));
        s.advance(0.06);
        assert_eq!(s.exact_position(), 100.0);
    }

    #[test]
    fn stepper_trapezoid_hits_hand_computed_points() {
        // 10 mm at a = 20 mm/s², vmax = 10 mm/s: 0.5 s accelerating (2.5 mm), 0.5 s cruising
        // (5 mm), 0.5 s braking (2.5 mm): arrives at 1.5 s.
        let mut m = FakeStepperMotor::new();
        m.command_position(10.0, None).unwrap();
        m.advance(0.25);
        assert!(
            close_to(m.exact_position(), 0.5 * 20.0 * 0.25 * 0.25, 1e-3),
            "{}",
            m.exact_position()
        );
        assert!(close_to(m.current_speed(), 5.0, 1e-6));
        m.advance(0.25);
        assert!(close_to(m.exact_position(), 2.5, 1e-3));
        assert!(close_to(m.current_speed(), 10.0, 1e-9));
        m.advance(0.5);
        assert!(
            close_to(m.exact_position(), 7.5, 2e-3),
            "{}",
            m.exact_position()
        );
        m.advance(0.25);
        assert!(
            close_to(m.exact_position(), 10.0 - 0.5 * 20.0 * 0.25 * 0.25, 3e-3),
            "{}",
            m.exact_position()
        );
        assert!(
            close_to(m.current_speed(), 5.0, 0.05),
            "{}",
            m.current_speed()
        );
        m.advance(0.3);
        assert_eq!(m.exact_position(), 10.0);
        assert_eq!(m.current_speed(), 0.0);
    }

    #[test]
    fn stepper_triangle_profile_for_short_moves() {
        // 1 mm: never reaches 10 mm/s; peak sqrt(a·d) = 4.47 mm/s at 0.5 mm, arrival 0.447 s.
        let mut m = FakeStepperMotor::new();
        m.command_position(-1.0, None).unwrap();
        let mut peak: f64 = 0.0;
        let mut t = 0.0;
        while m.exact_position() != -1.0 && t < 2.0 {
            m.advance(0.001);
            t += 0.001;
            peak = peak.max(m.current_speed().abs());
        }
        assert!(close_to(peak, 20f64.sqrt(), 0.01), "{peak}");
        assert!(close_to(t, 2.0 * (1.0f64 / 20.0).sqrt(), 0.01), "{t}");
    }

    #[test]
    fn stepper_speed_mode_keeps_the_sign() {
        let mut m = FakeStepperMotor::new();
        assert_eq!(
            m.command_speed(-15.0).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        m.command_speed(-10.0).unwrap();
        m.advance(1.0);
        assert_eq!(m.current_speed(), -10.0);
        // 0.5 s ramp (−2.5 mm) then 0.5 s at −10 mm/s (−5 mm).
        assert!(
            close_to(m.exact_position(), -7.5, 1e-9),
            "{}",
            m.exact_position()
        );
        m.halt();
        assert_eq!(m.current_speed(), 0.0);
    }

    #[test]
    fn stepper_position_uses_given_speed_and_rounds_to_microsteps() {
        let mut m = FakeStepperMotor::new();
        m.open().unwrap();
        assert_eq!(
            m.command_position(1.0, Some(0.0)).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        m.command_position(1.0, Some(2.0)).unwrap();
        m.advance(0.3);
        assert!(close_to(m.current_speed(), 2.0, 1e-9));
        let p = m.position().unwrap();
        let micro = 1.0 / 25600.0;
        assert!(close_to((p / micro).round() * micro, p, 1e-12));
        assert!(close_to(p, m.exact_position(), micro));
    }
}
