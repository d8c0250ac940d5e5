//! HTTPS and WSS on the HTTP listener when a certificate and key are configured: a rustls client
//! that trusts only the test certificate gets `/healthz` and a protoo WebSocket; a plain-HTTP
//! client gets nothing.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosfu");

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a fresh self-signed certificate for localhost into `dir`; answers it.
fn write_cert(dir: &std::path::Path) -> CertificateDer<'static> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    ck.cert.der().clone()
}

/// A supervisor with a certificate in its own dir (`tag`), RTC ports `ports`.
fn start(tag: &str, ports: &str) -> (Server, CertificateDer<'static>) {
    let dir = std::env::temp_dir().join(format!("ferrosfu-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = write_cert(&dir);
    let mut child = Command::new(BIN)
        .args([
            "--dev",
            "--http-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--worker-cores", "0", "--rtc-ports", ports])
        .args(["--webrtc-server-port", ports.split('-').next().unwrap()])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .current_dir(common::workdir(tag))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no 'http listening' ({e}):\n{}", seen.join("\n")));
        seen.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "http listening" {
            assert_eq!(v["tls"], true, "{line}");
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    (
        Server {
            child,
            addr,
            dir: TempDir(dir),
            lines: rx,
        },
        cert,
    )
}

fn connector(cert: CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

#[tokio::test]
async fn https_and_wss_when_a_certificate_is_configured() {
    let (server, cert) = start("tls", "24100-24149");
    let tls = connector(cert);
    let name = ServerName::try_from("localhost").unwrap();

    // HTTPS GET /healthz.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut s = tls.connect(name.clone(), tcp).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // WSS protoo: getRouterRtpCapabilities answers.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let s = tls.connect(name, tcp).await.unwrap();
    let mut req = format!(
        "wss://localhost:{}/?roomId=tls&peerId=p1",
        server.addr.port()
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("protoo"));
    let (mut ws, resp) = tokio_tungstenite::client_async(req, s).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "protoo"
    );
    let v = router_caps(&mut ws).await;
    assert!(v["data"]["codecs"].as_array().unwrap().len() >= 5, "{v}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
}

/// The leaf certificate a fresh TLS connection to `addr` is shown (verified by `tls`).
async fn connect(
    tls: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tls.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// `getRouterRtpCapabilities` on a protoo socket: the successful answer.
async fn router_caps<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(r#"{"request":true,"id":1,"method":"getRouterRtpCapabilities","data":{}}"#.into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// Waits for a log line of `server` whose message contains `needle`.
fn wait_log(server: &Server, needle: &str) -> serde_json::Value {
    loop {
        let line = server
            .lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("no log line with {needle:?}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"].as_str().is_some_and(|m| m.contains(needle)) {
            return v;
        }
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let (server, old) = start("tlsreload", "24150-24199");
    let old_tls = connector(old.clone());

    // A WSS protoo session opened with the old certificate.
    let s = connect(&old_tls, server.addr).await.unwrap();
    let mut req = format!(
        "wss://localhost:{}/?roomId=reload&peerId=p1",
        server.addr.port()
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("protoo"));
    let (mut ws, _) = tokio_tungstenite::client_async(req, s).await.unwrap();

    // A renewed certificate, then SIGHUP.
    let new = write_cert(&server.dir.0);
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_log(&server, "TLS certificate reloaded");

    // New connections see the new certificate (a client trusting only the old one fails).
    let new_tls = connector(new);
    let mut s = connect(&new_tls, server.addr).await.unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // A fresh client config: the old one could resume its session without a certificate.
    assert!(connect(&connector(old), server.addr).await.is_err());

    // The session opened before the reload goes on.
    router_caps(&mut ws).await;

    // A broken key on the next SIGHUP is refused: the current certificate stays.
    std::fs::write(server.dir.0.join("key.pem"), "not a key").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let v = wait_log(&server, "TLS certificate not reloaded");
    assert_eq!(v["level"], "ERROR", "{v}");
    assert!(connect(&new_tls, server.addr).await.is_ok());
}
