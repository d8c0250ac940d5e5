//! The subscriber connection: this node's RPC and reply channels and the channels of the rooms
//! it hosts. Reconnects with backoff and resubscribes; pings to notice a silent connection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::events::RoomMessage;
use super::{ClusterEvent, Inner, OP_TIMEOUT, keys, lock, rpc};

/// Largest message accepted from a channel; longer ones are counted and dropped.
pub(super) const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug)]
pub(super) enum Command {
    Subscribe(String),
    Unsubscribe(String),
    /// Answered once every command before it took effect on the server.
    Sync(oneshot::Sender<()>),
}

/// Waits until earlier subscription changes are active, at most `timeout` (Redis may be down:
/// then go on without).
pub(super) async fn sync(tx: &mpsc::UnboundedSender<Command>, timeout: Duration) {
    let (done, wait) = oneshot::channel();
    if tx.send(Command::Sync(done)).is_ok() {
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

pub(super) async fn run(inner: Arc<Inner>, mut commands: mpsc::UnboundedReceiver<Command>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(100);
    let max_backoff = inner.settings.heartbeat.max(MIN_BACKOFF * 2);
    let mut backoff = MIN_BACKOFF;
    let me = inner.settings.node_id.clone();
    let own = [keys::rpc_channel(&me), keys::reply_channel(&me)];
    let mut failures = 0u32;
    loop {
        let connected = tokio::select! {
            _ = inner.stop.cancelled() => return,
            c = tokio::time::timeout(OP_TIMEOUT, inner.client.get_async_pubsub()) => c,
        };
        let pubsub = match connected {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(target: "cluster", "subscriber connection: {e}; retrying");
                }
                if !pause(&inner, &mut backoff, max_backoff).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                failures += 1;
                if !pause(&inner, &mut backoff, max_backoff).await {
                    return;
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels: Vec<String> = own.to_vec();
        channels.extend(
            lock(&inner.local)
                .room_ids()
                .iter()
                .map(|r| keys::room_channel(r)),
        );
        if tokio::time::timeout(OP_TIMEOUT, sink.subscribe(&channels))
            .await
            .map_or(true, |r| r.is_err())
        {
            if !pause(&inner, &mut backoff, max_backoff).await {
                return;
            }
            continue;
        }
        if failures > 0 {
            tracing::info!(target: "cluster", channels = channels.len(), "subscriber reconnected");
        }
        failures = 0;
        backoff = MIN_BACKOFF;
        let mut ping = tokio::time::interval(inner.settings.heartbeat);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = inner.stop.cancelled() => return,
                msg = stream.next() => match msg {
                    Some(msg) => dispatch(&inner, &msg),
                    None => break,
                },
                cmd = commands.recv() => {
                    let r = match cmd {
                        None => return,
                        Some(Command::Subscribe(room)) => {
                            tokio::time::timeout(OP_TIMEOUT, sink.subscribe(keys::room_channel(&room))).await
                        }
                        Some(Command::Unsubscribe(room)) => {
                            tokio::time::timeout(OP_TIMEOUT, sink.unsubscribe(keys::room_channel(&room))).await
                        }
                        Some(Command::Sync(done)) => {
                            let _ = done.send(());
                            Ok(Ok(()))
                        }
                    };
                    if !matches!(r, Ok(Ok(()))) {
                        break;
                    }
                }
                _ = ping.tick() => {
                    let r = tokio::time::timeout(OP_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(r, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        failures += 1;
        tracing::warn!(target: "cluster", "subscriber connection lost; reconnecting");
    }
}

/// Sleeps for the backoff (doubling it); false when the cluster stopped meanwhile.
async fn pause(inner: &Inner, backoff: &mut Duration, max: Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(max);
    tokio::select! {
        _ = inner.stop.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// Routes one message by its channel. Bad messages are counted and dropped.
fn dispatch(inner: &Arc<Inner>, msg: &redis::Msg) {
    let payload = msg.get_payload_bytes();
    if payload.len() > MAX_MESSAGE {
        inner.stats.count_bad_message();
        return;
    }
    let channel = msg.get_channel_name();
    let me = &inner.settings.node_id;
    if channel.starts_with(keys::ROOM_CHANNEL_PREFIX) {
        let Ok(message) = serde_json::from_slice::<RoomMessage>(payload) else {
            inner.stats.count_bad_message();
            return;
        };
        if message.node == *me
            || keys::room_channel(&message.room) != channel
            || !lock(&inner.local).hosts(&message.room)
        {
            return;
        }
        inner.stats.count_in();
        inner.emit(ClusterEvent::Room(message));
    } else if channel == keys::rpc_channel(me) {
        rpc::on_request(inner, payload);
    } else if channel == keys::reply_channel(me) {
        rpc::on_reply(inner, payload);
    }
}
