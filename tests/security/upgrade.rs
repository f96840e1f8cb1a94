//! An upstream that answers an `Upgrade` request with 200, not 101, does not open a tunnel:
//! bytes the client sends afterwards are read as requests and judged, never passed to the
//! upstream as raw tunnel data. Nor does a 101 nobody asked for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{exchange, statuses};
use crate::support::Gateway;

/// How the fake upstream answers a request.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with a body, whatever was asked (an upstream that does not do WebSocket).
    Ok,
    /// 101 Switching Protocols, whatever was asked.
    Switch,
}

/// A raw upstream that answers every request head it reads with `answer`, and records
/// every byte it receives.
async fn upstream(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let reply: &[u8] = match answer {
                            Answer::Ok => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            Answer::Switch => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                        };
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn gateway(up: SocketAddr) -> Gateway {
    let rest = format!(
        r#"
[provider]
issuer = "http://127.0.0.1:1/realms/none"
client_id = "portcullis"

[[routes]]
name = "ws"
path = "/ws/"
upstream = "http://{up}"
auth = "public"

[[routes]]
name = "admin"
path = "/admin/"
upstream = "http://{up}"
auth = "bearer"
"#
    );
    Gateway::start("", &rest).await
}

const UPGRADE: &str = "GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const SMUGGLED: &str = "GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// Sends `first`, waits for its answer, then sends `then` on the same connection; returns
/// everything the gateway answered.
async fn two_steps(addr: SocketAddr, first: &[u8], then: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(first).await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        out.extend_from_slice(&buf[..n]);
    }
    let _ = s.write_all(then).await;
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_answered_with_200_does_not_become_a_tunnel() {
    let (up, seen) = upstream(Answer::Ok).await;
    let gw = gateway(up).await;
    for then in [
        SMUGGLED.as_bytes().to_vec(),
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58".to_vec(),
        format!("{SMUGGLED}{SMUGGLED}").into_bytes(),
    ] {
        let answer = two_steps(gw.addr, UPGRADE.as_bytes(), &then).await;
        let got = statuses(&answer);
        assert_eq!(
            got.first(),
            Some(&200),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            got.iter().skip(1).all(|&s| (400..500).contains(&s)),
            "what followed the 200 was not refused as a request of its own: {got:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = seen.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("smuggled"),
        "tunnelled to the upstream: {text}"
    );
    assert!(
        !bytes.windows(4).any(|w| w == b"\x37\xfa\x21\x3d"),
        "a WebSocket frame was tunnelled to the upstream: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_101_nobody_asked_for_does_not_become_a_tunnel() {
    let (up, seen) = upstream(Answer::Switch).await;
    let gw = gateway(up).await;
    let plain = b"GET /ws/plain HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = two_steps(gw.addr, plain, SMUGGLED.as_bytes()).await;
    let got = statuses(&answer);
    assert!(
        got.iter().all(|&s| s != 101),
        "a 101 to a request without Upgrade reached the client: {}",
        String::from_utf8_lossy(&answer)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(
        !text.contains("smuggled"),
        "tunnelled to the upstream: {text}"
    );
    // A refused upgrade on a bearer route never reaches the upstream at all.
    let to_admin = UPGRADE.replace("/ws/chat", "/admin/chat");
    let answer = exchange(gw.addr, to_admin.as_bytes(), Duration::from_millis(1500)).await;
    assert_eq!(
        statuses(&answer).first(),
        Some(&401),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(!text.contains("/admin/chat"), "{text}");
}
