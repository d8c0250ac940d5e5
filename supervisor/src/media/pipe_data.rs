//! `pipe_data_to_router`: a data producer of one router made a data producer (same id, label
//! and protocol) of a router on another worker, so that peers there consume it.
//!
//! The worker has no SCTP on PipeTransports, so the supervisor relays: a `direct` data
//! consumer on the source router's DirectTransport receives each message over the channel, and
//! a `direct` data producer on the target router's DirectTransport sends it on (same PPID). Its
//! SCTP consumers get the source's stream parameters (ordered or not, partial reliability).
//! Every message crosses two worker channels: right for chat, reactions, presence and file
//! chunks (the demo's 16 KiB chunks), not for bulk streaming. Idempotent per (data producer,
//! target router); closing cascades both ways.

use std::sync::Arc;

use ferrosfu_fbs::{DataSend, DataType, MediaEvent, ProduceDataOptions};
use tokio::sync::Mutex;
use tokio::sync::broadcast::error::RecvError;

use super::pipe::{PipeError, RouterPipes, lock_both};
use super::{DataConsumeOptions, DataConsumer, DataProducer, Transport};
use crate::channel::RequestError;
use crate::worker::Router;

/// A data producer relayed into a router: the relay there and its tap on the source router.
#[derive(Clone, Debug)]
pub struct PipedData {
    pub producer: DataProducer,
    pub tap: DataConsumer,
}

/// The router's DirectTransport for relays, created once.
async fn direct(
    router: &Router,
    pipes: &mut RouterPipes,
    max_message_size: u32,
) -> Result<Transport, RequestError> {
    if let Some(t) = pipes.direct.as_ref().filter(|t| !t.is_closed()) {
        return Ok(t.clone());
    }
    let t = router.create_direct_transport(max_message_size).await?;
    pipes.direct = Some(t.clone());
    Ok(t)
}

impl Router {
    /// Relays `producer` (a data producer of this router) to `target`: the data producer of
    /// the same id there, created once (a second call returns the first one's).
    /// `max_message_size`: of the DirectTransports (the data channels' limit).
    pub async fn pipe_data_to_router(
        &self,
        producer: &DataProducer,
        target: &Router,
        max_message_size: u32,
    ) -> Result<DataProducer, PipeError> {
        if self.worker().pid() == target.worker().pid() {
            return Err(PipeError::SameWorker);
        }
        let (mut src, mut dst) = lock_both(self, target).await;
        if let Some(p) = dst.data_in.get(producer.id())
            && !p.producer.is_closed()
        {
            return Ok(p.producer.clone());
        }
        let from = direct(self, &mut src, max_message_size).await?;
        let to = direct(target, &mut dst, max_message_size).await?;
        let tap = from
            .consume_data(producer, DataConsumeOptions::default())
            .await?;
        let relay = match to
            .produce_data(ProduceDataOptions {
                data_producer_id: producer.id().clone(),
                data_type: DataType::Direct,
                sctp_stream_parameters: None,
                label: producer.label().to_owned(),
                protocol: producer.protocol().to_owned(),
                paused: false,
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let _ = tap.close().await;
                return Err(e.into());
            }
        };
        if let Some(p) = producer.consumer_stream_parameters() {
            relay.set_relayed_stream(p);
        }
        dst.data_in.insert(
            producer.id().clone(),
            PipedData {
                producer: relay.clone(),
                tap: tap.clone(),
            },
        );
        tokio::spawn(forward(tap, relay.clone(), target.pipes().clone()));
        tracing::info!(
            data_producer = %producer.id().as_str(),
            from = %self.id().as_str(),
            to = %target.id().as_str(),
            "data producer relayed"
        );
        Ok(relay)
    }
}

/// Sends on every message the tap receives; the relay closes with the tap (the source data
/// producer closed) and the tap with the relay.
async fn forward(tap: DataConsumer, relay: DataProducer, dst: Arc<Mutex<RouterPipes>>) {
    let mut events = tap.events();
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(MediaEvent::DataConsumerMessage { ppid, data }) => {
                    let sent = relay
                        .send(DataSend {
                            ppid,
                            data,
                            subchannels: None,
                            required_subchannel: None,
                        })
                        .await;
                    if let Err(e) = sent {
                        tracing::debug!(data_producer = %relay.id().as_str(), "relay: {e}");
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(data_producer = %relay.id().as_str(), lost = n, "relay lagged: messages lost");
                }
                Err(RecvError::Closed) => break,
            },
            _ = tap.closed() => break,
            _ = relay.closed() => break,
        }
    }
    let _ = tap.close().await;
    let _ = relay.close().await;
    let mut pipes = dst.lock().await;
    if pipes
        .data_in
        .get(relay.id())
        .is_some_and(|p| p.producer.is_closed())
    {
        pipes.data_in.remove(relay.id());
    }
}
