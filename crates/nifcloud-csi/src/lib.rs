//! The NIFCLOUD additional-storage CSI driver: the controller's cloud side and the node's identity.
