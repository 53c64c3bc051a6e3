//! `warden predict` over the real binary: the scored rows equal the server's answers for the
//! same rows, bit for bit; a refused row's reject is the server's error body for it; CSV and
//! JSON Lines alike; `--fail-on-reject`; bad input files named with an exit code from the
//! table; an interrupted run leaves no output at all.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use arrow_array::{Array, Float32Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, examples, post_json as post, warden_bin};

fn predict(args: &[&str]) -> Output {
    Command::new(warden_bin())
        .arg("predict")
        .args(args)
        .output()
        .unwrap()
}

/// The scored file's rows: input row, label and the probability of `reject`.
fn scored(path: &Path) -> Vec<(i64, String, f32)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let numbers = column("input_row");
        let numbers = numbers.as_any().downcast_ref::<Int64Array>().unwrap();
        let labels = arrow_schema_cast_string(&column("label"));
        let reject = column("probability_reject");
        let reject = reject.as_any().downcast_ref::<Float32Array>().unwrap();
        for (i, label) in labels.into_iter().enumerate() {
            rows.push((numbers.value(i), label, reject.value(i)));
        }
    }
    rows
}

/// The carried `id` column.
fn carried_ids(path: &Path) -> Vec<String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    reader
        .flat_map(|batch| {
            let batch = batch.unwrap();
            arrow_schema_cast_string(batch.column(batch.schema().index_of("id").unwrap()))
        })
        .collect()
}

/// A label column (dictionary-encoded or plain) as strings.
fn arrow_schema_cast_string(array: &arrow_array::ArrayRef) -> Vec<String> {
    if let Some(strings) = array.as_any().downcast_ref::<StringArray>() {
        return (0..strings.len())
            .map(|i| strings.value(i).to_owned())
            .collect();
    }
    let dictionary = array
        .as_any()
        .downcast_ref::<arrow_array::DictionaryArray<arrow_array::types::Int32Type>>()
        .unwrap();
    let values = dictionary
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    dictionary
        .keys()
        .iter()
        .map(|k| values.value(k.unwrap() as usize).to_owned())
        .collect()
}

const CSV: &str = "id,age,income,debt_ratio,country,employment\n\
    a,56.76,58644.4,1.16,IN,salaried\n\
    b,18.33,109549.21,1.2,DE,salaried\n\
    c,61.1,38000,0.4,XX,salaried\n\
    d,35.26,52221.45,0.67,FR,self_employed\n\
    e,33,abc,0.4,US,salaried\n\
    f,29,21000,1.1,IN,unemployed\n";

fn row(cells: &str) -> Value {
    let c: Vec<&str> = cells.split(',').collect();
    let number = |s: &str| s.parse::<f64>().map_or_else(|_| json!(s), |x| json!(x));
    json!({"age": number(c[1]), "income": number(c[2]), "debt_ratio": number(c[3]),
           "country": c[4], "employment": c[5]})
}

#[tokio::test]
async fn scored_rows_equal_the_servers_answers_and_rejects_carry_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("applicants.csv");
    std::fs::write(&input, CSV).unwrap();
    let output = dir.path().join("scores.parquet");
    let model = examples().join("credit");
    let done = predict(&[
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--batch-rows",
        "4",
        "--carry",
        "id",
    ]);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(stdout.contains("scored 4 of 6 rows"), "{stdout}");
    assert!(stdout.contains("2 rows refused"), "{stdout}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["applicants.csv", "scores.parquet", "scores.rejects.jsonl"],
        "no temporary file left"
    );

    let server = TestServer::start(&examples()).await;
    let lines: Vec<&str> = CSV.lines().skip(1).collect();
    let got = scored(&output);
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 4, 6],
        "input order kept"
    );
    assert_eq!(
        carried_ids(&output),
        ["a", "b", "d", "f"],
        "the id carried beside each answer"
    );
    // A batch's admitted rows run as one request: the server, sent the same rows together,
    // answers the same bits (an engine's sums may differ in the last bit between batch sizes,
    // in the server as here).
    for group in [vec![1usize, 2, 4], vec![6]] {
        let rows: Vec<Value> = group.iter().map(|&n| row(lines[n - 1])).collect();
        let (status, answer) = post(
            &server,
            "/v1/models/credit:predict",
            &json!({"instances": rows}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for (i, &number) in group.iter().enumerate() {
            let (_, label, reject) = got.iter().find(|r| r.0 == number as i64).unwrap();
            let prediction = &answer["predictions"][i];
            assert_eq!(prediction["label"], json!(label));
            let served = prediction["probabilities"]["reject"].as_f64().unwrap() as f32;
            assert_eq!(
                served.to_bits(),
                reject.to_bits(),
                "row {number}: {served} vs {reject}"
            );
        }
    }
    let rejects = std::fs::read_to_string(dir.path().join("scores.rejects.jsonl")).unwrap();
    let rejects: Vec<Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejects.len(), 2);
    for reject in &rejects {
        let number = reject["input_row"].as_u64().unwrap();
        let (status, answer) = post(
            &server,
            "/v1/models/credit:predict",
            &json!({"instances": [row(lines[number as usize - 1])]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let id = lines[number as usize - 1].split(',').next().unwrap();
        let mut expected = json!({"input_row": number, "carried": {"id": id}});
        expected
            .as_object_mut()
            .unwrap()
            .extend(answer.as_object().unwrap().clone());
        assert_eq!(reject, &expected);
    }
    server.stop().await;

    // The same rows as JSON Lines (an id beside the features), with --fail-on-reject.
    let jsonl = dir.path().join("applicants.jsonl");
    let text: String = lines
        .iter()
        .map(|l| {
            let mut r = row(l);
            r["id"] = json!(l.split(',').next().unwrap());
            format!("{r}\n")
        })
        .collect();
    std::fs::write(&jsonl, text).unwrap();
    let again = dir.path().join("again.parquet");
    let done = predict(&[
        model.to_str().unwrap(),
        "--input",
        jsonl.to_str().unwrap(),
        "--output",
        again.to_str().unwrap(),
        "--fail-on-reject",
        "--batch-rows",
        "4",
        "--carry",
        "id",
    ]);
    assert_eq!(
        done.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("2 rows were refused (--fail-on-reject)")
    );
    assert_eq!(scored(&again), got, "CSV and JSON Lines score alike");
}

#[test]
fn bad_input_files_are_named_with_an_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let model = examples().join("credit");
    let output = dir.path().join("out.parquet");
    let run = |input: &Path| {
        predict(&[
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
    };
    let missing = run(&dir.path().join("nothing.csv"));
    assert_eq!(missing.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nothing.csv"));

    let no_column = dir.path().join("short.csv");
    std::fs::write(&no_column, "age,income\n42,52000\n").unwrap();
    let done = run(&no_column);
    assert_eq!(done.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        stderr.contains("short.csv, line 1: the header has no column for the features debt_ratio, country, employment"),
        "{stderr}"
    );

    let wrong = dir.path().join("rows.xlsx");
    std::fs::write(&wrong, "x").unwrap();
    let done = run(&wrong);
    assert_eq!(done.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&done.stderr).contains("use .csv"));

    let ragged = dir.path().join("ragged.csv");
    std::fs::write(
        &ragged,
        "age,income,debt_ratio,country,employment\n42,52000,0.3,US,salaried\n1,2\n",
    )
    .unwrap();
    let done = run(&ragged);
    assert_eq!(done.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&done.stderr).contains("ragged.csv, line 3"));
    assert!(!output.exists(), "a failed run writes nothing");
}

#[test]
fn an_interrupted_run_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.csv");
    let mut text = String::from("age,income,debt_ratio,country,employment\n");
    for i in 0..400_000 {
        text.push_str(&format!(
            "{},{},0.5,US,salaried\n",
            20 + i % 60,
            20000 + i % 50000
        ));
    }
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("out.parquet");
    let mut child = Command::new(warden_bin())
        .arg("predict")
        .arg(examples().join("credit"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once it writes (its temporary file appears), interrupt it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let partial = || {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
    };
    while !partial() {
        assert!(Instant::now() < deadline, "no temporary output appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "it finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "it did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(code, Some(130));
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["many.csv"], "nothing but the input is left");
}

#[test]
fn a_scored_file_read_back_as_parquet_scores_the_same_and_a_truncated_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("applicants.csv");
    std::fs::write(&input, CSV).unwrap();
    let first = dir.path().join("first.parquet");
    let model = examples().join("credit");
    let run = |input: &Path, output: &Path, batch: &str| {
        predict(&[
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--batch-rows",
            batch,
        ])
    };
    assert_eq!(run(&input, &first, "4").status.code(), Some(0));
    // The scored file holds the features as the model took them (float32, dictionary-encoded
    // categories): scored again in the same groups of rows, the answers are the same bits.
    let again = dir.path().join("again.parquet");
    let done = run(&first, &again, "3");
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let answers = |path: &Path| {
        scored(path)
            .into_iter()
            .map(|r| (r.1, r.2.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(answers(&again), answers(&first));
    assert_eq!(
        scored(&again).iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "input_row numbers the rows of this input"
    );

    let bytes = std::fs::read(&first).unwrap();
    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let done = run(&truncated, &dir.path().join("never.parquet"), "4");
    assert_eq!(done.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        stderr.contains("truncated.parquet") && stderr.contains("not a readable Parquet file"),
        "{stderr}"
    );
    assert!(!dir.path().join("never.parquet").exists());
}

/// Peak resident memory of `warden predict` on `rows` generated rows, in KiB.
#[allow(unsafe_code)] // wait4: the peak memory of this one child, which std does not report
#[allow(clippy::zombie_processes)] // reaped by wait4 below
fn peak_kib(dir: &Path, rows: usize) -> i64 {
    let input = dir.join(format!("rows-{rows}.csv"));
    let mut text = String::from("age,income,debt_ratio,country,employment\n");
    for i in 0..rows {
        text.push_str(&format!(
            "{},{},0.{},{},salaried\n",
            20 + i % 60,
            20000 + i % 50000,
            i % 10,
            ["US", "DE", "FR"][i % 3]
        ));
    }
    std::fs::write(&input, text).unwrap();
    let child = Command::new(warden_bin())
        .arg("predict")
        .arg(examples().join("credit"))
        .args(["--input", input.to_str().unwrap(), "--output"])
        .arg(dir.join(format!("rows-{rows}.parquet")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // This child's own resource use (not every child's of the test process).
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; the pid is this test's own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as i32);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    usage.ru_maxrss
}

#[test]
fn memory_stays_bounded_whatever_the_input_size() {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_kib(dir.path(), 15_000);
    let large = peak_kib(dir.path(), 150_000);
    // Ten times the rows (6 MB of CSV, 150,000 rows that as JSON values alone would take
    // over 60 MiB): the reader holds a batch, the writer a row group of at most 8 MiB.
    assert!(
        large - small < 25 * 1024,
        "peak {small} KiB for 15,000 rows, {large} KiB for 150,000"
    );
}
