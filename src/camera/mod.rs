//! Cameras: the `Camera` trait and the shared-memory frame ring.
