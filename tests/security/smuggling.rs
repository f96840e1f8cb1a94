//! Request smuggling over raw TCP: `Content-Length` with `Transfer-Encoding`, differing
//! `Content-Length`s, obsolete line folding, `chunked` not last, bare LF, malformed chunk
//! sizes. The gateway refuses or normalizes: a backend never sees a request the gateway did
//! not see and judge, and answers never go to the wrong request afterwards.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{exchange, statuses};
use crate::support::Gateway;

/// A backend that records the method and target of every request it parses.
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let line = format!("{} {}", req.method(), req.uri());
                            let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
                            log.lock().unwrap().push(line.clone());
                            let text = format!("{line} body={body:?}");
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The smuggled request: to a bearer-only route, so the gateway refuses it whenever it sees
/// it as a request of its own.
fn smuggled(i: usize) -> String {
    format!("GET /admin/smuggled{i} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Classic desync payloads; each outer request is for `/p<i>` on the public route.
fn payloads() -> Vec<Vec<u8>> {
    let mut out: Vec<String> = Vec::new();
    fn with_body(out: &mut Vec<String>, head: &str, body: String) {
        out.push(format!("{head}\r\n\r\n{body}"));
    }
    let s = smuggled;
    macro_rules! push {
        ($head:expr, $body:expr $(,)?) => {
            with_body(&mut out, &$head, $body)
        };
    }
    // 0: CL.TE
    let body = format!("0\r\n\r\n{}", s(0));
    push!(
        &format!(
            "POST /p0 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked",
            body.len()
        ),
        body,
    );
    // 1: TE.CL
    let inner = s(1);
    let body = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    push!(
        "POST /p1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3",
        body
    );
    // 2: two differing Content-Lengths
    push!(
        "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44",
        s(2)
    );
    // 3: a Content-Length list that differs
    push!(
        "POST /p3 HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 44",
        s(3)
    );
    // 4: obsolete line folding of Transfer-Encoding
    push!(
        "POST /p4 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked",
        format!("0\r\n\r\n{}", s(4)),
    );
    // 5: a folded line after another header
    push!(
        "POST /p5 HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(5)),
    );
    // 6: chunked, then identity
    push!(
        "POST /p6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity",
        format!("0\r\n\r\n{}", s(6)),
    );
    // 7: two Transfer-Encoding lines, the last not chunked
    push!(
        "POST /p7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        format!("0\r\n\r\n{}", s(7)),
    );
    // 8: an unknown coding with chunked somewhere in its name
    push!(
        "POST /p8 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(8)),
    );
    // 9: whitespace before the colon
    push!(
        "POST /p9 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(9)),
    );
    // 10: bare LF ending a header line, hiding Transfer-Encoding from a CRLF-only reader
    push!(
        "POST /p10 HTTP/1.1\r\nHost: x\r\nX-Bare: a\nTransfer-Encoding: chunked\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(10)),
    );
    // 11: bare LF line endings throughout
    out.push(format!(
        "POST /p11 HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n{}",
        s(11)
    ));
    // 12: a Content-Length with a sign, or in hex
    push!("POST /p12 HTTP/1.1\r\nHost: x\r\nContent-Length: +0", s(12));
    push!(
        "POST /p13 HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0",
        s(13)
    );
    // 14: a chunk size that overflows 64 bits
    push!(
        "POST /p14 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
        format!("10000000000000000\r\n{}\r\n0\r\n\r\n", s(14)),
    );
    // 15: a chunk extension with a bare LF
    push!(
        "POST /p15 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
        format!("0;x\n\r\n{}", s(15)),
    );
    // 16: Transfer-Encoding in a trailer
    push!(
        "POST /p16 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
        format!(
            "0\r\nTransfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n{}",
            s(16)
        ),
    );
    // 17: HTTP/1.0 with Transfer-Encoding
    push!(
        "POST /p17 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(17)),
    );
    // 18: a chunk shorter than its size line says, then a request
    push!(
        "POST /p18 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
        format!("3\r\nabcdef\r\n0\r\n\r\n{}", s(18)),
    );
    // 19: a body on a GET, then a pipelined request: two requests, both seen and judged.
    push!(
        "GET /p19 HTTP/1.1\r\nHost: x\r\nContent-Length: 4",
        format!("abcd{}", s(19))
    );
    // 20: Transfer-Encoding with a tab and upper case
    push!(
        "POST /p20 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tChunked\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(20)),
    );
    // 21: a NUL in a header value
    push!(
        "POST /p21 HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\nContent-Length: 5",
        format!("0\r\n\r\n{}", s(21)),
    );
    // 22: a request line with a second version or extra words
    push!("GET /p22 HTTP/1.1 HTTP/1.1\r\nHost: x", s(22));
    push!("GET /p23 HTTP/1.1\rHost: x\r\nContent-Length: 0", s(23));
    out.into_iter().map(String::into_bytes).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_smuggling_never_lets_a_backend_see_a_request_the_gateway_did_not_judge() {
    let (up, seen) = recorder().await;
    let rest = format!(
        r#"
[provider]
issuer = "http://127.0.0.1:1/realms/none"
client_id = "portcullis"

[[routes]]
name = "public"
path = "/"
upstream = "http://{up}"
auth = "public"

[[routes]]
name = "admin"
path = "/admin/"
upstream = "http://{up}"
auth = "bearer"
"#
    );
    let gw = Gateway::start("", &rest).await;
    let all = payloads();
    let answers = futures_util::future::join_all(all.iter().map(|p| {
        let addr = gw.addr;
        let p = p.clone();
        async move { exchange(addr, &p, Duration::from_millis(1500)).await }
    }))
    .await;
    // Then ordinary requests on the (possibly poisoned) pooled upstream connections: each
    // must get its own answer.
    for i in 0..20 {
        let r = crate::support::get(gw.addr, &format!("/after{i}"), &[]).await;
        assert_eq!(r.status, 200, "after{i}: {r:?}");
        assert!(
            r.body.starts_with(&format!("GET /after{i} ")),
            "after{i} got: {}",
            r.body
        );
    }
    let seen = seen.lock().unwrap().clone();
    let mut failures = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        let got = statuses(answer);
        let reached: Vec<&String> = seen
            .iter()
            .filter(|l| l.contains(&format!("/p{i} ")))
            .collect();
        if reached.len() > 1 {
            failures.push(format!(
                "payload {i}: the backend saw /p{i} {} times",
                reached.len()
            ));
        }
        if got.is_empty() && answer.is_empty() {
            // Closed without an answer: acceptable only if nothing reached the backend.
            if !reached.is_empty() {
                failures.push(format!("payload {i}: no answer, yet the backend saw it"));
            }
        }
        if got.iter().any(|&s| s >= 500) {
            failures.push(format!("payload {i}: a server error: {got:?}"));
        }
    }
    for line in &seen {
        if line.contains("smuggled") {
            failures.push(format!("the backend saw a smuggled request: {line}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nbackend saw: {seen:#?}\n{}",
        failures.join("\n"),
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_smuggling_with_pipelined_requests_never_mismatches_an_answer() {
    // Several requests in one write, bodies between them. pingora answers the first and
    // closes rather than read on (RFC 9112 §9.3.2 lets a client retry the rest): what it
    // answers is for the right request, and what it does not answer no backend saw.
    let (up, seen) = recorder().await;
    let rest = format!(
        "[[routes]]\nname = \"public\"\npath = \"/\"\nupstream = \"http://{up}\"\nauth = \"public\"\n"
    );
    let gw = Gateway::start("", &rest).await;
    let mut bytes = Vec::new();
    for i in 0..5 {
        bytes.extend_from_slice(
            format!("POST /q{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").as_bytes(),
        );
    }
    bytes.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = exchange(gw.addr, &bytes, Duration::from_secs(2)).await;
    let text = String::from_utf8_lossy(&answer);
    let answered: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("POST ").or_else(|| l.strip_prefix("GET ")))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let sent = ["/q0", "/q1", "/q2", "/q3", "/q4", "/last"];
    assert!(!answered.is_empty(), "{text}");
    assert_eq!(
        answered,
        sent[..answered.len()],
        "answers out of order: {text}"
    );
    assert_eq!(statuses(&answer).len(), answered.len(), "{text}");
    let seen = seen.lock().unwrap().clone();
    let reached: Vec<&str> = seen.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(
        reached, answered,
        "the backend saw requests that were not answered"
    );
}
