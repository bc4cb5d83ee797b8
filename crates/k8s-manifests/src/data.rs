//! The data tier: PostgreSQL (StatefulSet, WAL archived and backed up by
//! pgBackRest to object storage), Redis (StatefulSet, AOF), each with its
//! Prometheus exporter as a sidecar, and Velero schedules.
//!
//! PostgreSQL's and Redis' settings are the local stack's templates
//! (`deploy/local/postgresql.conf.tmpl`, `pgbackrest.conf.tmpl`,
//! `redis.conf.tmpl`) rendered with the pod's paths.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::{BackupTemplate, Custom, ScheduleSpec, VELERO_V1};
use crate::services::{POSTGRES, POSTGRES_PORT, POSTGRES_SECRET, REDIS, REDIS_PORT, REDIS_SECRET};
use crate::workload::{
    App, Check, Kind, Part, Size, claim, config_volume, empty_dir, env, labels, meta, mount,
    secret_env,
};
use crate::{NS_APP, NS_DATA, NS_MONITORING, Object, Params};

pub const POSTGRES_IMAGE: &str = "postgres";
pub const POSTGRES_EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1";
pub const REDIS_IMAGE: &str = "docker.io/library/redis:7.2.10-bookworm";
pub const REDIS_EXPORTER_IMAGE: &str = "docker.io/oliver006/redis_exporter:v1.74.0";
pub const PGBACKREST_SECRET: &str = "octollm-pgbackrest-s3";
pub const VELERO_NAMESPACE: &str = "velero";
/// UID of `postgres` in the PostgreSQL image (deploy/containers/Containerfile).
pub const POSTGRES_UID: i64 = 10999;

/// `${VAR}` substitution; every variable must be given.
pub fn render_template(root: &Path, file: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let path = root.join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .with_context(|| format!("{file}: unclosed ${{"))?;
        let name = &after[..end];
        let value = vars
            .get(name)
            .with_context(|| format!("{file}: no value for ${{{name}}}"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces one whole line, which must exist (so template drift fails the rendering).
fn replace_line(text: &str, file: &str, old: &str, new: &str) -> Result<String> {
    if !text.lines().any(|l| l.trim() == old) {
        bail!("{file}: expected the line `{old}`");
    }
    Ok(text
        .lines()
        .map(|l| if l.trim() == old { new } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

const PGDATA: &str = "/var/lib/postgresql/data/pgdata";
const SOCKET_DIR: &str = "/var/run/postgresql";
const PG_CONFIG_DIR: &str = "/etc/octollm/postgres";
const PGBACKREST_CONFIG: &str = "/etc/octollm/postgres/pgbackrest.conf";

/// First start: initdb with checksums, roles and databases (passwords read
/// from the Secret through the environment with psql's `\getenv`, statement
/// logging off), then the server in the foreground with the rendered config.
const POSTGRES_START: &str = r#"set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --data-checksums --auth-local=peer --auth-host=scram-sha-256 -U postgres -D "$PGDATA"
  echo 'host all all all scram-sha-256' >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses= -c unix_socket_directories=/var/run/postgresql -c archive_mode=off" start
  psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d postgres -f /etc/octollm/postgres/provision.sql
  pg_ctl -D "$PGDATA" -w -m fast stop
fi
cp /etc/octollm/postgres/postgresql.conf "$PGDATA/postgresql.conf"
exec postgres -D "$PGDATA"
"#;

const PROVISION_SQL: &str = r#"SET log_min_error_statement = panic;
\getenv app_password APP_PASSWORD
\getenv monitor_password MONITOR_PASSWORD
CREATE ROLE octollm LOGIN PASSWORD :'app_password';
CREATE ROLE octollm_monitor LOGIN IN ROLE pg_monitor PASSWORD :'monitor_password';
CREATE DATABASE octollm OWNER octollm;
CREATE DATABASE octollm_knowledge OWNER octollm;
"#;

/// The backup schedule inside the pod (pgBackRest needs the data directory):
/// the stanza, then a full backup and a verify when the pod starts, a full
/// backup and a verify daily at 03:00 UTC, a differential every other hour;
/// WAL is archived continuously by `archive_command`. After each run the
/// backup metrics the alert rules watch (`deploy/monitoring/rules/backup.yml`)
/// replace the Pushgateway group job=octollm-backup, store=postgres, as
/// `cargo xtask backup` does locally.
const BACKUP_LOOP: &str = r#"set -u
CONF=/etc/octollm/postgres/pgbackrest.conf
STATE=/tmp/backup-state
mkdir -p "$STATE"
push() {
  {
    for kind in full diff; do
      if [ -f "$STATE/$kind" ]; then
        printf 'octollm_backup_last_success_timestamp_seconds{kind="%s"} %s\n' "$kind" "$(cat "$STATE/$kind")"
        printf 'octollm_backup_duration_seconds{kind="%s"} %s\n' "$kind" "$(cat "$STATE/$kind.duration")"
      fi
    done
    if [ -f "$STATE/verify" ]; then
      printf 'octollm_backup_verify_success %s\n' "$(cat "$STATE/verify")"
      printf 'octollm_backup_last_verify_timestamp_seconds %s\n' "$(cat "$STATE/verify.at")"
    fi
  } | curl -sS --max-time 10 -X PUT --data-binary @- "$PUSHGATEWAY_GROUP_URL" \
    || echo "pushing the backup metrics failed" >&2
}
backup() {
  start=$(date +%s)
  if pgbackrest --config="$CONF" --stanza=octollm --type="$1" backup; then
    end=$(date +%s)
    echo "$end" > "$STATE/$1"
    echo $((end - start)) > "$STATE/$1.duration"
  else
    echo "pgbackrest $1 backup failed" >&2
  fi
}
verify() {
  if pgbackrest --config="$CONF" --stanza=octollm verify; then echo 1 > "$STATE/verify"; else echo 0 > "$STATE/verify"; fi
  date +%s > "$STATE/verify.at"
}
until pg_isready -q -h /var/run/postgresql; do sleep 2; done
pgbackrest --config="$CONF" --stanza=octollm stanza-create
backup full
verify
push
while :; do
  sleep $(( 3600 - $(date +%s) % 3600 ))
  if [ "$(date -u +%H)" = "03" ]; then backup full; verify; else backup diff; fi
  push
done
"#;

fn postgres_config(root: &Path) -> Result<ConfigMap> {
    let vars = BTreeMap::from([
        ("POSTGRES_PORT", POSTGRES_PORT.to_string()),
        ("POSTGRES_SOCKET_DIR", SOCKET_DIR.to_owned()),
        ("PGBACKREST_CONFIG", PGBACKREST_CONFIG.to_owned()),
        ("POSTGRES_DATA_DIR", PGDATA.to_owned()),
        ("BACKUP_REPO", "/octollm".to_owned()),
        ("PGBACKREST_LOG_DIR", "/tmp/pgbackrest/log".to_owned()),
        ("PGBACKREST_LOCK_DIR", "/tmp/pgbackrest/lock".to_owned()),
        ("PGBACKREST_SPOOL_DIR", "/tmp/pgbackrest/spool".to_owned()),
    ]);
    let pg_file = "deploy/local/postgresql.conf.tmpl";
    let postgresql = render_template(root, pg_file, &vars)?;
    let postgresql = replace_line(
        &postgresql,
        pg_file,
        "listen_addresses = '127.0.0.1'",
        "listen_addresses = '*'",
    )?;
    let br_file = "deploy/local/pgbackrest.conf.tmpl";
    let pgbackrest = render_template(root, br_file, &vars)?;
    // The repository is object storage; the key pair comes from the Secret
    // as PGBACKREST_REPO1_S3_KEY / _KEY_SECRET, the bucket from the overlay.
    let pgbackrest = replace_line(
        &pgbackrest,
        br_file,
        "[global]",
        "[global]\nrepo1-type=s3\nrepo1-s3-bucket=octollm-backups\nrepo1-s3-endpoint=s3.amazonaws.com\nrepo1-s3-region=us-east-1",
    )?;
    Ok(ConfigMap {
        metadata: meta("postgres-config", NS_DATA, labels(POSTGRES, "database")),
        data: Some(BTreeMap::from([
            ("postgresql.conf".to_owned(), postgresql),
            ("pgbackrest.conf".to_owned(), pgbackrest),
            ("start.sh".to_owned(), POSTGRES_START.to_owned()),
            ("provision.sql".to_owned(), PROVISION_SQL.to_owned()),
            ("backup-loop.sh".to_owned(), BACKUP_LOOP.to_owned()),
        ])),
        ..ConfigMap::default()
    })
}

fn redis_config(root: &Path) -> Result<ConfigMap> {
    let file = "deploy/local/redis.conf.tmpl";
    let vars = BTreeMap::from([
        ("REDIS_PORT", REDIS_PORT.to_string()),
        ("REDIS_DATA_DIR", "/data".to_owned()),
        ("REDIS_PASSWORD", "${REDIS_PASSWORD}".to_owned()),
    ]);
    let text = render_template(root, file, &vars)?;
    let text = replace_line(&text, file, "bind 127.0.0.1", "bind 0.0.0.0")?;
    // The password is the Secret's `requirepass.conf` key (`requirepass <password>`), included.
    let text = replace_line(
        &text,
        file,
        "requirepass ${REDIS_PASSWORD}",
        "include /etc/redis/secret/requirepass.conf",
    )?;
    Ok(ConfigMap {
        metadata: meta("redis-config", NS_DATA, labels(REDIS, "cache")),
        data: Some(BTreeMap::from([("redis.conf".to_owned(), text)])),
        ..ConfigMap::default()
    })
}

pub fn objects(root: &Path, params: &Params) -> Result<Vec<Object>> {
    let mut out: Vec<Object> = vec![postgres_config(root)?.into(), redis_config(root)?.into()];
    out.extend(postgres(params).objects());
    out.extend(redis(params).objects());
    out.extend(velero_schedules());
    Ok(out)
}

fn postgres(params: &Params) -> App {
    let image = format!("{}/{POSTGRES_IMAGE}:15", params.registry);
    let ready = Check::Exec(vec![
        "pg_isready".into(),
        "-q".into(),
        "-h".into(),
        SOCKET_DIR.into(),
    ]);
    let config_mounts = || {
        vec![
            mount("data", "/var/lib/postgresql/data", false),
            mount("socket", SOCKET_DIR, false),
            mount("config", PG_CONFIG_DIR, true),
        ]
    };
    let path = "/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin";
    let mut server = Part::new(
        "postgres",
        &image,
        params.size(Size::new(250, 2000, 512, 2048)),
        ready.clone(),
        ready.clone(),
    );
    server.command = vec!["sh".into(), format!("{PG_CONFIG_DIR}/start.sh")];
    server.ports = vec![("postgres", POSTGRES_PORT)];
    server.mounts = config_mounts();
    server.env = vec![
        env("PATH", path),
        env("PGDATA", PGDATA),
        secret_env("APP_PASSWORD", POSTGRES_SECRET, "app-password"),
        secret_env("MONITOR_PASSWORD", POSTGRES_SECRET, "monitor-password"),
        secret_env("PGBACKREST_REPO1_S3_KEY", PGBACKREST_SECRET, "key"),
        secret_env(
            "PGBACKREST_REPO1_S3_KEY_SECRET",
            PGBACKREST_SECRET,
            "key-secret",
        ),
    ];
    let socket_up = Check::Exec(vec![
        "test".into(),
        "-S".into(),
        format!("{SOCKET_DIR}/.s.PGSQL.{POSTGRES_PORT}"),
    ]);
    let mut backup = Part::new(
        "pgbackrest",
        &image,
        params.size(Size::new(50, 1000, 64, 512)),
        socket_up.clone(),
        socket_up,
    );
    backup.command = vec!["sh".into(), format!("{PG_CONFIG_DIR}/backup-loop.sh")];
    backup.mounts = config_mounts();
    backup.env = vec![
        env("PATH", path),
        env(
            "PUSHGATEWAY_GROUP_URL",
            format!(
                "{}/metrics/job/octollm-backup/store/postgres",
                crate::services::service_url(
                    crate::monitoring::PUSHGATEWAY,
                    NS_MONITORING,
                    crate::monitoring::PUSHGATEWAY_PORT,
                )
            ),
        ),
        secret_env("PGBACKREST_REPO1_S3_KEY", PGBACKREST_SECRET, "key"),
        secret_env(
            "PGBACKREST_REPO1_S3_KEY_SECRET",
            PGBACKREST_SECRET,
            "key-secret",
        ),
    ];
    let mut exporter = Part::new(
        "postgres-exporter",
        POSTGRES_EXPORTER_IMAGE,
        params.size(Size::new(20, 200, 32, 128)),
        Check::Tcp { port: "metrics" },
        Check::Http {
            path: "/metrics",
            port: "metrics",
        },
    );
    exporter.ports = vec![("metrics", 9187)];
    exporter.env = vec![
        env(
            "DATA_SOURCE_URI",
            format!("localhost:{POSTGRES_PORT}/postgres?sslmode=disable"),
        ),
        env("DATA_SOURCE_USER", "octollm_monitor"),
        env(
            "DATA_SOURCE_PASS_FILE",
            "/etc/postgres-exporter/monitor-password",
        ),
    ];
    exporter.mounts = vec![mount("monitor-password", "/etc/postgres-exporter", true)];
    let mut app = App::new(
        POSTGRES,
        NS_DATA,
        "database",
        Kind::StatefulSet {
            claims: vec![claim(
                "data",
                &params.postgres_storage,
                params.storage_class.as_deref(),
            )],
        },
        server,
    );
    app.containers.push(backup);
    app.containers.push(exporter);
    app.service_ports = vec![("postgres", POSTGRES_PORT), ("metrics", 9187)];
    app.service_labels
        .insert(crate::workload::JOB_LABEL.to_owned(), "postgres".to_owned());
    app.volumes = vec![
        empty_dir("tmp"),
        empty_dir("socket"),
        config_volume("config", "postgres-config"),
        crate::workload::secret_key_volume("monitor-password", POSTGRES_SECRET, "monitor-password"),
    ];
    // The image's `postgres` user (initdb needs a passwd entry).
    app.user = POSTGRES_UID;
    // A fast shutdown checkpoints; give it time.
    app.grace_seconds = 120;
    app
}

fn redis(params: &Params) -> App {
    let ping = Check::Tcp { port: "redis" };
    let mut server = Part::new(
        "redis",
        REDIS_IMAGE,
        params.size(Size::new(100, 1000, 320, 512)),
        ping.clone(),
        ping,
    );
    server.command = vec!["redis-server".into(), "/etc/redis/redis.conf".into()];
    server.ports = vec![("redis", REDIS_PORT)];
    server.mounts = vec![
        mount("data", "/data", false),
        mount("config", "/etc/redis/redis.conf", true),
        mount("secret", "/etc/redis/secret", true),
    ];
    server.mounts[1].sub_path = Some("redis.conf".to_owned());
    let mut exporter = Part::new(
        "redis-exporter",
        REDIS_EXPORTER_IMAGE,
        params.size(Size::new(20, 200, 32, 128)),
        Check::Tcp { port: "metrics" },
        Check::Http {
            path: "/metrics",
            port: "metrics",
        },
    );
    exporter.ports = vec![("metrics", 9121)];
    exporter.env = vec![
        env("REDIS_ADDR", format!("redis://localhost:{REDIS_PORT}")),
        secret_env("REDIS_PASSWORD", REDIS_SECRET, "password"),
    ];
    let mut app = App::new(
        REDIS,
        NS_DATA,
        "cache",
        Kind::StatefulSet {
            claims: vec![claim(
                "data",
                &params.redis_storage,
                params.storage_class.as_deref(),
            )],
        },
        server,
    );
    app.containers.push(exporter);
    app.service_ports = vec![("redis", REDIS_PORT), ("metrics", 9121)];
    app.service_labels
        .insert(crate::workload::JOB_LABEL.to_owned(), "redis".to_owned());
    app.volumes = vec![
        empty_dir("tmp"),
        config_volume("config", "redis-config"),
        crate::workload::secret_key_volume("secret", REDIS_SECRET, "requirepass.conf"),
    ];
    app.grace_seconds = 30;
    app
}

fn velero_schedules() -> Vec<Object> {
    let schedule = |name: &str, cron: &str, namespaces: Vec<String>, ttl: &str| -> Object {
        Object::Schedule(Box::new(Custom {
            api_version: VELERO_V1,
            kind: "Schedule",
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(VELERO_NAMESPACE.to_owned()),
                labels: Some(labels(name, "backup")),
                ..ObjectMeta::default()
            },
            spec: ScheduleSpec {
                schedule: cron.to_owned(),
                template: BackupTemplate {
                    included_namespaces: namespaces,
                    snapshot_volumes: true,
                    default_volumes_to_fs_backup: false,
                    ttl: ttl.to_owned(),
                    storage_location: "default".to_owned(),
                },
                use_owner_references_in_backup: false,
            },
        }))
    };
    vec![
        schedule(
            "octollm-daily-full",
            "0 2 * * *",
            vec![
                NS_APP.to_owned(),
                NS_DATA.to_owned(),
                NS_MONITORING.to_owned(),
            ],
            "720h0m0s",
        ),
        schedule(
            "octollm-hourly-data",
            "0 * * * *",
            vec![NS_DATA.to_owned()],
            "72h0m0s",
        ),
    ]
}
