//! Hot reload: a tenant edits its policy or the lexicon on disk and the running server picks it up
//! without a restart. Values live in a [`Live`] cell (an `Arc` swapped under a lock) so a check in
//! flight keeps the version it started with; a [`Reloader`] watches files by modification time and
//! size, and a file that no longer parses leaves the old version in place and reports the error with
//! its line.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use crate::{GuardError, Policy, Taxonomy, lexicon::Lexicon};

/// A value that can be replaced while readers keep the version they loaded.
#[derive(Debug)]
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(Arc::clone(&self.0))
    }
}

impl<T> Live<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Live(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The current value; callers keep it for the whole request.
    pub fn load(&self) -> Arc<T> {
        match self.0.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the value for readers that load from now on.
    pub fn store(&self, value: T) {
        let mut slot = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(value);
    }
}

/// What a watched file feeds.
#[derive(Debug)]
enum Target {
    Policy(Live<Policy>),
    Lexicon(Live<Lexicon>, Box<Taxonomy>),
}

#[derive(Debug)]
struct Watched {
    path: PathBuf,
    target: Target,
    stamp: Option<(SystemTime, u64)>,
}

/// Watches policy and lexicon files and swaps in new versions when they change.
#[derive(Debug, Default)]
pub struct Reloader {
    watched: Vec<Watched>,
}

/// The outcome of one reload attempt.
#[derive(Debug)]
pub struct Reloaded {
    /// The file.
    pub path: PathBuf,
    /// `Ok` when the new version is live, else why the old one stays.
    pub result: Result<(), GuardError>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Reloader {
    /// Watches a policy file feeding `live` (the version loaded now counts as seen).
    pub fn watch_policy(&mut self, path: &Path, live: Live<Policy>) {
        self.watched.push(Watched {
            path: path.to_owned(),
            target: Target::Policy(live),
            stamp: stamp(path),
        });
    }

    /// Watches a lexicon file feeding `live`; every entry is checked against `taxonomy`.
    pub fn watch_lexicon(&mut self, path: &Path, live: Live<Lexicon>, taxonomy: Taxonomy) {
        self.watched.push(Watched {
            path: path.to_owned(),
            target: Target::Lexicon(live, Box::new(taxonomy)),
            stamp: stamp(path),
        });
    }

    /// Checks each file once and reloads those whose modification time or size changed.
    pub fn poll(&mut self) -> Vec<Reloaded> {
        let mut out = Vec::new();
        for w in &mut self.watched {
            let now = stamp(&w.path);
            if now.is_none() || now == w.stamp {
                continue;
            }
            w.stamp = now;
            let file = w.path.display().to_string();
            let result = std::fs::read_to_string(&w.path)
                .map_err(|e| GuardError::io(&w.path, e))
                .and_then(|source| match &w.target {
                    Target::Policy(live) => Policy::parse(&file, &source).map(|p| live.store(p)),
                    Target::Lexicon(live, taxonomy) => {
                        Lexicon::parse(&file, &source, taxonomy).map(|l| live.store(l))
                    }
                });
            out.push(Reloaded { path: w.path.clone(), result });
        }
        out
    }

    /// Polls every `interval` on a background thread until the handle is dropped.
    pub fn spawn(mut self, interval: Duration) -> ReloadHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let (stop2, errors) = (Arc::clone(&stop), Arc::clone(&last_error));
        let spawned = std::thread::Builder::new().name("guard-reload".into()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                for r in self.poll() {
                    let message = r.result.err().map(|e| e.to_string());
                    if let Ok(mut slot) = errors.lock() {
                        *slot = message;
                    }
                }
            }
        });
        ReloadHandle { stop, last_error, running: spawned.is_ok() }
    }
}

/// Stops the reload thread when dropped; tells the last reload error.
#[derive(Debug)]
pub struct ReloadHandle {
    stop: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<String>>>,
    running: bool,
}

impl ReloadHandle {
    /// The error of the most recent reload attempt (`None` after a good one).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Whether the thread started.
    pub fn running(&self) -> bool {
        self.running
    }
}

impl Drop for ReloadHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
