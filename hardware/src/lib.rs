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
//!   controllers ([`serial::PololuTic`], [`serial::NewportSmc100`], [`serial::MDrive`]),
//!   JVL MAC servo motors ([`serial::JvlMac`], MacTalk registers) and microcontroller boards
//!   speaking Crappy's UController protocol ([`serial::UController`], with its MicroPython
//!   board script in `hardware/boards/`); simulators of each instrument's protocol, for
//!   tests and benches, in [`serial::sim`], [`serial::jvl_mac::sim`] and
//!   [`serial::ucontroller::sim`].
//! - [`modbus`]: Modbus RTU (over [`serial`]) and Modbus TCP devices, [`modbus::ModbusInOut`],
//!   and the simulators their tests (and yours) play them with ([`modbus::sim`]).
//! - Modbus device drivers, each with a simulator of its register map and physics:
//!   [`labjack`] (LabJack T7 over Modbus TCP, [`labjack::T7`]), [`eurotherm`] (Eurotherm
//!   3200 temperature controllers over RTU, [`eurotherm::Eurotherm3200`]) and [`oriental`]
//!   (Oriental Motor AZ drivers over RTU, [`oriental::AzMotor`], an `Actuator` with position
//!   control and feedback).
//! - [`lock`]: exclusive access to a port, a Modbus unit or a camera across tests and
//!   processes.
//! - [`camera`][mod@camera]: cameras, simulated or V4L2, and [`camera::FileReader`], which
//!   replays a folder recorded by the camera Block (to run image processing again offline).

pub mod camera;
pub mod eurotherm;
pub mod labjack;
pub mod lock;
pub mod modbus;
pub mod motor;
pub mod oriental;
pub mod sensor;
pub mod serial;
pub mod sim_thread;

#[cfg(test)]
mod parser_fuzz;

pub use motor::{FakeDCMotor, FakeStepperMotor};
pub use sensor::{FakeFurnace, Prng};
