//! Transport parts: listen infos, tuples, ICE, DTLS and SRTP parameters.

use super::*;

pub(super) fn build_listen_info(
    fbb: &mut Fbb,
    l: &ListenInfo,
) -> WIPOffset<fb_tr::ListenInfo<'static>> {
    let ip = Some(fbb.create_string(&l.ip));
    let announced_address = opt_str(fbb, l.announced_address.as_deref());
    fb_tr::ListenInfo::create(
        fbb,
        &fb_tr::ListenInfoArgs {
            protocol: protocol_to(l.protocol),
            ip,
            announced_address,
            port: l.port,
        },
    )
}

pub(super) fn build_tuple(fbb: &mut Fbb, t: &TransportTuple) -> WIPOffset<fb_tr::Tuple<'static>> {
    let local_address = Some(fbb.create_string(&t.local_address));
    let remote_ip = Some(fbb.create_string(&t.remote_ip));
    fb_tr::Tuple::create(
        fbb,
        &fb_tr::TupleArgs {
            local_address,
            local_port: t.local_port,
            remote_ip,
            remote_port: t.remote_port,
            protocol: protocol_to(t.protocol),
        },
    )
}

pub(super) fn build_srtp_parameters(
    fbb: &mut Fbb,
    s: &SrtpParameters,
) -> WIPOffset<fb_srtp::SrtpParameters<'static>> {
    let key_base64 = Some(fbb.create_string(&s.key_base64));
    fb_srtp::SrtpParameters::create(
        fbb,
        &fb_srtp::SrtpParametersArgs {
            crypto_suite: suite_to(s.crypto_suite),
            key_base64,
        },
    )
}

pub(super) fn build_ice_parameters(
    fbb: &mut Fbb,
    p: &IceParameters,
) -> WIPOffset<fb_wrt::IceParameters<'static>> {
    let username_fragment = Some(fbb.create_string(&p.username_fragment));
    let password = Some(fbb.create_string(&p.password));
    fb_wrt::IceParameters::create(
        fbb,
        &fb_wrt::IceParametersArgs {
            username_fragment,
            password,
            ice_lite: p.ice_lite,
        },
    )
}

pub(super) fn build_ice_candidate(
    fbb: &mut Fbb,
    c: &IceCandidate,
) -> WIPOffset<fb_wrt::IceCandidate<'static>> {
    let foundation = Some(fbb.create_string(&c.foundation));
    let address = Some(fbb.create_string(&c.address));
    let type_ = Some(fbb.create_string(&c.kind));
    let tcp_type = opt_str(fbb, c.tcp_type.as_deref());
    fb_wrt::IceCandidate::create(
        fbb,
        &fb_wrt::IceCandidateArgs {
            foundation,
            priority: c.priority,
            address,
            protocol: protocol_to(c.protocol),
            port: c.port,
            type_,
            tcp_type,
        },
    )
}

pub(super) fn build_dtls_parameters(
    fbb: &mut Fbb,
    d: &DtlsParameters,
) -> WIPOffset<fb_wrt::DtlsParameters<'static>> {
    let fingerprints = Some(tables(fbb, &d.fingerprints, |fbb, f| {
        let algorithm = Some(fbb.create_string(&f.algorithm));
        let value = Some(fbb.create_string(&f.value));
        fb_wrt::Fingerprint::create(fbb, &fb_wrt::FingerprintArgs { algorithm, value })
    }));
    fb_wrt::DtlsParameters::create(
        fbb,
        &fb_wrt::DtlsParametersArgs {
            role: dtls_role_to(d.role),
            fingerprints,
        },
    )
}

pub(super) fn listen_info_from(l: fb_tr::ListenInfo<'_>) -> Dr<ListenInfo> {
    Ok(ListenInfo {
        protocol: protocol_from(l.protocol())?,
        ip: l.ip().own(),
        announced_address: l.announced_address().map(own),
        port: l.port(),
    })
}

pub(super) fn listen_infos_from(
    v: Vector<'_, ForwardsUOffset<fb_tr::ListenInfo<'_>>>,
) -> Dr<Vec<ListenInfo>> {
    v.bounded().map(listen_info_from).collect()
}

pub(super) fn tuple_from(t: fb_tr::Tuple<'_>) -> Dr<TransportTuple> {
    Ok(TransportTuple {
        local_address: t.local_address().own(),
        local_port: t.local_port(),
        remote_ip: t.remote_ip().own(),
        remote_port: t.remote_port(),
        protocol: protocol_from(t.protocol())?,
    })
}

pub(super) fn srtp_parameters_from(s: fb_srtp::SrtpParameters<'_>) -> Dr<SrtpParameters> {
    Ok(SrtpParameters {
        crypto_suite: suite_from(s.crypto_suite())?,
        key_base64: s.key_base64().own(),
    })
}

pub(super) fn ice_parameters_from(p: fb_wrt::IceParameters<'_>) -> IceParameters {
    IceParameters {
        username_fragment: p.username_fragment().own(),
        password: p.password().own(),
        ice_lite: p.ice_lite(),
    }
}

pub(super) fn ice_candidate_from(c: fb_wrt::IceCandidate<'_>) -> Dr<IceCandidate> {
    Ok(IceCandidate {
        foundation: c.foundation().own(),
        priority: c.priority(),
        address: c.address().own(),
        protocol: protocol_from(c.protocol())?,
        port: c.port(),
        kind: c.type_().own(),
        tcp_type: c.tcp_type().map(own),
    })
}

pub(super) fn dtls_parameters_from(d: fb_wrt::DtlsParameters<'_>) -> Dr<DtlsParameters> {
    Ok(DtlsParameters {
        role: dtls_role_from(d.role())?,
        fingerprints: d
            .fingerprints()
            .bounded()
            .map(|f| DtlsFingerprint {
                algorithm: f.algorithm().own(),
                value: f.value().own(),
            })
            .collect(),
    })
}
