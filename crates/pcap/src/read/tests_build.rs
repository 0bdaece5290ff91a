//! Test helpers: hand-built pcap and pcapng byte strings in either byte order, and small IP
//! packets, so the reader is tested against bytes written independently of it.

use super::Endian;

pub(crate) fn put16(out: &mut Vec<u8>, order: Endian, v: u16) {
    out.extend_from_slice(&match order {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    });
}

pub(crate) fn put32(out: &mut Vec<u8>, order: Endian, v: u32) {
    out.extend_from_slice(&match order {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    });
}

/// A classic pcap file header: `magic` 0xA1B2C3D4 (µs) or 0xA1B23C4D (ns).
pub(crate) fn pcap_header(order: Endian, magic: u32, linktype: u32) -> Vec<u8> {
    let mut h = Vec::new();
    put32(&mut h, order, magic);
    put16(&mut h, order, 2);
    put16(&mut h, order, 4);
    put32(&mut h, order, 0);
    put32(&mut h, order, 0);
    put32(&mut h, order, 65535);
    put32(&mut h, order, linktype);
    h
}

pub(crate) fn pcap_record(out: &mut Vec<u8>, order: Endian, secs: u32, frac: u32, data: &[u8]) {
    put32(out, order, secs);
    put32(out, order, frac);
    put32(out, order, data.len() as u32);
    put32(out, order, data.len() as u32 + 4);
    out.extend_from_slice(data);
}

/// A pcapng byte string built block by block.
pub(crate) struct Ng {
    pub(crate) order: Endian,
    pub(crate) bytes: Vec<u8>,
}

impl Ng {
    /// A file starting with a section header in `order`.
    pub(crate) fn new(order: Endian) -> Self {
        let mut ng = Ng {
            order,
            bytes: Vec::new(),
        };
        ng.section(order);
        ng
    }

    /// Starts a new section (new byte order, interfaces numbered from 0 again).
    pub(crate) fn section(&mut self, order: Endian) {
        self.order = order;
        let mut body = Vec::new();
        put32(&mut body, order, 0x1A2B_3C4D);
        put16(&mut body, order, 1);
        put16(&mut body, order, 0);
        body.extend_from_slice(&[0xFF; 8]);
        self.block(0x0A0D_0D0A, &body[..]);
    }

    /// Any block: type, length, body (padded), length.
    pub(crate) fn block(&mut self, kind: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let o = self.order;
        put32(&mut self.bytes, o, kind);
        put32(&mut self.bytes, o, len);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
        put32(&mut self.bytes, o, len);
    }

    /// An options list (each padded), with `opt_endofopt` when non-empty.
    pub(crate) fn options(&self, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (code, value) in opts {
            put16(&mut out, self.order, *code);
            put16(&mut out, self.order, value.len() as u16);
            out.extend_from_slice(value);
            out.resize(out.len().div_ceil(4) * 4, 0);
        }
        if !opts.is_empty() {
            out.extend_from_slice(&[0; 4]);
        }
        out
    }

    pub(crate) fn idb(&mut self, linktype: u16, snaplen: u32, opts: &[(u16, &[u8])]) {
        let mut body = Vec::new();
        put16(&mut body, self.order, linktype);
        put16(&mut body, self.order, 0);
        put32(&mut body, self.order, snaplen);
        body.extend_from_slice(&self.options(opts));
        self.block(1, &body);
    }

    /// An IDB with just a name.
    pub(crate) fn named(&mut self, linktype: u16, name: &str) {
        self.idb(linktype, 0, &[(2, name.as_bytes())]);
    }

    pub(crate) fn epb(&mut self, iface: u32, ticks: u64, data: &[u8]) {
        let mut body = Vec::new();
        put32(&mut body, self.order, iface);
        put32(&mut body, self.order, (ticks >> 32) as u32);
        put32(&mut body, self.order, ticks as u32);
        put32(&mut body, self.order, data.len() as u32);
        put32(&mut body, self.order, data.len() as u32);
        body.extend_from_slice(data);
        self.block(6, &body);
    }

    pub(crate) fn spb(&mut self, orig_len: u32, data: &[u8]) {
        let mut body = Vec::new();
        put32(&mut body, self.order, orig_len);
        body.extend_from_slice(data);
        self.block(3, &body);
    }

    pub(crate) fn pb(&mut self, iface: u16, ticks: u64, data: &[u8]) {
        let mut body = Vec::new();
        put16(&mut body, self.order, iface);
        put16(&mut body, self.order, 0);
        put32(&mut body, self.order, (ticks >> 32) as u32);
        put32(&mut body, self.order, ticks as u32);
        put32(&mut body, self.order, data.len() as u32);
        put32(&mut body, self.order, data.len() as u32);
        body.extend_from_slice(data);
        self.block(2, &body);
    }
}

/// An IPv4/UDP packet with `payload`, checksums left 0 (the reader never checks them).
pub(crate) fn ipv4_udp(id: u16, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 1, 2]);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// An IPv6/UDP packet from 2001:db8::1 to 2001:db8::2.
pub(crate) fn ipv6_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let plen = (8 + payload.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    for last in [1u8, 2] {
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(last);
    }
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Every packet of `bytes`: (interface, ts_ns, caplen, orig_len, ip present).
pub(crate) fn read_all(bytes: &[u8]) -> Vec<(u32, i64, u32, u32, bool)> {
    let mut r = super::Reader::new(bytes).expect("header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().expect("packet") {
        out.push((p.interface, p.ts_ns, p.caplen, p.orig_len, p.ip.is_some()));
    }
    out
}
