//! First-byte demultiplexing of datagrams on a media port (RFC 7983, RFC 5761).

/// What a datagram on an ICE/DTLS/SRTP port is, judged from its first bytes only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// First byte 0..=3: a STUN message (ICE connectivity checks, consent).
    Stun,
    /// First byte 20..=63: a DTLS record.
    Dtls,
    /// First byte 128..=191 and second byte's payload type outside 192..=223: SRTP.
    Rtp,
    /// First byte 128..=191 and second byte's payload type in 192..=223: SRTCP (rtcp-mux).
    Rtcp,
    /// Anything else (TURN channel data, ZRTP, garbage): counted and dropped.
    Unknown,
}

/// Classifies a datagram. Pure and total: never panics, whatever the input.
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(20..=63) => PacketKind::Dtls,
        Some(128..=191) => match datagram.get(1) {
            // RFC 5761: RTCP packet types 192..=223 collide with RTP marker bit + PT 64..=95,
            // which RTP payload types must therefore avoid.
            Some(b) if (192..=223).contains(b) => PacketKind::Rtcp,
            Some(_) if datagram.len() >= 12 => PacketKind::Rtp,
            _ => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7983_ranges() {
        assert_eq!(classify(&[0, 1, 0, 0]), PacketKind::Stun);
        assert_eq!(classify(&[3]), PacketKind::Stun);
        assert_eq!(classify(&[20, 0xfe, 0xfd]), PacketKind::Dtls);
        assert_eq!(classify(&[63]), PacketKind::Dtls);
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 111; // opus
        assert_eq!(classify(&rtp), PacketKind::Rtp);
        rtp[1] = 0x80 | 96; // marker + PT 96
        assert_eq!(classify(&rtp), PacketKind::Rtp);
        assert_eq!(classify(&[0x81, 200, 0, 6]), PacketKind::Rtcp); // SR
        assert_eq!(classify(&[0x81, 201, 0, 1]), PacketKind::Rtcp); // RR
        assert_eq!(classify(&[0x80, 205]), PacketKind::Rtcp); // RTPFB
        assert_eq!(classify(&[0x80, 96, 0]), PacketKind::Unknown); // too short for RTP
        for b in [4u8, 19, 64, 127, 192, 255] {
            assert_eq!(
                classify(&[b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                PacketKind::Unknown,
                "{b}"
            );
        }
        assert_eq!(classify(&[]), PacketKind::Unknown);
    }
}
