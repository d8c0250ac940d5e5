//! A scripted worker on an in-memory pipe, for tests of what sits on the worker channel (media
//! handles, rooms) without a process.

use std::sync::{Arc, Mutex};

use ferrosfu_fbs::{
    ConsumerScore, DataConsumerDump, DataProducerDump, DtlsParameters, DtlsRole, DtlsState,
    Encoder, Event, FrameBuffer, FrameEvent, HandlerId, IceParameters, IceState, MediaEvent,
    Message, Notification, PlainTransportDump, Request, RequestBody, Response, ResponseBody,
    SctpParameters, SctpState, TransportProtocol, TransportTuple, WebRtcTransportDump,
    WebRtcTransportOptions, decode_message,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::channel::Channel;
use crate::worker::{Worker, WorkerExit};

/// Plays the worker: answers every creation request as accepted, writes down every request (in
/// the order received, each before its answer is queued), and writes whatever frames the test
/// hands it (in order, after the responses already queued).
pub(crate) struct ScriptedWorker {
    pub(crate) worker: Worker,
    requests: Arc<Mutex<Vec<Request>>>,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    enc: Encoder,
    _exit: watch::Sender<Option<WorkerExit>>,
}

impl ScriptedWorker {
    pub(crate) fn start() -> Self {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(a);
        let (channel, _worker_notes) = Channel::start(r, w, tracing::Span::none());
        let (worker, exit) = Worker::scripted(channel);
        let (mut br, mut bw) = tokio::io::split(b);
        let (frames, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if bw.write_all(&f).await.is_err() {
                    return;
                }
            }
        });
        let out = frames.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            let (mut buf, mut enc) = (FrameBuffer::new(), Encoder::new());
            loop {
                while let Some(ev) = buf.next_event() {
                    let FrameEvent::Frame(p) = ev else { continue };
                    let Ok(Message::Request(req)) = decode_message(&p) else {
                        continue;
                    };
                    log.lock()
                        .expect("never held across a panic")
                        .push(req.clone());
                    let resp = Message::Response(Response {
                        id: req.id,
                        result: Ok(answer(&req.body)),
                    });
                    let mut bytes = enc.frame(&resp).expect("encodable response");
                    // A new consumer hears from the worker at once, in the same write as the
                    // response, as a real one may (its producer paused meanwhile).
                    if let RequestBody::TransportConsume(o) = &req.body {
                        let pause = note(o.consumer_id.as_str(), MediaEvent::ConsumerProducerPause);
                        bytes.extend(enc.frame(&pause).expect("encodable notification"));
                    }
                    let _ = out.send(bytes);
                }
                match br.read_buf(buf.read_target()).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        Self {
            worker,
            requests,
            frames,
            enc: Encoder::new(),
            _exit: exit,
        }
    }

    /// Every request received so far, oldest first. A request whose call returned is in it.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .expect("never held across a panic")
            .clone()
    }

    /// Writes `msgs` to the supervisor, after the responses already queued.
    pub(crate) fn send(&mut self, msgs: &[Message]) {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&self.enc.frame(m).expect("encodable notification"));
        }
        self.frames.send(bytes).expect("writer task alive");
    }
}

fn answer(body: &RequestBody) -> ResponseBody {
    match body {
        RequestBody::RouterCreatePlainTransport(o) => {
            ResponseBody::PlainTransportDump(PlainTransportDump {
                id: o.transport_id.clone(),
                rtcp_mux: true,
                comedia: false,
                tuple: TransportTuple {
                    local_address: "127.0.0.1".into(),
                    local_port: 40000,
                    remote_ip: String::new(),
                    remote_port: 0,
                    protocol: TransportProtocol::Udp,
                },
                rtcp_tuple: None,
                srtp_parameters: None,
                producer_ids: vec![],
                consumer_ids: vec![],
            })
        }
        RequestBody::RouterCreateWebRtcTransport(o) => {
            ResponseBody::WebRtcTransportDump(webrtc_dump(o))
        }
        RequestBody::TransportProduceData(o) => ResponseBody::DataProducerDump(DataProducerDump {
            id: o.data_producer_id.clone(),
            data_type: o.data_type,
            sctp_stream_parameters: o.sctp_stream_parameters,
            label: o.label.clone(),
            protocol: o.protocol.clone(),
            paused: o.paused,
        }),
        RequestBody::TransportConsumeData(o) => ResponseBody::DataConsumerDump(DataConsumerDump {
            id: o.data_consumer_id.clone(),
            data_producer_id: o.data_producer_id.clone(),
            data_type: o.data_type,
            sctp_stream_parameters: o.sctp_stream_parameters,
            label: o.label.clone(),
            protocol: o.protocol.clone(),
            buffered_amount_low_threshold: 0,
            paused: o.paused,
            data_producer_paused: false,
            subchannels: o.subchannels.clone().unwrap_or_default(),
        }),
        RequestBody::TransportConsume(_) => ResponseBody::Consumed {
            paused: false,
            producer_paused: false,
            score: ConsumerScore::default(),
        },
        _ => ResponseBody::None,
    }
}

/// A new WebRtcTransport as a worker answers it (no candidates; SCTP when asked).
fn webrtc_dump(o: &WebRtcTransportOptions) -> WebRtcTransportDump {
    WebRtcTransportDump {
        id: o.transport_id.clone(),
        ice_parameters: IceParameters {
            username_fragment: "ufrag".into(),
            password: "pwd".into(),
            ice_lite: true,
        },
        ice_candidates: vec![],
        ice_state: IceState::New,
        ice_selected_tuple: None,
        dtls_parameters: DtlsParameters {
            role: DtlsRole::Auto,
            fingerprints: vec![],
        },
        dtls_state: DtlsState::New,
        producer_ids: vec![],
        consumer_ids: vec![],
        sctp_parameters: o.sctp.map(|s| SctpParameters {
            port: 5000,
            os: s.num_streams.os,
            mis: s.num_streams.mis,
            max_message_size: s.max_message_size,
            send_buffer_size: s.send_buffer_size,
            sctp_buffered_amount: 0,
            is_data_channel: true,
        }),
        sctp_state: o.sctp.map(|_| SctpState::New),
        data_producer_ids: vec![],
        data_consumer_ids: vec![],
    }
}

/// A media notification of entity `handler`.
pub(crate) fn note(handler: &str, e: MediaEvent) -> Message {
    Message::Notification(Notification {
        handler_id: HandlerId::new(handler),
        event: Event::Media(e),
    })
}
