//! Hardware traits: `InOut` (sensors, DAQ) and `Actuator` (motors).
