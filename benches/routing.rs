//! Which route a request takes: the route table's match with few and with many routes, and
//! the path normalization every request goes through before it.
//!
//!   cargo bench --bench routing

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis::config;
use portcullis::policy::path::normalize;

/// A configuration of `n` public routes: `/pub/` and `n - 1` others whose prefixes are
/// longer, so that they rank before it (the table tries longer prefixes first), half of
/// them on a host.
fn routes(n: usize) -> config::Config {
    let mut text = String::from(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\npublic_url = \"http://127.0.0.1:8080\"\n\n\
         [[routes]]\nname = \"pub\"\npath = \"/pub/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"public\"\n",
    );
    for i in 1..n {
        let host = if i % 2 == 0 {
            format!("host = \"svc-{i}.example.com\"\n")
        } else {
            String::new()
        };
        text.push_str(&format!(
            "\n[[routes]]\nname = \"r{i}\"\n{host}path = \"/service-{i:05}/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"public\"\n"
        ));
    }
    config::parse(&text, Path::new("bench.toml")).expect("the generated config")
}

/// How long does finding the route take with 10 and with 10,000 routes, for a request whose
/// route every other route ranks before (the last one a first-match scan reaches), and for
/// one that no route matches? `make bench` measures the same pair end to end (routes-10k).
fn route_match(c: &mut Criterion) {
    let mut g = c.benchmark_group("route match");
    for n in [10usize, 10_000] {
        let cfg = routes(n);
        assert_eq!(cfg.routes.len(), n);
        g.bench_with_input(BenchmarkId::new("ranked last", n), &cfg, |b, cfg| {
            b.iter(|| {
                cfg.routes
                    .find(Some("app.example.com:8080"), "/pub/orders/1")
                    .expect("the /pub/ route")
            })
        });
        g.bench_with_input(BenchmarkId::new("no match", n), &cfg, |b, cfg| {
            b.iter(|| cfg.routes.find(Some("app.example.com"), "/nothing/here"))
        });
    }
    g.finish();
}

/// What does normalizing the request path cost: a plain path (the common case), and one
/// with percent-encoded unreserved characters, dot segments and `//` to undo?
fn path_normalization(c: &mut Criterion) {
    let mut g = c.benchmark_group("path normalization");
    g.bench_function("plain", |b| {
        b.iter(|| normalize("/api/orders/12345/items").unwrap())
    });
    g.bench_function("encoded, dot segments, //", |b| {
        b.iter(|| normalize("/api/%7Ealice/./orders/../orders//12345/%69tems").unwrap())
    });
    g.finish();
}

criterion_group!(benches, route_match, path_normalization);
criterion_main!(benches);
