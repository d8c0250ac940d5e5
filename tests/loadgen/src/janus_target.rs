//! `--target janus`: the same peers and media against Janus's videoroom plugin (HTTP JSON API
//! and SDP, see [`crate::janus`]). Fan-out only: one or more publishers (video), every
//! subscriber subscribes to the first publisher's feed through its own handle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::StreamExt as _;

use crate::LoadConfig;
use crate::janus::{DEFAULT_ROOM, Janus, PublishMedia, VP8_PT};
use crate::media::{EngineHandle, MediaKind, SendSpec, check_spec};
use crate::peer::{self, IceRole, local_transport};
use crate::types::Scenario;

/// Subscriber joins in flight (Janus's own API client also caps requests in flight).
const JOIN_PARALLELISM: usize = 32;
/// How long a publisher may take to get Janus's `webrtcup`.
const PUBLISHER_UP: Duration = Duration::from_secs(15);

/// Janus driven through its HTTP API. Peers stay between steps.
pub(crate) struct JanusTarget {
    cfg: LoadConfig,
    engine: EngineHandle,
    url: String,
    janus: Option<Arc<Janus>>,
    feeds: Vec<u64>,
    subscribers: u32,
    failed_joins: u32,
}

impl std::fmt::Debug for JanusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanusTarget")
            .field("url", &self.url)
            .field("subscribers", &self.subscribers)
            .finish_non_exhaustive()
    }
}

impl JanusTarget {
    pub(crate) fn new(cfg: LoadConfig, engine: EngineHandle, url: &str) -> Result<Self> {
        if cfg.scenario != Scenario::Fanout {
            bail!("--target janus runs the fanout scenario only");
        }
        Ok(Self {
            cfg,
            engine,
            url: url.to_owned(),
            janus: None,
            feeds: Vec::new(),
            subscribers: 0,
            failed_joins: 0,
        })
    }

    fn janus(&self) -> Result<Arc<Janus>> {
        self.janus.clone().context("not connected to Janus")
    }

    async fn publisher(&self, janus: &Janus, i: u32) -> Result<u64> {
        let ssrc = crate::client::random_ssrc();
        let local = local_transport(self.engine.local_addr())?;
        let media = PublishMedia {
            audio_ssrc: None,
            video_ssrc: Some(ssrc),
            cname: format!("lg-pub{i}"),
        };
        let (remote, feed) = janus.publish(DEFAULT_ROOM, &local, &media).await?;
        let peer = peer::connect(
            local,
            remote,
            self.cfg.profile,
            IceRole::Controlling,
            Instant::now(),
        )?;
        let peer = self.engine.add_peer(format!("pub{i}/send"), peer).await?;
        let spec = SendSpec {
            kind: MediaKind::Video,
            ssrc,
            pt: VP8_PT,
            bitrate: self.cfg.bitrate,
            packet_size: self.cfg.packet_size,
        };
        check_spec(&spec)?;
        let stream = self.engine.add_send_stream(peer, spec).await?;
        self.engine.bind_producer(stream, format!("{feed}/video"))?;
        janus.wait_publisher_up(feed, PUBLISHER_UP).await?;
        Ok(feed)
    }

    async fn subscriber(
        janus: Arc<Janus>,
        engine: EngineHandle,
        cfg: LoadConfig,
        i: u32,
        feed: u64,
    ) -> Result<()> {
        let local = local_transport(engine.local_addr())?;
        let sub = janus.join_subscriber(DEFAULT_ROOM, feed, &local).await?;
        // Registered before Janus gets our answer (and starts its checks).
        let peer = peer::connect(
            local,
            sub.remote.clone(),
            cfg.profile,
            IceRole::Controlled,
            Instant::now(),
        )?;
        let peer = engine.add_peer(format!("sub{i}/recv"), peer).await?;
        for s in &sub.streams {
            engine.add_consumer(peer, s.ssrc, format!("{}/{}", sub.feed, s.kind.as_str()))?;
        }
        janus.start_subscriber(&sub).await
    }
}

impl crate::Target for JanusTarget {
    async fn prepare(&mut self) -> Result<()> {
        if self.janus.is_none() {
            let janus = Janus::connect(&self.url).await?;
            janus
                .create_room(DEFAULT_ROOM, self.cfg.publishers.max(1))
                .await?;
            self.janus = Some(Arc::new(janus));
        }
        Ok(())
    }

    async fn grow(&mut self, n: u32) -> Result<()> {
        self.prepare().await?;
        let janus = self.janus()?;
        while (self.feeds.len() as u32) < self.cfg.publishers {
            let i = self.feeds.len() as u32;
            let feed = self
                .publisher(&janus, i)
                .await
                .with_context(|| format!("publisher {i}"))?;
            self.feeds.push(feed);
        }
        let feed = *self.feeds.first().context("no publisher")?;
        if n > self.subscribers {
            let (engine, cfg) = (self.engine.clone(), self.cfg.clone());
            let results: Vec<(u32, Result<()>)> = futures_util::stream::iter(self.subscribers..n)
                .map(|i| {
                    let (janus, engine, cfg) = (janus.clone(), engine.clone(), cfg.clone());
                    async move { (i, Self::subscriber(janus, engine, cfg, i, feed).await) }
                })
                .buffer_unordered(JOIN_PARALLELISM)
                .collect()
                .await;
            for (i, r) in results {
                if let Err(e) = r {
                    self.failed_joins += 1;
                    eprintln!("loadgen: janus subscriber {i} did not join: {e:#}");
                }
            }
            self.subscribers = n;
        }
        Ok(())
    }

    fn publishers(&self) -> u32 {
        // Subscribers take the first feed only: the fan-out is 1 → N whatever the publishers.
        1
    }

    async fn sut_pids(&self) -> Result<Vec<u32>> {
        bail!("--target janus: give --sut-pid (the janus process)")
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "janus: videoroom plugin over the HTTP API, one handle per subscriber in one session; \
             generator publishers are DTLS servers (Janus answers setup:active), subscribers \
             DTLS clients, ICE controlled"
                .to_owned(),
        ];
        if self.failed_joins > 0 {
            n.push(format!("{} subscribers failed to join", self.failed_joins));
        }
        n
    }

    async fn close(self) {
        if let Some(j) = self.janus
            && let Ok(j) = Arc::try_unwrap(j)
        {
            j.close().await;
        }
    }
}
