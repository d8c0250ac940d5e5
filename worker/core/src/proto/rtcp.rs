//! RTCP on the `rtc-rtcp` crate (not the hot path: a few packets per second per stream). A
//! compound packet becomes a list of typed [`Rtcp`] items the core acts on; anything else in it is
//! ignored.

use bytes::Bytes;
use rtc_rtcp::packet::Packet;
use rtc_rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc_rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc_rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc_rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc_rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};

/// A report block about one stream (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    pub total_lost: u32,
    pub ext_highest_seq: u32,
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the stream's sender.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rtcp {
    SenderReport {
        ssrc: u32,
        ntp: u64,
        rtp: u32,
        packets: u32,
        octets: u32,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    Nack {
        media_ssrc: u32,
        seqs: Vec<u16>,
    },
    Pli {
        media_ssrc: u32,
    },
    Fir {
        /// SSRCs whose keyframe is requested (from the FCI entries).
        media_ssrcs: Vec<u32>,
    },
    Remb {
        bitrate: u64,
        ssrcs: Vec<u32>,
    },
    /// Source description: the CNAME of each (SSRC, CNAME). Receivers such as GStreamer's
    /// rtpbin group the streams of one CNAME and align them with the SRs (lip sync).
    Sdes {
        cnames: Vec<(u32, String)>,
    },
    /// Transport-wide congestion control feedback (arrival times of transport-wide sequence
    /// numbers): we send it to publishers; what subscribers send feeds send-side estimation.
    TransportCc(Box<TransportLayerCc>),
}

/// Parses a (decrypted) compound RTCP packet. `Err` when the compound is malformed; packet types
/// the core does not act on are skipped.
pub fn parse(buf: &[u8]) -> Result<Vec<Rtcp>, String> {
    let mut b = Bytes::copy_from_slice(buf);
    let packets = rtc_rtcp::packet::unmarshal(&mut b).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(packets.len());
    for p in &packets {
        let any = p.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            out.push(Rtcp::SenderReport {
                ssrc: sr.ssrc,
                ntp: sr.ntp_time,
                rtp: sr.rtp_time,
                packets: sr.packet_count,
                octets: sr.octet_count,
                reports: sr.reports.iter().map(block).collect(),
            });
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            out.push(Rtcp::ReceiverReport {
                ssrc: rr.ssrc,
                reports: rr.reports.iter().map(block).collect(),
            });
        } else if let Some(n) = any.downcast_ref::<TransportLayerNack>() {
            let seqs = n.nacks.iter().flat_map(|p| p.packet_list()).collect();
            out.push(Rtcp::Nack {
                media_ssrc: n.media_ssrc,
                seqs,
            });
        } else if let Some(p) = any.downcast_ref::<PictureLossIndication>() {
            out.push(Rtcp::Pli {
                media_ssrc: p.media_ssrc,
            });
        } else if let Some(f) = any.downcast_ref::<FullIntraRequest>() {
            out.push(Rtcp::Fir {
                media_ssrcs: f.fir.iter().map(|e| e.ssrc).collect(),
            });
        } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
            if transport_cc_is_consistent(cc) {
                out.push(Rtcp::TransportCc(Box::new(cc.clone())));
            }
        } else if let Some(r) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            out.push(Rtcp::Remb {
                bitrate: r.bitrate as u64,
                ssrcs: r.ssrcs.clone(),
            });
        }
    }
    Ok(out)
}

/// Whether a parsed transport-wide feedback says something and serializes back into a packet
/// that parses again: no empty runs, every delta representable, and at least one packet
/// reported received (`rtc-rtcp` accepts packets without, but cannot read back one it writes
/// with no delta after its chunks). Anything else is dropped as malformed.
fn transport_cc_is_consistent(cc: &TransportLayerCc) -> bool {
    use rtc_rtcp::transport_feedbacks::transport_layer_cc::PacketStatusChunk;
    use rtc_shared::marshal::MarshalSize;

    let runs_ok = cc.packet_chunks.iter().all(|c| match c {
        PacketStatusChunk::RunLengthChunk(r) => r.run_length > 0,
        PacketStatusChunk::StatusVectorChunk(_) => true,
    });
    runs_ok && !cc.recv_deltas.is_empty() && cc.recv_deltas.iter().all(|d| d.marshal_size() > 0)
}

fn block(r: &ReceptionReport) -> ReportBlock {
    ReportBlock {
        ssrc: r.ssrc,
        fraction_lost: r.fraction_lost,
        total_lost: r.total_lost,
        ext_highest_seq: r.last_sequence_number,
        jitter: r.jitter,
        lsr: r.last_sender_report,
        dlsr: r.delay,
    }
}

fn reception(b: &ReportBlock) -> ReceptionReport {
    ReceptionReport {
        ssrc: b.ssrc,
        fraction_lost: b.fraction_lost,
        total_lost: b.total_lost,
        last_sequence_number: b.ext_highest_seq,
        jitter: b.jitter,
        last_sender_report: b.lsr,
        delay: b.dlsr,
    }
}

/// Serializes items into one compound packet. Items are built by the core itself, so a failure
/// is a bug in the builder, not peer input.
pub fn build(items: &[Rtcp], sender_ssrc: u32) -> Vec<u8> {
    let mut packets: Vec<Box<dyn Packet>> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Rtcp::SenderReport {
                ssrc,
                ntp,
                rtp,
                packets: pc,
                octets,
                reports,
            } => packets.push(Box::new(SenderReport {
                ssrc: *ssrc,
                ntp_time: *ntp,
                rtp_time: *rtp,
                packet_count: *pc,
                octet_count: *octets,
                reports: reports.iter().map(reception).collect(),
                profile_extensions: Bytes::new(),
            })),
            Rtcp::ReceiverReport { ssrc, reports } => packets.push(Box::new(ReceiverReport {
                ssrc: *ssrc,
                reports: reports.iter().map(reception).collect(),
                profile_extensions: Bytes::new(),
            })),
            Rtcp::Nack { media_ssrc, seqs } => packets.push(Box::new(TransportLayerNack {
                sender_ssrc,
                media_ssrc: *media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(seqs),
            })),
            Rtcp::Pli { media_ssrc } => packets.push(Box::new(PictureLossIndication {
                sender_ssrc,
                media_ssrc: *media_ssrc,
            })),
            Rtcp::Fir { media_ssrcs } => packets.push(Box::new(FullIntraRequest {
                sender_ssrc,
                media_ssrc: 0,
                fir: media_ssrcs
                    .iter()
                    .map(|s| FirEntry {
                        ssrc: *s,
                        sequence_number: 0,
                    })
                    .collect(),
            })),
            Rtcp::Sdes { cnames } => {
                // At most 31 chunks per SDES packet (5-bit count).
                for chunk in cnames.chunks(31) {
                    packets.push(Box::new(SourceDescription {
                        chunks: chunk
                            .iter()
                            .map(|(ssrc, cname)| SourceDescriptionChunk {
                                source: *ssrc,
                                items: vec![SourceDescriptionItem {
                                    sdes_type: SdesType::SdesCname,
                                    text: Bytes::copy_from_slice(
                                        &cname.as_bytes()[..cname.len().min(255)],
                                    ),
                                }],
                            })
                            .collect(),
                    }));
                }
            }
            Rtcp::TransportCc(cc) => packets.push(Box::new(TransportLayerCc {
                sender_ssrc,
                ..(**cc).clone()
            })),
            Rtcp::Remb { bitrate, ssrcs } => {
                packets.push(Box::new(ReceiverEstimatedMaximumBitrate {
                    sender_ssrc,
                    bitrate: *bitrate as f32,
                    ssrcs: ssrcs.clone(),
                }))
            }
        }
    }
    rtc_rtcp::packet::marshal(&packets)
        .map(|b| b.to_vec())
        .expect("RTCP built by the core from valid fields always marshals")
}

/// The middle 32 bits of a 64-bit NTP timestamp (LSR field).
pub(crate) fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_reports_carry_the_cname() {
        let buf = build(
            &[
                Rtcp::SenderReport {
                    ssrc: 7,
                    ntp: 1,
                    rtp: 2,
                    packets: 3,
                    octets: 4,
                    reports: vec![],
                },
                Rtcp::Sdes {
                    cnames: vec![(7, "alice-cname".into()), (8, "alice-cname".into())],
                },
            ],
            1,
        );
        let packets = rtc_rtcp::packet::unmarshal(&mut Bytes::from(buf)).expect("valid compound");
        let sdes = packets
            .iter()
            .find_map(|p| p.as_any().downcast_ref::<SourceDescription>())
            .expect("an SDES packet");
        let got: Vec<(u32, &[u8])> = sdes
            .chunks
            .iter()
            .map(|c| (c.source, &c.items[0].text[..]))
            .collect();
        assert_eq!(got, [(7, &b"alice-cname"[..]), (8, &b"alice-cname"[..])]);
        assert_eq!(sdes.chunks[0].items[0].sdes_type, SdesType::SdesCname);
        // The core's own parser ignores SDES (nothing to act on) but accepts the compound.
        assert_eq!(
            parse(&build(
                &[Rtcp::Sdes {
                    cnames: vec![(1, "x".into())]
                }],
                1
            ))
            .map(|v| v.len()),
            Ok(0)
        );
    }

    #[test]
    fn round_trips_the_items_the_core_uses() {
        let items = vec![
            Rtcp::SenderReport {
                ssrc: 1,
                ntp: 0x1122_3344_5566_7788,
                rtp: 9000,
                packets: 10,
                octets: 1000,
                reports: vec![],
            },
            Rtcp::ReceiverReport {
                ssrc: 2,
                reports: vec![ReportBlock {
                    ssrc: 3,
                    fraction_lost: 25,
                    total_lost: 7,
                    ext_highest_seq: 70_000,
                    jitter: 12,
                    lsr: 0x3344_5566,
                    dlsr: 65536,
                }],
            },
            Rtcp::Nack {
                media_ssrc: 3,
                seqs: vec![10, 11, 40, 65535],
            },
            Rtcp::Pli { media_ssrc: 3 },
            Rtcp::Fir {
                media_ssrcs: vec![3],
            },
        ];
        let wire = build(&items, 99);
        let mut back = parse(&wire).unwrap();
        if let Some(Rtcp::Nack { seqs, .. }) = back.get_mut(2) {
            seqs.sort_unstable();
        }
        assert_eq!(back[..2], items[..2]);
        assert_eq!(
            back[2],
            Rtcp::Nack {
                media_ssrc: 3,
                seqs: vec![10, 11, 40, 65535]
            }
        );
        assert_eq!(back[3..], items[3..]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64usize {
            let v: Vec<u8> = (0..len).map(|i| (i * 37 + 0x80) as u8).collect();
            let _ = parse(&v);
        }
    }
}
