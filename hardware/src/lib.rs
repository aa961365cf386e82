//! # crabby-hardware
//!
//! Drivers and simulated devices for crabby. The traits they implement live in the core
//! ([`crabby::hardware`]: `InOut`, `Actuator`); the Blocks that drive them in
//! `crabby-blocks` (`IOBlock`, `Machine`, the camera Blocks).
//!
//! - [`motor`]: simulated motors, [`FakeDCMotor`] (voltage-driven, rpm and turns) and
//!   [`FakeStepperMotor`] (trapezoidal profile, mm and mm/s).
//! - [`sensor`]: a simulated furnace with a heater command and a noisy thermocouple,
//!   [`FakeFurnace`], readable or streamed, deterministic under a seed.
//! - [`serial`]: real devices on serial ports: a generic line protocol
//!   ([`serial::LineInOut`]), SCPI instruments ([`serial::ScpiInOut`]), the Keysight 34420A
//!   nanovolt meter ([`serial::Keysight34420A`]), Alicat mass flow controllers
//!   ([`serial::AlicatMfc`]), and the Pololu Tic, Newport SMC100 and IMS MDrive motion
//!   controllers ([`serial::PololuTic`], [`serial::NewportSmc100`], [`serial::MDrive`]);
//!   simulators of each instrument's protocol, for tests and benches, in [`serial::sim`].
//! - [`modbus`]: Modbus RTU (over [`serial`]) and Modbus TCP devices, [`modbus::ModbusInOut`],
//!   and the simulators their tests (and yours) play them with ([`modbus::sim`]).
//! - Modbus device drivers, each with a simulator of its register map and physics:
//!   [`labjack`] (LabJack T7 over Modbus TCP, [`labjack::T7`]), [`eurotherm`] (Eurotherm
//!   3200 temperature controllers over RTU, [`eurotherm::Eurotherm3200`]) and [`oriental`]
//!   (Oriental Motor AZ drivers over RTU, [`oriental::AzMotor`], an `Actuator` with position
//!   control and feedback).
//! - [`lock`]: exclusive access to a port or a Modbus unit across tests and processes.
//! - [`camera`][mod@camera]: cameras.

pub mod camera;
pub mod eurotherm;
pub mod labjack;
pub mod lock;
pub mod modbus;
pub mod motor;
pub mod oriental;
pub mod sensor;
pub mod serial;

pub use motor::{FakeDCMotor, FakeStepperMotor};
pub use sensor::{FakeFurnace, Prng};
