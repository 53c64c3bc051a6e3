//! The scheduler of one model version: a bounded request queue, dynamic batching, and
//! inference worker threads that each own a loaded copy of the model.
//!
//! Inference is CPU-bound and may block for milliseconds; on a tokio worker it would stall every
//! other connection, so requests cross a bounded channel to dedicated OS threads and await the
//! answer on a oneshot. A full queue is answered at once (503 `overloaded`) instead of growing.
//!
//! A worker takes the oldest request, then every request already waiting (and, when the
//! manifest sets `max_queue_delay_ms`, those that arrive within that delay) up to
//! `max_batch_size` rows, concatenates their rows, runs the graph once and hands each request
//! its own rows back, in order. At low load a request therefore never waits for company; under
//! load the queue fills while workers are busy and batches form by themselves. A request whose
//! deadline passed in the queue, or whose client went away, is dropped before inference.
//!
//! How many rows a client may send in one request (`max_request_rows`, checked at the contract
//! gate) and how many the engine runs at once (`max_batch_size`) are different limits: a request
//! over `max_batch_size` is cut into parts of that size, which go through the same queue (at
//! most one per worker at a time) and are joined back in order.
//!
//! Beside the workers runs an idle lane for work no client waits on (a rollout's shadow runs):
//! its own queue and one worker thread at the operating system's idle priority (`SCHED_IDLE`
//! on Linux), started on first use with its own handle on the model (tract's shared plan; on
//! ONNX Runtime a session of its own, loaded when the manifest has a `[rollout]`, so an
//! idle-priority run never holds a session lock a request's worker waits on). The kernel runs
//! it only on CPU time no other thread wants and preempts it the moment a request's worker
//! wakes, so it uses idle capacity and never delays an answer; under saturation its jobs wait
//! until their deadline and are dropped. A version without such a handle has no idle lane: its
//! idle work goes through the workers' queue.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use warden_runtime::{LoadedModel, NamedTensor, RuntimeError, Tensor, TensorData};

use crate::stage::{self, Stage};

/// Why an inference did not produce outputs.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The queue is full; the client should retry later.
    #[error("the model's queue is full")]
    Overloaded,
    /// The request's deadline passed before inference finished.
    #[error("the request's deadline passed after {0:?}")]
    DeadlineExceeded(Duration),
    /// The workers are gone (the model is being unloaded).
    #[error("the model's workers have stopped")]
    WorkerStopped,
    /// The backend failed to run the graph.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Where a request's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub queue: Duration,
    pub inference: Duration,
    /// Rows in the batch this request rode in.
    pub batch_rows: usize,
}

/// A request's outputs and timings.
#[derive(Debug)]
pub struct Answer {
    pub outputs: Vec<NamedTensor>,
    pub timings: Timings,
}

type Reply = oneshot::Sender<Result<Answer, InferError>>;

struct Job {
    inputs: Vec<NamedTensor>,
    outputs: Vec<String>,
    rows: usize,
    enqueued: Instant,
    deadline: Instant,
    span: tracing::Span,
    reply: Reply,
}

/// How a scheduler batches and how many workers it runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct SchedulerOptions {
    pub queue_capacity: usize,
    pub max_batch_size: usize,
    pub max_queue_delay: Duration,
    /// Whether the graph's inputs and outputs all lead with the batch dimension, so requests
    /// may share a run.
    pub batchable: bool,
}

/// The queue and worker threads of one model version.
#[derive(Debug)]
pub(super) struct Scheduler {
    /// Closed when the scheduler is dropped: each worker finishes its batch and the requests
    /// already queued, then exits by itself. Nothing joins the workers: the last reference to a
    /// version can drop on an async runtime thread (a request finishing after a reload), which
    /// must never wait for a batch.
    queue: Sender<Job>,
    counters: Arc<Counters>,
    options: SchedulerOptions,
    /// Worker threads: how many parts of one large request are queued at once.
    workers: usize,
    idle: IdleLane,
}

/// The idle lane: a model copy kept until the first idle job, then its queue.
struct IdleLane {
    name: String,
    spare: Mutex<Option<Box<dyn LoadedModel>>>,
    queue: OnceLock<Sender<Job>>,
}

impl std::fmt::Debug for IdleLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleLane")
            .field("started", &self.queue.get().is_some())
            .finish()
    }
}

/// Which queue a job goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// The workers: a client is waiting.
    Request,
    /// The idle lane: no client waits (a shadow run).
    Idle,
}

/// What the scheduler has seen, for metrics and tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests waiting in the queue now.
    pub queued: AtomicUsize,
    /// Jobs waiting in the idle lane now.
    pub idle_queued: AtomicUsize,
    /// Requests whose client went away before their answer.
    pub abandoned: AtomicU64,
}

/// Counts a request as abandoned if its future is dropped before the answer arrives.
struct Waiting<'a> {
    answered: bool,
    counters: &'a Counters,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Scheduler {
    /// Starts one worker thread per loaded model copy; `spare`, a copy sharing the same loaded
    /// graph, is kept for the idle lane (started on its first job).
    pub(super) fn spawn(
        name: &str,
        models: Vec<Box<dyn LoadedModel>>,
        spare: Option<Box<dyn LoadedModel>>,
        options: SchedulerOptions,
    ) -> std::io::Result<Scheduler> {
        // Every worker waits on the queue itself (crossbeam's receivers are shared, and spin
        // briefly before parking): no lock between them, and a busy queue rarely sleeps.
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(options.queue_capacity);
        let counters = Arc::new(Counters::default());
        let workers = models.len().max(1);
        for (index, model) in models.into_iter().enumerate() {
            let jobs = jobs.clone();
            let counters = Arc::clone(&counters);
            // Detached: a worker exits when the queue closes.
            std::thread::Builder::new()
                .name(format!("infer-{name}-{index}"))
                .spawn(move || {
                    stage::enter(Stage::Infer);
                    work(model, &jobs, &counters.queued, options)
                })?;
        }
        Ok(Scheduler {
            queue,
            counters,
            options,
            workers,
            idle: IdleLane {
                name: name.to_owned(),
                spare: Mutex::new(spare),
                queue: OnceLock::new(),
            },
        })
    }

    /// The idle lane's queue, its worker started on first use; `None` when the model has no
    /// spare copy (its idle work then goes through the workers' queue).
    fn idle_queue(&self) -> Result<Option<&Sender<Job>>, InferError> {
        if let Some(queue) = self.idle.queue.get() {
            return Ok(Some(queue));
        }
        let mut spare = self.idle.spare.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = self.idle.queue.get() {
            return Ok(Some(queue));
        }
        let Some(model) = spare.take() else {
            return Ok(None);
        };
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(self.options.queue_capacity);
        let counters = Arc::clone(&self.counters);
        let options = self.options;
        let name = self.idle.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("idle-{name}"))
            .spawn(move || {
                stage::enter(Stage::Infer);
                if let Err(err) = idle_priority() {
                    tracing::warn!(
                        model = %name,
                        error = %err,
                        "the idle lane could not lower its priority; shadow runs compete with requests for CPU"
                    );
                }
                work(model, &jobs, &counters.idle_queued, options)
            });
        if let Err(err) = spawned {
            tracing::warn!(model = %self.idle.name, error = %err, "the idle lane's thread could not start");
            return Err(InferError::WorkerStopped);
        }
        Ok(Some(self.idle.queue.get_or_init(|| queue)))
    }

    /// The scheduler's counters.
    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Runs one request of `rows` rows and waits for its answer until `deadline`. A request
    /// over `max_batch_size` rows (a graph that batches) is cut into parts of that size, queued
    /// as separate requests, at most one per worker at a time (so one large request never holds
    /// more of the queue than the workers can take), and their outputs joined in order.
    /// `lane` says whether a client waits on it (the workers) or not (the idle lane).
    pub(super) async fn infer(
        &self,
        lane: Lane,
        inputs: Vec<NamedTensor>,
        outputs: Vec<String>,
        rows: usize,
        deadline: Instant,
    ) -> Result<Answer, InferError> {
        let (queue, queued_now, workers) = match lane {
            Lane::Request => (&self.queue, &self.counters.queued, self.workers),
            Lane::Idle => match self.idle_queue()? {
                Some(queue) => (queue, &self.counters.idle_queued, 1),
                None => (&self.queue, &self.counters.queued, self.workers),
            },
        };
        let enqueue =
            |inputs, outputs, rows| enqueue(queue, queued_now, inputs, outputs, rows, deadline);
        if !self.options.batchable || rows <= self.options.max_batch_size {
            let queued = enqueue(inputs, outputs, rows)?;
            return self.wait(queued, deadline).await;
        }
        let sizes: Vec<usize> = (0..rows)
            .step_by(self.options.max_batch_size)
            .map(|start| self.options.max_batch_size.min(rows - start))
            .collect();
        let parts = split_rows(inputs, &sizes)
            .map_err(|err| InferError::Runtime(RuntimeError::Inference(err)))?;
        let mut parts = parts.into_iter().zip(sizes);
        let mut pending = std::collections::VecDeque::new();
        let mut answers = Vec::new();
        loop {
            while pending.len() < workers {
                let Some((part, size)) = parts.next() else {
                    break;
                };
                pending.push_back(enqueue(part, outputs.clone(), size)?);
            }
            let Some(queued) = pending.pop_front() else {
                break;
            };
            answers.push(self.wait(queued, deadline).await?);
        }
        join_answers(answers, rows)
    }

    /// Waits for a queued job's answer until `deadline`.
    async fn wait(&self, queued: Queued, deadline: Instant) -> Result<Answer, InferError> {
        let mut waiting = Waiting {
            answered: false,
            counters: &self.counters,
        };
        let waited = tokio::time::timeout_at(deadline.into(), queued.answer).await;
        waiting.answered = true;
        match waited {
            Err(_) => Err(InferError::DeadlineExceeded(queued.enqueued.elapsed())),
            Ok(Err(_)) => Err(InferError::WorkerStopped),
            Ok(Ok(result)) => result,
        }
    }
}

/// Puts one job of at most `max_batch_size` rows in `queue`, or says why not.
fn enqueue(
    queue: &Sender<Job>,
    queued: &AtomicUsize,
    inputs: Vec<NamedTensor>,
    outputs: Vec<String>,
    rows: usize,
    deadline: Instant,
) -> Result<Queued, InferError> {
    let (reply, answer) = oneshot::channel();
    let enqueued = Instant::now();
    let job = Job {
        inputs,
        outputs,
        rows,
        enqueued,
        deadline,
        span: tracing::Span::current(),
        reply,
    };
    queued.fetch_add(1, Ordering::Relaxed);
    queue.try_send(job).map_err(|err| {
        queued.fetch_sub(1, Ordering::Relaxed);
        match err {
            TrySendError::Full(_) => InferError::Overloaded,
            TrySendError::Disconnected(_) => InferError::WorkerStopped,
        }
    })?;
    Ok(Queued { answer, enqueued })
}

/// Puts the calling thread at the operating system's idle priority: it runs only on CPU time
/// no other thread wants. Linux's `SCHED_IDLE`; elsewhere the lowest nice value.
fn idle_priority() -> Result<(), thread_priority::Error> {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    }
}

/// Puts the calling thread below the request workers, for work a client waits on that must
/// not slow predictions (explanations): Linux's `SCHED_BATCH` at nice 10, about a tenth of a
/// worker's share of a CPU they compete for, and all of a CPU nobody else wants.
pub(super) fn batch_priority() -> Result<(), thread_priority::Error> {
    // thread-priority maps 0..=99 onto nice 19..=-20 (39 steps, rounded down): 22 is nice 10.
    let nice_10 = thread_priority::ThreadPriority::Crossplatform(
        22u8.try_into()
            .map_err(|_| thread_priority::Error::Priority("out of range"))?,
    );
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            nice_10,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        thread_priority::set_current_thread_priority(nice_10)
    }
}

/// A job in the queue: where its answer will come, and when it was queued.
struct Queued {
    answer: oneshot::Receiver<Result<Answer, InferError>>,
    enqueued: Instant,
}

/// The answers to the parts of one request, joined along the batch dimension in order; the
/// timings are the first part's queue wait and the parts' inference time summed.
fn join_answers(answers: Vec<Answer>, rows: usize) -> Result<Answer, InferError> {
    let timings = Timings {
        queue: answers.first().map_or(Duration::ZERO, |a| a.timings.queue),
        inference: answers.iter().map(|a| a.timings.inference).sum(),
        batch_rows: rows,
    };
    let outputs = concat_named(answers.iter().map(|a| a.outputs.as_slice())).ok_or_else(|| {
        InferError::Runtime(RuntimeError::Inference(format!(
            "the outputs of the parts of a {rows}-row request cannot be joined"
        )))
    })?;
    Ok(Answer { outputs, timings })
}

/// One worker: take a batch, run it, answer each request; until the queue closes.
fn work(
    mut model: Box<dyn LoadedModel>,
    jobs: &Receiver<Job>,
    queued: &AtomicUsize,
    options: SchedulerOptions,
) {
    while let Some((batch, carry)) = next_batch(jobs, queued, options) {
        run_batch(model.as_mut(), batch);
        if let Some(job) = carry {
            run_batch(model.as_mut(), vec![job]);
        }
    }
}

/// The oldest live request and, when the graph allows, the others waiting behind it; plus a
/// request taken from the queue that did not fit the batch (it runs next, on its own).
fn next_batch(
    jobs: &Receiver<Job>,
    queued: &AtomicUsize,
    options: SchedulerOptions,
) -> Option<(Vec<Job>, Option<Job>)> {
    let taken = || {
        queued.fetch_sub(1, Ordering::Relaxed);
    };
    let mut batch: Vec<Job> = Vec::new();
    let mut rows = 0;
    let first = loop {
        let job = jobs.recv().ok()?;
        taken();
        if let Some(job) = admit(job) {
            break job;
        }
    };
    rows += first.rows;
    batch.push(first);
    if !options.batchable {
        return Some((batch, None));
    }
    let until = Instant::now() + options.max_queue_delay;
    while rows < options.max_batch_size {
        let next = match jobs.try_recv() {
            Ok(job) => job,
            Err(_) if options.max_queue_delay.is_zero() => break,
            Err(_) => match jobs.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            },
        };
        taken();
        let Some(job) = admit(next) else { continue };
        if rows + job.rows > options.max_batch_size {
            return Some((batch, Some(job)));
        }
        rows += job.rows;
        batch.push(job);
    }
    Some((batch, None))
}

/// A request worth running: its client is still waiting and its deadline has not passed.
fn admit(job: Job) -> Option<Job> {
    if job.reply.is_closed() {
        return None;
    }
    if Instant::now() >= job.deadline {
        let waited = job.enqueued.elapsed();
        let _ = job.reply.send(Err(InferError::DeadlineExceeded(waited)));
        return None;
    }
    Some(job)
}

fn run_batch(model: &mut dyn LoadedModel, mut batch: Vec<Job>) {
    if batch.len() == 1 {
        let job = batch.pop().expect("one job");
        run_alone(model, job);
        return;
    }
    let started = Instant::now();
    let rows: Vec<usize> = batch.iter().map(|j| j.rows).collect();
    let total: usize = rows.iter().sum();
    let merged = concat_named(batch.iter().map(|job| job.inputs.as_slice()));
    let outputs = batch[0].outputs.clone();
    let same_outputs = batch.iter().all(|j| j.outputs == outputs);
    let result = match (merged, same_outputs) {
        (Some(inputs), true) => guarded_run(model, inputs, &outputs, &batch[0].span),
        _ => {
            // Requests that cannot share a run (different outputs asked): one at a time.
            for job in batch {
                run_alone(model, job);
            }
            return;
        }
    };
    let inference = started.elapsed();
    match result.and_then(|outputs| split_rows(outputs, &rows).map_err(RuntimeError::Inference)) {
        Ok(per_job) => {
            for (job, outputs) in batch.into_iter().zip(per_job) {
                let timings = Timings {
                    queue: started.saturating_duration_since(job.enqueued),
                    inference,
                    batch_rows: total,
                };
                let _ = job.reply.send(Ok(Answer { outputs, timings }));
            }
        }
        Err(err) => {
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(InferError::Runtime(RuntimeError::Inference(
                        err.to_string(),
                    ))));
            }
        }
    }
}

fn run_alone(model: &mut dyn LoadedModel, job: Job) {
    let started = Instant::now();
    let result = guarded_run(model, job.inputs, &job.outputs, &job.span);
    let timings = Timings {
        queue: started.saturating_duration_since(job.enqueued),
        inference: started.elapsed(),
        batch_rows: job.rows,
    };
    let _ = job.reply.send(
        result
            .map(|outputs| Answer { outputs, timings })
            .map_err(InferError::Runtime),
    );
}

/// Runs the model; a panic inside the engine becomes this batch's error instead of killing
/// the worker and stranding every later request.
fn guarded_run(
    model: &mut dyn LoadedModel,
    inputs: Vec<NamedTensor>,
    outputs: &[String],
    span: &tracing::Span,
) -> Result<Vec<NamedTensor>, RuntimeError> {
    span.in_scope(|| {
        std::panic::catch_unwind(AssertUnwindSafe(|| model.run(inputs, outputs))).unwrap_or_else(
            |_| {
                Err(RuntimeError::Inference(
                    "the inference engine panicked".into(),
                ))
            },
        )
    })
}

/// The tensors of the same name in every list, concatenated along the batch dimension, named as
/// in the first list (a batch's inputs, a split request's outputs); `None` when the lists do
/// not line up.
fn concat_named<'a>(
    lists: impl Iterator<Item = &'a [NamedTensor]> + Clone,
) -> Option<Vec<NamedTensor>> {
    let first = lists.clone().next()?;
    first
        .iter()
        .map(|named| {
            let parts: Vec<&Tensor> = lists
                .clone()
                .map(|list| {
                    list.iter()
                        .find(|t| t.name == named.name)
                        .map(|t| &t.tensor)
                })
                .collect::<Option<_>>()?;
            Some(NamedTensor {
                name: named.name.clone(),
                tensor: concat(&parts)?,
            })
        })
        .collect()
}

fn concat(parts: &[&Tensor]) -> Option<Tensor> {
    let tail = parts[0].shape.get(1..)?.to_vec();
    if parts.iter().any(|p| p.shape.get(1..) != Some(&tail[..])) {
        return None;
    }
    let rows: usize = parts.iter().map(|p| p.shape[0]).sum();
    macro_rules! join {
        ($variant:ident) => {{
            let mut all = Vec::new();
            for part in parts {
                let TensorData::$variant(values) = &part.data else {
                    return None;
                };
                all.extend_from_slice(values);
            }
            TensorData::$variant(all)
        }};
    }
    let data = match &parts[0].data {
        TensorData::Bool(_) => join!(Bool),
        TensorData::U8(_) => join!(U8),
        TensorData::U16(_) => join!(U16),
        TensorData::U32(_) => join!(U32),
        TensorData::U64(_) => join!(U64),
        TensorData::I8(_) => join!(I8),
        TensorData::I16(_) => join!(I16),
        TensorData::I32(_) => join!(I32),
        TensorData::I64(_) => join!(I64),
        TensorData::F32(_) => join!(F32),
        TensorData::F64(_) => join!(F64),
        TensorData::String(_) => join!(String),
    };
    let mut shape = vec![rows];
    shape.extend(tail);
    Tensor::new(shape, data).ok()
}

/// Each tensor cut into consecutive runs of `rows` rows, in order: a batch's outputs back into
/// each request's, a large request's inputs into its parts.
pub(super) fn split_rows(
    tensors: Vec<NamedTensor>,
    rows: &[usize],
) -> Result<Vec<Vec<NamedTensor>>, String> {
    let total: usize = rows.iter().sum();
    let mut per_job: Vec<Vec<NamedTensor>> = rows.iter().map(|_| Vec::new()).collect();
    for named in tensors {
        let tensor = &named.tensor;
        if tensor.shape.first() != Some(&total) {
            return Err(format!(
                "`{}` has shape {:?}, not {total} rows; it cannot be cut into runs of rows",
                named.name, tensor.shape
            ));
        }
        let per_row: usize = tensor.shape[1..].iter().product();
        let mut start = 0;
        for (job, &count) in rows.iter().enumerate() {
            let range = start * per_row..(start + count) * per_row;
            start += count;
            macro_rules! cut {
                ($($variant:ident),*) => {
                    match &tensor.data {
                        $(TensorData::$variant(v) => TensorData::$variant(v[range.clone()].to_vec()),)*
                    }
                };
            }
            let data = cut!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, F32, F64, String);
            let mut shape = tensor.shape.clone();
            shape[0] = count;
            per_job[job].push(NamedTensor {
                name: named.name.clone(),
                tensor: Tensor { shape, data },
            });
        }
    }
    Ok(per_job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[f32], width: usize) -> Tensor {
        Tensor::new(
            vec![values.len() / width, width],
            TensorData::F32(values.to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn concatenated_rows_split_back_to_their_requests() {
        let merged = concat(&[&rows(&[1.0, 2.0], 2), &rows(&[3.0, 4.0, 5.0, 6.0], 2)]).unwrap();
        assert_eq!(merged.shape, vec![3, 2]);
        let outputs = vec![NamedTensor {
            name: "y".into(),
            tensor: merged,
        }];
        let per_job = split_rows(outputs, &[1, 2]).unwrap();
        assert_eq!(per_job[0][0].tensor, rows(&[1.0, 2.0], 2));
        assert_eq!(per_job[1][0].tensor, rows(&[3.0, 4.0, 5.0, 6.0], 2));
    }

    #[test]
    fn tensors_of_different_widths_do_not_merge() {
        assert!(concat(&[&rows(&[1.0, 2.0], 2), &rows(&[3.0, 4.0, 5.0], 3)]).is_none());
    }
}
