//! The page people look at: `GET /` (every model) and `GET /ui/models/{m}` (one model's
//! contract, an example request and its drift), server-rendered HTML with inline CSS and SVG
//! charts: no build step, no script, no request to anywhere but warden itself.
//!
//! The page shows what the other routes answer (the registry, the metrics, the drift monitors)
//! and decides nothing. It is behind the same token rule as the API; since a browser cannot set
//! a bearer header, the page also takes HTTP Basic credentials whose password is a token (the
//! browser asks for them when the answer is 401), see `api::auth`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use warden_contract::FeatureType;

use super::path::ApiPath;
use crate::metrics::ModelStats;
use crate::outcome::error::ApiError;
use crate::prediction_log::{DropReason, PredictionLog};
use crate::serving::{
    DriftReport, DriftStatus, FeatureReport, ModelEntry, ModelVersion, RolloutReport, VersionSet,
};
use crate::state::AppState;

/// Text safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}\
th,td{border-bottom:1px solid #dde;padding:.3em .7em;text-align:left;vertical-align:top}\
th{background:#f3f4f8}code,pre{font-family:ui-monospace,monospace;font-size:12px}\
pre{background:#f3f4f8;padding:.8em;overflow-x:auto;white-space:pre-wrap}\
.ok{color:#17703a}.warn{color:#a15c00}.alert{color:#b3261e;font-weight:bold}.insufficient_data{color:#667}\
.ready{color:#17703a}.down{color:#b3261e}.features{display:flex;flex-wrap:wrap;gap:1em}\
.feature{border:1px solid #dde;border-radius:6px;padding:.5em .8em}.legend span{margin-right:1em}";

fn html(title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut response = page.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Nothing here may be framed by or load anything from another origin.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    response
}

fn status_cell(status: DriftStatus, psi: Option<f64>) -> String {
    let psi = psi.map_or_else(|| "–".to_owned(), |p| format!("{p:.3}"));
    format!(
        "<span class=\"{}\">{psi} ({})</span>",
        status.as_str(),
        status.as_str().replace('_', " ")
    )
}

/// Served (blue) against training (grey) shares per bin, as an inline SVG.
fn chart(bins: &[String], expected: &[f64], served: &[f64]) -> String {
    let width = 260.0;
    let height = 70.0;
    let slot = width / bins.len().max(1) as f64;
    let top = expected
        .iter()
        .chain(served)
        .copied()
        .fold(0.01f64, f64::max);
    let mut svg = format!(
        "<svg role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>served (blue) against training (grey) share per bin</title>"
    );
    for (i, bin) in bins.iter().enumerate() {
        let x = i as f64 * slot;
        let bar = (slot - 2.0) / 2.0;
        for (offset, share, colour) in [
            (0.0, expected.get(i).copied().unwrap_or(0.0), "#b8bccb"),
            (bar, served.get(i).copied().unwrap_or(0.0), "#2f6fd6"),
        ] {
            let h = share / top * (height - 4.0);
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\">\
                 <title>{}: {:.1}%</title></rect>",
                x + 1.0 + offset,
                height - h,
                escape(bin),
                share * 100.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn feature_card(feature: &FeatureReport) -> String {
    let mut extra = String::new();
    if let Some(share) = feature.out_of_range_share {
        let _ = write!(extra, "<br>outside training range: {:.1}%", share * 100.0);
    }
    if let Some(share) = feature.null_share {
        let _ = write!(extra, "<br>nulls: {:.1}%", share * 100.0);
    }
    format!(
        "<div class=\"feature\" data-feature=\"{name}\"><strong>{name}</strong> PSI {status}<br>{chart}{extra}</div>",
        name = escape(&feature.name),
        status = status_cell(feature.status, feature.psi),
        chart = chart(&feature.bins, &feature.expected, &feature.served),
    )
}

/// The drift section of a model: each window's features and prediction.
fn drift_section(report: Option<&DriftReport>, windows: usize) -> String {
    let Some(report) = report else {
        return "<p>Not monitored: the manifest has no <code>[baseline]</code> (write one with \
                <code>warden init --data</code>).</p>"
            .to_owned();
    };
    let mut out = String::from(
        "<p class=\"legend\"><span style=\"color:#2f6fd6\">■ served</span>\
         <span style=\"color:#8a8fa3\">■ training</span></p>",
    );
    for window in report.windows.iter().take(windows) {
        let _ = write!(
            out,
            "<h3>Last {} ({} rows)</h3><div class=\"features\">",
            escape(&window.window),
            window.rows
        );
        for feature in &window.features {
            out.push_str(&feature_card(feature));
        }
        if let Some(prediction) = &window.prediction {
            let mut mean = String::new();
            if let (Some(m), Some(mu), Some(sigma)) = (
                prediction.mean,
                prediction.expected_mean,
                prediction.expected_std,
            ) {
                let _ = write!(
                    mean,
                    "<br>mean {m:.4} (training {mu:.4} ± 2 × {sigma:.4}): {}",
                    prediction
                        .mean_status
                        .map_or("insufficient data", DriftStatus::as_str)
                );
            }
            let _ = write!(
                out,
                "<div class=\"feature\" data-feature=\"prediction\"><strong>prediction ({})</strong> PSI {}<br>{}{mean}</div>",
                escape(&prediction.target),
                status_cell(prediction.status, prediction.psi),
                chart(&prediction.bins, &prediction.expected, &prediction.served)
            );
        }
        out.push_str("</div>");
    }
    out
}

fn stats_cells(stats: &ModelStats) -> String {
    let latency = stats.percentiles.map_or_else(
        || "–".to_owned(),
        |[p50, p95, p99]| format!("{:.2} / {:.2} / {:.2}", p50 * 1e3, p95 * 1e3, p99 * 1e3),
    );
    let errors: Vec<String> = stats
        .errors
        .iter()
        .map(|(code, count)| format!("<code>{code}</code>: {count}"))
        .collect();
    format!(
        "<td>{:.1}</td><td>{}</td><td>{latency}</td><td>{}</td>",
        stats.per_second,
        stats.requests,
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        }
    )
}

/// The worst judgement of a report's first window.
fn worst(report: &DriftReport) -> DriftStatus {
    let Some(window) = report.windows.first() else {
        return DriftStatus::InsufficientData;
    };
    window
        .features
        .iter()
        .map(|f| f.status)
        .chain(window.prediction.iter().map(|p| p.status))
        .max_by_key(|s| s.level())
        .unwrap_or(DriftStatus::InsufficientData)
}

/// `GET /`
pub(super) async fn index(State(state): State<AppState>) -> Response {
    let models = state.registry.snapshot();
    let traffic = state.metrics.model_stats();
    let mut rows = String::new();
    let mut sections = String::new();
    for (name, entry) in models.iter() {
        let link = format!("<a href=\"/ui/models/{0}\">{0}</a>", escape(name));
        match entry {
            ModelEntry::Ready(set) => {
                let model = set.default_version();
                let report = model.drift.as_ref().map(|d| d.report());
                let drift = report.as_ref().map_or_else(
                    || "not monitored".to_owned(),
                    |r| {
                        let status = worst(r);
                        format!(
                            "<span class=\"{}\">{}</span>",
                            status.as_str(),
                            status.as_str().replace('_', " ")
                        )
                    },
                );
                let _ = write!(
                    rows,
                    "<tr data-model=\"{}\"><td>{link}</td><td>{}</td><td><code title=\"{}\">{}…</code></td>\
                     <td>{}</td><td class=\"ready\">ready</td>{}<td>{drift}</td></tr>",
                    escape(name),
                    version_cell(set),
                    model.sha256,
                    &model.sha256[..12.min(model.sha256.len())],
                    model.platform,
                    stats_cells(&traffic.get(name.as_str()).cloned().unwrap_or_default()),
                );
                let _ = write!(
                    sections,
                    "<h2>{link}: drift</h2>{}",
                    drift_section(report.as_ref(), 1)
                );
                if let Some(rollout) = set.rollout() {
                    let _ = write!(
                        sections,
                        "<h2>{link}: rollout</h2>{}",
                        rollout_section(&rollout.report())
                    );
                }
                if let Some(log) = &state.prediction_log {
                    let _ = write!(
                        sections,
                        "<h2>{link}: prediction log</h2>{}",
                        log_section(log, model)
                    );
                }
            }
            ModelEntry::Unavailable { reason } | ModelEntry::Rejected { reason } => {
                let _ = write!(
                    rows,
                    "<tr data-model=\"{}\"><td>{link}</td><td>–</td><td>–</td><td>–</td>\
                     <td class=\"down\" title=\"{}\">not ready</td><td colspan=\"5\">{}</td></tr>",
                    escape(name),
                    escape(reason),
                    escape(reason)
                );
            }
            ModelEntry::Unloaded => {
                let _ = write!(
                    rows,
                    "<tr data-model=\"{}\"><td>{link}</td><td>–</td><td>–</td><td>–</td>\
                     <td class=\"down\">unloaded</td><td colspan=\"5\"></td></tr>",
                    escape(name)
                );
            }
        }
    }
    let body = format!(
        "<h1>warden {}</h1><p>{} models. Latency and errors since start; rate over the last \
         minute. <a href=\"/metrics\">metrics</a> · <a href=\"/openapi.json\">OpenAPI</a></p>\
         <table><thead><tr><th>model</th><th>version</th><th>sha256</th><th>engine</th>\
         <th>state</th><th>req/s</th><th>requests</th><th>latency p50 / p95 / p99 (ms)</th>\
         <th>errors by code</th><th>drift (first window)</th></tr></thead><tbody>{rows}</tbody>\
         </table>{sections}",
        env!("CARGO_PKG_VERSION"),
        models.len()
    );
    html("warden", &body)
}

/// The example row as a curl command a reader can paste.
fn curl(model: &ModelVersion, headers: &HeaderMap, token: bool) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let example = model
        .contract
        .example
        .clone()
        .map_or(Value::Null, Value::Object);
    let body = serde_json::json!({ "instances": [example] }).to_string();
    format!(
        "curl -s http://{host}/v1/models/{}:predict \\\n  -H 'content-type: application/json' \\\n{}  -d '{}'",
        model.name,
        if token {
            "  -H \"authorization: Bearer $WARDEN_TOKEN\" \\\n"
        } else {
            ""
        },
        body.replace('\'', "'\\''")
    )
}

/// `GET /ui/models/{model}`
pub(super) async fn model_page(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&name, None)?;
    let mut features = String::new();
    if let Some((list, _)) = &model.contract.features {
        for f in list {
            let range = match (f.min, f.max) {
                (None, None) => String::new(),
                (min, max) => format!(
                    "{} … {}",
                    min.map_or("−∞".into(), |m| m.to_string()),
                    max.map_or("∞".into(), |m| m.to_string())
                ),
            };
            let values = f.values.as_ref().map_or_else(String::new, |v| {
                v.iter().map(|x| escape(x)).collect::<Vec<_>>().join(", ")
            });
            let kind = match f.kind {
                FeatureType::Float => "float",
                FeatureType::Int => "int",
                FeatureType::Bool => "bool",
                FeatureType::String => "string",
                FeatureType::Category => "category",
            };
            let _ = write!(
                features,
                "<tr data-feature=\"{0}\"><td>{0}</td><td>{kind}</td><td>{range}</td><td>{values}</td><td>{1}</td><td>{2}</td></tr>",
                escape(&f.name),
                if f.nullable { "yes" } else { "no" },
                escape(f.description.as_deref().unwrap_or_default())
            );
        }
    }
    let outputs: Vec<String> = model
        .contract
        .outputs
        .iter()
        .map(|o| {
            format!(
                "<code>{}</code> ({:?}{})",
                escape(&o.name),
                o.kind,
                o.labels
                    .as_ref()
                    .map_or_else(String::new, |l| format!(": {}", escape(&l.join(", "))))
            )
        })
        .collect();
    let report = model.drift.as_ref().map(|d| d.report());
    let windows = report.as_ref().map_or(0, |r| r.windows.len());
    let body = format!(
        "<p><a href=\"/\">← all models</a></p><h1>{name} version {version}</h1>\
         <p>sha256 <code>{sha}</code> · engine {platform} · {stats}</p>\
         <h2>Contract</h2><table><thead><tr><th>feature</th><th>type</th><th>range</th>\
         <th>values</th><th>nullable</th><th>description</th></tr></thead><tbody>{features}</tbody></table>\
         <p>Outputs: {outputs}</p><p><a href=\"/v1/models/{name}/openapi.json\">typed OpenAPI of this model</a></p>\
         <h2>Example request</h2><pre>{curl}</pre><h2>Drift</h2>{drift}",
        name = escape(&model.name),
        version = model.version,
        sha = model.sha256,
        platform = model.platform,
        stats = {
            let stats = state
                .metrics
                .model_stats()
                .remove(&model.name)
                .unwrap_or_default();
            format!(
                "{} requests, {:.1} req/s over the last minute",
                stats.requests, stats.per_second
            )
        },
        outputs = outputs.join(", "),
        curl = escape(&curl(&model, &headers, state.auth.is_some())),
        drift = drift_section(report.as_ref(), windows),
    );
    Ok(html(&format!("warden: {}", model.name), &body))
}

/// The versions cell: the default one, and the others loaded beside it.
fn version_cell(set: &VersionSet) -> String {
    let default = set.default_version().version;
    let others: Vec<String> = set
        .versions()
        .filter(|v| v.version != default)
        .map(|v| v.version.to_string())
        .collect();
    if others.is_empty() {
        default.to_string()
    } else {
        format!("{default} <small>(also {})</small>", others.join(", "))
    }
}

/// What the prediction log keeps of a model, what it wrote, dropped and last failed at.
fn log_section(log: &PredictionLog, model: &ModelVersion) -> String {
    let settings = log.settings_of(model);
    let figures = log.figures();
    let stats = figures.models.get(&model.name).cloned().unwrap_or_default();
    let records: u64 = stats.records.values().sum();
    let rows: u64 = stats.rows.values().sum();
    let dropped = DropReason::ALL
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.as_str(),
                stats.dropped.get(r).copied().unwrap_or(0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let redacted = if settings.drop.is_empty() && settings.hash.is_empty() {
        String::new()
    } else {
        format!(
            " · dropped features: {} · hashed: {}",
            escape(&settings.drop.join(", ")),
            escape(&settings.hash.join(", "))
        )
    };
    let error = stats.last_error.map_or_else(String::new, |(why, at)| {
        format!(
            "<p class=\"log-error\">last failure (unix time {at}): {}</p>",
            escape(&why)
        )
    });
    format!(
        "<p class=\"prediction-log\">in {}/{} · sample {}{} · {} requests ({} rows) in published \
         files · {} files kept ({} bytes) · {} deleted by retention · dropped: {} · queue {} of {} \
         bytes</p>{error}",
        escape(&figures.directory.display().to_string()),
        escape(&model.name),
        settings.sample,
        redacted,
        records,
        rows,
        stats.files,
        stats.bytes,
        stats.files_deleted,
        dropped,
        figures.queued_bytes,
        figures.queue_bytes
    )
}

/// A rollout's state and, per window, each version's traffic and each comparison's figures.
fn rollout_section(report: &RolloutReport) -> String {
    let mut out = format!(
        "<p class=\"rollout\">default version {} · candidate {} · canary {:.1}%{} · shadow {:.1}% \
         ({} of {} shadow runs in flight){}</p>",
        report.default_version,
        report.candidate,
        report.canary * 100.0,
        report
            .sticky_header
            .as_ref()
            .map(|h| format!(" sticky by <code>{}</code>", escape(h)))
            .unwrap_or_default(),
        report.shadow * 100.0,
        report.shadow_in_flight,
        report.shadow_queue,
        report
            .rolled_back
            .as_ref()
            .map(|r| format!(" · <span class=\"alert\">rolled back: {}</span>", escape(r)))
            .unwrap_or_default(),
    );
    out.push_str(
        "<table><tr><th>window</th><th>answered by</th><th>shadowed on</th><th>rows compared</th>\
         <th>agreement</th><th>PSI</th><th>requests / errors</th><th>p99 ms</th></tr>",
    );
    let cell = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
    };
    for window in &report.windows {
        for (pair, version) in window.comparisons.iter().zip(&window.versions) {
            let below = matches!(
                (pair.figures.agreement, report.min_agreement),
                (Some(agreement), Some(min)) if agreement < min
            );
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td>\
                 <td>{} / {}</td><td>{}</td></tr>",
                escape(&window.window),
                pair.primary,
                pair.other,
                pair.figures.rows,
                if below { " class=\"warn\"" } else { "" },
                cell(pair.figures.agreement, 4),
                cell(pair.figures.psi, 4),
                version.requests,
                version.errors,
                cell(version.latency_ms.map(|l| l.p99), 2),
            );
        }
    }
    out.push_str("</table>");
    // Where the versions disagree: each compared pair's labels since the rollout began.
    let since_start = report.windows.iter().find(|w| w.seconds.is_none());
    for pair in since_start.iter().flat_map(|w| &w.comparisons) {
        let Some(confusion) = pair
            .figures
            .confusion
            .as_ref()
            .filter(|_| pair.figures.rows > 0)
        else {
            continue;
        };
        let _ = write!(
            out,
            "<table class=\"confusion\"><caption>since the rollout began: version {} label \
             (rows) × version {} label (columns)</caption><tr><th></th>",
            pair.primary, pair.other
        );
        for label in &confusion.labels {
            let _ = write!(out, "<th>{}</th>", escape(label));
        }
        out.push_str("</tr>");
        for (i, row) in confusion.counts.iter().enumerate() {
            let _ = write!(out, "<tr><th>{}</th>", escape(&confusion.labels[i]));
            for (j, count) in row.iter().enumerate() {
                let class = if i != j && *count > 0 {
                    " class=\"warn\""
                } else {
                    ""
                };
                let _ = write!(out, "<td{class}>{count}</td>");
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
    }
    out
}
