//! RTP parameters and mappings (codecs, encodings, header extensions).

use super::*;

pub(super) fn build_codec(
    fbb: &mut Fbb,
    c: &RtpCodecParameters,
) -> WIPOffset<fb_rtp::RtpCodecParameters<'static>> {
    let mime_type = Some(fbb.create_string(&c.mime_type));
    let parameters = Some(tables(fbb, &c.parameters, |fbb, (name, value)| {
        let name = Some(fbb.create_string(name));
        let value = Some(fbb.create_string(value));
        fb_rtp::Parameter::create(fbb, &fb_rtp::ParameterArgs { name, value })
    }));
    let rtcp_feedback = Some(tables(fbb, &c.rtcp_feedback, |fbb, f| {
        let type_ = Some(fbb.create_string(&f.kind));
        let parameter = Some(fbb.create_string(&f.parameter));
        fb_rtp::RtcpFeedback::create(fbb, &fb_rtp::RtcpFeedbackArgs { type_, parameter })
    }));
    fb_rtp::RtpCodecParameters::create(
        fbb,
        &fb_rtp::RtpCodecParametersArgs {
            mime_type,
            payload_type: c.payload_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters,
            rtcp_feedback,
        },
    )
}

pub(super) fn build_encoding(
    fbb: &mut Fbb,
    e: &RtpEncodingParameters,
) -> WIPOffset<fb_rtp::RtpEncodingParameters<'static>> {
    let rid = opt_str(fbb, e.rid.as_deref());
    let scalability_mode = opt_str(fbb, e.scalability_mode.as_deref());
    fb_rtp::RtpEncodingParameters::create(
        fbb,
        &fb_rtp::RtpEncodingParametersArgs {
            ssrc: e.ssrc,
            rid,
            codec_payload_type: e.codec_payload_type,
            rtx_ssrc: e.rtx_ssrc,
            max_bitrate: e.max_bitrate,
            scalability_mode,
            dtx: e.dtx,
        },
    )
}

pub(super) fn build_rtp_parameters(
    fbb: &mut Fbb,
    p: &RtpParameters,
) -> WIPOffset<fb_rtp::RtpParameters<'static>> {
    let mid = opt_str(fbb, p.mid.as_deref());
    let codecs = Some(tables(fbb, &p.codecs, build_codec));
    let header_extensions = Some(tables(fbb, &p.header_extensions, |fbb, h| {
        let uri = Some(fbb.create_string(&h.uri));
        fb_rtp::RtpHeaderExtensionParameters::create(
            fbb,
            &fb_rtp::RtpHeaderExtensionParametersArgs {
                uri,
                id: h.id,
                encrypt: h.encrypt,
            },
        )
    }));
    let encodings = Some(tables(fbb, &p.encodings, build_encoding));
    let cname = Some(fbb.create_string(&p.rtcp.cname));
    let rtcp = Some(fb_rtp::RtcpParameters::create(
        fbb,
        &fb_rtp::RtcpParametersArgs {
            cname,
            reduced_size: p.rtcp.reduced_size,
        },
    ));
    fb_rtp::RtpParameters::create(
        fbb,
        &fb_rtp::RtpParametersArgs {
            mid,
            codecs,
            header_extensions,
            encodings,
            rtcp,
        },
    )
}

pub(super) fn build_rtp_mapping(
    fbb: &mut Fbb,
    m: &RtpMapping,
) -> WIPOffset<fb_rtp::RtpMapping<'static>> {
    let codecs = Some(tables(fbb, &m.codecs, |fbb, c| {
        fb_rtp::CodecMapping::create(
            fbb,
            &fb_rtp::CodecMappingArgs {
                payload_type: c.payload_type,
                mapped_payload_type: c.mapped_payload_type,
            },
        )
    }));
    let encodings = Some(tables(fbb, &m.encodings, |fbb, e| {
        let rid = opt_str(fbb, e.rid.as_deref());
        let scalability_mode = opt_str(fbb, e.scalability_mode.as_deref());
        fb_rtp::EncodingMapping::create(
            fbb,
            &fb_rtp::EncodingMappingArgs {
                ssrc: e.ssrc,
                rid,
                scalability_mode,
                mapped_ssrc: e.mapped_ssrc,
            },
        )
    }));
    fb_rtp::RtpMapping::create(fbb, &fb_rtp::RtpMappingArgs { codecs, encodings })
}

pub(super) fn encoding_from(e: fb_rtp::RtpEncodingParameters<'_>) -> RtpEncodingParameters {
    RtpEncodingParameters {
        ssrc: e.ssrc(),
        rid: e.rid().map(own),
        codec_payload_type: e.codec_payload_type(),
        rtx_ssrc: e.rtx_ssrc(),
        max_bitrate: e.max_bitrate(),
        scalability_mode: e.scalability_mode().map(own),
        dtx: e.dtx(),
    }
}

pub(super) fn rtp_parameters_from(p: fb_rtp::RtpParameters<'_>) -> RtpParameters {
    RtpParameters {
        mid: p.mid().map(own),
        codecs: p
            .codecs()
            .bounded()
            .map(|c| RtpCodecParameters {
                mime_type: c.mime_type().own(),
                payload_type: c.payload_type(),
                clock_rate: c.clock_rate(),
                channels: c.channels(),
                parameters: c
                    .parameters()
                    .bounded()
                    .map(|p| (p.name().own(), p.value().own()))
                    .collect(),
                rtcp_feedback: c
                    .rtcp_feedback()
                    .bounded()
                    .map(|f| RtcpFeedback {
                        kind: f.type_().own(),
                        parameter: f.parameter().own(),
                    })
                    .collect(),
            })
            .collect(),
        header_extensions: p
            .header_extensions()
            .bounded()
            .map(|h| RtpHeaderExtensionParameters {
                uri: h.uri().own(),
                id: h.id(),
                encrypt: h.encrypt(),
            })
            .collect(),
        encodings: p.encodings().bounded().map(encoding_from).collect(),
        rtcp: RtcpParameters {
            cname: p.rtcp().cname().own(),
            reduced_size: p.rtcp().reduced_size(),
        },
    }
}

pub(super) fn rtp_mapping_from(m: fb_rtp::RtpMapping<'_>) -> RtpMapping {
    RtpMapping {
        codecs: m
            .codecs()
            .bounded()
            .map(|c| CodecMapping {
                payload_type: c.payload_type(),
                mapped_payload_type: c.mapped_payload_type(),
            })
            .collect(),
        encodings: m
            .encodings()
            .bounded()
            .map(|e| EncodingMapping {
                ssrc: e.ssrc(),
                rid: e.rid().map(own),
                scalability_mode: e.scalability_mode().map(own),
                mapped_ssrc: e.mapped_ssrc(),
            })
            .collect(),
    }
}
