//! virtio-mmio transport and devices (skeleton; see issue 4).
