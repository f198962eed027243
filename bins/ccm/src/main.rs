//! NIFCLOUD cloud-controller-manager binary.

fn main() {}
