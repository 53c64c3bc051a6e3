//! What makes the server rescan its repository: file events (inotify through `notify`), a
//! polling watcher when file events are unavailable (some network and overlay file systems),
//! and SIGHUP. Events are debounced (a copy of a large model is many events) and every rescan
//! runs on a blocking thread through the one [`Reloader`], which serialises them.

use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::signal::unix::Signal;
use tokio::sync::mpsc;

use crate::serving::reload::Reloader;

/// How long the repository must be quiet after an event before it is rescanned.
const QUIET: Duration = Duration::from_millis(300);

/// How the repository is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// File events (inotify), falling back to polling where the file system has none.
    Events,
    /// Polling only: for network file systems (NFS, SMB), where file events miss changes made
    /// by other machines.
    Poll,
    /// No watching: reload with SIGHUP or the repository API.
    Off,
}

/// Starts the triggers: SIGHUP always; file events or polling every `poll_interval` as `mode`
/// says. Runs until the process ends.
pub fn spawn(reloader: Arc<Reloader>, hangup: Signal, mode: WatchMode, poll_interval: Duration) {
    let (events, mut changed) = mpsc::unbounded_channel::<()>();
    let watcher = match mode {
        WatchMode::Events => start_watcher(&reloader, events.clone(), poll_interval, false),
        WatchMode::Poll => start_watcher(&reloader, events.clone(), poll_interval, true),
        WatchMode::Off => {
            tracing::info!("repository watching is off: reload with SIGHUP or the repository API");
            None
        }
    };
    // A change made between the start-up scan and the watcher's own first look (a poll
    // watcher's baseline) would otherwise go unseen until the next one: look once now.
    if watcher.is_some() {
        let _ = events.send(());
    }
    tokio::spawn(on_hangup(hangup, events));
    tokio::spawn(async move {
        // The watcher stops when dropped: this task owns it for the life of the process.
        let _watcher = watcher;
        while changed.recv().await.is_some() {
            // Wait for the writes to settle.
            while let Ok(Some(())) = tokio::time::timeout(QUIET, changed.recv()).await {}
            let reloader = Arc::clone(&reloader);
            match tokio::task::spawn_blocking(move || reloader.rescan()).await {
                Ok(changes) if !changes.is_empty() => {
                    tracing::info!(changes = ?changes, "repository rescanned");
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "the rescan stopped"),
            }
        }
    });
}

async fn on_hangup(mut hangup: Signal, events: mpsc::UnboundedSender<()>) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received: rescanning the model repository");
        if events.send(()).is_err() {
            break;
        }
    }
}

/// File events where the platform has them, else polling; `None` when neither can start
/// (logged; SIGHUP and the repository API still reload).
fn start_watcher(
    reloader: &Reloader,
    events: mpsc::UnboundedSender<()>,
    poll_interval: Duration,
    poll_only: bool,
) -> Option<Box<dyn Watcher + Send>> {
    let path = reloader.repository().to_path_buf();
    let handler = move |event: notify::Result<notify::Event>| {
        // Reading a model (a load) is not a change; writing and moving files are.
        let relevant = match event {
            Ok(event) => !matches!(
                event.kind,
                EventKind::Access(kind) if kind != notify::event::AccessKind::Close(notify::event::AccessMode::Write)
            ),
            Err(_) => true,
        };
        if relevant {
            let _ = events.send(());
        }
    };
    if !poll_only {
        let events_handler = handler.clone();
        match notify::recommended_watcher(events_handler).and_then(|mut watcher| {
            watcher.watch(&path, RecursiveMode::Recursive)?;
            Ok(watcher)
        }) {
            Ok(watcher) => {
                tracing::info!(path = %path.display(), "watching the model repository for file events");
                return Some(Box::new(watcher));
            }
            Err(err) => tracing::warn!(
                error = %err,
                "no file events for the model repository; polling it instead"
            ),
        }
    }
    let config = notify::Config::default().with_poll_interval(poll_interval);
    match notify::PollWatcher::new(handler, config).and_then(|mut watcher| {
        watcher.watch(&path, RecursiveMode::Recursive)?;
        Ok(watcher)
    }) {
        Ok(watcher) => {
            tracing::info!(
                path = %path.display(),
                poll_interval_ms = u64::try_from(poll_interval.as_millis()).unwrap_or(u64::MAX),
                "polling the model repository for changes"
            );
            Some(Box::new(watcher))
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot watch the model repository; reload with SIGHUP");
            None
        }
    }
}
