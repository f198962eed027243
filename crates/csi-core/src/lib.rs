//! CSI v1 gRPC services and Linux node machinery, independent of any cloud.
