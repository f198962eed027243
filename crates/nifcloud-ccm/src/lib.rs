//! The NIFCLOUD cloud provider: load balancers and instances for the cloud-controller-manager.
