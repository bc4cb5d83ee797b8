//! `detection-eval`: scores the detector on the manifest's sources, split by
//! source, and checks the dev split against the committed floors.
//!
//! ```text
//! detection-eval [--cache DIR] [--floors FILE] [--no-learned] [--misses SOURCE]
//! detection-eval train [--cache DIR] [--out FILE]
//! ```
//!
//! Exit codes: 0 ok, 1 the dev split crossed a floor, 2 usage, 3 the data or
//! the model could not be read or written.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use detection::eval::{self, Floors};
use detection::learned::{self, TrainConfig};
use detection::{Detector, DetectorConfig};

struct Args {
    train: bool,
    cache: PathBuf,
    floors: PathBuf,
    out: PathBuf,
    learned: bool,
    misses: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        train: false,
        cache: eval::default_cache_dir(),
        floors: eval::eval_dir().join("floors.json"),
        out: eval::eval_dir().join("../model/learned.bin"),
        learned: true,
        misses: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "train" => args.train = true,
            "--cache" => args.cache = PathBuf::from(value("--cache")?),
            "--floors" => args.floors = PathBuf::from(value("--floors")?),
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--no-learned" => args.learned = false,
            "--misses" => args.misses = Some(value("--misses")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn run(args: &Args, out: &mut impl Write) -> Result<ExitCode, String> {
    let sources = eval::load_sources(&eval::eval_dir(), &args.cache)?;
    let io = |e: std::io::Error| e.to_string();
    if args.train {
        let rows = eval::training_rows(&sources)?;
        let model = learned::train(&rows, &TrainConfig::default());
        let bytes = model.to_bytes();
        std::fs::write(&args.out, &bytes).map_err(io)?;
        writeln!(
            out,
            "trained on {} rows; wrote {} ({} bytes)",
            rows.len(),
            args.out.display(),
            bytes.len()
        )
        .map_err(io)?;
        return Ok(ExitCode::SUCCESS);
    }
    let floors_text = std::fs::read_to_string(&args.floors)
        .map_err(|e| format!("{}: {e}", args.floors.display()))?;
    let floors = Floors::parse(&floors_text)?;
    let detector = Detector::new(DetectorConfig {
        learned_threshold: if args.learned {
            DetectorConfig::default().learned_threshold
        } else {
            None
        },
        ..DetectorConfig::default()
    })
    .map_err(|e| e.to_string())?;
    if let Some(name) = &args.misses {
        // The rows of one source that the detector gets wrong (public data).
        let source = sources
            .iter()
            .find(|s| &s.name == name)
            .ok_or(format!("no source {name}"))?;
        let rows = source.rows.as_ref().map_err(Clone::clone)?;
        let checks = detection::Checks::default();
        for r in rows {
            let blocked = detector.scan(&r.text, &checks).decision == detection::Decision::Block;
            if blocked != r.attack {
                let head: String = r.text.chars().take(300).collect();
                writeln!(
                    out,
                    "{} {}",
                    if r.attack { "MISS" } else { "FP" },
                    head.replace('\n', " ")
                )
                .map_err(io)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = eval::evaluate(&detector, &sources);
    writeln!(out, "{report}").map_err(io)?;
    let failures = floors.failures(&report);
    if failures.is_empty() {
        writeln!(
            out,
            "dev floors hold (recall >= {}, FPR <= {})",
            floors.min_recall, floors.max_fpr
        )
        .map_err(io)?;
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            writeln!(out, "FLOOR: {f}").map_err(io)?;
        }
        Ok(ExitCode::from(1))
    }
}

fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(stderr, "detection-eval: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, &mut stdout) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(stderr, "detection-eval: {e}");
            ExitCode::from(3)
        }
    }
}
