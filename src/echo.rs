//! An echo backend: answers every request with JSON describing what it received.
//!
//! It is the backend of `portcullis echo` and `demo`, and the upstream of the integration
//! tests, so a newcomer (and a test) sees exactly which headers the gateway forwarded.
//! Started with a [`Page`] (the demo's), it shows a browser's page load an HTML page
//! instead (a navigation, as the gateway tells one: [`headers_navigate`]); every other
//! client gets the JSON.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::session::browser::headers_navigate;

/// What a request brought: the JSON answer's fields.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The request-target as received: path and query.
    pub uri: String,
    /// In order, names lower-case, values as text (invalid UTF-8 replaced).
    pub headers: Vec<(String, String)>,
    pub body_bytes: u64,
    pub peer: SocketAddr,
    pub server: SocketAddr,
}

impl Received {
    /// The JSON answer: `method`, `uri`, `headers` (`[[name, value], …]`), `body_bytes`,
    /// `peer`, `server`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method,
            "uri": self.uri,
            "headers": self.headers,
            "body_bytes": self.body_bytes,
            "peer": self.peer.to_string(),
            "server": self.server.to_string(),
        })
    }
}

/// Writes the HTML page a browser's page load gets instead of the JSON.
pub type Page = fn(&Received) -> String;

/// Binds `addr` and serves JSON to every client until the task is dropped. Returns the
/// bound address.
pub async fn start(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    start_with(addr, None).await
}

/// As [`start`], with `page` for browsers' page loads (`None`: JSON for them too).
pub async fn start_with(
    addr: SocketAddr,
    page: Option<Page>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve_with(listener, page))))
}

/// Serves connections from `listener` forever, JSON to every client.
pub async fn serve(listener: TcpListener) {
    serve_with(listener, None).await
}

async fn serve_with(listener: TcpListener, page: Option<Page>) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection_with(stream, peer, local, page));
    }
}

/// Serves one connection (plain or already TLS-wrapped) until it closes, JSON to every
/// client.
pub async fn serve_connection<I>(io: I, peer: SocketAddr, local: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_connection_with(io, peer, local, None).await
}

async fn serve_connection_with<I>(io: I, peer: SocketAddr, local: SocketAddr, page: Option<Page>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| echo(req, peer, local, page));
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// The answer: method, target, headers in order (names lower-case), and the body's size
/// (counted as it streams in, never held whole), as JSON, or as `page` for a browser's
/// page load. `?bytes=N` answers N bytes instead.
async fn echo(
    req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    page: Option<Page>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let page = page.filter(|_| headers_navigate(req.headers()));
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
    let received = Received {
        method,
        uri,
        headers,
        body_bytes,
        peer,
        server: local,
    };
    let (content_type, body) = match page {
        Some(page) => ("text/html; charset=utf-8", page(&received)),
        None => ("application/json", format!("{:#}\n", received.to_json())),
    };
    Ok(Response::builder()
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response"))
}
