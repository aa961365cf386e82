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
//!   ([`serial::LineInOut`]), SCPI instruments ([`serial::ScpiInOut`]), the Pololu Tic
//!   stepper controller ([`serial::PololuTic`]), microcontroller boards speaking Crappy's
//!   UController protocol ([`serial::UController`], with its MicroPython board script in
//!   `hardware/boards/` and a simulated board in [`serial::ucontroller::sim`]) and JVL MAC
//!   servo motors ([`serial::JvlMac`], MacTalk registers, simulated in
//!   [`serial::jvl_mac::sim`]).
//! - [`modbus`]: Modbus RTU (over [`serial`]) and Modbus TCP devices, [`modbus::ModbusInOut`],
//!   and the simulators their tests (and yours) play them with ([`modbus::sim`]).
//! - [`lock`]: exclusive access to a port, a Modbus unit or a camera across tests and
//!   processes.
//! - [`camera`][mod@camera]: cameras, simulated or V4L2, and [`camera::FileReader`], which
//!   replays a folder recorded by the camera Block (to run image processing again offline).

pub mod camera;
pub mod lock;
pub mod modbus;
pub mod motor;
pub mod sensor;
pub mod serial;

pub use motor::{FakeDCMotor, FakeStepperMotor};
pub use sensor::{FakeFurnace, Prng};
