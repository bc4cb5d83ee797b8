//! Scan throughput on mixed corpus text (PII, attacks, benign prompts) and on
//! clean text, at 1 KB, 10 KB and 100 KB, with the learned stage (`scan`)
//! and without it (`scan_rules_only`); and the learned stage alone
//! (`learned`), its cost per KB.
//!
//! `cargo bench -p detection -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use detection::corpus::{self, Sample};
use detection::{Checks, Detector, DetectorConfig, Scan};

/// Joins corpus lines (cycling) until `size` bytes, cut on a char boundary.
fn build(lines: &[&Sample], size: usize) -> String {
    let mut out = String::with_capacity(size + 256);
    let mut i = 0;
    while out.len() < size && !lines.is_empty() {
        out.push_str(&lines[i % lines.len()].text);
        out.push('\n');
        i += 1;
    }
    let mut cut = size.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out
}

/// Mixed: every corpus line (PII, attacks, benign prompts with trigger
/// words). Clean: only lines on which the detector finds nothing at all.
fn inputs(detector: &Detector) -> Vec<(String, String)> {
    let samples = corpus::builtin().unwrap_or_default();
    let mixed: Vec<&Sample> = samples.iter().collect();
    let clean: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            let scan = detector.scan(&s.text, &Checks::default());
            scan.pii.is_empty() && scan.injection.is_empty()
        })
        .collect();
    let mut out = Vec::new();
    for (label, size) in [("1KB", 1024), ("10KB", 10 * 1024), ("100KB", 100 * 1024)] {
        out.push((format!("mixed/{label}"), build(&mixed, size)));
        out.push((format!("clean/{label}"), build(&clean, size)));
    }
    out
}

/// The whole scan over every input, as group `name`, with `config`.
fn bench_detector(c: &mut Criterion, name: &str, config: DetectorConfig) {
    let Ok(detector) = Detector::new(config) else {
        return;
    };
    let mut group = c.benchmark_group(name);
    for (name, text) in inputs(&detector) {
        group.throughput(Throughput::Bytes(text.len() as u64));
        let mut scan = Scan::default();
        group.bench_with_input(BenchmarkId::from_parameter(&name), &text, |b, text| {
            b.iter(|| {
                detector.scan_into(std::hint::black_box(text), &Checks::default(), &mut scan);
                scan.pii.len() + scan.injection.len()
            });
        });
    }
    group.finish();
}

fn bench_scan(c: &mut Criterion) {
    bench_detector(c, "scan", DetectorConfig::default());
}

fn bench_rules_only(c: &mut Criterion) {
    bench_detector(
        c,
        "scan_rules_only",
        DetectorConfig {
            learned_threshold: None,
            ..DetectorConfig::default()
        },
    );
}

fn bench_learned(c: &mut Criterion) {
    let (Ok(detector), Ok(model)) = (
        Detector::new(DetectorConfig::default()),
        detection::learned::Model::builtin(),
    ) else {
        return;
    };
    let mut group = c.benchmark_group("learned");
    for (name, text) in inputs(&detector) {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&name), &text, |b, text| {
            b.iter(|| model.score(std::hint::black_box(text.as_bytes())));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_scan, bench_rules_only, bench_learned);
criterion_main!(benches);
