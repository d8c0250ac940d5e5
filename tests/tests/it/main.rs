//! The integration tests of the checkout that need no browser, in one binary: one link instead
//! of one per file (the build of a clean clone was 3.5 minutes shorter for it). Tests of
//! different files may run at once (two at a time on two cores): each keeps its own ports.

mod admin_api;
mod admission;
mod broadcaster_gst;
mod chat_api;
mod chat_relay;
mod cluster;
mod cluster_nodes;
mod cluster_rooms;
mod data_channels;
mod drain;
mod dtls_auth;
mod ipv6;
mod lifecycle;
mod limits;
mod media_api;
mod observability;
mod operations;
mod overload;
mod p2p_signaling;
mod pipe_to_router;
mod prometheus;
mod recording;
mod reply_from_destination_address;
mod rooms_across_workers;
mod rtc_client_harness;
mod seq_jump;
mod signaling;
mod store_pg;
mod supervisor;
mod webrtc_e2e;
mod webrtc_server;
mod worker_api;
