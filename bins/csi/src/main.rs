//! NIFCLOUD additional-storage CSI driver binary.

fn main() {}
