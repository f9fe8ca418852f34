//! vsock packet constants and header access on top of `virtio-vsock`'s
//! [`VsockPacket`].

use virtio_vsock::packet::{VsockPacket, PKT_HEADER_SIZE};

/// The host's CID.
pub const HOST_CID: u64 = 2;
/// Stream sockets, the only type supported.
pub const TYPE_STREAM: u16 = 1;
/// Connection request.
pub const OP_REQUEST: u16 = 1;
/// Connection accepted.
pub const OP_RESPONSE: u16 = 2;
/// Connection reset (refused, or torn down).
pub const OP_RST: u16 = 3;
/// No more data in one or both directions.
pub const OP_SHUTDOWN: u16 = 4;
/// Data.
pub const OP_RW: u16 = 5;
/// Credit information (unsolicited or on request).
pub const OP_CREDIT_UPDATE: u16 = 6;
/// Ask the peer for its credit.
pub const OP_CREDIT_REQUEST: u16 = 7;
/// SHUTDOWN flag: the sender will receive no more data.
pub const SHUTDOWN_RCV: u32 = 1;
/// SHUTDOWN flag: the sender will send no more data.
pub const SHUTDOWN_SEND: u32 = 2;
/// Both SHUTDOWN flags.
pub const SHUTDOWN_BOTH: u32 = SHUTDOWN_RCV | SHUTDOWN_SEND;
/// Event queue event: the transport was reset; drop all connections.
pub const EVENT_TRANSPORT_RESET: u32 = 0;
/// Largest payload in one packet (Linux's `VIRTIO_VSOCK_MAX_PKT_BUF_SIZE`).
pub const MAX_PKT_DATA: u32 = 64 << 10;

/// A packet in a guest receive buffer.
pub type RxPacket<'a> = VsockPacket<'a, ()>;

/// A packet header, in host order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// Source context id.
    pub src_cid: u64,
    /// Destination context id.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type ([`TYPE_STREAM`]).
    pub type_: u16,
    /// Operation (`OP_*`).
    pub op: u16,
    /// Operation flags (SHUTDOWN's).
    pub flags: u32,
    /// The sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender has consumed from its buffer.
    pub fwd_cnt: u32,
}

impl Header {
    /// The header of a packet.
    pub fn of(pkt: &VsockPacket<'_, ()>) -> Header {
        Header {
            src_cid: pkt.src_cid(),
            dst_cid: pkt.dst_cid(),
            src_port: pkt.src_port(),
            dst_port: pkt.dst_port(),
            len: pkt.len(),
            type_: pkt.type_(),
            op: pkt.op(),
            flags: pkt.flags(),
            buf_alloc: pkt.buf_alloc(),
            fwd_cnt: pkt.fwd_cnt(),
        }
    }
}

/// Write `hdr` into the guest buffer of `pkt`; false if the buffer could
/// not be written.
pub fn write_header(pkt: &mut RxPacket<'_>, hdr: &Header) -> bool {
    if pkt.set_header_from_raw(&[0u8; PKT_HEADER_SIZE]).is_err() {
        return false;
    }
    pkt.set_src_cid(hdr.src_cid)
        .set_dst_cid(hdr.dst_cid)
        .set_src_port(hdr.src_port)
        .set_dst_port(hdr.dst_port)
        .set_len(hdr.len)
        .set_type(hdr.type_)
        .set_op(hdr.op)
        .set_flags(hdr.flags)
        .set_buf_alloc(hdr.buf_alloc)
        .set_fwd_cnt(hdr.fwd_cnt);
    true
}
