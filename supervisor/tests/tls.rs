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
    _dir: TempDir,
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

fn start() -> (Server, CertificateDer<'static>) {
    let dir = std::env::temp_dir().join(format!("ferrosfu-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--dev",
            "--http-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--worker-cores", "0", "--rtc-ports", "24100-24199"])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .current_dir(common::workdir("tls"))
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
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
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
            _dir: TempDir(dir),
        },
        ck.cert.der().clone(),
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
    let (server, cert) = start();
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
