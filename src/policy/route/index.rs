//! The index of the route table: which route of the ordered list matches first, found
//! with a few hash lookups of the request path's own prefixes instead of trying every
//! route (10,000 routes cost what 10 do).

use std::collections::HashMap;
use std::sync::Arc;

use super::{HostPattern, Route};

/// The routes by host: the position (in the table's ordered list) of each path prefix, per
/// exact host, per wildcard suffix and for routes without a host. The first match of the
/// ordered list is the matching route of lowest position; within one group that is the
/// longest matching prefix (of equal prefixes, the first), so each group answers with a few
/// hash lookups of the path's own prefixes, and the lowest of the groups' answers wins.
#[derive(Debug, Default)]
pub(super) struct Index {
    exact: HashMap<String, Prefixes>,
    /// By suffix with its leading dot: `.example.com`.
    wildcard: HashMap<String, Prefixes>,
    any_host: Prefixes,
}

/// The routes of one host group: the lowest position per path prefix.
#[derive(Debug, Default)]
struct Prefixes {
    by_prefix: HashMap<String, usize>,
    /// Whether some prefix has each length, so that lengths none has are not looked up.
    lengths: Vec<bool>,
}

impl Prefixes {
    fn insert(&mut self, prefix: &str, position: usize) {
        self.by_prefix.entry(prefix.to_owned()).or_insert(position);
        if self.lengths.len() <= prefix.len() {
            self.lengths.resize(prefix.len() + 1, false);
        }
        self.lengths[prefix.len()] = true;
    }

    fn get(&self, prefix: &str) -> Option<usize> {
        let known = self.lengths.get(prefix.len()).copied().unwrap_or(false);
        known.then(|| self.by_prefix.get(prefix).copied()).flatten()
    }

    /// The lowest position among the prefixes that match `path` (`Route::path_matches`),
    /// longest first: `path` followed by `/`, then `path` and its prefixes that end at a `/`
    /// or before one; `/` matches any path.
    fn best(&self, path: &str) -> Option<usize> {
        if self.by_prefix.is_empty() {
            return None;
        }
        if self.lengths.get(path.len() + 1).copied().unwrap_or(false) {
            let mut with_slash = String::with_capacity(path.len() + 1);
            with_slash.push_str(path);
            with_slash.push('/');
            if let Some(&p) = self.by_prefix.get(&with_slash) {
                return Some(p);
            }
        }
        let bytes = path.as_bytes();
        for end in (1..=bytes.len()).rev() {
            let boundary = end == bytes.len() || bytes[end] == b'/' || bytes[end - 1] == b'/';
            if boundary {
                if let Some(p) = self.get(&path[..end]) {
                    return Some(p);
                }
            }
        }
        self.get("/")
    }
}

impl Index {
    pub(super) fn new(routes: &[Arc<Route>]) -> Self {
        let mut index = Index::default();
        for (position, route) in routes.iter().enumerate() {
            let group = match &route.host {
                None => &mut index.any_host,
                Some(HostPattern::Exact(h)) => index.exact.entry(h.clone()).or_default(),
                Some(HostPattern::Wildcard(w)) => index.wildcard.entry(w.clone()).or_default(),
            };
            group.insert(&route.path, position);
        }
        index
    }

    /// The position of the first route of the ordered list that matches; `host` is
    /// lower-case, without port.
    pub(super) fn find(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let mut best = self.any_host.best(path);
        let Some(host) = host else {
            return best;
        };
        let mut consider = |p: Option<usize>| {
            if let Some(p) = p {
                best = Some(best.map_or(p, |b| b.min(p)));
            }
        };
        if let Some(group) = self.exact.get(host) {
            consider(group.best(path));
        }
        if !self.wildcard.is_empty() {
            // `*.example.com` matches `a.example.com`: each suffix of the host that starts
            // at a dot with at least one character before it.
            for (i, b) in host.bytes().enumerate().skip(1) {
                if b == b'.' {
                    if let Some(group) = self.wildcard.get(&host[i..]) {
                        consider(group.best(path));
                    }
                }
            }
        }
        best
    }
}
