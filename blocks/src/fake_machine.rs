//! fake_machine
