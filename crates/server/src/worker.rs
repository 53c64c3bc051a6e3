//! The inference worker: a dedicated OS thread that owns a loaded model and runs it, fed by a
//! bounded queue.
//!
//! Inference is CPU-bound and may block for milliseconds; on a tokio worker it would stall every
//! other connection. Requests therefore cross a bounded channel to this thread and await the
//! answer on a oneshot. A full queue is answered at once (the caller turns it into 503
//! `overloaded`) instead of growing without bound. This is the seam where the batching
//! scheduler plugs in: it replaces the one-job-at-a-time loop, not the interface.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use warden_runtime::{LoadedModel, NamedTensor, RuntimeError};

/// Why an inference did not produce outputs.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The queue is full; the client should retry later.
    #[error("the model's queue is full")]
    Overloaded,
    /// The worker thread is gone (it panicked or the model is being unloaded).
    #[error("the model's worker has stopped")]
    WorkerStopped,
    /// The backend failed to run the graph.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

type Reply = oneshot::Sender<Result<Vec<NamedTensor>, RuntimeError>>;

struct Job {
    inputs: Vec<NamedTensor>,
    outputs: Vec<String>,
    span: tracing::Span,
    reply: Reply,
}

/// A worker thread and the sending end of its queue.
#[derive(Debug)]
pub struct InferenceWorker {
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl InferenceWorker {
    /// Starts a worker for `model` with a queue of `capacity` waiting requests.
    pub fn spawn(
        thread_name: String,
        mut model: Box<dyn LoadedModel>,
        capacity: usize,
    ) -> std::io::Result<InferenceWorker> {
        let (queue, jobs) = mpsc::sync_channel::<Job>(capacity);
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                for job in jobs {
                    // A client that went away no longer needs its answer: skip the work.
                    if job.reply.is_closed() {
                        continue;
                    }
                    // A panic inside the engine must not kill the worker and strand every later
                    // request: it becomes this request's error.
                    let result = job.span.in_scope(|| {
                        std::panic::catch_unwind(AssertUnwindSafe(|| {
                            model.run(job.inputs, &job.outputs)
                        }))
                        .unwrap_or_else(|_| {
                            Err(RuntimeError::Inference(
                                "the inference engine panicked".into(),
                            ))
                        })
                    });
                    // The receiver may have gone while we ran; nothing is owed to it then.
                    let _ = job.reply.send(result);
                }
            })?;
        Ok(InferenceWorker {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues one inference and waits for it.
    pub async fn infer(
        &self,
        inputs: Vec<NamedTensor>,
        outputs: Vec<String>,
    ) -> Result<Vec<NamedTensor>, InferError> {
        let queue = self.queue.as_ref().ok_or(InferError::WorkerStopped)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            outputs,
            span: tracing::Span::current(),
            reply,
        };
        queue.try_send(job).map_err(|err| match err {
            TrySendError::Full(_) => InferError::Overloaded,
            TrySendError::Disconnected(_) => InferError::WorkerStopped,
        })?;
        Ok(answer.await.map_err(|_| InferError::WorkerStopped)??)
    }
}

impl Drop for InferenceWorker {
    /// Closes the queue and waits for the thread to finish the jobs already queued.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
