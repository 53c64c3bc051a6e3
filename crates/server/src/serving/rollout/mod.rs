//! A rollout of a candidate version beside a model's default one: which of the two answers a
//! request (the canary share, sticky by a header), which requests also run on the other one
//! (the shadow share, from a bounded queue, compared and discarded), and what the comparisons,
//! latencies and errors of both add up to over the drift monitor's windows.
//!
//! The pair is fixed for the rollout's life: (default, candidate). A request the default
//! answered is shadowed on the candidate and one the candidate answered on the default, so both
//! comparison directions are measured. A shadow run starts after the primary's answer is made,
//! on a copy of the same admitted tensors, on the other version's idle lane (a worker at the
//! operating system's idle priority, see [`super::scheduler`]): it runs only on CPU time the
//! requests leave idle, so it never waits for it and never fails it. It is shed first: while
//! a shadow run already waits for idle CPU, when the shadow queue is full, or when no idle CPU
//! came before the request's deadline, it is dropped and counted.
//!
//! Windows are rings of ten slots, as the drift monitor's ([`crate::serving::DriftMonitor`]):
//! memory is fixed whatever the traffic. At most once a second (as requests are counted or the
//! report is read) each window is judged: an agreement below the manifest's `min_agreement` is
//! logged once per crossing, and the optional guard rolls the canary back (share to 0) by itself.

mod compare;

pub use compare::{ComparisonFigures, Confusion, DeltaQuantiles};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use warden_contract::{Drift, Rollout as RolloutSettings};

use super::admission::Admitted;
use super::model::ModelVersion;
use super::predict_error::PredictError;
use super::scheduler::{Answer, InferError};
use crate::metrics::{RolloutComparison, RolloutGauges, RolloutVersionCounts};
use compare::{PairCounts, Predictions, Reader};
use warden_runtime::NamedTensor;

/// Slots per window.
const SLOTS: u64 = 10;
/// Latency bins: four per decade from 10 µs to 100 s.
const LATENCY_BINS: usize = 2 + 4 * 7;

/// Which version of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Default = 0,
    Candidate = 1,
}

impl Arm {
    fn other(self) -> Arm {
        match self {
            Arm::Default => Arm::Candidate,
            Arm::Candidate => Arm::Default,
        }
    }
}

/// Where a shadow run's answer goes besides the comparison (the prediction log keeps it as a
/// row of its own): told once per shadow run that answered, on the shadow's task.
pub trait ShadowSink: Send + Sync + std::fmt::Debug {
    fn shadow(&self, answer: ShadowAnswer<'_>);
}

/// A shadow run's answer, for a [`ShadowSink`].
#[derive(Debug)]
pub struct ShadowAnswer<'a> {
    /// The request it shadowed.
    pub request_id: &'a str,
    /// The protocol the request came by (`rows`, `rest_v2`, `grpc`).
    pub protocol: &'static str,
    /// The version that ran the shadow, and the version that answered the client.
    pub version: &'a ModelVersion,
    pub primary_version: u64,
    pub outputs: &'a [NamedTensor],
    pub rows: usize,
    /// Per row, whether the two versions' answers agree.
    pub agreed: Vec<bool>,
    pub latency: Duration,
}

/// Reads a request header (HTTP) or metadata entry (gRPC) for a sticky key.
pub trait StickyKey: std::fmt::Debug {
    fn value(&self, header: &str) -> Option<&[u8]>;
}

impl StickyKey for axum::http::HeaderMap {
    fn value(&self, header: &str) -> Option<&[u8]> {
        self.get(header).map(|v| v.as_bytes())
    }
}

/// No sticky key (a request without headers).
impl StickyKey for () {
    fn value(&self, _header: &str) -> Option<&[u8]> {
        None
    }
}

/// Why a shadow run did not happen or did not compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drop {
    /// The shadow queue is full.
    QueueFull,
    /// A shadow run already waits for idle CPU.
    Busy,
    /// The run did not finish before the request's deadline: no idle CPU came in time (the
    /// server is saturated) or the version is slower than the request's budget.
    Deadline,
    /// The other version's own queue refused it.
    Overloaded,
    /// The primary's answer lacks an output the comparison reads (the request asked for others).
    Outputs,
}

impl Drop {
    const ALL: [Drop; 5] = [
        Drop::QueueFull,
        Drop::Busy,
        Drop::Deadline,
        Drop::Overloaded,
        Drop::Outputs,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Drop::QueueFull => "queue_full",
            Drop::Busy => "busy",
            Drop::Deadline => "deadline",
            Drop::Overloaded => "overloaded",
            Drop::Outputs => "outputs_not_answered",
        }
    }
}

/// A version's traffic in the rollout during one slot.
#[derive(Debug, Clone)]
struct ArmCounts {
    requests: u64,
    errors: u64,
    latency: [u64; LATENCY_BINS],
    shadow_runs: u64,
    shadow_errors: u64,
    shadow_latency: [u64; LATENCY_BINS],
}

impl ArmCounts {
    fn new() -> ArmCounts {
        ArmCounts {
            requests: 0,
            errors: 0,
            latency: [0; LATENCY_BINS],
            shadow_runs: 0,
            shadow_errors: 0,
            shadow_latency: [0; LATENCY_BINS],
        }
    }

    fn add(&mut self, other: &ArmCounts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.shadow_runs += other.shadow_runs;
        self.shadow_errors += other.shadow_errors;
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
        for (a, b) in self.shadow_latency.iter_mut().zip(&other.shadow_latency) {
            *a += b;
        }
    }
}

/// The counters of one slot of time.
#[derive(Debug, Clone)]
struct Slot {
    epoch: u64,
    /// Indexed by the primary's arm: the default compared with the candidate, then the other
    /// way round.
    pairs: [PairCounts; 2],
    arms: [ArmCounts; 2],
}

impl Slot {
    fn new(reader: &Reader) -> Slot {
        Slot {
            epoch: 0,
            pairs: [PairCounts::new(reader), PairCounts::new(reader)],
            arms: [ArmCounts::new(), ArmCounts::new()],
        }
    }

    fn clear(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.pairs.iter_mut().for_each(PairCounts::clear);
        self.arms = [ArmCounts::new(), ArmCounts::new()];
    }

    fn add(&mut self, other: &Slot) {
        for (a, b) in self.pairs.iter_mut().zip(&other.pairs) {
            a.add(b);
        }
        for (a, b) in self.arms.iter_mut().zip(&other.arms) {
            a.add(b);
        }
    }
}

#[derive(Debug)]
struct Window {
    label: String,
    seconds: u64,
    slot_seconds: u64,
    slots: Vec<Slot>,
}

impl Window {
    fn slot(&mut self, now: u64) -> &mut Slot {
        let epoch = now / self.slot_seconds;
        let slot = &mut self.slots[(epoch % SLOTS) as usize];
        if slot.epoch != epoch {
            slot.clear(epoch);
        }
        slot
    }

    fn total(&self, now: u64, reader: &Reader) -> Slot {
        let epoch = now / self.slot_seconds;
        let mut total = Slot::new(reader);
        for slot in &self.slots {
            if slot.epoch <= epoch && epoch - slot.epoch < SLOTS {
                total.add(slot);
            }
        }
        total
    }
}

#[derive(Debug)]
struct State {
    windows: Vec<Window>,
    /// Since the rollout began (never cleared): the counters Prometheus exports.
    total: Slot,
    /// Per window and pair, whether its agreement is below `min_agreement` (logged once per
    /// crossing).
    below: Vec<[bool; 2]>,
    next_evaluation: u64,
}

/// A candidate version rolled out beside the default one (see the module's documentation).
#[derive(Debug)]
pub struct Rollout {
    model: String,
    versions: [Arc<ModelVersion>; 2],
    settings: RolloutSettings,
    min_rows: u64,
    /// The live shares (as `f64` bits): the manifest's until the repository API or the guard
    /// changes them.
    canary: AtomicU64,
    shadow: AtomicU64,
    rolled_back: Mutex<Option<String>>,
    rollbacks: AtomicU64,
    reader: Reader,
    shadow_slots: Arc<Semaphore>,
    dropped: [[AtomicU64; Drop::ALL.len()]; 2],
    started: Instant,
    state: Mutex<State>,
}

/// Where a request goes when its model has a rollout.
#[derive(Debug)]
pub struct Leg {
    rollout: Arc<Rollout>,
    arm: Arm,
    shadowed: bool,
}

/// A shadow run prepared before the primary runs: the same admitted rows for the other version.
#[derive(Debug)]
pub struct ShadowRun {
    admitted: Admitted,
    budget: Duration,
    /// Who else sees its answer, and what it needs to say which request it was.
    sink: Option<(Arc<dyn ShadowSink>, String, &'static str)>,
}

impl ShadowRun {
    /// Its answer also goes to `sink`, as the shadow of request `request_id` (by `protocol`).
    pub fn tell(
        mut self,
        sink: Arc<dyn ShadowSink>,
        request_id: &str,
        protocol: &'static str,
    ) -> ShadowRun {
        self.sink = Some((sink, request_id.to_owned(), protocol));
        self
    }
}

/// Why a pair of versions cannot be rolled out together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Incompatible(pub String);

impl Rollout {
    /// A rollout of `candidate` beside `default`, judged over `drift`'s windows. The two must
    /// accept the same admitted tensors (equal graph inputs) and answer the same outputs.
    pub fn new(
        default: Arc<ModelVersion>,
        candidate: Arc<ModelVersion>,
        settings: RolloutSettings,
        drift: &Drift,
    ) -> Result<Rollout, Incompatible> {
        compatible(&default, &candidate)?;
        let reader =
            Reader::of(&default.contract.outputs, &default.signature).ok_or_else(|| {
                Incompatible(format!(
                    "model `{}` has no label, probability or numeric output to compare versions on",
                    default.name
                ))
            })?;
        let windows: Vec<Window> = drift
            .windows
            .iter()
            .zip(drift.window_seconds())
            .filter_map(|(label, seconds)| {
                let seconds = seconds?;
                Some(Window {
                    label: label.clone(),
                    seconds,
                    slot_seconds: (seconds / SLOTS).max(1),
                    slots: vec![Slot::new(&reader); SLOTS as usize],
                })
            })
            .collect();
        let below = vec![[false; 2]; windows.len()];
        Ok(Rollout {
            model: default.name.clone(),
            canary: AtomicU64::new(settings.canary.to_bits()),
            shadow: AtomicU64::new(settings.shadow.to_bits()),
            shadow_slots: Arc::new(Semaphore::new(settings.shadow_queue)),
            versions: [default, candidate],
            settings,
            min_rows: drift.min_rows,
            rolled_back: Mutex::new(None),
            rollbacks: AtomicU64::new(0),
            dropped: Default::default(),
            started: Instant::now(),
            state: Mutex::new(State {
                total: Slot::new(&reader),
                windows,
                below,
                next_evaluation: 0,
            }),
            reader,
        })
    }

    /// The default version and the candidate.
    pub fn versions(&self) -> &[Arc<ModelVersion>; 2] {
        &self.versions
    }

    /// The canary share in force now.
    pub fn canary_share(&self) -> f64 {
        f64::from_bits(self.canary.load(Ordering::Relaxed))
    }

    /// The shadow share in force now.
    pub fn shadow_share(&self) -> f64 {
        f64::from_bits(self.shadow.load(Ordering::Relaxed))
    }

    /// The manifest's settings of this rollout.
    pub fn settings(&self) -> &RolloutSettings {
        &self.settings
    }

    /// Changes the live shares (the repository API); a share clears a rollback.
    pub fn set_shares(&self, canary: Option<f64>, shadow: Option<f64>) {
        if let Some(canary) = canary {
            self.canary.store(canary.to_bits(), Ordering::Relaxed);
            *lock(&self.rolled_back) = None;
        }
        if let Some(shadow) = shadow {
            self.shadow.store(shadow.to_bits(), Ordering::Relaxed);
        }
    }

    /// Picks the version answering a request that names none, and whether it is shadowed.
    pub fn route(self: &Arc<Self>, sticky: &dyn StickyKey) -> (Arc<ModelVersion>, Leg) {
        let canary = self.canary_share();
        let key = self
            .settings
            .sticky_header
            .as_deref()
            .and_then(|header| sticky.value(header));
        let draw = match key {
            Some(key) => unit(stable_hash(key)),
            None => fastrand::f64(),
        };
        let arm = if draw < canary {
            Arm::Candidate
        } else {
            Arm::Default
        };
        let shadow = self.shadow_share();
        let shadowed = shadow > 0.0 && fastrand::f64() < shadow;
        (
            Arc::clone(&self.versions[arm as usize]),
            Leg {
                rollout: Arc::clone(self),
                arm,
                shadowed,
            },
        )
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn count(&self, now: u64, add: impl Fn(&mut Slot)) {
        let mut state = lock(&self.state);
        add(&mut state.total);
        for window in &mut state.windows {
            add(window.slot(now));
        }
        if now >= state.next_evaluation {
            state.next_evaluation = now + 1;
            self.evaluate(&mut state, now);
        }
    }

    fn drop_shadow(&self, arm: Arm, why: Drop) {
        self.dropped[arm as usize][why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Judges every window: agreement against `min_agreement` (logged once per crossing), and
    /// the guard on the shortest window.
    fn evaluate(&self, state: &mut State, now: u64) {
        let totals: Vec<Slot> = state
            .windows
            .iter()
            .map(|w| w.total(now, &self.reader))
            .collect();
        if let Some(min) = self.settings.min_agreement
            && !self.reader.labels().is_empty()
        {
            for ((window, total), below) in state.windows.iter().zip(&totals).zip(&mut state.below)
            {
                for (pair, counts) in total.pairs.iter().enumerate() {
                    if counts.rows < self.min_rows {
                        continue;
                    }
                    let agreement = counts.agreed as f64 / counts.rows as f64;
                    let now_below = agreement < min;
                    if now_below != below[pair] {
                        below[pair] = now_below;
                        let (primary, other) = self.pair_versions(pair);
                        if now_below {
                            tracing::warn!(
                                model = %self.model,
                                primary_version = primary,
                                other_version = other,
                                window = %window.label,
                                agreement,
                                min_agreement = min,
                                rows = counts.rows,
                                "rollout: the versions' labels agree less than the manifest's min_agreement"
                            );
                        } else {
                            tracing::info!(
                                model = %self.model,
                                primary_version = primary,
                                other_version = other,
                                window = %window.label,
                                agreement,
                                min_agreement = min,
                                "rollout: the versions' agreement is back above min_agreement"
                            );
                        }
                    }
                }
            }
        }
        let (Some(guard), Some(shortest)) = (&self.settings.guard, totals.first()) else {
            return;
        };
        if lock(&self.rolled_back).is_some() || self.canary_share() == 0.0 {
            return;
        }
        let candidate = &shortest.arms[Arm::Candidate as usize];
        let runs = candidate.requests + candidate.shadow_runs;
        let errors = candidate.errors + candidate.shadow_errors;
        let mut reason = None;
        if let Some(max) = guard.max_error_rate
            && runs >= guard.min_requests
            && errors as f64 / runs as f64 > max
        {
            reason = Some(format!(
                "the candidate's error rate {:.4} over {runs} requests in the last {} is above \
                 max_error_rate {max}",
                errors as f64 / runs as f64,
                state.windows[0].label
            ));
        }
        let rows = shortest.pairs[0].rows + shortest.pairs[1].rows;
        let agreed = shortest.pairs[0].agreed + shortest.pairs[1].agreed;
        if let Some(min) = guard.min_agreement
            && reason.is_none()
            && rows >= guard.min_requests
            && (agreed as f64 / rows as f64) < min
        {
            reason = Some(format!(
                "the versions' agreement {:.4} over {rows} rows in the last {} is below \
                 min_agreement {min}",
                agreed as f64 / rows as f64,
                state.windows[0].label
            ));
        }
        if let Some(reason) = reason {
            self.canary.store(0f64.to_bits(), Ordering::Relaxed);
            self.rollbacks.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                model = %self.model,
                candidate_version = self.versions[1].version,
                reason = %reason,
                "rollout guard: canary rolled back (share 0); the default version answers every request"
            );
            *lock(&self.rolled_back) = Some(reason);
        }
    }

    fn pair_versions(&self, pair: usize) -> (u64, u64) {
        let primary = &self.versions[pair];
        let other = &self.versions[1 - pair];
        (primary.version, other.version)
    }

    /// The report of every window (and since the rollout began).
    pub fn report(&self) -> RolloutReport {
        let now = self.now();
        let mut state = lock(&self.state);
        // The last second's counts are judged here too, so a threshold crossed by the final
        // burst of traffic is not left unjudged until the next request.
        if now >= state.next_evaluation {
            state.next_evaluation = now + 1;
            self.evaluate(&mut state, now);
        }
        let section = |label: &str, seconds: Option<u64>, slot: &Slot| WindowFigures {
            window: label.to_owned(),
            seconds,
            versions: (0..2)
                .map(|arm| self.arm_figures(arm, &slot.arms[arm], slot))
                .collect(),
            comparisons: (0..2)
                .map(|pair| {
                    let (primary, other) = self.pair_versions(pair);
                    PairFigures {
                        primary: primary.to_string(),
                        other: other.to_string(),
                        figures: slot.pairs[pair].report(&self.reader),
                    }
                })
                .collect(),
        };
        let mut windows: Vec<WindowFigures> = state
            .windows
            .iter()
            .map(|w| section(&w.label, Some(w.seconds), &w.total(now, &self.reader)))
            .collect();
        windows.push(section("since_start", None, &state.total));
        RolloutReport {
            default_version: self.versions[0].version.to_string(),
            candidate: self.versions[1].version.to_string(),
            canary: self.canary_share(),
            configured_canary: self.settings.canary,
            sticky_header: self.settings.sticky_header.clone(),
            shadow: self.shadow_share(),
            shadow_queue: self.settings.shadow_queue,
            shadow_in_flight: self.settings.shadow_queue - self.shadow_slots.available_permits(),
            min_agreement: self.settings.min_agreement,
            rolled_back: lock(&self.rolled_back).clone(),
            rollbacks: self.rollbacks.load(Ordering::Relaxed),
            windows,
        }
    }

    fn arm_figures(&self, arm: usize, counts: &ArmCounts, _slot: &Slot) -> VersionFigures {
        VersionFigures {
            version: self.versions[arm].version.to_string(),
            role: if arm == 0 { "default" } else { "candidate" },
            requests: counts.requests,
            errors: counts.errors,
            latency_ms: latency_quantiles(&counts.latency),
            shadow_runs: counts.shadow_runs,
            shadow_errors: counts.shadow_errors,
            shadow_latency_ms: latency_quantiles(&counts.shadow_latency),
        }
    }

    /// The figures a metrics scrape shows: the shares, each version's traffic since the
    /// rollout began, and each pair's comparison per window.
    pub fn gauges(&self) -> RolloutGauges {
        let report = self.report();
        let mut gauges = RolloutGauges {
            candidate: report.candidate,
            canary: report.canary,
            shadow: report.shadow,
            rollbacks: report.rollbacks,
            dropped: self.dropped(),
            ..RolloutGauges::default()
        };
        for window in report.windows {
            let since_start = window.seconds.is_none();
            if since_start {
                gauges.versions = window
                    .versions
                    .iter()
                    .map(|v| RolloutVersionCounts {
                        version: v.version.clone(),
                        requests: v.requests,
                        errors: v.errors,
                        shadow_runs: v.shadow_runs,
                        shadow_errors: v.shadow_errors,
                    })
                    .collect();
            }
            for pair in window.comparisons {
                let figures = pair.figures;
                let quantiles = |q: &DeltaQuantiles| [q.p50, q.p90, q.p99, q.max];
                let deltas = figures
                    .probability_delta
                    .iter()
                    .flatten()
                    .map(|(class, q)| (class.clone(), quantiles(q)))
                    .chain(
                        figures
                            .delta
                            .as_ref()
                            .map(|q| (String::new(), quantiles(q))),
                    )
                    .collect();
                gauges.comparisons.push(RolloutComparison {
                    window: window.window.clone(),
                    since_start,
                    primary: pair.primary,
                    other: pair.other,
                    rows: figures.rows,
                    agreed: figures.agreed,
                    agreement: figures.agreement,
                    psi: figures.psi,
                    confusion: figures.confusion.map(|c| (c.labels, c.counts)),
                    deltas,
                });
            }
        }
        gauges
    }

    /// Shadow runs dropped before running, per version they were for and reason (since start).
    pub fn dropped(&self) -> Vec<(String, &'static str, u64)> {
        let mut out = Vec::new();
        for (arm, reasons) in self.dropped.iter().enumerate() {
            for why in Drop::ALL {
                out.push((
                    self.versions[arm].version_label.clone(),
                    why.as_str(),
                    reasons[why as usize].load(Ordering::Relaxed),
                ));
            }
        }
        out
    }
}

impl Leg {
    /// The rollout this request is part of.
    pub fn rollout(&self) -> &Arc<Rollout> {
        &self.rollout
    }

    /// When this request is shadowed and may be, the copy of its admitted rows for the other
    /// version, made before the primary consumes them; `budget` bounds the shadow run's time.
    /// Shed first (counted): while a shadow run already waits for idle CPU (`busy`), or when
    /// the shadow queue is full.
    pub fn prepare_shadow(&self, admitted: &Admitted, budget: Duration) -> Option<ShadowRun> {
        if !self.shadowed {
            return None;
        }
        let other = self.arm.other();
        // The idle lane runs only on CPU time the requests leave idle: a run waiting there
        // means there is none to spare now, so this one is not even copied (its copy and
        // comparison would run on the request's own thread, at the request's priority).
        let shadow_waiting = self.rollout.versions[other as usize]
            .counters()
            .idle_queued
            .load(Ordering::Relaxed);
        if shadow_waiting > 0 {
            self.rollout.drop_shadow(other, Drop::Busy);
            return None;
        }
        if self.rollout.shadow_slots.available_permits() == 0 {
            self.rollout.drop_shadow(other, Drop::QueueFull);
            return None;
        }
        let admitted = {
            let shadow = &self.rollout.versions[other as usize];
            admitted.copy_for(&shadow.signature, shadow.id())?
        };
        Some(ShadowRun {
            admitted,
            budget,
            sink: None,
        })
    }

    /// Counts the primary's outcome and, after a successful answer, starts the shadow run.
    pub fn finish(
        self,
        outcome: Result<&Answer, &PredictError>,
        elapsed: Duration,
        rows: usize,
        shadow: Option<ShadowRun>,
    ) {
        let rollout = &self.rollout;
        let arm = self.arm as usize;
        let failed = match outcome {
            Ok(_) => false,
            Err(PredictError::Infer(InferError::Overloaded)) => false,
            Err(_) => true,
        };
        let bin = latency_bin(elapsed);
        rollout.count(rollout.now(), |slot| {
            let counts = &mut slot.arms[arm];
            counts.requests += 1;
            counts.errors += u64::from(failed);
            counts.latency[bin] += 1;
        });
        let (Ok(answer), Some(shadow)) = (outcome, shadow) else {
            return;
        };
        let primary = match rollout.reader.read(&answer.outputs, rows) {
            Ok(primary) => primary,
            Err(_) => {
                rollout.drop_shadow(self.arm.other(), Drop::Outputs);
                return;
            }
        };
        let Ok(permit) = Arc::clone(&rollout.shadow_slots).try_acquire_owned() else {
            rollout.drop_shadow(self.arm.other(), Drop::QueueFull);
            return;
        };
        let rollout = Arc::clone(rollout);
        let arm = self.arm;
        tokio::spawn(async move {
            let _permit = permit;
            rollout.run_shadow(arm, primary, shadow, rows).await;
        });
    }
}

impl Rollout {
    /// Runs the other version on the primary's rows and counts the comparison or the failure.
    async fn run_shadow(
        &self,
        primary_arm: Arm,
        primary: Predictions,
        run: ShadowRun,
        rows: usize,
    ) {
        let other_arm = primary_arm.other();
        let other = &self.versions[other_arm as usize];
        let started = Instant::now();
        let outcome = other.infer_idle(run.admitted, started + run.budget).await;
        let elapsed = started.elapsed();
        let answer = match &outcome {
            Ok(answer) => self
                .reader
                .read(&answer.outputs, rows)
                .map_err(|why| why.to_owned()),
            Err(PredictError::Infer(InferError::Overloaded)) => {
                self.drop_shadow(other_arm, Drop::Overloaded);
                return;
            }
            Err(PredictError::Infer(InferError::DeadlineExceeded(_))) => {
                self.drop_shadow(other_arm, Drop::Deadline);
                return;
            }
            Err(err) => Err(err.to_string()),
        };
        let bin = latency_bin(elapsed);
        let o = other_arm as usize;
        match answer {
            Ok(answer) => {
                self.count(self.now(), |slot| {
                    slot.arms[o].shadow_runs += 1;
                    slot.arms[o].shadow_latency[bin] += 1;
                    slot.pairs[primary_arm as usize].compare(&self.reader, &primary, &answer);
                });
                if let (Some((sink, request_id, protocol)), Ok(outputs)) = (&run.sink, &outcome) {
                    sink.shadow(ShadowAnswer {
                        request_id,
                        protocol,
                        version: other,
                        primary_version: self.versions[primary_arm as usize].version,
                        outputs: &outputs.outputs,
                        rows,
                        agreed: PairCounts::agreements(&self.reader, &primary, &answer),
                        latency: elapsed,
                    });
                }
            }
            Err(error) => {
                tracing::debug!(
                    model = %self.model,
                    version = other.version,
                    error = %error,
                    "shadow run failed; the client's answer was not affected"
                );
                self.count(self.now(), |slot| {
                    slot.arms[o].shadow_runs += 1;
                    slot.arms[o].shadow_errors += 1;
                    slot.arms[o].shadow_latency[bin] += 1;
                });
            }
        }
    }
}

/// The rollout's figures, as `GET /v1/models/{m}/rollout` answers them.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub default_version: String,
    pub candidate: String,
    /// The canary share in force (0 after a rollback).
    pub canary: f64,
    /// The manifest's canary share.
    pub configured_canary: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    pub shadow: f64,
    pub shadow_queue: usize,
    pub shadow_in_flight: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_agreement: Option<f64>,
    /// Why the guard rolled the canary back, while it is.
    pub rolled_back: Option<String>,
    pub rollbacks: u64,
    /// The drift windows, then `since_start`.
    pub windows: Vec<WindowFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowFigures {
    pub window: String,
    /// `None` for `since_start`.
    pub seconds: Option<u64>,
    pub versions: Vec<VersionFigures>,
    pub comparisons: Vec<PairFigures>,
}

/// One version's traffic in the rollout: requests it answered (routed by the rollout; requests
/// naming a version are not counted), its errors and latency, and its shadow runs.
#[derive(Debug, Clone, Serialize)]
pub struct VersionFigures {
    pub version: String,
    pub role: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub latency_ms: Option<LatencyQuantiles>,
    pub shadow_runs: u64,
    pub shadow_errors: u64,
    pub shadow_latency_ms: Option<LatencyQuantiles>,
}

/// Latency quantiles in milliseconds, each the upper edge of its bin (four per decade).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyQuantiles {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairFigures {
    /// The version that answered the client.
    pub primary: String,
    /// The version shadowed on the same rows.
    pub other: String,
    #[serde(flatten)]
    pub figures: ComparisonFigures,
}

/// Whether `candidate` accepts exactly the tensors `default` admits, and answers the same
/// outputs; else which input or output differs.
fn compatible(default: &ModelVersion, candidate: &ModelVersion) -> Result<(), Incompatible> {
    let describe = |spec: Option<&warden_runtime::TensorSpec>| match spec {
        Some(s) => format!("{:?} {:?}", s.data_type, s.shape),
        None => "absent".to_owned(),
    };
    let pairs = [
        (
            "input",
            &default.signature.inputs,
            &candidate.signature.inputs,
        ),
        (
            "output",
            &default.signature.outputs,
            &candidate.signature.outputs,
        ),
    ];
    for (kind, a, b) in pairs {
        let mut names: Vec<&str> = a.iter().chain(b).map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let x = a.iter().find(|s| s.name == name);
            let y = b.iter().find(|s| s.name == name);
            let same = match (x, y) {
                (Some(x), Some(y)) => x.data_type == y.data_type && x.shape == y.shape,
                _ => false,
            };
            if !same {
                return Err(Incompatible(format!(
                    "model `{}`: versions {} and {} cannot be rolled out together: graph {kind} \
                     `{name}` is {} in version {} and {} in version {}; a canary or shadow runs \
                     the same admitted request on both",
                    default.name,
                    default.version,
                    candidate.version,
                    describe(x),
                    default.version,
                    describe(y),
                    candidate.version
                )));
            }
        }
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters only: a panic while counting leaves nothing worth refusing.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// FNV-1a, then a 64-bit finaliser: the same key meets the same version across restarts and
/// releases (std's hasher promises neither).
fn stable_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// A hash as a number in [0, 1).
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn latency_bin(elapsed: Duration) -> usize {
    let micros = elapsed.as_micros() as f64;
    if micros <= 10.0 {
        return 0;
    }
    let step = (4.0 * (micros / 10.0).log10()).ceil().max(0.0) as usize;
    step.min(LATENCY_BINS - 1)
}

fn latency_upper_ms(bin: usize) -> f64 {
    10.0 * 10f64.powf(bin as f64 / 4.0) / 1000.0
}

fn latency_quantiles(bins: &[u64; LATENCY_BINS]) -> Option<LatencyQuantiles> {
    let total: u64 = bins.iter().sum();
    if total == 0 {
        return None;
    }
    let at = |q: f64| {
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, &count) in bins.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return latency_upper_ms(bin);
            }
        }
        latency_upper_ms(LATENCY_BINS - 1)
    };
    Some(LatencyQuantiles {
        p50: at(0.5),
        p99: at(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_hashes_to_the_same_share_and_keys_spread_evenly() {
        assert_eq!(stable_hash(b"customer-42"), stable_hash(b"customer-42"));
        let below = (0..10_000)
            .filter(|i| unit(stable_hash(format!("customer-{i}").as_bytes())) < 0.2)
            .count();
        // Binomial: 2,000 ± 3σ (σ = 40).
        assert!((1880..=2120).contains(&below), "{below}");
    }

    #[test]
    fn latency_bins_bound_their_values() {
        for micros in [5u64, 11, 250, 1_000, 48_000, 2_000_000] {
            let bin = latency_bin(Duration::from_micros(micros));
            assert!(
                latency_upper_ms(bin) * 1000.0 >= micros as f64 * 0.999,
                "{micros}"
            );
        }
    }
}
