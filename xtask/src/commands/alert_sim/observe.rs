//! What alert-sim watches: alerts in Prometheus (`/api/v1/alerts`) and the
//! notifications the alert sink recorded (`<receiver>.jsonl`), and the
//! decisions made on them: has this alert paged, at the right receiver, in
//! time; has it resolved; did an inhibited alert page anyway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::prom::client::Prometheus;

pub type Labels = BTreeMap<String, String>;

/// An alert Prometheus evaluates as pending or firing.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    pub labels: Labels,
    pub state: String,
    /// When its expression first held (Unix seconds).
    pub active_at: f64,
}

/// One webhook the sink recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    /// Unix seconds.
    pub received_at: f64,
    pub alerts: Vec<(String, Labels)>,
}

/// Which alert a scenario expects, and where it must page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub alert: &'static str,
    /// The `job` label it must carry; `None` for alerts that aggregate it away.
    pub job: Option<&'static str>,
    pub receiver: &'static str,
}

impl Expect {
    pub fn matches(&self, labels: &Labels) -> bool {
        labels.get("alertname").map(String::as_str) == Some(self.alert)
            && self
                .job
                .is_none_or(|job| labels.get("job").map(String::as_str) == Some(job))
    }

    /// `Alert{job=…}` for any label set.
    pub fn describe_labels(labels: &Labels) -> String {
        let name = labels.get("alertname").map_or("?", String::as_str);
        match labels.get("job") {
            Some(job) => format!("{name}{{job={job}}}"),
            None => name.to_owned(),
        }
    }

    pub fn name(&self) -> String {
        match self.job {
            Some(job) => format!("{}{{job={job}}}", self.alert),
            None => self.alert.to_owned(),
        }
    }
}

/// Where alert-sim reads alerts and notifications from.
pub trait Observer {
    fn active_alerts(&self) -> Result<Vec<ActiveAlert>>;
    fn notifications(&self, receiver: &str) -> Result<Vec<Notification>>;
}

/// The live stack: Prometheus' API and the sink's files.
pub struct Live {
    pub prometheus: String,
    pub sink_dir: PathBuf,
}

impl Observer for Live {
    fn active_alerts(&self) -> Result<Vec<ActiveAlert>> {
        Prometheus::new(&self.prometheus)
            .alerts()?
            .iter()
            .map(active_alert)
            .collect()
    }

    fn notifications(&self, receiver: &str) -> Result<Vec<Notification>> {
        let path = self.sink_dir.join(format!("{receiver}.jsonl"));
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_notifications(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// Prometheus' `/api/v1/alerts` answer.
#[cfg(test)]
pub fn parse_alerts(body: &str) -> Result<Vec<ActiveAlert>> {
    let value: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    if value["status"] != "success" {
        bail!("Prometheus /api/v1/alerts failed: {body}");
    }
    let Some(alerts) = value["data"]["alerts"].as_array() else {
        bail!("no data.alerts in {body}");
    };
    alerts.iter().map(active_alert).collect()
}

/// One alert of Prometheus' `/api/v1/alerts`.
fn active_alert(alert: &serde_json::Value) -> Result<ActiveAlert> {
    Ok(ActiveAlert {
        labels: labels(&alert["labels"]),
        state: alert["state"].as_str().unwrap_or_default().to_owned(),
        active_at: parse_rfc3339(alert["activeAt"].as_str().unwrap_or_default())?,
    })
}

/// The sink's JSON lines.
pub fn parse_notifications(text: &str) -> Result<Vec<Notification>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
            let alerts = v["payload"]["alerts"]
                .as_array()
                .map(|alerts| {
                    alerts
                        .iter()
                        .map(|a| {
                            (
                                a["status"].as_str().unwrap_or_default().to_owned(),
                                labels(&a["labels"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Notification {
                receiver: v["receiver"].as_str().unwrap_or_default().to_owned(),
                received_at: parse_rfc3339(v["received_at"].as_str().unwrap_or_default())?,
                alerts,
            })
        })
        .collect()
}

fn labels(value: &serde_json::Value) -> Labels {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `2026-11-29T13:35:25.123Z` (or with `+00:00`) as Unix seconds. Only UTC
/// is accepted: both Prometheus and the sink write UTC.
pub fn parse_rfc3339(text: &str) -> Result<f64> {
    let bad = || anyhow::anyhow!("`{text}` is not an RFC 3339 UTC timestamp");
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .ok_or_else(bad)?;
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-').map(str::parse::<i64>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(day))) = (d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let mut t = time.split(':');
    let (Some(h), Some(min), Some(sec)) = (t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    let (h, min): (i64, i64) = (
        h.parse().map_err(|_| bad())?,
        min.parse().map_err(|_| bad())?,
    );
    let sec: f64 = sec.parse().map_err(|_| bad())?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

/// Now, as Unix seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The first notification received since `since` carrying `expect` with
/// `status` (firing or resolved), from `notes`.
pub fn first_with<'a>(
    notes: &'a [Notification],
    expect: &Expect,
    status: &str,
    since: f64,
) -> Option<&'a Notification> {
    notes.iter().find(|n| {
        n.received_at >= since
            && n.alerts
                .iter()
                .any(|(s, labels)| s == status && expect.matches(labels))
    })
}

/// A page caught: when Prometheus saw it firing and when it reached the
/// expected receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub active_at: f64,
    pub received_at: f64,
}

pub const RECEIVERS: [&str; 3] = ["pagerduty", "slack", "email"];

/// Polls until `expect` is firing in Prometheus and a firing notification for
/// it has reached `expect.receiver` (both since `since`), or `deadline`
/// passes. A notification at any other receiver fails at once: the routing is
/// wrong.
pub fn wait_for_page(
    observer: &dyn Observer,
    expect: &Expect,
    since: f64,
    deadline: Duration,
    poll: Duration,
) -> Result<Page> {
    let started = Instant::now();
    let mut seen_firing: Option<f64> = None;
    loop {
        if seen_firing.is_none() {
            seen_firing = observer
                .active_alerts()?
                .iter()
                .find(|a| a.state == "firing" && expect.matches(&a.labels))
                .map(|a| a.active_at);
        }
        for receiver in RECEIVERS {
            let notes = observer.notifications(receiver)?;
            let Some(note) = first_with(&notes, expect, "firing", since) else {
                continue;
            };
            if receiver != expect.receiver {
                bail!(
                    "{} paged {receiver}, expected {}",
                    expect.name(),
                    expect.receiver
                );
            }
            if let Some(active_at) = seen_firing {
                return Ok(Page {
                    active_at,
                    received_at: note.received_at,
                });
            }
        }
        if started.elapsed() >= deadline {
            let state = match seen_firing {
                Some(_) => "firing in Prometheus, but no notification reached any receiver",
                None => "not firing in Prometheus",
            };
            bail!(
                "{} did not page {} within {:.0?}: {state}",
                expect.name(),
                expect.receiver,
                deadline
            );
        }
        std::thread::sleep(poll);
    }
}

/// Polls until a resolved notification for `expect` reaches its receiver
/// after `since`; returns when it arrived.
pub fn wait_for_resolve(
    observer: &dyn Observer,
    expect: &Expect,
    since: f64,
    deadline: Duration,
    poll: Duration,
) -> Result<f64> {
    let started = Instant::now();
    loop {
        let notes = observer.notifications(expect.receiver)?;
        if let Some(note) = first_with(&notes, expect, "resolved", since) {
            return Ok(note.received_at);
        }
        if started.elapsed() >= deadline {
            let still = observer
                .active_alerts()?
                .iter()
                .any(|a| expect.matches(&a.labels));
            bail!(
                "{} did not resolve at {} within {:.0?} ({})",
                expect.name(),
                expect.receiver,
                deadline,
                if still {
                    "still active in Prometheus"
                } else {
                    "gone from Prometheus, but no resolved notification arrived"
                }
            );
        }
        std::thread::sleep(poll);
    }
}

/// The theoretical upper bound on time to page, from the moment the fault
/// is in place: the fault is seen at the next scrape, the alert rule sees it
/// at the next evaluation (one more per recording rule between the raw
/// series and the alert, since groups are evaluated independently), fires
/// `for` later, and Alertmanager waits `group_wait` before notifying.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Bound {
    /// How late the alert's expression can first see the fault, before any
    /// scrape ([`LEAD_TERMS`]); 0 for most alerts.
    pub lead_s: f64,
    pub for_s: f64,
    pub scrape_s: f64,
    pub evaluation_s: f64,
    pub recording_hops: u32,
    pub group_wait_s: f64,
}

/// Where an alert's expression cannot see a fault at once, whatever the
/// alerting path does.
#[derive(Debug, Clone, Copy)]
pub enum Lead {
    /// The service refreshes the metric every this many seconds.
    Sampled(f64),
    /// The expression asks that nothing happened over its (compressed)
    /// window: it holds only once the window has passed since the last
    /// event, which may come just before the fault.
    QuietWindow,
}

/// The alerts whose bound has a lead term: (alert, lead, why). Each is part
/// of the alerting path, not of the fault's ramp.
pub const LEAD_TERMS: &[(&str, Lead, &str)] = &[
    (
        "ArmUnavailable",
        Lead::Sampled(5.0),
        "octollm_arm_available changes only when the orchestrator probes its arms, every 5 s (the default OCTOLLM_ARM_PROBE_INTERVAL, which the stack keeps)",
    ),
    (
        "WalArchivingFailing",
        Lead::QuietWindow,
        "it also needs increase(pg_stat_archiver_archived_count[5m]) == 0: a segment archived just before the fault (archive_timeout switches one every minute under writes) keeps it false for a window",
    ),
];

/// The allowed slack over the bound (issue 7: every time to page within
/// 1.2× its bound).
pub const BOUND_SLACK: f64 = 1.2;

impl Bound {
    pub fn seconds(&self) -> f64 {
        self.lead_s
            + self.for_s
            + self.scrape_s
            + self.evaluation_s * f64::from(1 + self.recording_hops)
            + self.group_wait_s
    }

    /// Fails when `time_to_page` exceeds the bound by more than [`BOUND_SLACK`].
    pub fn check(&self, time_to_page: f64) -> Result<()> {
        let limit = self.seconds() * BOUND_SLACK;
        if time_to_page > limit {
            bail!(
                "time to page {time_to_page:.1}s exceeds {BOUND_SLACK}× its bound {:.1}s ({}for {:.0}s + scrape {:.0}s + evaluation {:.0}s × {} + group_wait {:.0}s)",
                self.seconds(),
                if self.lead_s > 0.0 {
                    format!("lead {:.0}s + ", self.lead_s)
                } else {
                    String::new()
                },
                self.for_s,
                self.scrape_s,
                self.evaluation_s,
                1 + self.recording_hops,
                self.group_wait_s
            );
        }
        Ok(())
    }
}

/// One Alertmanager inhibit rule, with the matchers alert-sim understands:
/// `name="v"`, `name!="v"` and `name=~".+"` (present).
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    Equal(String, String),
    NotEqual(String, String),
    Present(String),
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Self> {
        let unquote = |v: &str| v.trim().trim_matches('"').to_owned();
        if let Some((name, value)) = text.split_once("=~") {
            if unquote(value) == ".+" {
                return Ok(Self::Present(name.trim().to_owned()));
            }
            bail!("unsupported matcher `{text}` (alert-sim understands =, != and =~\".+\")");
        }
        if let Some((name, value)) = text.split_once("!=") {
            return Ok(Self::NotEqual(name.trim().to_owned(), unquote(value)));
        }
        if let Some((name, value)) = text.split_once('=') {
            return Ok(Self::Equal(name.trim().to_owned(), unquote(value)));
        }
        bail!("unsupported matcher `{text}`")
    }

    fn matches(&self, labels: &Labels) -> bool {
        let get = |name: &str| labels.get(name).map_or("", String::as_str);
        match self {
            Self::Equal(n, v) => get(n) == v,
            Self::NotEqual(n, v) => get(n) != v,
            Self::Present(n) => !get(n).is_empty(),
        }
    }
}

/// The inhibit rules of a rendered alertmanager.yml.
pub fn parse_inhibit_rules(yaml: &str) -> Result<Vec<InhibitRule>> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml)?;
    let strings = |v: &serde_yaml_ng::Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let Some(rules) = doc.get("inhibit_rules").and_then(|r| r.as_sequence()) else {
        return Ok(Vec::new());
    };
    rules
        .iter()
        .map(|r| {
            let parse = |key: &str| -> Result<Vec<Matcher>> {
                strings(&r[key]).iter().map(|m| Matcher::parse(m)).collect()
            };
            Ok(InhibitRule {
                source: parse("source_matchers")?,
                target: parse("target_matchers")?,
                equal: strings(&r["equal"]),
            })
        })
        .collect()
}

/// The firing alerts that `rules` inhibit, given what fires (Alertmanager's
/// own semantics: a source inhibits targets that match, with the `equal`
/// labels equal, and an alert never inhibits itself). Each with the time its
/// earliest inhibitor started firing.
pub fn inhibited<'a>(
    firing: &'a [ActiveAlert],
    rules: &[InhibitRule],
    for_of: &dyn Fn(&str) -> f64,
) -> Vec<(&'a ActiveAlert, f64)> {
    let mut found = Vec::new();
    for target in firing {
        let mut since: Option<f64> = None;
        for rule in rules {
            if !rule.target.iter().all(|m| m.matches(&target.labels)) {
                continue;
            }
            for source in firing {
                if source.labels == target.labels
                    || !rule.source.iter().all(|m| m.matches(&source.labels))
                    || !rule
                        .equal
                        .iter()
                        .all(|l| source.labels.get(l) == target.labels.get(l))
                {
                    continue;
                }
                let name = source.labels.get("alertname").map_or("", String::as_str);
                let fired = source.active_at + for_of(name);
                since = Some(since.map_or(fired, |s: f64| s.min(fired)));
            }
        }
        if let Some(since) = since {
            found.push((target, since));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A Prometheus and a sink that answer canned bodies.
    struct Fake {
        alerts: String,
        sink: BTreeMap<&'static str, String>,
        polls: Cell<u32>,
    }

    impl Observer for Fake {
        fn active_alerts(&self) -> Result<Vec<ActiveAlert>> {
            self.polls.set(self.polls.get() + 1);
            parse_alerts(&self.alerts)
        }
        fn notifications(&self, receiver: &str) -> Result<Vec<Notification>> {
            parse_notifications(self.sink.get(receiver).map_or("", String::as_str))
        }
    }

    const FIRING: &str = r#"{"status":"success","data":{"alerts":[
        {"labels":{"alertname":"ServiceDown","job":"llm-sim","severity":"critical"},
         "state":"firing","activeAt":"2026-11-29T13:00:01.5Z","value":"0e+00"}]}}"#;
    const NOTHING: &str = r#"{"status":"success","data":{"alerts":[]}}"#;

    fn note(receiver: &str, status: &str, at: &str) -> String {
        format!(
            r#"{{"received_at":"{at}","receiver":"{receiver}","payload":{{"status":"{status}","alerts":[{{"status":"{status}","labels":{{"alertname":"ServiceDown","job":"llm-sim","severity":"critical"}}}}]}}}}"#
        ) + "\n"
    }

    const EXPECT: Expect = Expect {
        alert: "ServiceDown",
        job: Some("llm-sim"),
        receiver: "pagerduty",
    };

    fn since() -> f64 {
        parse_rfc3339("2026-11-29T13:00:00Z").unwrap()
    }

    const QUICK: Duration = Duration::from_millis(30);

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0.0);
        assert_eq!(
            parse_rfc3339("2026-11-29T13:35:25.250Z").unwrap(),
            1_795_959_325.25
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00+00:00").unwrap(),
            951_868_800.0
        );
        assert!(parse_rfc3339("2026-11-29 13:35:25").is_err());
        assert!(parse_rfc3339("2026-11-29T13:35:25+02:00").is_err());
    }

    #[test]
    fn a_page_at_the_right_receiver_is_caught() {
        let fake = Fake {
            alerts: FIRING.to_owned(),
            sink: BTreeMap::from([(
                "pagerduty",
                note("pagerduty", "firing", "2026-11-29T13:00:06Z"),
            )]),
            polls: Cell::new(0),
        };
        let page = wait_for_page(&fake, &EXPECT, since(), QUICK, QUICK).unwrap();
        assert_eq!(page.received_at - since(), 6.0);
        assert_eq!(page.active_at - since(), 1.5);
    }

    #[test]
    fn an_alert_that_does_not_page_fails_the_scenario() {
        // Firing in Prometheus, nothing at the sink.
        let fake = Fake {
            alerts: FIRING.to_owned(),
            sink: BTreeMap::new(),
            polls: Cell::new(0),
        };
        let error = wait_for_page(&fake, &EXPECT, since(), QUICK, Duration::from_millis(5))
            .unwrap_err()
            .to_string();
        assert!(error.contains("did not page pagerduty"), "{error}");
        assert!(
            error.contains("no notification reached any receiver"),
            "{error}"
        );
        assert!(fake.polls.get() >= 1);

        // Not even firing.
        let fake = Fake {
            alerts: NOTHING.to_owned(),
            sink: BTreeMap::new(),
            polls: Cell::new(0),
        };
        let error = wait_for_page(&fake, &EXPECT, since(), QUICK, QUICK)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not firing in Prometheus"), "{error}");
    }

    #[test]
    fn a_page_at_the_wrong_receiver_fails() {
        let fake = Fake {
            alerts: FIRING.to_owned(),
            sink: BTreeMap::from([("slack", note("slack", "firing", "2026-11-29T13:00:06Z"))]),
            polls: Cell::new(0),
        };
        let error = wait_for_page(&fake, &EXPECT, since(), QUICK, QUICK)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "ServiceDown{job=llm-sim} paged slack, expected pagerduty"
        );
    }

    #[test]
    fn an_old_page_from_a_previous_run_does_not_count() {
        let fake = Fake {
            alerts: FIRING.to_owned(),
            sink: BTreeMap::from([(
                "pagerduty",
                note("pagerduty", "firing", "2026-11-29T12:59:59Z")
                    + &note("pagerduty", "resolved", "2026-11-29T12:59:59.5Z"),
            )]),
            polls: Cell::new(0),
        };
        assert!(wait_for_page(&fake, &EXPECT, since(), QUICK, QUICK).is_err());
        assert!(wait_for_resolve(&fake, &EXPECT, since(), QUICK, QUICK).is_err());
    }

    #[test]
    fn a_resolve_is_caught() {
        let fake = Fake {
            alerts: NOTHING.to_owned(),
            sink: BTreeMap::from([(
                "pagerduty",
                note("pagerduty", "firing", "2026-11-29T13:00:06Z")
                    + &note("pagerduty", "resolved", "2026-11-29T13:00:20Z"),
            )]),
            polls: Cell::new(0),
        };
        let at = wait_for_resolve(&fake, &EXPECT, since(), QUICK, QUICK).unwrap();
        assert_eq!(at - since(), 20.0);
    }

    #[test]
    fn the_bound_check_fails_a_slow_page() {
        let bound = Bound {
            lead_s: 0.0,
            for_s: 2.0,
            scrape_s: 1.0,
            evaluation_s: 1.0,
            recording_hops: 1,
            group_wait_s: 1.0,
        };
        assert_eq!(bound.seconds(), 6.0);
        bound.check(7.19).unwrap();
        let error = bound.check(7.3).unwrap_err().to_string();
        assert!(
            error.starts_with("time to page 7.3s exceeds 1.2× its bound 6.0s"),
            "{error}"
        );
    }

    #[test]
    fn inhibition_follows_the_alertmanager_rules() {
        let template = std::fs::read_to_string(
            crate::util::project_root().join("deploy/monitoring/alertmanager.yml.tmpl"),
        )
        .unwrap();
        // The receivers' `${VARS}` are not YAML until rendered; the inhibit
        // rules have none.
        let yaml: String = template
            .lines()
            .filter(|l| !l.contains("${"))
            .map(|l| format!("{l}\n"))
            .collect();
        let rules = parse_inhibit_rules(&yaml).unwrap();
        assert_eq!(rules.len(), 2);
        let alert = |name: &str, job: &str, severity: &str, at: f64| ActiveAlert {
            labels: l(&[("alertname", name), ("job", job), ("severity", severity)]),
            state: "firing".to_owned(),
            active_at: at,
        };
        let firing = [
            alert("HighErrorRate", "orchestrator", "critical", 100.0),
            alert("LlmErrorRateHigh", "orchestrator", "warning", 90.0),
            alert("RedisDown", "redis", "warning", 90.0),
            alert("ServiceDown", "llm-sim", "critical", 80.0),
            alert("LowUptime", "llm-sim", "warning", 50.0),
        ];
        let found = inhibited(&firing, &rules, &|name| {
            if name == "ServiceDown" { 2.0 } else { 10.0 }
        });
        let names: Vec<(&str, f64)> = found
            .iter()
            .map(|(a, since)| (a.labels["alertname"].as_str(), *since))
            .collect();
        assert_eq!(names, [("LlmErrorRateHigh", 110.0), ("LowUptime", 82.0)]);
        assert!(Matcher::parse("job=~\"x.*\"").is_err());
    }
}
