//! An echo backend: answers every request with JSON describing what it received.
//!
//! It is the backend of `portcullis echo` and `demo`, and the upstream of the integration
//! tests, so a newcomer (and a test) sees exactly which headers the gateway forwarded.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Binds `addr` and serves until the task is dropped. Returns the bound address.
pub async fn start(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve(listener))))
}

/// Serves connections from `listener` forever.
pub async fn serve(listener: TcpListener) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, peer, local));
    }
}

/// Serves one connection (plain or already TLS-wrapped) until it closes.
pub async fn serve_connection<I>(io: I, peer: SocketAddr, local: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| echo(req, peer, local));
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// The answer: method, target, headers in order (names lower-case), and the body's size
/// (counted as it streams in, never held whole). `?bytes=N` answers N bytes instead.
async fn echo(
    req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let wanted: Option<usize> = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("bytes=")))
        .and_then(|n| n.parse().ok());
    let mut body = req.into_body();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_bytes += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    if let Some(n) = wanted {
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(vec![b'x'; n.min(1 << 30)])))
            .expect("a valid response"));
    }
    let value = serde_json::json!({
        "method": method,
        "uri": uri,
        "headers": headers,
        "body_bytes": body_bytes,
        "peer": peer.to_string(),
        "server": local.to_string(),
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{value:#}\n"))))
        .expect("a valid response"))
}
