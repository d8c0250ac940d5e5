//! DataProducers: created on a transport (`Transport::produce_data`), `sctp` (a stream of a
//! WebRtcTransport's association, the id chosen by the remote) or `direct` (on a
//! DirectTransport, fed by [`DataProducer::send`]); paused and resumed, closed with their
//! transport (or when the remote resets its stream).

use std::sync::Arc;

use ferrosfu_fbs::{
    DataProducerDump, DataProducerId, DataSend, DataStats, DataType, MediaEvent,
    ProduceDataOptions, SctpStreamParameters, requests,
};
use tokio::sync::watch;

use super::{CloseReason, Life, Transport, parent_reason};
use crate::channel::RequestError;

impl Transport {
    /// `transport.produce_data`. An `sctp` data producer's stream id is reserved on this
    /// transport (no data consumer of it gets that id) until the data producer closes.
    pub async fn produce_data(
        &self,
        options: ProduceDataOptions,
    ) -> Result<DataProducer, RequestError> {
        let id = options.data_producer_id.clone();
        let (life, notes) = Life::new(
            (&id).into(),
            self.life().worker.clone(),
            requests::TransportProduceData::METHOD,
        )?;
        let dump = self
            .life()
            .request(requests::TransportProduceData(options))
            .await?;
        let stream = dump.sctp_stream_parameters.map(|p| p.stream_id);
        if let Some(s) = stream {
            self.reserve_sctp_stream_id(s);
        }
        let parent = self.clone();
        life.watch(
            notes,
            async move { parent_reason(parent.closed().await) },
            |e| {
                matches!(e, MediaEvent::DataProducerTransportClose)
                    .then_some(CloseReason::ParentClosed)
            },
        );
        let p = DataProducer {
            inner: Arc::new(DataProducerInner {
                id,
                transport: self.clone(),
                life,
                paused: watch::channel(dump.paused).0,
                dump,
                relayed_stream: std::sync::OnceLock::new(),
            }),
        };
        if let Some(s) = stream {
            let (t, p) = (self.clone(), p.clone());
            tokio::spawn(async move {
                p.closed().await;
                t.release_sctp_stream_id(s);
            });
        }
        Ok(p)
    }
}

#[derive(Clone, Debug)]
pub struct DataProducer {
    inner: Arc<DataProducerInner>,
}

#[derive(Debug)]
struct DataProducerInner {
    id: DataProducerId,
    transport: Transport,
    life: Arc<Life>,
    paused: watch::Sender<bool>,
    /// What the worker answered at creation.
    dump: DataProducerDump,
    /// A `direct` data producer that relays another router's `sctp` one (`pipe_data_to_router`):
    /// that one's stream parameters, which its SCTP consumers get (ordered, partial reliability).
    relayed_stream: std::sync::OnceLock<SctpStreamParameters>,
}

impl DataProducer {
    pub fn id(&self) -> &DataProducerId {
        &self.inner.id
    }

    pub fn data_type(&self) -> DataType {
        self.inner.dump.data_type
    }

    /// The stream an `sctp` data producer receives on (None for `direct`).
    pub fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner.dump.sctp_stream_parameters
    }

    /// The stream parameters its `sctp` data consumers start from: its own, or for a relay of
    /// another router's data producer, that one's.
    pub fn consumer_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner
            .relayed_stream
            .get()
            .copied()
            .or(self.inner.dump.sctp_stream_parameters)
    }

    /// Marks it as the relay of a data producer whose stream parameters are `p`.
    pub(crate) fn set_relayed_stream(&self, p: SctpStreamParameters) {
        let _ = self.inner.relayed_stream.set(p);
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

    pub fn paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    life_accessors!("Close notifications (transport closed, stream reset by the remote).");

    pub async fn pause(&self) -> Result<(), RequestError> {
        self.inner.life.request(requests::DataProducerPause).await?;
        self.inner.paused.send_replace(true);
        Ok(())
    }

    pub async fn resume(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::DataProducerResume)
            .await?;
        self.inner.paused.send_replace(false);
        Ok(())
    }

    /// Messages and bytes received from the endpoint (or from `send`).
    pub async fn get_stats(&self) -> Result<DataStats, RequestError> {
        self.inner
            .life
            .request(requests::DataProducerGetStats)
            .await
    }

    pub async fn dump(&self) -> Result<DataProducerDump, RequestError> {
        self.inner.life.request(requests::DataProducerDump).await
    }

    /// A `direct` data producer: a message fanned out to its data consumers as if an endpoint
    /// had sent it (`ppid`: see [`ferrosfu_fbs::ppid`]).
    pub async fn send(&self, message: DataSend) -> Result<(), RequestError> {
        self.inner
            .life
            .request(requests::DataProducerSend(message))
            .await
    }

    /// Closes the data producer; its data consumers close with
    /// [`CloseReason::ProducerClosed`].
    pub async fn close(&self) -> Result<(), RequestError> {
        self.inner
            .life
            .close_by_user(requests::DataProducerClose)
            .await
    }
}
