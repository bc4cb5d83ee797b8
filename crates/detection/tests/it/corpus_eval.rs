//! Precision and recall over the labelled corpus, with asserted thresholds.

use detection::corpus::{self, Thresholds};
use detection::{Detector, DetectorConfig};

#[test]
fn corpus_meets_precision_and_recall_thresholds() {
    let samples = corpus::builtin().unwrap();
    assert!(samples.len() >= 300, "corpus has {} lines", samples.len());
    let detector = Detector::new(DetectorConfig::default()).unwrap();
    let report = corpus::evaluate(&detector, &samples);
    println!("{report}");
    for miss in &report.misses {
        // Corpus values are fake; printing them in a test is fine.
        println!(
            "line {}: {} :: {}",
            miss.index + 1,
            miss.what,
            samples[miss.index].text
        );
    }
    let failures = report.failures(&Thresholds::default());
    assert!(failures.is_empty(), "thresholds failed: {failures:#?}");
}
