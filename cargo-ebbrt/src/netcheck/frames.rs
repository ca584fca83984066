//! Ethernet frames built and read by hand for the checks that talk to the
//! guest below TCP/UDP: ARP, ICMP echo, and the malformed frames sent at
//! it. Pure functions over byte vectors (no sockets), unit-tested here.

use std::net::Ipv4Addr;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// The broadcast address.
pub const BROADCAST: Mac = [0xff; 6];
/// EtherType of IPv4.
pub const ETH_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_ARP: u16 = 0x0806;
const ETH_HEADER: usize = 14;
const IP_HEADER: usize = 20;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The Internet checksum (RFC 1071) of `data`, ready to store.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// An Ethernet frame.
pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (20-byte header, correct checksum).
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let total = (IP_HEADER + payload.len()) as u16;
    let mut p = vec![0u8; IP_HEADER];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An ICMP echo request (`kind` 8) or reply (0), correct checksum.
pub fn icmp_echo(kind: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u32::from(proto) + len as u32
}

/// A UDP datagram, correct checksum.
pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&src.1.to_be_bytes());
    u.extend_from_slice(&dst.1.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut c = !fold(sum(pseudo(src.0, dst.0, 17, len), &u));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// A TCP SYN segment (20-byte header), correct checksum.
pub fn tcp_syn(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seq: u32) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    let c = !fold(sum(pseudo(src.0, dst.0, 6, t.len()), &t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// An ARP packet for IPv4 over Ethernet (`op` 1: request, 2: reply).
pub fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// The sender's Ethernet address if `frame` is an ARP reply from `from`
/// to `to` (at `to_mac`), consistent with its Ethernet header.
pub fn arp_reply_from(frame: &[u8], from: Ipv4Addr, to: Ipv4Addr, to_mac: Mac) -> Option<Mac> {
    if frame.len() < ETH_HEADER + 28 || be16(frame, 12) != ETH_ARP {
        return None;
    }
    let a = &frame[ETH_HEADER..];
    let fixed_ok = a[..6] == [0, 1, 0x08, 0x00, 6, 4] && be16(a, 6) == 2;
    let sha: Mac = a[8..14].try_into().ok()?;
    let ok = fixed_ok
        && a[14..18] == from.octets()
        && a[18..24] == to_mac
        && a[24..28] == to.octets()
        && frame[0..6] == to_mac
        && frame[6..12] == sha;
    ok.then_some(sha)
}

/// `(id, seq, data)` if `frame` is a well-formed ICMP echo reply from
/// `from` (IPv4 header and ICMP checksums correct).
pub fn icmp_echo_reply_from(frame: &[u8], from: Ipv4Addr) -> Option<(u16, u16, Vec<u8>)> {
    if frame.len() < ETH_HEADER + IP_HEADER + 8 || be16(frame, 12) != ETH_IPV4 {
        return None;
    }
    let p = &frame[ETH_HEADER..];
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(be16(p, 2));
    let plausible = p[0] >> 4 == 4 && ihl >= IP_HEADER && total >= ihl + 8 && total <= p.len();
    if !plausible || p[9] != 1 || p[12..16] != from.octets() || fold(sum(0, &p[..ihl])) != 0xffff {
        return None;
    }
    let m = &p[ihl..total];
    if m[0] != 0 || m[1] != 0 || fold(sum(0, m)) != 0xffff {
        return None;
    }
    Some((be16(m, 4), be16(m, 6), m[8..].to_vec()))
}

/// A malformed frame to send at the guest, and the counter (a
/// `DropReason` name of ebbrt-net) it must land in, if one is certain.
#[derive(Clone, Debug)]
pub struct Malformed {
    /// What is wrong with it.
    pub what: &'static str,
    /// The frame.
    pub frame: Vec<u8>,
    /// The drop reason the guest must count it under; `None` for frames
    /// that only must not hurt (random bytes).
    pub expect: Option<&'static str>,
}

/// Every kind of malformed frame the guest must count and drop, addressed
/// from `host` to `guest`, plus `random` frames of random bytes (seeded).
pub fn malformed_set(
    guest: (Mac, Ipv4Addr),
    host: (Mac, Ipv4Addr),
    port: u16,
    random: usize,
    seed: u64,
) -> Vec<Malformed> {
    let (gm, gip) = guest;
    let (hm, hip) = host;
    let frame = |payload: &[u8]| eth(gm, hm, ETH_IPV4, payload);
    let ping = ipv4(hip, gip, 1, 7, &icmp_echo(8, 0xeb, 1, &[b'x'; 32]));
    let mut set = Vec::new();
    let mut add = |what, frame: Vec<u8>, expect| {
        set.push(Malformed {
            what,
            frame,
            expect: Some(expect),
        })
    };
    add(
        "Ethernet header cut short",
        eth(gm, hm, ETH_IPV4, &[])[..10].to_vec(),
        "truncated",
    );
    add("IPv4 header cut short", frame(&ping[..11]), "truncated");
    let mut long = ping.clone();
    long[2..4].copy_from_slice(&1000u16.to_be_bytes());
    let c = checksum(&{
        let mut h = long[..IP_HEADER].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    long[10..12].copy_from_slice(&c.to_be_bytes());
    add(
        "IPv4 total length beyond the frame",
        frame(&long),
        "truncated",
    );
    let mut bad = ping.clone();
    bad[10] ^= 0xff;
    add("bad IPv4 header checksum", frame(&bad), "bad_ip_checksum");
    let mut v6 = ping.clone();
    v6[0] = 0x65;
    add("IP version 6 in an IPv4 frame", frame(&v6), "bad_ip_header");
    let mut short_ihl = ping.clone();
    short_ihl[0] = 0x44;
    add(
        "IPv4 header length below 20",
        frame(&short_ihl),
        "bad_ip_header",
    );
    let mut icmp = icmp_echo(8, 0xeb, 2, &[b'y'; 32]);
    icmp[2] ^= 0x5a;
    add(
        "bad ICMP checksum",
        frame(&ipv4(hip, gip, 1, 8, &icmp)),
        "bad_checksum",
    );
    add(
        "TCP header cut short",
        frame(&ipv4(hip, gip, 6, 9, &[0u8; 8])),
        "truncated",
    );
    let mut syn = tcp_syn((hip, 40000), (gip, port), 1);
    syn[16] ^= 0x33;
    add(
        "bad TCP checksum",
        frame(&ipv4(hip, gip, 6, 10, &syn)),
        "bad_checksum",
    );
    let mut dgram = udp((hip, 40001), (gip, port), b"must not be echoed");
    dgram[7] ^= 0x0f;
    add(
        "bad UDP checksum",
        frame(&ipv4(hip, gip, 17, 11, &dgram)),
        "bad_checksum",
    );
    let mut ulen = udp((hip, 40002), (gip, port), b"short");
    ulen[4..6].copy_from_slice(&100u16.to_be_bytes());
    add(
        "UDP length beyond the packet",
        frame(&ipv4(hip, gip, 17, 12, &ulen)),
        "truncated",
    );
    for (what, size) in [
        ("oversized frame, 1600 bytes", 1600usize),
        ("oversized frame, 4000 bytes", 4000),
        ("oversized frame, 9000 bytes", 9000),
    ] {
        let body = vec![0x5au8; size - ETH_HEADER - IP_HEADER - 8];
        let p = ipv4(hip, gip, 17, 13, &udp((hip, 40003), (gip, port), &body));
        add(what, frame(&p), "oversized");
    }
    add(
        "ARP packet cut short",
        eth(gm, hm, ETH_ARP, &[0, 1, 8, 0, 6, 4]),
        "truncated",
    );
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..random {
        // Past the Ethernet header: at least one byte of "IPv4" payload.
        let len = 15 + (next() % 300) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        f[..6].copy_from_slice(&gm);
        f[6..12].copy_from_slice(&hm);
        // Half of them claim to be IPv4, so the IPv4 checks see garbage.
        if i % 2 == 0 {
            f[12..14].copy_from_slice(&ETH_IPV4.to_be_bytes());
            f[14] = 0x45;
        }
        set.push(Malformed {
            what: "random bytes",
            frame: f,
            expect: None,
        });
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
    const H: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
    const GM: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const HM: Mac = [2, 0, 0, 0, 0, 1];

    #[test]
    fn checksums_match_rfc_1071() {
        // RFC 1071, section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        let p = ipv4(H, G, 1, 5, &icmp_echo(8, 1, 2, b"abc"));
        assert_eq!(fold(sum(0, &p[..20])), 0xffff);
        assert_eq!(fold(sum(0, &p[20..])), 0xffff);
        let u = udp((H, 1), (G, 2), b"hello");
        assert_eq!(fold(sum(pseudo(H, G, 17, u.len()), &u)), 0xffff);
        let t = tcp_syn((H, 1), (G, 2), 99);
        assert_eq!(fold(sum(pseudo(H, G, 6, t.len()), &t)), 0xffff);
    }

    #[test]
    fn replies_are_recognised_and_checked() {
        let reply = eth(HM, GM, ETH_ARP, &arp(2, GM, G, HM, H));
        assert_eq!(arp_reply_from(&reply, G, H, HM), Some(GM));
        assert_eq!(arp_reply_from(&reply, H, H, HM), None);
        let request = eth(BROADCAST, HM, ETH_ARP, &arp(1, HM, H, [0; 6], G));
        assert_eq!(arp_reply_from(&request, H, G, HM), None);

        let pong = eth(
            HM,
            GM,
            ETH_IPV4,
            &ipv4(G, H, 1, 3, &icmp_echo(0, 7, 9, b"data")),
        );
        assert_eq!(
            icmp_echo_reply_from(&pong, G),
            Some((7, 9, b"data".to_vec()))
        );
        assert_eq!(icmp_echo_reply_from(&pong, H), None);
        let mut bad = pong.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(icmp_echo_reply_from(&bad, G), None, "a bad ICMP checksum");
        let ping = eth(
            HM,
            GM,
            ETH_IPV4,
            &ipv4(G, H, 1, 3, &icmp_echo(8, 7, 9, b"d")),
        );
        assert_eq!(
            icmp_echo_reply_from(&ping, G),
            None,
            "a request, not a reply"
        );
        for n in 0..pong.len() {
            assert_eq!(icmp_echo_reply_from(&pong[..n], G), None);
        }
    }

    #[test]
    fn the_guest_classifies_the_malformed_set_as_labelled() {
        use ebbrt_net::frame::{DropReason, check_rx};
        let set = malformed_set((GM, G), (HM, H), 7777, 40, 42);
        assert_eq!(set.iter().filter(|m| m.expect.is_none()).count(), 40);
        for m in &set {
            let got = check_rx(&m.frame, 1500, false);
            let Some(expect) = m.expect else {
                // Random bytes: anything but a crash (and no panic here).
                continue;
            };
            let reason = DropReason::ALL.into_iter().find(|r| r.name() == expect);
            assert_eq!(got.err(), reason, "{}: {expect}", m.what);
            if expect == "oversized" && m.frame.len() > 2036 {
                // The guest's driver delivers the first 2036 bytes of a
                // frame that spans receive buffers.
                assert_eq!(
                    check_rx(&m.frame[..2036], 1500, false),
                    Err(DropReason::Oversized)
                );
            }
            if expect == "bad_checksum" && m.frame[23] == 17 {
                assert_ne!(be16(&m.frame, 40), 0, "a zero UDP checksum means none");
            }
        }
        // Deterministic for a seed.
        let again = malformed_set((GM, G), (HM, H), 7777, 40, 42);
        assert!(set.iter().zip(&again).all(|(a, b)| a.frame == b.frame));
    }

    #[test]
    fn any_seed_makes_a_set_without_panicking() {
        // The checks seed with the tool's pid: try many.
        for seed in 0..2000 {
            let set = malformed_set((GM, G), (HM, H), 7777, 50, seed);
            assert!(set.iter().all(|m| m.frame.len() >= 10));
        }
    }
}
