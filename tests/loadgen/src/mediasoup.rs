//! `--target mediasoup`: the stock mediasoup worker (3.27.1, `/work/shared/anchors`) behind our
//! Node driver `tests/loadgen/mediasoup/server.mjs`, whose HTTP/JSON API speaks mediasoup's own
//! shapes under ferrosfu's method names, so the peers are set up exactly as for ferrosfu
//! ([`crate::client`]): mediasoup is ICE-lite (we are controlling, USE-CANDIDATE), publishers
//! are DTLS clients, subscribers DTLS servers.
//!
//! No rooms on that side: the generator does the room's job. A subscriber consumes every
//! producer (created resumed); a meeting peer's producers are consumed by every earlier peer and
//! it consumes theirs (meeting peers join one at a time for that).

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::LoadConfig;
use crate::client::{self, Rpc};
use crate::media::{EngineHandle, MediaKind, PeerId};
use crate::types::Scenario;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The driver's `POST /rpc` API.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    url: String,
}

impl Rpc for Api {
    async fn request(&self, method: &str, data: Value) -> Result<Value> {
        let r = self
            .http
            .post(&self.url)
            .json(&json!({"method": method, "data": data}))
            .send()
            .await
            .with_context(|| format!("{method}: POST {}", self.url))?;
        let v: Value = r.json().await.with_context(|| format!("{method}: reply"))?;
        if v["ok"] == true {
            Ok(v["data"].clone())
        } else {
            Err(anyhow!(
                "{method} refused: {}",
                v["error"].as_str().unwrap_or("?")
            ))
        }
    }
}

/// A receiving transport: the engine's peer and the server's transport id.
#[derive(Clone, Debug)]
struct Recv {
    peer: PeerId,
    transport: String,
}

/// A meeting peer: where it receives and what it produces.
#[derive(Clone, Debug)]
struct Member {
    recv: Recv,
    producers: Vec<String>,
}

/// What every join needs.
#[derive(Debug)]
struct Ctx {
    cfg: LoadConfig,
    engine: EngineHandle,
    api: Api,
    caps: Value,
}

impl Ctx {
    /// Consumes `producer` on `recv` and tells the engine which SSRC to expect.
    async fn consume(&self, recv: &Recv, producer: &str) -> Result<()> {
        let c = self
            .api
            .request(
                "consume",
                json!({"transportId": recv.transport, "producerId": producer,
                       "rtpCapabilities": self.caps}),
            )
            .await?;
        let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"]
            .as_u64()
            .context("consume: no ssrc")?;
        self.engine
            .add_consumer(recv.peer, ssrc as u32, producer.to_owned())
    }

    async fn recv_transport(&self, name: &str) -> Result<Recv> {
        let (peer, transport) =
            client::transport(&self.api, &self.engine, &self.cfg, name, false).await?;
        Ok(Recv { peer, transport })
    }

    async fn subscriber(&self, i: u32, producers: &[String]) -> Result<Recv> {
        let recv = self.recv_transport(&format!("sub{i}")).await?;
        for p in producers {
            self.consume(&recv, p).await?;
        }
        Ok(recv)
    }

    /// A publisher's transport and producers of `kinds`.
    async fn publisher(&self, name: &str, kinds: &[MediaKind]) -> Result<Vec<String>> {
        let (send, tid) = client::transport(&self.api, &self.engine, &self.cfg, name, true).await?;
        let mut ids = Vec::new();
        for &kind in kinds {
            ids.push(client::produce(&self.api, &self.engine, &self.cfg, send, &tid, kind).await?);
        }
        Ok(ids)
    }
}

/// mediasoup driven through the Node driver. Peers stay between steps.
#[derive(Debug)]
pub(crate) struct MediasoupTarget {
    ctx: Option<Ctx>,
    cfg: LoadConfig,
    engine: EngineHandle,
    api: Api,
    /// Fan-out / audio-meeting: the publishers' producers, and the subscribers in join order.
    producers: Vec<String>,
    subs: Vec<Recv>,
    members: Vec<Member>,
    /// Subscribers ever started (names stay unique after a shrink).
    next_sub: u32,
    publishers: u32,
    failed_joins: u32,
    info: Value,
}

impl MediasoupTarget {
    pub(crate) fn new(cfg: LoadConfig, engine: EngineHandle, url: &str) -> Result<Self> {
        let base = url.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!("--url must be the mediasoup driver's http://HOST:PORT: {url}");
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self {
            ctx: None,
            cfg,
            engine,
            api: Api {
                http,
                url: format!("{base}/rpc"),
            },
            producers: Vec::new(),
            subs: Vec::new(),
            members: Vec::new(),
            next_sub: 0,
            publishers: 0,
            failed_joins: 0,
            info: Value::Null,
        })
    }

    /// A meeting peer joins: sends audio + video; consumes every earlier peer's producers and
    /// every earlier peer consumes its own.
    async fn member(&mut self, i: u32) -> Result<()> {
        let ctx = self.ctx.as_ref().context("mediasoup: not prepared")?;
        let name = format!("peer{i}");
        let producers = ctx
            .publisher(&name, &[MediaKind::Audio, MediaKind::Video])
            .await?;
        let recv = ctx.recv_transport(&name).await?;
        for m in &self.members {
            for p in &m.producers {
                ctx.consume(&recv, p).await?;
            }
            for p in &producers {
                ctx.consume(&m.recv, p).await?;
            }
        }
        self.members.push(Member { recv, producers });
        Ok(())
    }
}

impl crate::Target for MediasoupTarget {
    async fn prepare(&mut self) -> Result<()> {
        if self.ctx.is_none() {
            self.info = self.api.request("info", json!({})).await?;
            let caps = self.info["rtpCapabilities"].clone();
            self.ctx = Some(Ctx {
                cfg: self.cfg.clone(),
                engine: self.engine.clone(),
                api: self.api.clone(),
                caps: client::subscriber_caps(caps, self.cfg.header_extensions),
            });
        }
        Ok(())
    }

    async fn grow(&mut self, n: u32) -> Result<()> {
        self.prepare().await?;
        if self.cfg.scenario == Scenario::Meeting {
            while (self.members.len() as u32) < n {
                let i = self.members.len() as u32;
                self.member(i)
                    .await
                    .with_context(|| format!("meeting peer {i}"))?;
            }
            self.publishers = n;
            return Ok(());
        }
        let ctx = self.ctx.as_ref().context("mediasoup: not prepared")?;
        let kind = match self.cfg.scenario {
            Scenario::AudioMeeting => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        while self.publishers < self.cfg.publishers {
            let name = format!("pub{}", self.publishers);
            let ids = ctx
                .publisher(&name, &[kind])
                .await
                .with_context(|| format!("publisher {name}"))?;
            self.producers.extend(ids);
            self.publishers += 1;
        }
        let have = self.subs.len() as u32;
        if n > have {
            let first = self.next_sub;
            let producers = &self.producers;
            let (joined, failed) =
                client::join_parallel(first..first + (n - have), "subscriber", |i| {
                    ctx.subscriber(i, producers)
                })
                .await;
            self.next_sub += n - have;
            self.subs.extend(joined);
            self.failed_joins += failed;
        }
        Ok(())
    }

    async fn shrink(&mut self, n: u32) -> Result<()> {
        if self.cfg.scenario == Scenario::Meeting {
            bail!("mediasoup: a meeting cannot shrink");
        }
        while self.subs.len() > n as usize {
            let r = self.subs.pop().expect("longer than n");
            self.engine.remove_peer(r.peer)?;
            self.api
                .request("closeTransport", json!({"transportId": r.transport}))
                .await?;
        }
        Ok(())
    }

    fn publishers(&self) -> u32 {
        self.publishers
    }

    async fn sut_pids(&self) -> Result<Vec<u32>> {
        let info = self.api.request("info", json!({})).await?;
        let pid = info["workerPid"].as_u64().context("info: no workerPid")?;
        Ok(vec![pid as u32])
    }

    fn notes(&self) -> Vec<String> {
        let t = &self.info["transport"];
        let mut n = vec![format!(
            "mediasoup {} worker (stock, anchors/mediasoup-worker-3.27.1, built offline against \
             Debian 12 libs) driven by tests/loadgen/mediasoup/server.mjs: one worker, one router; \
             per-transport ports like ferrosfu (no WebRtcServer), listenInfos {}, preferUdp, \
             iceConsentTimeout {}, initialAvailableOutgoingBitrate {}; generator subscribers are \
             DTLS servers, publishers DTLS clients",
            self.info["version"].as_str().unwrap_or("?"),
            t["listenInfos"],
            t["iceConsentTimeout"],
            t["initialAvailableOutgoingBitrate"],
        )];
        if self.cfg.header_extensions {
            n.push("subscribers declare the router's header extensions".to_owned());
        }
        if self.failed_joins > 0 {
            n.push(format!("{} peers failed to join", self.failed_joins));
        }
        n
    }

    async fn close(self) {
        // The driver outlives the run (a search runs next against the same worker).
        if let Err(e) = self.api.request("closeAll", json!({})).await {
            eprintln!("loadgen: mediasoup closeAll: {e:#}");
        }
    }
}
