//! A scrape of a service's `/metrics` (Prometheus text exposition), read
//! closely enough to compare counters and gauges before and after a run.

use anyhow::{Context, Result, bail};

use crate::util::curl;

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// GETs `url` (a `/metrics` endpoint) and parses it.
    pub fn fetch(url: &str) -> Result<Self> {
        Self::parse(&curl(&[url])?).with_context(|| format!("reading {url}"))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).with_context(|| format!("sample line `{line}`")))
            .collect::<Result<_>>()?;
        Ok(Self { samples })
    }

    /// The sum of the samples of `name` whose labels include every pair in
    /// `labels`; `None` when no sample matches (a misspelt name or label
    /// must not read as zero).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matching = self.samples.iter().filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        });
        let first = matching.next()?.value;
        Some(first + matching.map(|s| s.value).sum::<f64>())
    }

    /// Like [`Scrape::value`], but a missing series is an error naming it.
    pub fn require(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        self.value(name, labels)
            .with_context(|| format!("no sample {}", selector(name, labels)))
    }
}

/// `name{k="v",…}`, for messages.
pub fn selector(name: &str, labels: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", pairs.join(","))
}

fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .context("no value after the labels")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .with_context(|| format!("value `{other}` is not a number"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",…}`; returns the pairs and what follows the `}`.
fn parse_labels(mut text: &str) -> Result<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after_key) = text.split_once("=\"").context("label without =\"")?;
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("label value ends in an escape"),
                },
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value"),
            }
        };
        labels.push((key.trim().to_owned(), value));
        text = &after_key[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP octollm_arm_requests_total Calls.
# TYPE octollm_arm_requests_total counter
octollm_arm_requests_total{arm="guardian",status="ok"} 7
octollm_arm_requests_total{arm="guardian",status="error"} 3
octollm_arm_requests_total{arm="judge",status="ok"} 2
octollm_odd{text="a \"quoted\", comma\\ }"} 1.5 1700000000000
octollm_bare 4
octollm_le_bucket{le="+Inf"} +Inf
"#;

    #[test]
    fn values_match_every_given_label_and_sum_the_rest() {
        let scrape = Scrape::parse(TEXT).unwrap();
        let ok = [("arm", "guardian"), ("status", "ok")];
        assert_eq!(scrape.value("octollm_arm_requests_total", &ok), Some(7.0));
        assert_eq!(
            scrape.value("octollm_arm_requests_total", &[("arm", "guardian")]),
            Some(10.0)
        );
        assert_eq!(scrape.value("octollm_bare", &[]), Some(4.0));
        assert_eq!(
            scrape.value("octollm_odd", &[("text", "a \"quoted\", comma\\ }")]),
            Some(1.5)
        );
        assert_eq!(
            scrape.value("octollm_le_bucket", &[("le", "+Inf")]),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn a_missing_series_is_none_and_require_names_it() {
        let scrape = Scrape::parse(TEXT).unwrap();
        let coder = [("arm", "coder"), ("status", "ok")];
        assert_eq!(scrape.value("octollm_arm_requests_total", &coder), None);
        let error = scrape
            .require("octollm_arm_requests_total", &coder)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            r#"no sample octollm_arm_requests_total{arm="coder",status="ok"}"#
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(Scrape::parse("octollm_x{arm=\"a\" 1").is_err());
        assert!(Scrape::parse("octollm_x{arm=\"a\"} one").is_err());
        assert!(Scrape::parse("octollm_x").is_err());
    }
}
