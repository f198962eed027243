//! Build-time tasks: SDK code generation, images, manifests, deploy, demo.

fn main() {}
