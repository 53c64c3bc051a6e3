//! `warden predict`: a file scored offline by the same model, contract, engine and output
//! guards as `warden serve` answers with, no server: every row is checked by the version's
//! contract gate as a request's row is, run on its engine, and its answer guarded; a row that
//! is refused (or whose answer fails a guard) goes to the rejects file with its number and the
//! error body the server would have answered, never dropped in silence.
//!
//! The input is read a batch at a time (`input`), so memory stays bounded whatever the file's
//! size; a batch runs on the version's scheduler, which splits it across every worker. The
//! scored rows are written in the prediction log's schema plus their input row number, and
//! both files appear under their names only once the whole input is scored (`output`).

mod input;
mod output;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use warden_runtime::NamedTensor;

use crate::exit;
use crate::outcome::error::ApiError;
use crate::outcome::predict_error;
use crate::prediction_log::{Record, Role, Settings, VersionLog};
use crate::serving::{
    Admitted, Backends, LoadError, MANIFEST_FILE, ModelSource, ModelVersion, RepositoryError,
    load_to_serve, scan_model_folder, scan_repository,
};

pub use input::InputError;
use input::{InputRow, Rows};
pub use output::WriteError;
use output::{RejectsFile, ScoredFile};

/// What `warden predict` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct PredictRequest {
    pub model: PathBuf,
    pub input: PathBuf,
    pub output: PathBuf,
    pub rejects: Option<PathBuf>,
    pub fail_on_reject: bool,
    pub batch_rows: usize,
    /// Input columns written beside each answer (an id).
    pub carry: Vec<String>,
}

/// Why `warden predict` did not finish, or finished with rejects it was told to fail on.
#[derive(Debug, thiserror::Error)]
pub enum PredictFailure {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("{0}")]
    Model(#[from] LoadError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Output(#[from] WriteError),
    #[error("{rejected} rows were refused (--fail-on-reject); they are in {}", rejects.display())]
    Rejected { rejected: u64, rejects: PathBuf },
    #[error("interrupted: nothing was written")]
    Interrupted,
}

impl PredictFailure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            PredictFailure::Repository(RepositoryError::Io { source, .. }) => exit::io_exit(source),
            PredictFailure::Repository(
                RepositoryError::Manifest { .. } | RepositoryError::OutsideRepository { .. },
            ) => exit::DATA,
            PredictFailure::Repository(_) => exit::NO_INPUT,
            PredictFailure::Model(err) => err.exit_code(),
            PredictFailure::Usage(_) => exit::USAGE,
            PredictFailure::Input(InputError::Read { source, .. }) => exit::io_exit(source),
            PredictFailure::Input(InputError::Format { .. }) => exit::DATA,
            PredictFailure::Output(err) => match err.io {
                Some(std::io::ErrorKind::PermissionDenied) => exit::NO_PERMISSION,
                Some(_) => exit::CANNOT_CREATE,
                None => exit::IO,
            },
            PredictFailure::Rejected { .. } => exit::DATA,
            // The shell's code for a process ended by SIGINT.
            PredictFailure::Interrupted => 130,
        }
    }
}

/// What a finished run did.
#[derive(Debug)]
pub(crate) struct Summary {
    pub rows: u64,
    pub scored: u64,
    pub rejected: u64,
    pub seconds: f64,
    pub output: PathBuf,
    pub rejects: PathBuf,
}

impl Summary {
    pub(crate) fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "scored {} of {} rows in {:.1} s ({:.0} rows/s): {}",
            self.scored,
            self.rows,
            self.seconds,
            self.rows as f64 / self.seconds.max(1e-9),
            self.output.display()
        )?;
        writeln!(
            out,
            "{} rows refused, each with its input_row and the server's error: {}",
            self.rejected,
            self.rejects.display()
        )
    }
}

/// The default version of the model `path` names: a model folder (holding `warden.toml`), a
/// repository holding one model, or a bare `.onnx`.
fn model_source(path: &Path) -> Result<ModelSource, PredictFailure> {
    let sources = if path.join(MANIFEST_FILE).is_file() {
        scan_model_folder(path)?
    } else {
        scan_repository(path)?
    };
    let mut names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    names.dedup();
    if names.len() > 1 {
        return Err(PredictFailure::Usage(format!(
            "{} holds {} models ({}); name one model's folder, as {}",
            path.display(),
            names.len(),
            names.join(", "),
            path.join(names[0]).display()
        )));
    }
    sources
        .into_iter()
        .find(|s| s.default)
        .ok_or_else(|| PredictFailure::Usage(format!("{} holds no model version", path.display())))
}

/// A progress bar on stderr when it is a terminal (otherwise a log line every 5 s): how far
/// through the input (`total` bytes or rows), rows/s and the ETA.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || total == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {percent:>3}% {msg}, ETA {eta}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

/// SIGINT (Ctrl-C) and SIGTERM, which stop a run before anything is published.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn listen() -> Result<Stop, PredictFailure> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| {
            signal(kind)
                .map_err(|err| PredictFailure::Usage(format!("cannot listen for signals: {err}")))
        };
        Ok(Stop {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    async fn signalled(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    /// Whether a signal came while a batch was being read or written.
    fn is_signalled(&mut self) -> bool {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        matches!(
            self.interrupt.poll_recv(&mut context),
            std::task::Poll::Ready(_)
        ) || matches!(
            self.terminate.poll_recv(&mut context),
            std::task::Poll::Ready(_)
        )
    }
}

/// The rejects file beside `output`: `scores.parquet` → `scores.rejects.jsonl`.
fn default_rejects(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map_or_else(|| "output".into(), |s| s.to_string_lossy().into_owned());
    output.with_file_name(format!("{stem}.rejects.jsonl"))
}

/// Runs `request` on `backends`, until the input is scored or the process gets Ctrl-C.
pub(crate) fn predict(
    request: &PredictRequest,
    backends: &Backends,
) -> Result<Summary, PredictFailure> {
    let started = Instant::now();
    let source = model_source(&request.model)?;
    let model = Arc::new(load_to_serve(&source, backends)?);
    let Some((features, _)) = model.contract.features.clone() else {
        return Err(PredictFailure::Usage(format!(
            "model `{}` declares no named features, so there are no rows to read for it; write \
             a manifest with `warden init`",
            model.name
        )));
    };
    let mut rows = Rows::open(&request.input, &features, &request.carry)?;
    let log = Arc::new(VersionLog::of(&model, Settings::default(), None));
    let rejects_path = request
        .rejects
        .clone()
        .unwrap_or_else(|| default_rejects(&request.output));
    let batch_rows = request
        .batch_rows
        .clamp(1, model.contract.max_request_rows.max(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|err| PredictFailure::Usage(format!("cannot start: {err}")))?;
    let input_name = request
        .input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut totals = (0u64, 0u64);
    let (scored, rejects) = runtime.block_on(async {
        // Listening before anything is written: an interrupt at any point leaves nothing.
        let mut stop = Stop::listen()?;
        let mut scored = ScoredFile::create(&request.output, &log, &request.carry)?;
        let mut rejects = RejectsFile::create(&rejects_path)?;
        let mut reported = Instant::now();
        let bar = progress_bar(rows.progress().1);
        loop {
            let batch = rows.batch(batch_rows)?;
            if batch.is_empty() {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                return Ok::<_, PredictFailure>((scored, rejects));
            }
            let scoring = score(
                &model,
                &log,
                &input_name,
                &request.carry,
                batch,
                &mut scored,
                &mut rejects,
            );
            tokio::select! {
                done = scoring => {
                    let (read, ok) = done?;
                    totals.0 += read;
                    totals.1 += ok;
                }
                () = stop.signalled() => return Err(PredictFailure::Interrupted),
            }
            if stop.is_signalled() {
                return Err(PredictFailure::Interrupted);
            }
            if let Some(bar) = &bar {
                let seconds = started.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(rows.progress().0);
                bar.set_message(format!(
                    "{} rows, {:.0} rows/s, {} refused",
                    totals.0,
                    totals.0 as f64 / seconds,
                    rejects.count
                ));
            } else if reported.elapsed() >= Duration::from_secs(5) {
                reported = Instant::now();
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    rows = totals.0,
                    scored = totals.1,
                    rejected = rejects.count,
                    rows_per_second = (totals.0 as f64 / seconds.max(1e-9)) as u64,
                    "scoring"
                );
            }
        }
    })?;
    let rejected = rejects.count;
    scored.publish()?;
    rejects.publish()?;
    if request.fail_on_reject && rejected > 0 {
        return Err(PredictFailure::Rejected {
            rejected,
            rejects: rejects_path,
        });
    }
    Ok(Summary {
        rows: totals.0,
        scored: totals.1,
        rejected,
        seconds: started.elapsed().as_secs_f64(),
        output: request.output.clone(),
        rejects: rejects_path,
    })
}

/// A readable row's place in the input: its number and carried values.
struct Place {
    number: u64,
    carried: Vec<Option<String>>,
}

/// Scores one batch: its readable rows admitted once and run together; when the gate refuses
/// some, each is admitted alone to tell the refused from the rest; when an answer fails a
/// guard, each row is run alone. How many rows were read and scored.
async fn score(
    model: &Arc<ModelVersion>,
    log: &Arc<VersionLog>,
    input_name: &str,
    carry: &[String],
    batch: Vec<InputRow>,
    scored: &mut ScoredFile,
    rejects: &mut RejectsFile,
) -> Result<(u64, u64), PredictFailure> {
    let read = batch.len() as u64;
    let named = |carried: &[Option<String>]| -> Vec<(String, Option<String>)> {
        carry.iter().cloned().zip(carried.iter().cloned()).collect()
    };
    let mut places = Vec::with_capacity(batch.len());
    let mut values = Vec::with_capacity(batch.len());
    for row in batch {
        match row.row {
            Ok(value) => {
                places.push(Place {
                    number: row.number,
                    carried: row.carried,
                });
                values.push(value);
            }
            Err(reason) => rejects.write(
                row.number,
                &named(&row.carried),
                &serde_json::json!({"code": "malformed_json", "error": reason}),
            )?,
        }
    }
    if values.is_empty() {
        return Ok((read, 0));
    }
    let admitted = match model.admit_rows(&values) {
        Ok(admitted) => admitted,
        Err(_) => {
            // The rows the gate refuses, set aside one by one; the rest admitted together.
            let mut kept = (
                Vec::with_capacity(places.len()),
                Vec::with_capacity(places.len()),
            );
            for (place, value) in places.into_iter().zip(values) {
                let mut one = vec![value];
                match model.admit_rows(&one) {
                    Ok(_) => {
                        kept.0.push(place);
                        kept.1.extend(one.pop());
                    }
                    Err(err) => rejects.write(
                        place.number,
                        &named(&place.carried),
                        &body(&predict_error(model, err)),
                    )?,
                }
            }
            (places, values) = kept;
            if values.is_empty() {
                return Ok((read, 0));
            }
            match model.admit_rows(&values) {
                Ok(admitted) => admitted,
                Err(err) => {
                    let error = body(&predict_error(model, err));
                    for place in &places {
                        rejects.write(place.number, &named(&place.carried), &error)?;
                    }
                    return Ok((read, 0));
                }
            }
        }
    };
    match infer(model, admitted).await {
        Ok(answer) => {
            write(log, input_name, scored, answer, &places)?;
            Ok((read, places.len() as u64))
        }
        Err(_) if values.len() > 1 => {
            // Some row's answer failed a guard (or the batch failed): each row alone.
            let mut ok = 0;
            for (place, value) in places.into_iter().zip(values) {
                let answered = match model.admit_rows(&vec![value]) {
                    Ok(admitted) => infer(model, admitted).await,
                    Err(err) => Err(predict_error(model, err)),
                };
                match answered {
                    Ok(answer) => {
                        write(
                            log,
                            input_name,
                            scored,
                            answer,
                            std::slice::from_ref(&place),
                        )?;
                        ok += 1;
                    }
                    Err(error) => {
                        rejects.write(place.number, &named(&place.carried), &body(&error))?;
                    }
                }
            }
            Ok((read, ok))
        }
        Err(error) => {
            let place = &places[0];
            rejects.write(place.number, &named(&place.carried), &body(&error))?;
            Ok((read, 0))
        }
    }
}

/// A request's inputs, outputs and when it started.
struct Answered {
    inputs: Vec<NamedTensor>,
    outputs: Vec<NamedTensor>,
    started: SystemTime,
}

/// Runs admitted rows as one request.
async fn infer(model: &Arc<ModelVersion>, admitted: Admitted) -> Result<Answered, ApiError> {
    let started = SystemTime::now();
    let inputs = admitted.inputs().to_vec();
    // A batch job has no client deadline; a day bounds a hung engine.
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    let answer = model
        .infer(admitted, deadline)
        .await
        .map_err(|err| predict_error(model, err))?;
    Ok(Answered {
        inputs,
        outputs: answer.outputs,
        started,
    })
}

/// Writes the answer to `rows` as one record of the log's schema.
fn write(
    log: &Arc<VersionLog>,
    input_name: &str,
    scored: &mut ScoredFile,
    answer: Answered,
    rows: &[Place],
) -> Result<(), WriteError> {
    let since_epoch = answer
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let numbers: Vec<u64> = rows.iter().map(|r| r.number).collect();
    let carried: Vec<Vec<Option<String>>> = rows.iter().map(|r| r.carried.clone()).collect();
    let record = Record {
        log: Arc::clone(log),
        request_id: format!("{input_name}:{}", numbers.first().copied().unwrap_or(0)),
        timestamp_us: i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX),
        latency_us: i64::try_from(answer.started.elapsed().unwrap_or_default().as_micros())
            .unwrap_or(i64::MAX),
        protocol: "batch",
        role: Role::Primary,
        rows: rows.len(),
        inputs: answer.inputs.into(),
        outputs: answer.outputs,
        error: None,
        compared: None,
    };
    scored.write(log, &record, &numbers, &carried)
}

/// An error's JSON body, as the server answers it.
fn body(error: &ApiError) -> Value {
    serde_json::to_value(error.body()).unwrap_or(Value::Null)
}
