//! A stateful emulator of the NIFCLOUD computing API, for tests and demos.
