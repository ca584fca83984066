//! Checks on received frames before the stack sees them, checksum offload
//! on transmit, and which stacks a received frame concerns.
//!
//! Every frame the stack receives passes [`check_rx`] first: anything
//! malformed (truncated headers, lengths that disagree, bad checksums,
//! oversized frames) is counted under a [`DropReason`] and dropped here, so
//! smoltcp's own checksum verification can be turned off (it would repeat
//! the work, and it counts nothing). A frame the device marked as checked
//! skips the TCP/UDP checksum.

use smoltcp::wire::{
    EthernetProtocol, Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
    checksum,
};

/// The length of an Ethernet header (no VLAN tag).
pub const ETH_HEADER: usize = 14;
const IPV4_MIN_HEADER: usize = 20;
const DHCP_CLIENT_PORT: u16 = 68;

/// Why a received frame was dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the headers it claims to carry.
    Truncated,
    /// Longer than the MTU allows.
    Oversized,
    /// An IPv4 header that is not one (version, header length, total length).
    BadIpHeader,
    /// The IPv4 header checksum is wrong.
    BadIpChecksum,
    /// The TCP, UDP or ICMP checksum is wrong.
    BadChecksum,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 5] = [
        DropReason::Truncated,
        DropReason::Oversized,
        DropReason::BadIpHeader,
        DropReason::BadIpChecksum,
        DropReason::BadChecksum,
    ];

    /// A dense index, for counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name (`bad_ip_checksum`), for logs and counter reports.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::BadChecksum => "bad_checksum",
        }
    }
}

/// Which stacks a received frame concerns, when several stacks (one per
/// queue) share one address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Steer {
    /// Only the stack of the queue it arrived on.
    Local,
    /// Every stack: ARP, so that each stack's neighbour cache learns the
    /// answers to any stack's requests, whichever queue they arrive on.
    All,
    /// The stack that runs DHCP (queue 0).
    First,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The one's-complement sum of `data` (not yet complemented), added to `acc`.
///
/// For a slice of at most 64 KiB, `fold(sum16(0, data))` equals smoltcp's
/// `checksum::data(data)`, which [`check_rx`] and [`prepare_tx_checksum`]
/// use. This one folds as it goes, so it takes any length (smoltcp's
/// accumulates in 32 bits and overflows past 128 KiB):
/// [`complete_tx_checksum`] keeps it, since its frame has no bound.
pub fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
        // Fold early enough that 32 bits never overflow.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

/// Folds a one's-complement sum to 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Checks a received frame. `mtu` bounds the IP packet; `l4_checked` says
/// the device already verified the TCP/UDP checksum.
pub fn check_rx(frame: &[u8], mtu: usize, l4_checked: bool) -> Result<Steer, DropReason> {
    if frame.len() < ETH_HEADER {
        return Err(DropReason::Truncated);
    }
    if frame.len() > ETH_HEADER + mtu {
        return Err(DropReason::Oversized);
    }
    let ethertype = EthernetProtocol::from(be16(frame, 12));
    let payload = &frame[ETH_HEADER..];
    match ethertype {
        EthernetProtocol::Arp => {
            // Hardware/protocol address lengths decide the size; smoltcp
            // parses it, we only make sure the fixed part is there.
            if payload.len() < 8 {
                return Err(DropReason::Truncated);
            }
            let need = 8 + 2 * (payload[4] as usize + payload[5] as usize);
            if payload.len() < need {
                return Err(DropReason::Truncated);
            }
            Ok(Steer::All)
        }
        EthernetProtocol::Ipv4 => check_ipv4(payload, l4_checked),
        // Other protocols are ignored by the stack; nothing to check.
        _ => Ok(Steer::Local),
    }
}

fn check_ipv4(p: &[u8], l4_checked: bool) -> Result<Steer, DropReason> {
    if p.len() < IPV4_MIN_HEADER {
        return Err(DropReason::Truncated);
    }
    if p[0] >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let ihl = (p[0] & 0x0f) as usize * 4;
    let total = be16(p, 2) as usize;
    if ihl < IPV4_MIN_HEADER || total < ihl {
        return Err(DropReason::BadIpHeader);
    }
    if p.len() < total || p.len() < ihl {
        return Err(DropReason::Truncated);
    }
    // The lengths checked above keep smoltcp's accessors in bounds: the
    // header within `p`, the transport header within `l4`, the UDP length
    // within `l4`. Its checksums are the same one's-complement sums over the
    // same bytes (the IPv4 header; the TCP segment and the ICMP message to
    // the IP total length; UDP to its own length field, a zero checksum
    // meaning none), except that a `--cfg fuzzing` build of smoltcp accepts
    // every checksum.
    let ipv4 = Ipv4Packet::new_unchecked(p);
    if !ipv4.verify_checksum() {
        return Err(DropReason::BadIpChecksum);
    }
    let more_frags = p[6] & 0x20 != 0;
    let frag_off = be16(p, 6) & 0x1fff;
    if more_frags || frag_off != 0 {
        // Fragments are checked after reassembly by smoltcp (which has no
        // reassembly configured here: it drops them).
        return Ok(Steer::Local);
    }
    let l4 = &p[ihl..total];
    let src = IpAddress::Ipv4(ipv4.src_addr());
    let dst = IpAddress::Ipv4(ipv4.dst_addr());
    match IpProtocol::from(p[9]) {
        IpProtocol::Tcp => {
            if l4.len() < 20 || l4.len() < ((l4[12] >> 4) as usize) * 4 {
                return Err(DropReason::Truncated);
            }
            if !l4_checked && !TcpPacket::new_unchecked(l4).verify_checksum(&src, &dst) {
                return Err(DropReason::BadChecksum);
            }
            Ok(Steer::Local)
        }
        IpProtocol::Udp => {
            if l4.len() < 8 {
                return Err(DropReason::Truncated);
            }
            let ulen = be16(l4, 4) as usize;
            if ulen < 8 || ulen > l4.len() {
                return Err(DropReason::Truncated);
            }
            // Sums the first `ulen` bytes; a zero checksum means "none" in IPv4.
            if !l4_checked && !UdpPacket::new_unchecked(l4).verify_checksum(&src, &dst) {
                return Err(DropReason::BadChecksum);
            }
            if be16(l4, 2) == DHCP_CLIENT_PORT {
                return Ok(Steer::First);
            }
            Ok(Steer::Local)
        }
        IpProtocol::Icmp => {
            if l4.len() < 8 {
                return Err(DropReason::Truncated);
            }
            if !Icmpv4Packet::new_unchecked(l4).verify_checksum() {
                return Err(DropReason::BadChecksum);
            }
            Ok(Steer::Local)
        }
        _ => Ok(Steer::Local),
    }
}

/// Prepares a frame built with TCP/UDP checksums left out for the device
/// to finish: writes the pseudo-header sum into the checksum field and
/// returns where the device must checksum. `None` when the frame needs no
/// device checksum (not IPv4 TCP/UDP, or too short to be one).
pub fn prepare_tx_checksum(frame: &mut [u8]) -> Option<crate::device::TxChecksum> {
    if frame.len() < ETH_HEADER + IPV4_MIN_HEADER || be16(frame, 12) != 0x0800 {
        return None;
    }
    let ip_start = ETH_HEADER;
    let ihl = (frame[ip_start] & 0x0f) as usize * 4;
    let total = be16(frame, ip_start + 2) as usize;
    if ihl < IPV4_MIN_HEADER || total < ihl || frame.len() < ip_start + total {
        return None;
    }
    let proto = frame[ip_start + 9];
    let csum_field = match proto {
        6 => 16,
        17 => 6,
        _ => return None,
    };
    let l4_start = ip_start + ihl;
    let l4_len = total - ihl;
    if l4_len < csum_field + 2 {
        return None;
    }
    let ip = Ipv4Packet::new_unchecked(&frame[ip_start..l4_start]);
    // `l4_len` fits in 16 bits (it is at most the IP total length).
    let sum = checksum::pseudo_header_v4(
        &ip.src_addr(),
        &ip.dst_addr(),
        IpProtocol::from(proto),
        l4_len as u32,
    );
    frame[l4_start + csum_field..l4_start + csum_field + 2].copy_from_slice(&sum.to_be_bytes());
    Some(crate::device::TxChecksum {
        start: l4_start as u16,
        offset: csum_field as u16,
    })
}

/// Finishes a checksum the way a device does for a [`TxChecksum`](crate::device::TxChecksum) request
/// (simulated devices).
pub fn complete_tx_checksum(frame: &mut [u8], req: crate::device::TxChecksum) {
    let start = req.start as usize;
    let at = start + req.offset as usize;
    if at + 2 > frame.len() {
        return;
    }
    let mut sum = !fold(sum16(0, &frame[start..]));
    // UDP sends an all-zero result as all ones (zero means "no checksum").
    if sum == 0 && req.offset == 6 {
        sum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::TxChecksum;
    use std::vec;
    use std::vec::Vec;

    /// An Ethernet + IPv4 + UDP frame with a correct checksum, built by hand.
    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let ulen = 8 + payload.len();
        let mut f = vec![0u8; 14 + 20 + ulen];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + ulen) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        let c = !fold(sum16(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&7u16.to_be_bytes());
        f[38..40].copy_from_slice(&(ulen as u16).to_be_bytes());
        f[42..].copy_from_slice(payload);
        // The pseudo-header: addresses, protocol, UDP length.
        let c = !fold(sum16(sum16(0, &f[26..34]) + 17 + ulen as u32, &f[34..]));
        f[40..42].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn the_checksum_matches_rfc_1071s_example() {
        // RFC 1071, section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        assert_eq!(
            fold(sum16(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
        // An odd length pads with a zero byte.
        assert_eq!(fold(sum16(0, &[0x01])), 0x0100);
    }

    #[test]
    fn our_sums_equal_smoltcps() {
        // Bytes that carry often, at every length up to a few hundred, and
        // a full 64 KiB.
        let data: Vec<u8> = (0..65536u32)
            .map(|i| ((i * 7919) >> 3) as u8 | 0x80)
            .collect();
        for len in (0..600).chain([65535, 65536]) {
            let d = &data[..len];
            assert_eq!(fold(sum16(0, d)), checksum::data(d), "length {len}");
        }
        assert_eq!(fold(sum16(0, &[0u8; 9])), checksum::data(&[0u8; 9]));
        assert_eq!(fold(sum16(0, &[0xffu8; 9])), checksum::data(&[0xffu8; 9]));
        let (a, b) = ([10, 0, 0, 1].into(), [192, 168, 255, 254].into());
        for (proto, len) in [(6u8, 20u32), (17, 8), (6, 65515), (17, 0xffff)] {
            let ours = fold(sum16(0, &[10, 0, 0, 1, 192, 168, 255, 254]) + proto as u32 + len);
            let theirs = checksum::pseudo_header_v4(&a, &b, IpProtocol::from(proto), len);
            assert_eq!(ours, theirs, "protocol {proto}, length {len}");
        }
    }

    #[test]
    fn valid_frames_pass_and_steer() {
        let f = udp_frame(b"abc");
        assert_eq!(check_rx(&f, 1500, false), Ok(Steer::Local));
        let mut dhcp = f.clone();
        dhcp[36..38].copy_from_slice(&68u16.to_be_bytes());
        // The checksum no longer matches, unless the device checked it.
        assert_eq!(check_rx(&dhcp, 1500, false), Err(DropReason::BadChecksum));
        assert_eq!(check_rx(&dhcp, 1500, true), Ok(Steer::First));
        // A zero UDP checksum means none.
        let mut none = f.clone();
        none[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(check_rx(&none, 1500, false), Ok(Steer::Local));
        // Ethernet padding after the IP packet is fine.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0u8; 10]);
        assert_eq!(check_rx(&padded, 1500, false), Ok(Steer::Local));
    }

    #[test]
    fn every_truncation_of_a_valid_frame_is_dropped() {
        let f = udp_frame(b"hello");
        for len in 0..f.len() {
            assert!(
                check_rx(&f[..len], 1500, false).is_err(),
                "a frame cut to {len} bytes passed"
            );
        }
        assert_eq!(
            check_rx(&vec![0u8; 14 + 1501], 1500, false),
            Err(DropReason::Oversized)
        );
    }

    #[test]
    fn offloaded_checksums_come_out_right() {
        let want = udp_frame(b"offload me");
        let mut f = want.clone();
        f[40..42].copy_from_slice(&[0xaa, 0xbb]);
        let req = prepare_tx_checksum(&mut f).unwrap();
        assert_eq!(
            req,
            TxChecksum {
                start: 34,
                offset: 6
            }
        );
        complete_tx_checksum(&mut f, req);
        assert_eq!(f, want);
        assert_eq!(prepare_tx_checksum(&mut [0u8; 10]), None);
    }
}
