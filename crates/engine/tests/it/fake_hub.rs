//! A local HTTP server that imitates the Hugging Face hub for download tests (there is no hub here): the
//! tree API with pagination, `resolve` with `Range` support and an optional redirect to a "CDN" path, a
//! gated repository that wants a Bearer token, and files that misbehave on purpose (a wrong listed
//! checksum, a transfer cut off mid-file, a server that ignores `Range`). Every request is logged so tests
//! can check what was asked (e.g. the resume offset). Shared with the CLI tests through `#[path]`.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How a file misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    None,
    /// `resolve` answers 302 to `/cdn/...`, which serves the bytes.
    Redirect,
    /// The tree lists a sha256 that is not the content's.
    WrongChecksum,
    /// The first full request sends this many bytes, then closes the connection.
    DropAfter(usize),
    /// `Range` is ignored: always 200 with the whole file.
    IgnoreRange,
}

#[derive(Debug, Clone)]
pub struct FakeFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub lfs: bool,
    pub quirk: Quirk,
}

impl FakeFile {
    pub fn new(path: &str, bytes: Vec<u8>) -> FakeFile {
        let lfs = path.ends_with(".gguf") || path.ends_with(".safetensors");
        FakeFile { path: path.to_owned(), bytes, lfs, quirk: Quirk::None }
    }

    pub fn quirk(mut self, quirk: Quirk) -> FakeFile {
        self.quirk = quirk;
        self
    }
}

#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub name: String,
    pub files: Vec<FakeFile>,
    /// Requests must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    log: Vec<String>,
    dropped: Vec<String>,
}

/// A running fake hub; it lives until the test process exits.
#[derive(Debug, Clone)]
pub struct FakeHub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

/// Files per page of the tree listing: small, so that pagination is exercised.
const PAGE: usize = 3;

impl FakeHub {
    pub fn start(repos: Vec<FakeRepo>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let hub = FakeHub { endpoint, state };
        let server = hub.clone();
        let repos = Arc::new(repos);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (server, repos) = (server.clone(), repos.clone());
                std::thread::spawn(move || server.handle(stream, &repos));
            }
        });
        hub
    }

    /// Every request so far, as `METHOD PATH [range=N-] [auth]`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    fn handle(&self, stream: TcpStream, repos: &[FakeRepo]) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (mut range, mut auth) = (None::<usize>, None::<String>);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => {
                    range = v
                        .trim()
                        .strip_prefix("bytes=")
                        .and_then(|r| r.trim_end_matches('-').parse().ok());
                }
                "authorization" => auth = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        let mut entry = format!("GET {target}");
        if let Some(r) = range {
            entry.push_str(&format!(" range={r}-"));
        }
        if auth.is_some() {
            entry.push_str(" auth");
        }
        self.state.lock().unwrap().log.push(entry);
        let mut out = stream;
        let reply = self.route(&target, range, auth.as_deref(), repos);
        let _ = out.write_all(&reply);
        let _ = out.flush();
    }

    fn route(
        &self,
        target: &str,
        range: Option<usize>,
        auth: Option<&str>,
        repos: &[FakeRepo],
    ) -> Vec<u8> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let find_repo = |name: &str| repos.iter().find(|r| r.name == name);
        let authorised = |repo: &FakeRepo| match &repo.token {
            None => true,
            Some(t) => auth == Some(format!("Bearer {t}").as_str()),
        };
        if let Some(rest) = path.strip_prefix("/api/models/") {
            let parts: Vec<&str> = rest.splitn(5, '/').collect();
            let [owner, name, "tree", rev] = parts.as_slice() else {
                return text(404, "Repository not found");
            };
            let Some(repo) = find_repo(&format!("{owner}/{name}")) else {
                return text(404, "Repository not found");
            };
            if !authorised(repo) {
                return text(401, "Invalid credentials");
            }
            if *rev != "main" {
                return text(404, "Revision not found");
            }
            let start: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("cursor="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let page: Vec<serde_json::Value> =
                repo.files.iter().skip(start).take(PAGE).map(tree_entry).collect();
            let body = serde_json::to_vec(&page).unwrap();
            let mut extra = String::new();
            if start + PAGE < repo.files.len() {
                extra = format!(
                    "Link: <{}/api/models/{}/tree/main?recursive=true&cursor={}>; rel=\"next\"\r\n",
                    self.endpoint,
                    repo.name,
                    start + PAGE
                );
            }
            return response(200, "application/json", &extra, &body, body.len());
        }
        let cdn = path.strip_prefix("/cdn/");
        let parts: Vec<&str> = cdn.unwrap_or(path.trim_start_matches('/')).splitn(5, '/').collect();
        let (repo_name, file_path) = match (cdn, parts.as_slice()) {
            (Some(_), [owner, name, ..]) => {
                (format!("{owner}/{name}"), cdn.unwrap().splitn(3, '/').nth(2).unwrap_or(""))
            }
            (None, [owner, name, "resolve", rev, file]) if *rev == "main" => {
                (format!("{owner}/{name}"), *file)
            }
            _ => return text(404, "Entry not found"),
        };
        let Some(repo) = find_repo(&repo_name) else {
            return text(404, "Repository not found");
        };
        if cdn.is_none() && !authorised(repo) {
            return text(401, "Invalid credentials");
        }
        let Some(file) = repo.files.iter().find(|f| f.path == file_path) else {
            return text(404, "Entry not found");
        };
        if cdn.is_none() && file.quirk == Quirk::Redirect {
            let extra = format!("Location: /cdn/{}/{}\r\n", repo.name, file.path);
            return response(302, "text/plain", &extra, b"", 0);
        }
        let total = file.bytes.len();
        match (range, file.quirk) {
            (Some(from), q) if q != Quirk::IgnoreRange && from < total => {
                let extra = format!("Content-Range: bytes {from}-{}/{total}\r\n", total - 1);
                let body = &file.bytes[from..];
                response(206, "application/octet-stream", &extra, body, body.len())
            }
            (Some(from), q) if q != Quirk::IgnoreRange && from >= total => {
                response(416, "text/plain", &format!("Content-Range: bytes */{total}\r\n"), b"", 0)
            }
            (_, Quirk::DropAfter(n)) if self.first_drop(&file.path) => {
                // Announce the whole file, send part of it, hang up.
                response(200, "application/octet-stream", "", &file.bytes[..n.min(total)], total)
            }
            _ => response(200, "application/octet-stream", "", &file.bytes, total),
        }
    }

    fn first_drop(&self, path: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.dropped.iter().any(|p| p == path) {
            return false;
        }
        state.dropped.push(path.to_owned());
        true
    }
}

fn tree_entry(f: &FakeFile) -> serde_json::Value {
    let mut v = serde_json::json!({
        "type": "file",
        "oid": "0123456789abcdef0123456789abcdef01234567",
        "size": if f.lfs { 134 } else { f.bytes.len() },
        "path": f.path,
    });
    if f.lfs {
        let mut sha = engine::hub::sha256_hex(&f.bytes);
        if f.quirk == Quirk::WrongChecksum {
            sha = "0".repeat(64);
        }
        v["lfs"] = serde_json::json!({ "oid": sha, "size": f.bytes.len(), "pointerSize": 134 });
    }
    v
}

fn text(status: u16, msg: &str) -> Vec<u8> {
    response(status, "text/plain", "", msg.as_bytes(), msg.len())
}

/// A full HTTP/1.1 response; `content_length` may exceed `body` (a dropped transfer).
fn response(status: u16, ctype: &str, extra: &str, body: &[u8], content_length: usize) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {content_length}\r\n\
         Connection: close\r\n{extra}\r\n"
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A directory's files as fake-hub files (for serving a committed fixture model).
pub fn files_of(dir: &std::path::Path) -> Vec<FakeFile> {
    let mut out: Vec<FakeFile> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            FakeFile::new(&p.file_name().unwrap().to_string_lossy(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
