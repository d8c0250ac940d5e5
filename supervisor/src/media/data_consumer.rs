//! DataConsumers: created on a transport (`Transport::consume_data`) for a DataProducer of the
//! same router. On a WebRtcTransport (`sctp`) the consumer gets the lowest free SCTP stream id
//! of that transport and the producer's ordering/reliability; on a DirectTransport (`direct`)
//! its messages come to the supervisor as [`MediaEvent::DataConsumerMessage`] events. Closed
//! with its transport or its data producer.

use std::sync::{Arc, Mutex};

use ferrosfu_fbs::{
    ConsumeDataOptions, DataConsumerDump, DataConsumerId, DataProducerId, DataSend, DataStats,
    DataType, MediaEvent, RequestFailure, SctpStreamParameters, requests,
};

use super::{CloseReason, DataProducer, Life, Transport, TransportKind, parent_reason};
use crate::channel::RequestError;
use crate::worker::new_id;

/// How a data consumer starts.
#[derive(Clone, Debug, Default)]
pub struct DataConsumeOptions {
    pub paused: bool,
    /// Only messages sent to one of these subchannels (or to none) reach it; None: all.
    pub subchannels: Option<Vec<u16>>,
}

impl Transport {
    /// `transport.consume_data` of `producer`: `direct` on a DirectTransport, else `sctp` on
    /// the next free stream id of this transport's association (refused when the transport
    /// has no SCTP or every outgoing stream is taken).
    pub async fn consume_data(
        &self,
        producer: &DataProducer,
        options: DataConsumeOptions,
    ) -> Result<DataConsumer, RequestError> {
        let method = requests::TransportConsumeData::METHOD;
        let refuse = |reason: &str| RequestError::Rejected {
            method,
            failure: RequestFailure::invalid_argument(reason),
        };
        let (data_type, stream) = match self.kind() {
            TransportKind::Direct(_) => (DataType::Direct, None),
            _ => {
                let id = self
                    .allocate_sctp_stream_id()
                    .ok_or_else(|| refuse("no free SCTP stream (or SCTP not enabled)"))?;
                let mut p = producer
                    .consumer_stream_parameters()
                    .unwrap_or_else(|| SctpStreamParameters::reliable(id));
                p.stream_id = id;
                (DataType::Sctp, Some(p))
            }
        };
        let id = DataConsumerId::new(new_id());
        let created = self.create_data_consumer(
            ConsumeDataOptions {
                data_consumer_id: id.clone(),
                data_producer_id: producer.id().clone(),
                data_type,
                sctp_stream_parameters: stream,
                label: producer.label().to_owned(),
                protocol: producer.protocol().to_owned(),
                paused: options.paused,
                subchannels: options.subchannels,
            },
            producer.id().clone(),
        );
        let c = match created.await {
            Ok(c) => c,
            Err(e) => {
                if let Some(s) = stream {
                    self.release_sctp_stream_id(s.stream_id);
                }
                return Err(e);
            }
        };
        if let Some(s) = stream {
            let (t, c) = (self.clone(), c.clone());
            tokio::spawn(async move {
                c.closed().await;
                t.release_sctp_stream_id(s.stream_id);
            });
        }
        Ok(c)
    }

    async fn create_data_consumer(
        &self,
        options: ConsumeDataOptions,
        producer_id: DataProducerId,
    ) -> Result<DataConsumer, RequestError> {
        let id = options.data_consumer_id.clone();
        let (life, notes) = Life::new(
            (&id).into(),
            self.life().worker.clone(),
            requests::TransportConsumeData::METHOD,
        )?;
        let dump = self
            .life()
            .request(requests::TransportConsumeData(options))
            .await?;
        let state = Arc::new(Mutex::new(DataConsumerState {
            paused: dump.paused,
            producer_paused: dump.data_producer_paused,
        }));
        let parent = self.clone();
        let st = state.clone();
        life.watch(
            notes,
            async move { parent_reason(parent.closed().await) },
            move |e| {
                let mut s = st.lock().expect("never held across a panic");
                match e {
                    MediaEvent::DataConsumerDataProducerPause => s.producer_paused = true,
                    MediaEvent::DataConsumerDataProducerResume => s.producer_paused = false,
                    MediaEvent::DataConsumerDataProducerClose => {
                        return Some(CloseReason::ProducerClosed);
                    }
                    MediaEvent::DataConsumerTransportClose => {
                        return Some(CloseReason::ParentClosed);
                    }
                    _ => {}
                }
                None
            },
        );
        Ok(DataConsumer {
            inner: Arc::new(DataConsumerInner {
                id,
                producer_id,
                transport: self.clone(),
                life,
                state,
                dump,
            }),
        })
    }
}

#[derive(Clone, Debug)]
pub struct DataConsumer {
    inner: Arc<DataConsumerInner>,
}

#[derive(Debug)]
struct DataConsumerState {
    paused: bool,
    producer_paused: bool,
}

#[derive(Debug)]
struct DataConsumerInner {
    id: DataConsumerId,
    producer_id: DataProducerId,
    transport: Transport,
    life: Arc<Life>,
    state: Arc<Mutex<DataConsumerState>>,
    /// What the worker answered at creation.
    dump: DataConsumerDump,
}

impl DataConsumer {
    pub fn id(&self) -> &DataConsumerId {
        &self.inner.id
    }

    pub fn data_producer_id(&self) -> &DataProducerId {
        &self.inner.producer_id
    }

    pub fn data_type(&self) -> DataType {
        self.inner.dump.data_type
    }

    /// The stream an `sctp` data consumer sends on (None for `direct`).
    pub fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner.dump.sctp_stream_parameters
    }

    pub fn label(&self) -> &str {
        &self.inner.dump.label
    }

    pub fn protocol(&self) -> &str {
        &self.inner.dump.protocol
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    fn state<R>(&self, f: impl FnOnce(&mut DataConsumerState) -> R) -> R {
        f(&mut self.inner.state.lock().expect("never held across a panic"))
    }

    pub fn paused(&self) -> bool {
        self.state(|s| s.paused)
    }

    pub fn data_producer_paused(&self) -> bool {
        self.state(|s| s.producer_paused)
    }

    life_accessors!(
        "Data producer pause/resume/close, buffered amount low, send buffer full and (`direct`) \
         message notifications."
    );

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::DataConsumerPause).await?;
        self.state(|s| s.paused = true);
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::DataConsumerResume)
            .await?;
        self.state(|s| s.paused = false);
        Ok(())
    }

    /// Messages and bytes sent to the endpoint, and the stream's backlog.
    pub async fn get_stats(&self) -> Result<DataStats, RequestError> {
        self.inner
            .life
            .request(requests::DataConsumerGetStats)
            .await
    }

    pub async fn dump(&self) -> Result<DataConsumerDump, RequestError> {
        self.inner.life.request(requests::DataConsumerDump).await
    }

    pub async fn get_buffered_amount(&self) -> Result<u32, RequestError> {
        self.inner
            .life
            .request(requests::DataConsumerGetBufferedAmount)
            .await
    }

    /// [`MediaEvent::DataConsumerBufferedAmountLow`] comes when the backlog falls to this.
    pub async fn set_buffered_amount_low_threshold(&self, bytes: u32) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::DataConsumerSetBufferedAmountLowThreshold(bytes))
            .await
    }

    /// A message to this consumer's endpoint only (`sctp`).
    pub async fn send(&self, message: DataSend) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::DataConsumerSend(message))
            .await
    }

    /// Replaces the subchannels; answers them as applied (sorted, deduplicated).
    pub async fn set_subchannels(&self, subchannels: Vec<u16>) -> Result<Vec<u16>, RequestError> {
        self.inner
            .life
            .request(requests::DataConsumerSetSubchannels(subchannels))
            .await
    }

    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(requests::DataConsumerClose)
            .await
    }
}
