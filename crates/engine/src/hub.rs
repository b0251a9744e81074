//! Getting models from a Hugging Face compatible hub: list a repository's files, choose the ones a model
//! needs, and download them resumably with checksum verification.
//!
//! A private deployment usually reaches the hub through a mirror or not at all, so the endpoint is a
//! parameter and every failure says which of the usual causes it is (no such repository or file, a token
//! is needed, the network is down, the download was corrupted). The wire shapes are the hub's own:
//! `GET /api/models/{repo}/tree/{revision}?recursive=true` lists files with sizes and, for LFS files, the
//! sha256 `oid`; `GET /{repo}/resolve/{revision}/{file}` serves a file (usually via a redirect to a CDN).
//! Downloads go to `<file>.part`, resume with an HTTP `Range` request, are checked against the listed
//! size and sha256, and only then are renamed into place, so a half-written model file never exists
//! under its real name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use types::{Code, ErrorCode};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How many times one file's download is resumed after the connection drops, within one pull.
const RESUME_ATTEMPTS: usize = 3;

/// Files of a Hugging Face checkpoint folder that the engine reads (besides the safetensors shards).
const CHECKPOINT_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// The quant chosen from a GGUF-only repository when the user names none: the usual laptop trade-off.
const DEFAULT_QUANT: &str = "Q4_K_M";

/// Why a hub operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The repository, revision or file does not exist (HTTP 404).
    #[error("no such repo/file on {endpoint}: {what} (404; check the spelling and the revision)")]
    NotFound {
        /// The hub asked.
        endpoint: String,
        /// The repository or `repo/file` that was not found.
        what: String,
    },
    /// The hub wants credentials (HTTP 401/403): a gated or private repository.
    #[error(
        "{what}: the hub refused access ({status}); this repository needs a token: set `hub.token` \
         (or FINLLM_HUB_TOKEN / HF_TOKEN) and accept the model's licence on the hub"
    )]
    Unauthorized {
        /// The repository or file.
        what: String,
        /// The HTTP status (401 or 403).
        status: u16,
    },
    /// The hub could not be reached at all.
    #[error(
        "cannot reach the model hub at {endpoint}: {reason} (no network? set `hub.endpoint` or \
         FINLLM_HUB_ENDPOINT to a mirror, or copy a model file in and pass --model PATH)"
    )]
    Network {
        /// The hub.
        endpoint: String,
        /// What the connection attempt reported.
        reason: String,
    },
    /// The hub answered with an unexpected status.
    #[error("{url}: the hub answered HTTP {status}")]
    Status {
        /// The request.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The hub answered something that is not the expected JSON shape.
    #[error("{url}: unexpected answer from the hub: {reason}")]
    BadResponse {
        /// The request.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The downloaded bytes do not hash to the checksum the hub lists; the partial file was deleted.
    #[error(
        "{file}: checksum mismatch (expected sha256 {expected}, got {actual}); the partial download \
         was deleted, run the pull again"
    )]
    Checksum {
        /// The file.
        file: String,
        /// The sha256 the hub lists.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// The download ended early and resuming did not complete it; the `.part` file is kept for the next try.
    #[error(
        "{file}: download interrupted after {got} of {size} bytes ({reason}); run the pull again to resume"
    )]
    Interrupted {
        /// The file.
        file: String,
        /// Bytes on disk.
        got: u64,
        /// Bytes expected.
        size: u64,
        /// The last error.
        reason: String,
    },
    /// The user's request names nothing downloadable in the repository.
    #[error("{0}")]
    Selection(String),
    /// A local file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ErrorCode for HubError {
    fn error_code(&self) -> Code {
        match self {
            HubError::NotFound { .. } | HubError::Selection(_) => Code::ModelNotFound,
            HubError::Unauthorized { .. } => Code::PermissionDenied,
            HubError::Network { .. }
            | HubError::Status { .. }
            | HubError::BadResponse { .. }
            | HubError::Interrupted { .. }
            | HubError::Checksum { .. } => Code::UpstreamError,
            HubError::Io { .. } => Code::StorageError,
        }
    }
}

/// The hub's result type.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// What the user asked to pull: `REPO`, `REPO/FILE` or `REPO:QUANT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSpec {
    /// `owner/name`.
    pub repo: String,
    /// One file (path inside the repository).
    pub file: Option<String>,
    /// A GGUF quant type such as `Q4_K_M`, matched against the repository's `.gguf` file names.
    pub quant: Option<String>,
}

impl PullSpec {
    /// Parses `owner/name`, `owner/name/path/in/repo` or `owner/name:QUANT`.
    pub fn parse(spec: &str) -> Result<PullSpec> {
        let bad = || {
            HubError::Selection(format!(
                "`{spec}` is not a model reference: use OWNER/NAME, OWNER/NAME/FILE or OWNER/NAME:QUANT"
            ))
        };
        let (path, quant) = match spec.split_once(':') {
            Some((p, q)) if !q.is_empty() && !q.contains('/') => (p, Some(q.to_owned())),
            Some(_) => return Err(bad()),
            None => (spec, None),
        };
        let mut parts = path.splitn(3, '/');
        let (Some(owner), Some(name)) = (parts.next(), parts.next()) else {
            return Err(bad());
        };
        let file = parts.next().map(str::to_owned);
        let valid = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !valid(owner) || !valid(name) || (file.is_some() && quant.is_some()) {
            return Err(bad());
        }
        if let Some(f) = &file
            && (f.is_empty() || f.split('/').any(|seg| !valid_segment(seg)))
        {
            return Err(bad());
        }
        Ok(PullSpec { repo: format!("{owner}/{name}"), file, quant })
    }
}

fn valid_segment(seg: &str) -> bool {
    !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\')
}

/// One file in a hub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path inside the repository.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The sha256 of the content (hex), known for LFS files (all weights).
    pub sha256: Option<String>,
}

#[derive(serde::Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[derive(serde::Deserialize)]
struct LfsInfo {
    oid: String,
    #[serde(default)]
    size: Option<u64>,
}

/// Parses one page of the tree API into files (directories are skipped: the listing is recursive).
pub fn parse_tree(json: &str) -> std::result::Result<Vec<RemoteFile>, String> {
    let entries: Vec<TreeEntry> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == "file")
        .map(|e| RemoteFile {
            size: e.lfs.as_ref().and_then(|l| l.size).unwrap_or(e.size),
            sha256: e.lfs.map(|l| l.oid.to_ascii_lowercase()),
            path: e.path,
        })
        .collect())
}

/// The `rel="next"` target of an HTTP `Link` header (the tree API paginates large repositories).
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

/// Chooses the files to download for `spec` from a repository listing.
///
/// A named file is taken as is; a quant picks the `.gguf` whose name contains it; otherwise a safetensors
/// checkpoint (weights, index, config, tokenizer) is preferred, and a GGUF-only repository falls back to
/// its only `.gguf` or its `Q4_K_M`.
pub fn select_files(spec: &PullSpec, files: &[RemoteFile]) -> Result<Vec<RemoteFile>> {
    let ggufs: Vec<&RemoteFile> =
        files.iter().filter(|f| f.path.to_ascii_lowercase().ends_with(".gguf")).collect();
    let names =
        |list: &[&RemoteFile]| list.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(file) = &spec.file {
        return match files.iter().find(|f| &f.path == file) {
            Some(f) => Ok(vec![f.clone()]),
            None => Err(HubError::Selection(format!(
                "no such repo/file: {}/{file} is not in the repository (it has: {})",
                spec.repo,
                files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        };
    }
    let by_quant = |quant: &str| -> Vec<&RemoteFile> {
        let q = quant.to_ascii_lowercase();
        ggufs
            .iter()
            .copied()
            .filter(|f| file_name(&f.path).to_ascii_lowercase().contains(&q))
            .collect()
    };
    if let Some(quant) = &spec.quant {
        let found = by_quant(quant);
        return match found.as_slice() {
            [one] => Ok(vec![(*one).clone()]),
            [] => Err(HubError::Selection(format!(
                "{} has no GGUF file for quant {quant} (GGUF files: {})",
                spec.repo,
                if ggufs.is_empty() { "none".to_owned() } else { names(&ggufs) }
            ))),
            many if many.iter().all(|f| f.path.contains("-of-")) => {
                Ok(many.iter().map(|f| (*f).clone()).collect())
            }
            many => Err(HubError::Selection(format!(
                "quant {quant} matches several files in {}: {}; name one as {}/FILE",
                spec.repo,
                names(many),
                spec.repo
            ))),
        };
    }
    let shards: Vec<&RemoteFile> = files
        .iter()
        .filter(|f| !f.path.contains('/') && f.path.ends_with(".safetensors"))
        .collect();
    if !shards.is_empty() && files.iter().any(|f| f.path == "config.json") {
        let mut out: Vec<RemoteFile> =
            files.iter().filter(|f| CHECKPOINT_FILES.contains(&f.path.as_str())).cloned().collect();
        out.extend(shards.into_iter().cloned());
        return Ok(out);
    }
    match ggufs.as_slice() {
        [] => Err(HubError::Selection(format!(
            "{} holds neither a safetensors checkpoint (config.json + *.safetensors) nor a GGUF file",
            spec.repo
        ))),
        [one] => Ok(vec![(*one).clone()]),
        many => match by_quant(DEFAULT_QUANT).as_slice() {
            [one] => Ok(vec![(*one).clone()]),
            _ => Err(HubError::Selection(format!(
                "{} has several GGUF files; choose one with {}:QUANT or {}/FILE ({})",
                spec.repo,
                spec.repo,
                spec.repo,
                names(many)
            ))),
        },
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Download progress, reported to the caller (the CLI draws a progress bar from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A file starts (or resumes at `done` bytes).
    Start {
        /// The file's path in the repository.
        file: String,
        /// Its size.
        size: u64,
        /// Bytes already on disk.
        done: u64,
    },
    /// More bytes arrived.
    Advance(u64),
    /// The connection dropped; the download resumes from `done`.
    Resume {
        /// Bytes on disk.
        done: u64,
    },
    /// The file is complete and verified.
    Finish,
    /// The file was already present and verified; nothing was downloaded.
    AlreadyPresent {
        /// The file's path in the repository.
        file: String,
    },
}

/// A client of one hub endpoint.
#[derive(Debug, Clone)]
pub struct HubClient {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl HubClient {
    /// A client of `endpoint` (e.g. [`DEFAULT_ENDPOINT`] or a mirror), sending `token` as a Bearer token.
    pub fn new(endpoint: &str, token: Option<String>) -> HubClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(10)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("finllm/", env!("CARGO_PKG_VERSION")))
            .build();
        HubClient {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            agent: config.into(),
        }
    }

    /// The endpoint, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn get(&self, url: &str, range_from: u64) -> Result<ureq::http::Response<ureq::Body>> {
        let mut req = self.agent.get(url);
        if let Some(token) = &self.token {
            req = req.header("Authorization", &format!("Bearer {token}"));
        }
        if range_from > 0 {
            req = req.header("Range", &format!("bytes={range_from}-"));
        }
        req.call().map_err(|e| HubError::Network {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        })
    }

    fn check_status(&self, status: u16, url: &str, what: &str) -> Result<()> {
        match status {
            200..=299 => Ok(()),
            404 => {
                Err(HubError::NotFound { endpoint: self.endpoint.clone(), what: what.to_owned() })
            }
            401 | 403 => Err(HubError::Unauthorized { what: what.to_owned(), status }),
            _ => Err(HubError::Status { url: url.to_owned(), status }),
        }
    }

    /// Lists every file of `repo` at `revision`, following the tree API's pagination.
    pub fn list_files(&self, repo: &str, revision: &str) -> Result<Vec<RemoteFile>> {
        let mut url = format!("{}/api/models/{repo}/tree/{revision}?recursive=true", self.endpoint);
        let mut files = Vec::new();
        for _ in 0..1000 {
            let mut resp = self.get(&url, 0)?;
            self.check_status(resp.status().as_u16(), &url, repo)?;
            let next = resp.headers().get("link").and_then(|v| v.to_str().ok()).and_then(next_link);
            let body =
                resp.body_mut().with_config().limit(64 << 20).read_to_string().map_err(|e| {
                    HubError::BadResponse { url: url.clone(), reason: e.to_string() }
                })?;
            files.extend(
                parse_tree(&body)
                    .map_err(|reason| HubError::BadResponse { url: url.clone(), reason })?,
            );
            match next {
                Some(n) if n.starts_with("http://") || n.starts_with("https://") => url = n,
                Some(n) => url = format!("{}{n}", self.endpoint),
                None => return Ok(files),
            }
        }
        Err(HubError::BadResponse { url, reason: "more than 1000 pages of files".to_owned() })
    }

    /// Downloads `file` of `repo` into `dest_dir` (keeping its sub-path), resuming a `.part` left by an
    /// earlier attempt, and verifies size and sha256 before the atomic rename. Returns the final path.
    pub fn download(
        &self,
        repo: &str,
        revision: &str,
        file: &RemoteFile,
        dest_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PathBuf> {
        if !file.path.split('/').all(valid_segment) {
            return Err(HubError::BadResponse {
                url: format!("{}/api/models/{repo}", self.endpoint),
                reason: format!("unsafe file path `{}`", file.path),
            });
        }
        let dest = dest_dir.join(&file.path);
        let part = PathBuf::from(format!("{}.part", dest.display()));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|source| io_err(parent, source))?;
        }
        if dest.is_file() && verify(&dest, file).map_err(|source| io_err(&dest, source))?.is_ok() {
            progress(Progress::AlreadyPresent { file: file.path.clone() });
            return Ok(dest);
        }
        let url = format!("{}/{repo}/resolve/{revision}/{}", self.endpoint, file.path);
        let what = format!("{repo}/{}", file.path);
        let mut done = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if done > file.size {
            std::fs::remove_file(&part).map_err(|source| io_err(&part, source))?;
            done = 0;
        }
        progress(Progress::Start { file: file.path.clone(), size: file.size, done });
        let mut last_error = String::new();
        for attempt in 0..=RESUME_ATTEMPTS {
            if done >= file.size && file.size > 0 {
                break;
            }
            if attempt > 0 {
                progress(Progress::Resume { done });
            }
            match self.fetch_into(&url, &what, &part, done, progress) {
                Ok(()) => {
                    done = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                    if done >= file.size {
                        break;
                    }
                    last_error = "the connection closed early".to_owned();
                }
                Err(Fetch::Fatal(e)) => return Err(e),
                Err(Fetch::Dropped(reason)) => {
                    done = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                    last_error = reason;
                }
            }
        }
        match verify(&part, file).map_err(|source| io_err(&part, source))? {
            Ok(()) => {}
            Err(Mismatch::Short(got)) => {
                return Err(HubError::Interrupted {
                    file: what,
                    got,
                    size: file.size,
                    reason: last_error,
                });
            }
            Err(Mismatch::Long(got)) => {
                std::fs::remove_file(&part).map_err(|source| io_err(&part, source))?;
                return Err(HubError::Checksum {
                    file: what,
                    expected: format!("{} bytes", file.size),
                    actual: format!("{got} bytes"),
                });
            }
            Err(Mismatch::Hash { expected, actual }) => {
                std::fs::remove_file(&part).map_err(|source| io_err(&part, source))?;
                return Err(HubError::Checksum { file: what, expected, actual });
            }
        }
        std::fs::rename(&part, &dest).map_err(|source| io_err(&dest, source))?;
        progress(Progress::Finish);
        Ok(dest)
    }

    /// One request: appends to `part` from byte `from` (or rewrites it when the server ignores `Range`).
    fn fetch_into(
        &self,
        url: &str,
        what: &str,
        part: &Path,
        from: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> std::result::Result<(), Fetch> {
        let mut resp = match self.get(url, from) {
            Ok(r) => r,
            // A refused connection on a resume is a dropped transfer; on the first request, fatal.
            Err(e) if from == 0 => return Err(Fetch::Fatal(e)),
            Err(e) => return Err(Fetch::Dropped(e.to_string())),
        };
        let status = resp.status().as_u16();
        if status == 416 {
            // The part already holds everything the server has: verification decides.
            return Ok(());
        }
        self.check_status(status, url, what).map_err(Fetch::Fatal)?;
        let append = from > 0 && status == 206;
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!append)
            .open(part)
            .map_err(|source| Fetch::Fatal(io_err(part, source)))?;
        if append {
            out.seek(SeekFrom::End(0)).map_err(|source| Fetch::Fatal(io_err(part, source)))?;
        } else if from > 0 {
            // The server ignored `Range`: the whole file comes again.
            progress(Progress::Resume { done: 0 });
        }
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.flush().map_err(|source| Fetch::Fatal(io_err(part, source)))?;
                    return Err(Fetch::Dropped(e.to_string()));
                }
            };
            out.write_all(&buf[..n]).map_err(|source| Fetch::Fatal(io_err(part, source)))?;
            progress(Progress::Advance(n as u64));
        }
        out.sync_all().map_err(|source| Fetch::Fatal(io_err(part, source)))
    }
}

enum Fetch {
    Fatal(HubError),
    Dropped(String),
}

enum Mismatch {
    Short(u64),
    Long(u64),
    Hash { expected: String, actual: String },
}

/// Checks `path` against the listed size and sha256 (when the hub gave one).
fn verify(path: &Path, file: &RemoteFile) -> std::io::Result<std::result::Result<(), Mismatch>> {
    let len = std::fs::metadata(path)?.len();
    if len < file.size {
        return Ok(Err(Mismatch::Short(len)));
    }
    if len > file.size {
        return Ok(Err(Mismatch::Long(len)));
    }
    let Some(expected) = &file.sha256 else {
        return Ok(Ok(()));
    };
    let actual = sha256_file(path)?;
    Ok(if &actual == expected {
        Ok(())
    } else {
        Err(Mismatch::Hash { expected: expected.clone(), actual })
    })
}

/// The hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path, source: std::io::Error) -> HubError {
    HubError::Io { path: path.display().to_string(), source }
}

/// Where `repo`'s files go under a data directory: `<data_dir>/models/<owner>/<name>`.
pub fn repo_dir(data_dir: &Path, repo: &str) -> PathBuf {
    data_dir.join("models").join(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> RemoteFile {
        RemoteFile { path: path.to_owned(), size: 1, sha256: None }
    }

    fn check_spec(spec: &str, expect: Option<(&str, Option<&str>, Option<&str>)>) {
        let got = PullSpec::parse(spec).ok();
        let want = expect.map(|(repo, file, quant)| PullSpec {
            repo: repo.to_owned(),
            file: file.map(str::to_owned),
            quant: quant.map(str::to_owned),
        });
        assert_eq!(got, want, "{spec}");
    }

    #[test]
    fn pull_specs() {
        check_spec("Qwen/Qwen2.5-1.5B-Instruct", Some(("Qwen/Qwen2.5-1.5B-Instruct", None, None)));
        check_spec("a/b/c.gguf", Some(("a/b", Some("c.gguf"), None)));
        check_spec("a/b/sub/c.gguf", Some(("a/b", Some("sub/c.gguf"), None)));
        check_spec("a/b:Q4_K_M", Some(("a/b", None, Some("Q4_K_M"))));
        check_spec("a", None);
        check_spec("a/", None);
        check_spec("a/b/../../etc/passwd", None);
        check_spec("../b", None);
        check_spec("a/b:", None);
        check_spec("a/b/c.gguf:Q8_0", None);
        check_spec("a b/c", None);
    }

    fn check_select(spec: &str, files: &[&str], expect: Result<&[&str], &str>) {
        let files: Vec<RemoteFile> = files.iter().map(|f| file(f)).collect();
        let spec = PullSpec::parse(spec).unwrap();
        match (select_files(&spec, &files), expect) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), want);
            }
            (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{e}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }

    #[test]
    fn choosing_files() {
        let hf = [
            "README.md",
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.json",
            "onnx/model.onnx",
        ];
        check_select(
            "a/b",
            &hf,
            Ok(&[
                "config.json",
                "model.safetensors.index.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
            ]),
        );
        let gg = ["README.md", "m-q4_0.gguf", "m-q4_k_m.gguf", "m-q8_0.gguf"];
        check_select("a/b", &gg, Ok(&["m-q4_k_m.gguf"]));
        check_select("a/b:q8_0", &gg, Ok(&["m-q8_0.gguf"]));
        check_select("a/b:Q5_K_M", &gg, Err("no GGUF file for quant Q5_K_M"));
        check_select("a/b/m-q4_0.gguf", &gg, Ok(&["m-q4_0.gguf"]));
        check_select("a/b/nope.gguf", &gg, Err("no such repo/file"));
        check_select("a/b", &["m-q4_0.gguf", "m-q8_0.gguf"], Err("several GGUF files"));
        check_select("a/b", &["one.gguf"], Ok(&["one.gguf"]));
        check_select("a/b", &["README.md"], Err("neither"));
        check_select("a/b:q4_k", &["m-q4_k_m.gguf", "m-q4_k_s.gguf"], Err("several files"));
        check_select(
            "a/b:q4_k_m",
            &["m-q4_k_m-00001-of-00002.gguf", "m-q4_k_m-00002-of-00002.gguf"],
            Ok(&["m-q4_k_m-00001-of-00002.gguf", "m-q4_k_m-00002-of-00002.gguf"]),
        );
    }

    #[test]
    fn tree_listing_and_pagination() {
        let json = r#"[
            {"type":"directory","oid":"x","size":0,"path":"onnx"},
            {"type":"file","oid":"abc","size":12,"path":"config.json"},
            {"type":"file","oid":"def","size":134,"path":"m.gguf",
             "lfs":{"oid":"ABCDEF","size":999,"pointerSize":134}}
        ]"#;
        let files = parse_tree(json).unwrap();
        assert_eq!(
            files,
            vec![
                RemoteFile { path: "config.json".into(), size: 12, sha256: None },
                RemoteFile { path: "m.gguf".into(), size: 999, sha256: Some("abcdef".into()) },
            ]
        );
        assert!(parse_tree("{\"error\":\"x\"}").is_err());
        assert_eq!(
            next_link("<https://hf.co/api/models/a/b/tree/main?cursor=xyz>; rel=\"next\""),
            Some("https://hf.co/api/models/a/b/tree/main?cursor=xyz".to_owned())
        );
        assert_eq!(next_link("<https://x>; rel=\"prev\""), None);
    }
}
