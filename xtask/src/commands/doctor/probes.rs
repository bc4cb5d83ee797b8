//! What doctor measures, category by category: processes and `/proc`,
//! readiness and deep health, the Prometheus and Alertmanager APIs,
//! pgBackRest, the Pushgateway and PostgreSQL's statistics views. Every
//! probe turns its own errors into a failing or warning [`Check`]: doctor
//! reports a broken stack, it does not break on one. The verdicts are
//! `classify`'s.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::classify::{self, Archiver, Deep, Firing, Port, Slot, Transaction, Usage};
use super::report::{self, Category, Check, Next};
use crate::prom::client::Prometheus;
use crate::stack::postgres::{DATABASE, Postgres};
use crate::stack::{Component, Stack, launch};
use crate::util::{curl, http_ok, run_with_input};

/// The WAL stream's replication slot (`stack::postgres`, `pg_receivewal
/// --slot`).
const STREAM_SLOT: &str = "octollm_wal_stream";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// GET with a short cap (a hung service must not hang doctor); the body.
fn get(url: &str, extra: &[&str]) -> Result<String> {
    let mut args = vec!["--max-time", "4"];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args)
}

fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect()
}

// ---- components ----

/// Whether the component is built on the service kit (serves `/health/deep`).
fn serves_deep(component: Component) -> bool {
    matches!(
        component,
        Component::Orchestrator | Component::ReflexLayer | Component::AlertSink
    ) || Component::ARMS.contains(&component)
}

/// The token file `component`'s protected endpoints accept: the alert
/// sink's own (Alertmanager's webhooks present it), else the one clients
/// of that component present.
fn token_for(stack: &Stack, component: Component) -> Result<PathBuf> {
    if component == Component::AlertSink {
        Ok(stack.secret_path("alert-sink-token"))
    } else {
        stack.credential_for(component)
    }
}

/// An HTTP error as its status and title when the body is a problem+json.
fn problem_of(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let field = |name: &str| {
        let at = text.find(&format!("\"{name}\":"))? + name.len() + 3;
        let rest = text[at..].trim_start_matches('"');
        Some(rest.split(['"', ',', '}']).next()?.to_owned())
    };
    match (field("status"), field("title")) {
        (Some(status), Some(title)) => format!("HTTP {status} {title}"),
        _ => first_line(error),
    }
}

/// `@FILE` of the bearer header for `component`'s protected endpoints.
/// Written before the probes start: the header files are shared, and a
/// probe must never read one while another rewrites it.
fn header_for(stack: &Stack, component: Component) -> Result<String> {
    stack.bearer_header(&token_for(stack, component)?)
}

fn deep_health(stack: &Stack, component: Component, header: &Result<String>) -> Deep {
    let answer = header
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|header| {
            get(
                &format!("{}/health/deep", stack.url(component)),
                &["-H", header],
            )
        })
        .and_then(|body| serde_json::from_str::<Value>(&body).context("not JSON"));
    match answer {
        Err(error) => Deep::Unreadable(problem_of(&error)),
        Ok(json) => {
            let problems = json["dependencies"]
                .as_object()
                .map(|deps| {
                    deps.iter()
                        .filter(|(_, d)| d["status"] != "up")
                        .map(|(name, d)| {
                            let status = d["status"].as_str().unwrap_or("?");
                            match d["error"].as_str() {
                                Some(e) => format!("{name}: {status} ({e})"),
                                None => format!("{name}: {status}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            Deep::Answered {
                status: json["status"].as_str().unwrap_or("unknown").to_owned(),
                problems,
            }
        }
    }
}

/// Each component: alive, ready, and (service-kit services) deep health;
/// probed side by side.
pub fn components(stack: &Stack, next: &Next) -> Vec<Check> {
    std::thread::scope(|scope| {
        // Every header file is written before any probe reads one.
        let headers: Vec<Option<Result<String>>> = Component::ALL
            .iter()
            .map(|&c| serves_deep(c).then(|| header_for(stack, c)))
            .collect();
        let probes: Vec<_> = Component::ALL
            .iter()
            .zip(headers)
            .map(|(&component, header)| {
                scope.spawn(move || {
                    let pid = stack.pid(component);
                    let ready = pid.is_some() && launch::is_ready(stack, component);
                    let deep = if let (true, Some(header)) = (ready, &header) {
                        deep_health(stack, component, header)
                    } else {
                        Deep::NotServed
                    };
                    classify::component(next, component, pid, ready, &deep)
                })
            })
            .collect();
        probes
            .into_iter()
            .zip(Component::ALL)
            .map(|(probe, component)| {
                probe.join().unwrap_or_else(|_| {
                    Check::of(Category::Components, component.name()).fail("the probe panicked")
                })
            })
            .collect()
    })
}

// ---- prometheus ----

fn prometheus_of(stack: &Stack) -> Result<Prometheus> {
    let url = stack.url(Component::Prometheus);
    if !http_ok(&format!("{url}/-/ready")) {
        bail!("Prometheus at {url} is not ready");
    }
    Ok(Prometheus::new(&url))
}

/// `(label value, sample)` of each series of an instant vector.
fn series(prometheus: &Prometheus, promql: &str, label: &str) -> Result<Vec<(String, f64)>> {
    let data = prometheus.query(promql)?;
    Ok(data["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    (
                        row["metric"][label].as_str().unwrap_or("?").to_owned(),
                        row["value"][1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

pub fn prometheus(stack: &Stack, next: &Next) -> Vec<Check> {
    let prometheus = match prometheus_of(stack) {
        Ok(p) => p,
        Err(error) => {
            return vec![
                Check::of(Category::Prometheus, "reachable")
                    .fail(first_line(&error))
                    .hint(
                        report::MONITORING,
                        format!(
                            "{}; then {}",
                            next.xtask("logs prometheus"),
                            next.xtask("restart prometheus")
                        ),
                    ),
            ];
        }
    };
    let mut checks = Vec::new();
    checks.push(match series(&prometheus, "up", "job") {
        Ok(up) => {
            let mut down: Vec<String> = up
                .iter()
                .filter(|(_, v)| *v != 1.0)
                .map(|(job, _)| job.clone())
                .collect();
            down.sort();
            classify::targets(next, up.len(), &down)
        }
        Err(error) => Check::of(Category::Prometheus, "targets")
            .fail(first_line(&error))
            .hint(report::MONITORING, next.xtask("logs prometheus")),
    });
    let failures =
        "sum by (rule_group) (increase(prometheus_rule_evaluation_failures_total[5m])) > 0";
    checks.push(match series(&prometheus, failures, "rule_group") {
        Ok(groups) => classify::rule_failures(next, &groups),
        Err(error) => Check::of(Category::Prometheus, "rule-evaluation")
            .fail(first_line(&error))
            .hint(report::RULE_FAILURES, next.xtask("logs prometheus")),
    });
    checks.push(match prometheus.alerts() {
        Ok(alerts) => {
            let firing: Vec<Firing> = alerts
                .iter()
                .filter(|a| a["state"] == "firing")
                .map(|a| Firing {
                    name: a["labels"]["alertname"].as_str().unwrap_or("?").to_owned(),
                    severity: a["labels"]["severity"].as_str().unwrap_or("?").to_owned(),
                    runbook_url: a["annotations"]["runbook_url"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect();
            classify::firing_alerts(&firing)
        }
        Err(error) => Check::of(Category::Prometheus, "firing-alerts")
            .fail(first_line(&error))
            .hint(report::MONITORING, next.xtask("logs prometheus")),
    });
    checks
}

// ---- alertmanager ----

/// The value of an unlabelled sample in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The value of the first sample of `name` (any labels) in Prometheus text.
fn labelled_sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn silence_line(silence: &Value) -> String {
    let matchers: Vec<String> = silence["matchers"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let op = match (m["isEqual"].as_bool(), m["isRegex"].as_bool()) {
                        (Some(false), Some(true)) => "!~",
                        (Some(false), _) => "!=",
                        (_, Some(true)) => "=~",
                        _ => "=",
                    };
                    format!(
                        "{}{op}{}",
                        m["name"].as_str().unwrap_or("?"),
                        m["value"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{{{}}} until {} by {} (id {})",
        matchers.join(","),
        silence["endsAt"].as_str().unwrap_or("?"),
        silence["createdBy"].as_str().unwrap_or("?"),
        silence["id"].as_str().unwrap_or("?")
    )
}

pub fn alertmanager(stack: &Stack, next: &Next) -> Vec<Check> {
    let url = stack.url(Component::Alertmanager);
    let status = get(&format!("{url}/api/v2/status"), &[])
        .and_then(|body| serde_json::from_str::<Value>(&body).context("status not JSON"))
        .map(|status| {
            let loaded = status["config"]["original"]
                .as_str()
                .is_some_and(|c| !c.trim().is_empty());
            let reload = get(&format!("{url}/metrics"), &[])
                .ok()
                .and_then(|m| sample(&m, "alertmanager_config_last_reload_successful"))
                .map(|v| v == 1.0);
            (loaded, reload)
        })
        .map_err(|e| first_line(&e));
    let reachable = status.is_ok();
    let mut checks = vec![classify::alertmanager_config(next, status)];
    if !reachable {
        return checks;
    }
    let failed = prometheus_of(stack)
        .and_then(|p| {
            series(
                &p,
                "sum by (integration) (increase(alertmanager_notifications_failed_total[15m])) > 0",
                "integration",
            )
        })
        .map_err(|e| first_line(&e));
    checks.push(classify::notifications(next, failed));
    checks.push(heartbeat(stack, next));
    checks.push(
        match get(&format!("{url}/api/v2/silences"), &[])
            .and_then(|b| serde_json::from_str::<Value>(&b).context("silences not JSON"))
        {
            Ok(silences) => {
                let active: Vec<String> = silences
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .filter(|s| s["status"]["state"] == "active")
                            .map(silence_line)
                            .collect()
                    })
                    .unwrap_or_default();
                classify::silences(&active)
            }
            Err(error) => Check::of(Category::Alertmanager, "silences")
                .warn(format!("cannot list: {}", first_line(&error)))
                .hint(report::MONITORING, next.xtask("logs alertmanager")),
        },
    );
    checks
}

/// The alert sink's last Watchdog beat (`heartbeat.jsonl`), against how
/// long Alertmanager has run (its start-record's age).
fn heartbeat(stack: &Stack, next: &Next) -> Check {
    let last_beat_age =
        std::fs::read_to_string(stack.data_dir(Component::AlertSink).join("heartbeat.jsonl"))
            .unwrap_or_default()
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|beat| beat["payload"]["status"] == "firing")
            .and_then(|beat| humantime::parse_rfc3339(beat["received_at"].as_str()?).ok())
            .map(|at| at.elapsed().map_or(0, |age| age.as_secs()));
    let alertmanager_up = stack
        .started_at(Component::Alertmanager)
        .and_then(|at| at.elapsed().ok())
        .map_or(u64::MAX, |up| up.as_secs());
    classify::heartbeat(next, last_beat_age, alertmanager_up)
}

// ---- PostgreSQL ----

/// `sql` as the superuser in `database` over the socket; rows of
/// tab-separated fields. Connecting gives up after 3 s and a statement
/// after 5 s, so a hung server cannot hang doctor.
fn sql(stack: &Stack, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut psql = Postgres::new(stack).client("psql");
    psql.args([
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-qtAX",
        "-F",
        "\t",
        "-f",
        "-",
    ])
    .env("PGCONNECT_TIMEOUT", "3")
    .env("PGOPTIONS", "-c statement_timeout=5000");
    let out = run_with_input(&mut psql, sql)?;
    Ok(out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

fn field<T: std::str::FromStr>(row: &[String], i: usize) -> Result<T> {
    row.get(i)
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("field {i} of {row:?}"))
}

fn slots(stack: &Stack) -> Result<Vec<Slot>> {
    sql(
        stack,
        "postgres",
        "SELECT slot_name, active, coalesce(wal_status, ''), \
         coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint \
         FROM pg_replication_slots ORDER BY slot_name",
    )?
    .iter()
    .map(|row| {
        Ok(Slot {
            name: row.first().cloned().unwrap_or_default(),
            active: row.get(1).is_some_and(|a| a == "t"),
            wal_status: row.get(2).cloned().unwrap_or_default(),
            retained: field::<i64>(row, 3)?.max(0).unsigned_abs(),
        })
    })
    .collect()
}

fn archiver(stack: &Stack) -> Result<Archiver> {
    let rows = sql(
        stack,
        "postgres",
        "SELECT coalesce(last_archived_wal, ''), \
         coalesce(extract(epoch FROM now() - last_archived_time)::bigint, -1), \
         failed_count, \
         last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time), \
         (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), \
         (SELECT coalesce(extract(epoch FROM now() - min(modification))::bigint, -1) \
            FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') \
         FROM pg_stat_archiver",
    )?;
    let row = rows.first().context("pg_stat_archiver has no row")?;
    let last = row.first().cloned().unwrap_or_default();
    Ok(Archiver {
        last_archived_age: u64::try_from(field::<i64>(row, 1)?).ok(),
        last_archived_wal: (!last.is_empty()).then_some(last),
        failed_count: field(row, 2)?,
        failing: row.get(3).is_some_and(|f| f == "t"),
        waiting: field(row, 4)?,
        oldest_waiting: u64::try_from(field::<i64>(row, 5)?).ok(),
    })
}

fn postgres_down(category: Category, error: &anyhow::Error, next: &Next) -> Check {
    Check::of(category, "postgres")
        .fail(format!("cannot query PostgreSQL: {}", first_line(error)))
        .hint(report::POSTGRES_DOWN, next.xtask("logs postgres"))
}

/// The newest full backup's age, from pgBackRest's own catalogue.
fn full_backup_age(stack: &Stack) -> Result<Option<u64>> {
    let info: Value =
        serde_json::from_str(&Postgres::new(stack).pgbackrest(&["info", "--output=json"])?)?;
    Ok(info[0]["backup"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "full")
        .filter_map(|b| b["timestamp"]["stop"].as_u64())
        .max()
        .map(|stop| now().saturating_sub(stop)))
}

pub fn backups(stack: &Stack, next: &Next) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match full_backup_age(stack) {
        Ok(age) => classify::last_full(next, age),
        Err(error) => Check::of(Category::Backups, "last-full")
            .fail(format!("pgbackrest info: {}", first_line(&error)))
            .hint(report::BACKUP_TOO_OLD, next.xtask("logs postgres")),
    });
    checks.push(
        match get(
            &format!("{}/metrics", stack.url(Component::Pushgateway)),
            &[],
        ) {
            Ok(text) => classify::last_verify(
                next,
                labelled_sample(&text, "octollm_backup_verify_success").map(|v| v == 1.0),
                labelled_sample(&text, "octollm_backup_last_verify_timestamp_seconds").map(|t| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let t = t.max(0.0) as u64;
                    now().saturating_sub(t)
                }),
            ),
            Err(error) => Check::of(Category::Backups, "last-verify")
                .warn(format!("Pushgateway unreachable: {}", first_line(&error)))
                .hint(
                    report::BACKUP_STATUS_MISSING,
                    next.xtask("restart pushgateway"),
                ),
        },
    );
    match archiver(stack) {
        Ok(a) => checks.push(classify::wal_archiving(next, &a)),
        Err(error) => {
            checks.push(postgres_down(Category::Backups, &error, next));
            return checks;
        }
    }
    checks.push(match slots(stack) {
        Ok(slots) => classify::wal_stream_slot(next, slots.iter().find(|s| s.name == STREAM_SLOT)),
        Err(error) => postgres_down(Category::Backups, &error, next),
    });
    checks
}

fn transaction(row: &[String]) -> Result<Transaction> {
    Ok(Transaction {
        pid: field(row, 0)?,
        seconds: field::<i64>(row, 1)?.max(0).unsigned_abs(),
        state: row.get(2).cloned().unwrap_or_default(),
        application: row.get(3).cloned().unwrap_or_default(),
    })
}

fn database_checks(stack: &Stack, next: &Next) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let rows = sql(
        stack,
        "postgres",
        "SELECT count(*), current_setting('max_connections') FROM pg_stat_activity \
         WHERE backend_type = 'client backend'",
    )?;
    let row = rows.first().context("no row")?;
    checks.push(classify::connections(next, field(row, 0)?, field(row, 1)?));

    let oldest = |filter: &str, since: &str| -> Result<Option<Transaction>> {
        let rows = sql(
            stack,
            "postgres",
            &format!(
                "SELECT pid, extract(epoch FROM now() - {since})::bigint, state, \
                 replace(application_name, E'\\t', ' ') \
                 FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL {filter} \
                 ORDER BY {since} LIMIT 1"
            ),
        )?;
        rows.first().map(|r| transaction(r)).transpose()
    };
    let any = oldest("", "xact_start")?;
    let idle = oldest("AND state LIKE 'idle in transaction%'", "state_change")?;
    checks.push(classify::transactions(any.as_ref(), idle.as_ref()));

    let rows = sql(
        stack,
        DATABASE,
        "SELECT n_live_tup, n_dead_tup, pg_total_relation_size(relid), \
         coalesce(extract(epoch FROM now() - greatest(last_vacuum, last_autovacuum))::bigint, -1) \
         FROM pg_stat_user_tables WHERE relname = 'tasks'",
    )?;
    checks.push(match rows.first() {
        None => Check::of(Category::Database, "tasks-bloat")
            .fail("no table tasks in database octollm (migrations not applied?)")
            .hint(report::DATABASE, next.xtask("logs orchestrator")),
        Some(row) => {
            let vacuumed: i64 = field(row, 3)?;
            let last = u64::try_from(vacuumed)
                .map_or("never".to_owned(), |s| format!("{} ago", classify::age(s)));
            classify::tasks_bloat(
                field::<i64>(row, 0)?.max(0).unsigned_abs(),
                field::<i64>(row, 1)?.max(0).unsigned_abs(),
                field(row, 2)?,
                &last,
            )
        }
    });
    checks.push(classify::slot_retention(next, &slots(stack)?));
    Ok(checks)
}

pub fn database(stack: &Stack, next: &Next) -> Vec<Check> {
    database_checks(stack, next)
        .unwrap_or_else(|error| vec![postgres_down(Category::Database, &error, next)])
}

// ---- resources ----

/// `(available, size, mount point)` of the filesystem holding `path` (or
/// its nearest existing ancestor).
fn filesystem(path: &Path) -> Result<(u64, u64, String, PathBuf)> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let output = Command::new("df")
        .args(["-P", "-B1"])
        .arg(&existing)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().nth(1).context("df printed nothing")?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("df: {line}"))
    };
    Ok((
        number(3)?,
        number(1)?,
        fields.last().map_or(String::new(), |m| (*m).to_owned()),
        existing,
    ))
}

/// Free space where the stack keeps its state and where PostgreSQL keeps
/// its files, once per filesystem.
pub fn disks(category: Category, places: &[(&str, PathBuf)]) -> Vec<Check> {
    let mut seen = Vec::new();
    let mut checks = Vec::new();
    for (what, path) in places {
        match filesystem(path) {
            Ok((avail, size, mount, existing)) => {
                if seen.contains(&mount) {
                    continue;
                }
                seen.push(mount);
                checks.push(classify::disk(
                    category,
                    what,
                    &existing.display().to_string(),
                    avail,
                    size,
                ));
            }
            Err(error) => checks.push(
                Check::of(category, format!("disk-{what}"))
                    .warn(format!("cannot read: {}", first_line(&error))),
            ),
        }
    }
    checks
}

fn open_files(pid: i32) -> Option<(u64, u64)> {
    let open = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let limit = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some((open, limit))
}

/// A `kB` field of a `/proc` file (`VmRSS:  1234 kB`), in bytes.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

pub fn resources(stack: &Stack) -> Vec<Check> {
    let mut checks = disks(
        Category::Resources,
        &[
            ("state", stack.state_dir.clone()),
            ("postgres", stack.postgres_dir()),
        ],
    );
    let host = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| kb_field(&m, "MemTotal:"))
        .unwrap_or(0);
    let mut fds: Vec<Usage> = Vec::new();
    let mut unreadable = Vec::new();
    let mut memory: Vec<Usage> = Vec::new();
    for component in Component::ALL {
        let Some(pid) = stack.pid(component) else {
            continue;
        };
        match open_files(pid) {
            Some((open, limit)) => fds.push((component, open, limit)),
            None => unreadable.push(component),
        }
        if let Some(rss) = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| kb_field(&s, "VmRSS:"))
        {
            memory.push((component, rss, host));
        }
    }
    checks.push(classify::file_descriptors(&fds, &unreadable));
    checks.push(classify::memory(&memory));
    checks
}

// ---- prerequisites ----

fn missing_packages(packages: &[&str]) -> Result<Vec<String>> {
    let output = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package}\t${Status}\n")
        .args(packages)
        .output()
        .context("dpkg-query")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let installed: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("install ok installed"))
        .filter_map(|l| l.split('\t').next())
        .collect();
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(p))
        .map(|p| (*p).to_owned())
        .collect())
}

/// Who listens on `port`, per `ss` (`users:(("nc",pid=9,fd=3))`).
fn listener(port: u16) -> String {
    Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let users = text.split_whitespace().find(|w| w.starts_with("users:"))?;
            // users:(("postgres",pid=13284,fd=5)) → postgres pid 13284
            let name = users.split('"').nth(1)?;
            let pid = users.split("pid=").nth(1)?.split([',', ')']).next()?;
            Some(format!("{name} pid {pid}"))
        })
        .unwrap_or_else(|| "another process".to_owned())
}

fn writable(dir: &Path) -> Result<(), String> {
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(format!(".doctor-{}", std::process::id()));
    match fs::write(&probe, b"") {
        Ok(()) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => Err(format!("{} not writable: {error}", existing.display())),
    }
}

/// Secret files of the state directory that others may read.
fn exposed_secrets(state_dir: &Path) -> Vec<String> {
    let mut files = vec![state_dir.join("api-token")];
    if let Ok(entries) = fs::read_dir(state_dir.join("secrets")) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    files
        .into_iter()
        .filter_map(|path| {
            let mode = fs::metadata(&path).ok()?.permissions().mode();
            (mode & 0o077 != 0).then(|| {
                format!(
                    "{} ({:o})",
                    path.strip_prefix(state_dir).unwrap_or(&path).display(),
                    mode & 0o777
                )
            })
        })
        .collect()
}

/// Before a deploy: packages, the stack's ports, permissions, disk. `stack`
/// is the one deployed in `state_dir`, if any; otherwise the ports are those
/// a deploy on `port_base` would take.
pub fn prerequisites(
    state_dir: &Path,
    stack: Option<&Stack>,
    port_base: u16,
    root: bool,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let packages = crate::stack::prerequisites::packages();
    checks.push(match missing_packages(&packages) {
        Ok(missing) => classify::packages(&missing, packages.len()),
        Err(error) => Check::of(Category::Prerequisites, "packages")
            .fail(format!("cannot ask dpkg: {}", first_line(&error))),
    });
    let base = stack.map_or(port_base, |s| s.port_base);
    let rows: Vec<(Component, u16, Port)> = Component::ALL
        .iter()
        .filter_map(|&c| {
            let port = c.default_port()?.checked_add(base)?;
            let state = if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                Port::Free
            } else if let Some(pid) = stack.and_then(|s| s.pid(c)) {
                Port::Ours(pid)
            } else {
                Port::Taken(listener(port))
            };
            Some((c, port, state))
        })
        .collect();
    checks.push(classify::ports(base, &rows));
    let state_dir = state_dir
        .canonicalize()
        .unwrap_or_else(|_| state_dir.to_path_buf());
    checks.push(classify::permissions(
        root,
        writable(&state_dir),
        &exposed_secrets(&state_dir),
    ));
    let postgres = stack.map_or_else(|| PathBuf::from("/var/lib/octollm"), Stack::postgres_dir);
    checks.extend(disks(
        Category::Prerequisites,
        &[("state", state_dir), ("postgres", postgres)],
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_from_exposition_text() {
        let text = "# HELP alertmanager_config_last_reload_successful x\n\
                    alertmanager_config_last_reload_successful 1\n\
                    alertmanager_config_last_reload_successful_timestamp_seconds 1.7e9\n\
                    octollm_backup_verify_success{instance=\"\",job=\"octollm-backup\",store=\"postgres\"} 0\n";
        assert_eq!(
            sample(text, "alertmanager_config_last_reload_successful"),
            Some(1.0)
        );
        assert_eq!(sample(text, "absent_metric"), None);
        assert_eq!(
            labelled_sample(text, "octollm_backup_verify_success"),
            Some(0.0)
        );
        assert_eq!(
            labelled_sample(
                text,
                "alertmanager_config_last_reload_successful_timestamp_seconds"
            ),
            Some(1.7e9)
        );
        assert_eq!(labelled_sample(text, "octollm_backup"), None);
    }

    #[test]
    fn a_refused_token_reads_as_its_problem() {
        let error = anyhow::anyhow!(
            "curl http://127.0.0.1:28095/health/deep: {{\"type\":\"https://octollm.dev/problems/unauthorized\",\"title\":\"Unauthorized\",\"status\":401,\"detail\":\"bearer token is not valid\"}}curl: (22) The requested URL returned error: 401"
        );
        assert_eq!(problem_of(&error), "HTTP 401 Unauthorized");
        let plain = anyhow::anyhow!("curl: (7) Failed to connect\nmore");
        assert_eq!(problem_of(&plain), "curl: (7) Failed to connect");
    }

    #[test]
    fn proc_fields_are_bytes() {
        let status = "Name:\tx\nVmRSS:\t   2048 kB\n";
        assert_eq!(kb_field(status, "VmRSS:"), Some(2 * 1024 * 1024));
        assert_eq!(kb_field(status, "VmSwap:"), None);
    }

    #[test]
    fn a_silence_reads_as_its_matchers() {
        let silence = serde_json::json!({
            "id": "abc", "createdBy": "ops", "endsAt": "2026-12-07T18:00:00Z",
            "matchers": [
                {"name": "alertname", "value": "ServiceDown", "isEqual": true, "isRegex": false},
                {"name": "job", "value": "judge.*", "isEqual": true, "isRegex": true}
            ],
            "status": {"state": "active"}
        });
        assert_eq!(
            silence_line(&silence),
            "{alertname=ServiceDown,job=~judge.*} until 2026-12-07T18:00:00Z by ops (id abc)"
        );
    }

    /// This process's own figures, read as doctor reads a component's.
    #[test]
    fn this_process_has_open_files_and_memory() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let (open, limit) = open_files(pid).unwrap();
        assert!(open > 0 && limit >= open, "{open}/{limit}");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(kb_field(&status, "VmRSS:").unwrap() > 0);
    }

    #[test]
    fn a_port_held_by_a_stranger_is_taken() {
        let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        // `ss` names this test binary, or says "another process" without ss.
        assert!(!listener(port).is_empty());
    }

    #[test]
    fn world_readable_secrets_are_named() {
        let dir = std::env::temp_dir().join(format!("doctor-secrets-{}", std::process::id()));
        fs::create_dir_all(dir.join("secrets")).unwrap();
        fs::write(dir.join("api-token"), "t").unwrap();
        fs::set_permissions(dir.join("api-token"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(dir.join("secrets/service-token"), "t").unwrap();
        fs::set_permissions(
            dir.join("secrets/service-token"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert_eq!(exposed_secrets(&dir), ["secrets/service-token (644)"]);
        assert!(writable(&dir).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
