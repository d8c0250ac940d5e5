//! Notifications (worker and media events) and log records.

use super::*;

pub(super) fn build_notification(fbb: &mut Fbb, n: &Notification) -> WIPOffset<UnionWIPOffset> {
    use fb_notif::{Body as B, Event as E};
    let handler_id = Some(fbb.create_string(n.handler_id.as_str()));
    let (event, body_type, body) = match &n.event {
        Event::WorkerRunning(r) => {
            let version = Some(fbb.create_string(&r.version));
            let b = fb_worker::RunningNotification::create(
                fbb,
                &fb_worker::RunningNotificationArgs {
                    pid: r.pid,
                    core: r.core,
                    protocol_version: r.protocol_version,
                    version,
                },
            );
            (E::WORKER_RUNNING, B::Worker_RunningNotification, union(b))
        }
        Event::WorkerChannelError { reason } => {
            let reason = Some(fbb.create_string(reason));
            let b = fb_worker::ChannelErrorNotification::create(
                fbb,
                &fb_worker::ChannelErrorNotificationArgs { reason },
            );
            (
                E::WORKER_CHANNEL_ERROR,
                B::Worker_ChannelErrorNotification,
                union(b),
            )
        }
        Event::Media(e) => build_media_event(fbb, e),
    };
    fb_notif::Notification::create(
        fbb,
        &fb_notif::NotificationArgs {
            handler_id,
            event,
            body_type,
            body,
        },
    )
    .as_union_value()
}

pub(super) fn build_media_event(
    fbb: &mut Fbb,
    e: &MediaEvent,
) -> (
    fb_notif::Event,
    fb_notif::Body,
    Option<WIPOffset<UnionWIPOffset>>,
) {
    use fb_notif::{Body as B, Event as E};
    if let Some(parts) = build_data_event(fbb, e) {
        return parts;
    }
    match e {
        MediaEvent::TransportIceStateChange(s) => {
            let b = fb_wrt::IceStateChangeNotification::create(
                fbb,
                &fb_wrt::IceStateChangeNotificationArgs {
                    ice_state: ice_state_to(*s),
                },
            );
            (
                E::TRANSPORT_ICE_STATE_CHANGE,
                B::WebRtcTransport_IceStateChangeNotification,
                union(b),
            )
        }
        MediaEvent::TransportIceSelectedTupleChange(t) => {
            let tuple = Some(build_tuple(fbb, t));
            let b = fb_wrt::IceSelectedTupleChangeNotification::create(
                fbb,
                &fb_wrt::IceSelectedTupleChangeNotificationArgs { tuple },
            );
            (
                E::TRANSPORT_ICE_SELECTED_TUPLE_CHANGE,
                B::WebRtcTransport_IceSelectedTupleChangeNotification,
                union(b),
            )
        }
        MediaEvent::TransportDtlsStateChange { state, reason } => {
            let reason = opt_str(fbb, reason.as_deref());
            let b = fb_wrt::DtlsStateChangeNotification::create(
                fbb,
                &fb_wrt::DtlsStateChangeNotificationArgs {
                    dtls_state: dtls_state_to(*state),
                    reason,
                },
            );
            (
                E::TRANSPORT_DTLS_STATE_CHANGE,
                B::WebRtcTransport_DtlsStateChangeNotification,
                union(b),
            )
        }
        MediaEvent::PlainTransportTuple { tuple, rtcp } => {
            let tuple = Some(build_tuple(fbb, tuple));
            let b = fb_pt::TupleNotification::create(
                fbb,
                &fb_pt::TupleNotificationArgs { tuple, rtcp: *rtcp },
            );
            (
                E::PLAINTRANSPORT_TUPLE,
                B::PlainTransport_TupleNotification,
                union(b),
            )
        }
        MediaEvent::ProducerScore(scores) => {
            let scores = Some(tables(fbb, scores, |fbb, (ssrc, rid, score)| {
                let rid = opt_str(fbb, rid.as_deref());
                fb_prod::Score::create(
                    fbb,
                    &fb_prod::ScoreArgs {
                        ssrc: *ssrc,
                        rid,
                        score: *score,
                    },
                )
            }));
            let b =
                fb_prod::ScoreNotification::create(fbb, &fb_prod::ScoreNotificationArgs { scores });
            (E::PRODUCER_SCORE, B::Producer_ScoreNotification, union(b))
        }
        MediaEvent::ConsumerScore(s) => {
            let b = build_consumer_score(fbb, s);
            (E::CONSUMER_SCORE, B::Consumer_ScoreNotification, union(b))
        }
        MediaEvent::ConsumerLayersChange(l) => {
            let layers = build_consumer_layers(fbb, l.as_ref());
            let b = fb_cons::LayersChangeNotification::create(
                fbb,
                &fb_cons::LayersChangeNotificationArgs { layers },
            );
            (
                E::CONSUMER_LAYERS_CHANGE,
                B::Consumer_LayersChangeNotification,
                union(b),
            )
        }
        MediaEvent::ActiveSpeakerObserverDominantSpeaker { producer_id } => {
            let producer_id = Some(fbb.create_string(producer_id.as_str()));
            let b = fb_obs::DominantSpeakerNotification::create(
                fbb,
                &fb_obs::DominantSpeakerNotificationArgs { producer_id },
            );
            (
                E::ACTIVESPEAKEROBSERVER_DOMINANT_SPEAKER,
                B::RtpObserver_DominantSpeakerNotification,
                union(b),
            )
        }
        MediaEvent::AudioLevelObserverVolumes(volumes) => {
            let volumes = Some(tables(fbb, volumes, |fbb, (producer_id, volume)| {
                let producer_id = Some(fbb.create_string(producer_id.as_str()));
                fb_obs::Volume::create(
                    fbb,
                    &fb_obs::VolumeArgs {
                        producer_id,
                        volume: *volume,
                    },
                )
            }));
            let b = fb_obs::VolumesNotification::create(
                fbb,
                &fb_obs::VolumesNotificationArgs { volumes },
            );
            (
                E::AUDIOLEVELOBSERVER_VOLUMES,
                B::RtpObserver_VolumesNotification,
                union(b),
            )
        }
        MediaEvent::AudioLevelObserverSilence => (E::AUDIOLEVELOBSERVER_SILENCE, B::NONE, None),
        MediaEvent::ConsumerProducerPause => (E::CONSUMER_PRODUCER_PAUSE, B::NONE, None),
        MediaEvent::ConsumerProducerResume => (E::CONSUMER_PRODUCER_RESUME, B::NONE, None),
        MediaEvent::ConsumerProducerClose => (E::CONSUMER_PRODUCER_CLOSE, B::NONE, None),
        MediaEvent::ConsumerTransportClose => (E::CONSUMER_TRANSPORT_CLOSE, B::NONE, None),
        MediaEvent::ProducerTransportClose => (E::PRODUCER_TRANSPORT_CLOSE, B::NONE, None),
        MediaEvent::TransportBweTrace(t) => {
            let bwe = fb_tr::BweTraceInfo::create(
                fbb,
                &fb_tr::BweTraceInfoArgs {
                    bwe_type: bwe_type_to(t.bwe_type),
                    desired_bitrate: t.desired_bitrate,
                    effective_desired_bitrate: t.effective_desired_bitrate,
                    min_bitrate: t.min_bitrate,
                    max_bitrate: t.max_bitrate,
                    start_bitrate: t.start_bitrate,
                    max_padding_bitrate: t.max_padding_bitrate,
                    available_bitrate: t.available_bitrate,
                },
            );
            let b = fb_tr::TraceNotification::create(
                fbb,
                &fb_tr::TraceNotificationArgs {
                    type_: fb_tr::TraceEventType::BWE,
                    timestamp: t.timestamp,
                    direction: fb_tr::TraceDirection::OUT,
                    bwe: Some(bwe),
                },
            );
            (E::TRANSPORT_TRACE, B::Transport_TraceNotification, union(b))
        }
        MediaEvent::ConsumerBwePause => (E::CONSUMER_BWE_PAUSE, B::NONE, None),
        MediaEvent::ConsumerBweResume => (E::CONSUMER_BWE_RESUME, B::NONE, None),
        MediaEvent::ProducerLayersNeeded(layers) => {
            let spatial_layers = Some(fbb.create_vector(layers));
            let b = fb_prod::LayersNeededNotification::create(
                fbb,
                &fb_prod::LayersNeededNotificationArgs { spatial_layers },
            );
            (
                E::PRODUCER_LAYERS_NEEDED,
                B::Producer_LayersNeededNotification,
                union(b),
            )
        }
        // Built by `build_data_event` above.
        MediaEvent::TransportSctpStateChange(_)
        | MediaEvent::DataConsumerBufferedAmountLow(_)
        | MediaEvent::DataConsumerSctpSendBufferFull
        | MediaEvent::DataConsumerDataProducerPause
        | MediaEvent::DataConsumerDataProducerResume
        | MediaEvent::DataConsumerDataProducerClose
        | MediaEvent::DataConsumerTransportClose
        | MediaEvent::DataProducerTransportClose
        | MediaEvent::DataConsumerMessage { .. } => {
            debug_assert!(false, "a data event reached build_media_event");
            (E::WORKER_CHANNEL_ERROR, B::NONE, None)
        }
    }
}

pub(super) fn build_log(fbb: &mut Fbb, l: &LogRecord) -> WIPOffset<UnionWIPOffset> {
    let target = Some(fbb.create_string(&l.target));
    let text = Some(fbb.create_string(&l.text));
    let level = match l.level {
        LogLevel::Trace => fb_log::Level::TRACE,
        LogLevel::Debug => fb_log::Level::DEBUG,
        LogLevel::Info => fb_log::Level::INFO,
        LogLevel::Warn => fb_log::Level::WARN,
        LogLevel::Error => fb_log::Level::ERROR,
    };
    fb_log::Log::create(
        fbb,
        &fb_log::LogArgs {
            level,
            target,
            text,
        },
    )
    .as_union_value()
}

pub(super) fn decode_notification(
    n: fb_notif::Notification<'_>,
) -> Result<Notification, DecodeError> {
    let event = event_from(n).map_err(|reason| err(None, reason))?;
    Ok(Notification {
        handler_id: HandlerId::new(n.handler_id()),
        event,
    })
}

pub(super) fn event_from(n: fb_notif::Notification<'_>) -> Dr<Event> {
    use fb_notif::Event as E;
    let missing = |what: &str| format!("{what} body missing");
    Ok(match n.event() {
        E::WORKER_RUNNING => {
            let b = n
                .body_as_worker_running_notification()
                .ok_or_else(|| missing("worker.running"))?;
            Event::WorkerRunning(WorkerRunning {
                pid: b.pid(),
                core: b.core(),
                protocol_version: b.protocol_version(),
                version: b.version().own(),
            })
        }
        E::WORKER_CHANNEL_ERROR => {
            let b = n
                .body_as_worker_channel_error_notification()
                .ok_or_else(|| missing("worker.channel_error"))?;
            Event::WorkerChannelError {
                reason: b.reason().own(),
            }
        }
        E::TRANSPORT_ICE_STATE_CHANGE => {
            let b = n
                .body_as_web_rtc_transport_ice_state_change_notification()
                .ok_or_else(|| missing("transport.ice_state_change"))?;
            Event::Media(MediaEvent::TransportIceStateChange(ice_state_from(
                b.ice_state(),
            )?))
        }
        E::TRANSPORT_ICE_SELECTED_TUPLE_CHANGE => {
            let b = n
                .body_as_web_rtc_transport_ice_selected_tuple_change_notification()
                .ok_or_else(|| missing("transport.ice_selected_tuple_change"))?;
            Event::Media(MediaEvent::TransportIceSelectedTupleChange(tuple_from(
                b.tuple(),
            )?))
        }
        E::TRANSPORT_DTLS_STATE_CHANGE => {
            let b = n
                .body_as_web_rtc_transport_dtls_state_change_notification()
                .ok_or_else(|| missing("transport.dtls_state_change"))?;
            Event::Media(MediaEvent::TransportDtlsStateChange {
                state: dtls_state_from(b.dtls_state())?,
                reason: b.reason().map(own),
            })
        }
        E::PLAINTRANSPORT_TUPLE => {
            let b = n
                .body_as_plain_transport_tuple_notification()
                .ok_or_else(|| missing("plain_transport.tuple"))?;
            Event::Media(MediaEvent::PlainTransportTuple {
                tuple: tuple_from(b.tuple())?,
                rtcp: b.rtcp(),
            })
        }
        E::PRODUCER_SCORE => {
            let b = n
                .body_as_producer_score_notification()
                .ok_or_else(|| missing("producer.score"))?;
            Event::Media(MediaEvent::ProducerScore(
                b.scores()
                    .bounded()
                    .map(|s| (s.ssrc(), s.rid().map(own), s.score()))
                    .collect(),
            ))
        }
        E::CONSUMER_SCORE => {
            let b = n
                .body_as_consumer_score_notification()
                .ok_or_else(|| missing("consumer.score"))?;
            Event::Media(MediaEvent::ConsumerScore(consumer_score_from(b)))
        }
        E::CONSUMER_LAYERS_CHANGE => {
            let b = n
                .body_as_consumer_layers_change_notification()
                .ok_or_else(|| missing("consumer.layerschange"))?;
            Event::Media(MediaEvent::ConsumerLayersChange(
                b.layers().map(consumer_layers_from),
            ))
        }
        E::ACTIVESPEAKEROBSERVER_DOMINANT_SPEAKER => {
            let b = n
                .body_as_rtp_observer_dominant_speaker_notification()
                .ok_or_else(|| missing("activespeakerobserver.dominant_speaker"))?;
            Event::Media(MediaEvent::ActiveSpeakerObserverDominantSpeaker {
                producer_id: ProducerId::new(b.producer_id()),
            })
        }
        E::AUDIOLEVELOBSERVER_VOLUMES => {
            let b = n
                .body_as_rtp_observer_volumes_notification()
                .ok_or_else(|| missing("audiolevelobserver.volumes"))?;
            Event::Media(MediaEvent::AudioLevelObserverVolumes(
                b.volumes()
                    .bounded()
                    .map(|v| (ProducerId::new(v.producer_id()), v.volume()))
                    .collect(),
            ))
        }
        E::AUDIOLEVELOBSERVER_SILENCE => Event::Media(MediaEvent::AudioLevelObserverSilence),
        E::CONSUMER_PRODUCER_PAUSE => Event::Media(MediaEvent::ConsumerProducerPause),
        E::CONSUMER_PRODUCER_RESUME => Event::Media(MediaEvent::ConsumerProducerResume),
        E::CONSUMER_PRODUCER_CLOSE => Event::Media(MediaEvent::ConsumerProducerClose),
        E::CONSUMER_TRANSPORT_CLOSE => Event::Media(MediaEvent::ConsumerTransportClose),
        E::PRODUCER_TRANSPORT_CLOSE => Event::Media(MediaEvent::ProducerTransportClose),
        E::TRANSPORT_TRACE => {
            let b = n
                .body_as_transport_trace_notification()
                .ok_or_else(|| missing("transport.trace"))?;
            if b.type_() != fb_tr::TraceEventType::BWE {
                return Err(format!("unknown trace type {}", b.type_().0));
            }
            let i = b.bwe().ok_or_else(|| missing("transport.trace bwe"))?;
            Event::Media(MediaEvent::TransportBweTrace(BweTrace {
                timestamp: b.timestamp(),
                bwe_type: bwe_type_from(i.bwe_type())?,
                desired_bitrate: i.desired_bitrate(),
                effective_desired_bitrate: i.effective_desired_bitrate(),
                min_bitrate: i.min_bitrate(),
                max_bitrate: i.max_bitrate(),
                start_bitrate: i.start_bitrate(),
                max_padding_bitrate: i.max_padding_bitrate(),
                available_bitrate: i.available_bitrate(),
            }))
        }
        E::CONSUMER_BWE_PAUSE => Event::Media(MediaEvent::ConsumerBwePause),
        E::CONSUMER_BWE_RESUME => Event::Media(MediaEvent::ConsumerBweResume),
        E::PRODUCER_LAYERS_NEEDED => {
            let b = n
                .body_as_producer_layers_needed_notification()
                .ok_or_else(|| missing("producer.layers_needed"))?;
            Event::Media(MediaEvent::ProducerLayersNeeded(
                b.spatial_layers().bounded().collect(),
            ))
        }
        other => {
            return data_event_from(n)
                .map(|e| e.map(Event::Media))
                .unwrap_or_else(|| Err(format!("unknown event {}", other.0)));
        }
    })
}
