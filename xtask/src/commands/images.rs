//! `cargo xtask images`: builds the local container images that the
//! integration tests run through testcontainers, from Debian packages, and
//! one image per service binary (`localhost/octollm/<service>:<version>`)
//! from the release binaries this machine built.
//!
//! No registry is needed: each image is a `debootstrap --variant=minbase`
//! root filesystem (with the service's packages included) from the mirror in
//! the machine's own apt sources, imported with `podman import` (or
//! `docker import` when the engine is Docker). Downloaded packages stay in
//! `target/octollm-images/debs` to speed up rebuilds; the root filesystems
//! are deleted once imported.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::say;
use crate::stack::container_engine::{self, Flavor};
use crate::util::progress;

/// PostgreSQL image used by `test-support`.
pub const POSTGRES_IMAGE: &str = "localhost/octollm/postgres:15";
/// Redis image used by `test-support`.
pub const REDIS_IMAGE: &str = "localhost/octollm/redis:7";

/// Build the local container images: PostgreSQL 15 and Redis 7 from Debian
/// packages, and one per service from its release binary.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
cargo xtask images                 PostgreSQL, Redis and the nine service images (builds the release binaries)\n  \
cargo xtask images --no-services   only the PostgreSQL and Redis images the tests need\n  \
cargo xtask images --force         rebuild all of them")]
pub struct Images {
    /// Rebuild the images even when they already exist.
    #[arg(long)]
    force: bool,
    /// Only the PostgreSQL and Redis images (what the tests need).
    #[arg(long)]
    no_services: bool,
}

impl Images {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let docker_host = build_images(sh, self.force)?;
        if !self.no_services {
            build_service_images(sh, self.force)?;
        }
        say!("for the tests: export DOCKER_HOST={docker_host}");
        Ok(())
    }
}

/// Makes sure the engine runs and both images exist, building the missing ones.
pub fn ensure_images(sh: &Shell) -> Result<()> {
    build_images(sh, false).map(drop)
}

/// One image: which packages go into it and how it is configured.
struct ImageSpec {
    /// Full reference, `localhost/...:tag`.
    reference: &'static str,
    /// Short name for directories.
    short: &'static str,
    /// Packages on top of minbase.
    packages: &'static [&'static str],
    /// (repository path, path inside the root filesystem) of executable files.
    files: &'static [(&'static str, &'static str)],
    /// Paths inside the root filesystem removed before import; a `*` in a
    /// component matches any run of characters.
    prune: &'static [&'static str],
    /// Dockerfile instructions applied with `import --change`.
    changes: &'static [&'static str],
}

const BASE_PRUNE: &[&str] = &[
    "var/lib/apt/lists",
    "var/cache/apt/archives",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/i18n",
];

const IMAGES: &[ImageSpec] = &[
    ImageSpec {
        reference: POSTGRES_IMAGE,
        short: "postgres",
        packages: &["postgresql-15", "tzdata"],
        files: &[(
            "deploy/containers/postgres/entrypoint.sh",
            "usr/local/bin/octollm-postgres-entrypoint",
        )],
        // The cluster that the package's postinst creates is not used: the
        // entrypoint initialises $PGDATA itself. JIT (LLVM, ~150 MB) is
        // removed and switched off: it would halve the image for nothing.
        prune: &[
            "var/lib/postgresql/15",
            "etc/postgresql/15",
            "usr/lib/postgresql/15/lib/llvmjit*",
            "usr/lib/postgresql/15/lib/bitcode",
            "usr/lib/*/libLLVM-*",
            "usr/lib/*/libz3.so*",
        ],
        changes: &[
            r#"ENTRYPOINT ["/usr/local/bin/octollm-postgres-entrypoint"]"#,
            "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV PGDATA=/var/lib/postgresql/data",
            "ENV LANG=C.UTF-8",
            "EXPOSE 5432/tcp",
            // Fast shutdown: SIGTERM would wait for every client to leave.
            "STOPSIGNAL SIGINT",
        ],
    },
    ImageSpec {
        reference: REDIS_IMAGE,
        short: "redis",
        packages: &["redis-server"],
        files: &[],
        prune: &[],
        changes: &[
            r#"CMD ["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/var/lib/redis"]"#,
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            "USER redis",
            "WORKDIR /var/lib/redis",
            "EXPOSE 6379/tcp",
        ],
    },
];

/// Ensures the engine, builds what is missing (everything with `force`) and
/// returns the engine's `DOCKER_HOST`.
fn build_images(sh: &Shell, force: bool) -> Result<String> {
    let docker_host = container_engine::ensure_engine(sh)?;
    let engine = Engine {
        flavor: container_engine::flavor(&docker_host)?,
        docker_host: docker_host.clone(),
        conf: container_engine::containers_conf(sh),
    };
    let todo: Vec<&ImageSpec> = IMAGES
        .iter()
        .filter(|spec| force || engine.image_id(sh, spec.reference).is_none())
        .collect();
    if todo.is_empty() {
        say!(
            "images present: {}",
            IMAGES
                .iter()
                .map(|s| s.reference)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(docker_host);
    }
    if !container_engine::is_root(sh) {
        bail!(
            "building {} needs root (debootstrap); run `sudo cargo xtask images`",
            todo.iter()
                .map(|s| s.reference)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    container_engine::apt_install(sh, "debootstrap", &["debootstrap"])?;
    let source = debian_source()?;
    say!(
        "debootstrap mirror {} (suite {}, from the apt sources)",
        source.uri,
        source.suite
    );
    let work_dir = sh.current_dir().join("target/octollm-images");
    let total = Instant::now();
    for spec in todo {
        build_image(sh, &engine, &source, &work_dir, spec)?;
    }
    say!("images built in {:.1}s", total.elapsed().as_secs_f64());
    Ok(docker_host)
}

struct Engine {
    flavor: Flavor,
    docker_host: String,
    conf: PathBuf,
}

impl Engine {
    /// The engine's CLI with the environment it needs.
    fn command(&self) -> Command {
        let mut command = Command::new(self.flavor.cli());
        match self.flavor {
            Flavor::Podman => command.env("CONTAINERS_CONF", &self.conf),
            Flavor::Docker => command.env("DOCKER_HOST", &self.docker_host),
        };
        command
    }

    /// A label of a local image.
    fn label(&self, sh: &Shell, reference: &str, label: &str) -> Option<String> {
        let cli = self.flavor.cli();
        let format = format!("{{{{index .Labels \"{label}\"}}}}");
        let mut inspect = cmd!(sh, "{cli} image inspect --format {format} {reference}")
            .quiet()
            .ignore_stderr();
        inspect = match self.flavor {
            Flavor::Podman => inspect.env("CONTAINERS_CONF", &self.conf),
            Flavor::Docker => inspect.env("DOCKER_HOST", &self.docker_host),
        };
        inspect
            .read()
            .ok()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty() && l != "<no value>")
    }

    fn image_id(&self, sh: &Shell, reference: &str) -> Option<String> {
        let cli = self.flavor.cli();
        let format = "{{.Id}}";
        let mut inspect = cmd!(sh, "{cli} image inspect --format {format} {reference}")
            .quiet()
            .ignore_stderr();
        inspect = match self.flavor {
            Flavor::Podman => inspect.env("CONTAINERS_CONF", &self.conf),
            Flavor::Docker => inspect.env("DOCKER_HOST", &self.docker_host),
        };
        inspect
            .read()
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
    }
}

fn build_image(
    sh: &Shell,
    engine: &Engine,
    source: &AptSource,
    work_dir: &Path,
    spec: &ImageSpec,
) -> Result<()> {
    let started = Instant::now();
    let debs = work_dir.join("debs");
    let rootfs = work_dir.join(format!("rootfs-{}", spec.short));
    fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    remove_rootfs(sh, &rootfs)?;

    let step = progress::step(format!(
        "{}: debootstrap into {}",
        spec.reference,
        rootfs.display()
    ));
    let include = format!("--include={}", spec.packages.join(","));
    let cache = format!("--cache-dir={}", debs.display());
    let keyring = keyring_args(source);
    debootstrap(
        sh,
        source,
        &include,
        &cache,
        &keyring,
        &rootfs,
        spec.reference,
    )?;
    drop(step);
    let bootstrapped = started.elapsed();

    for (from, to) in spec.files {
        let target = rootfs.join(to);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(sh.current_dir().join(from), &target)
            .with_context(|| format!("copying {from} into the image"))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    }
    for path in BASE_PRUNE
        .iter()
        .chain(spec.prune)
        .flat_map(|pattern| expand(&rootfs, pattern))
    {
        if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)?;
            // apt expects these directories to exist.
            if path.ends_with("lists") || path.ends_with("archives") {
                fs::create_dir_all(path.join("partial"))?;
            }
        } else {
            fs::remove_file(&path)?;
        }
    }

    let old_id = engine.image_id(sh, spec.reference);
    say!("{}: {} import", spec.reference, engine.flavor.cli());
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning tar")?;
    let tar_out = tar.stdout.take().context("tar has no stdout")?;
    let mut import = engine.command();
    import.arg("import");
    for change in spec.changes {
        import.arg("--change").arg(change);
    }
    let output = import
        .arg("-")
        .arg(spec.reference)
        .stdin(Stdio::from(tar_out))
        .output()
        .with_context(|| format!("running {} import", engine.flavor.cli()))?;
    let tar_status = tar.wait()?;
    if !output.status.success() || !tar_status.success() {
        bail!(
            "importing {} failed (tar: {tar_status}, import: {}): {}",
            spec.reference,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if let Some(old_id) = old_id
        && engine.image_id(sh, spec.reference).as_deref() != Some(old_id.as_str())
    {
        // The replaced image is now untagged; drop it unless a container uses it.
        let _ = engine
            .command()
            .args(["image", "rm", &old_id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    remove_rootfs(sh, &rootfs)?;
    say!(
        "{}: built in {:.1}s (debootstrap {:.1}s, import {:.1}s)",
        spec.reference,
        started.elapsed().as_secs_f64(),
        bootstrapped.as_secs_f64(),
        (started.elapsed() - bootstrapped).as_secs_f64()
    );
    Ok(())
}

fn keyring_args(source: &AptSource) -> Vec<String> {
    source
        .keyring
        .iter()
        .map(|k| format!("--keyring={}", k.display()))
        .collect()
}

/// `debootstrap --variant=minbase` into `rootfs`; its hundreds of progress
/// lines are only shown when it fails.
fn debootstrap(
    sh: &Shell,
    source: &AptSource,
    include: &str,
    cache: &str,
    keyring: &[String],
    rootfs: &Path,
    what: &str,
) -> Result<()> {
    let (suite, uri) = (&source.suite, &source.uri);
    let output = cmd!(
        sh,
        "debootstrap --variant=minbase {include} {cache} {keyring...} {suite} {rootfs} {uri}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .ignore_status()
    .output()
    .with_context(|| format!("running debootstrap for {what}"))?;
    if !output.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "debootstrap for {what} failed ({}); last lines (full log: {}):\n{}",
            output.status,
            rootfs.join("debootstrap/debootstrap.log").display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
    }
    Ok(())
}

/// The service binaries that get an image, `localhost/octollm/<name>:<version>`.
pub const SERVICE_BINARIES: &[&str] = &[
    "llm-sim",
    "reflex-layer",
    "planner-arm",
    "retriever-arm",
    "coder-arm",
    "judge-arm",
    "guardian-arm",
    "executor-arm",
    "orchestrator",
];

/// The UID and GID the service images run as.
pub const SERVICE_UID: u32 = 10001;

/// A service's local image reference.
pub fn service_image(binary: &str) -> String {
    format!("localhost/octollm/{binary}:{}", env!("CARGO_PKG_VERSION"))
}

/// Builds (or keeps, when its binary did not change) an image per service:
/// its release binary (debug info stripped), the shared libraries it loads
/// and the CA certificates, all taken from a debootstrapped Debian base,
/// plus a passwd entry for UID 10001, which it runs as. The executor's
/// image also carries its allow-listed programs (`EXECUTOR_ALLOWED_COMMANDS`
/// of deploy/local/executor-arm.env) and their libraries.
pub fn build_service_images(sh: &Shell, force: bool) -> Result<()> {
    let docker_host = container_engine::ensure_engine(sh)?;
    let engine = Engine {
        flavor: container_engine::flavor(&docker_host)?,
        docker_host,
        conf: container_engine::containers_conf(sh),
    };
    let step = progress::step("cargo build --release (the service binaries)");
    let packages: Vec<String> = SERVICE_BINARIES
        .iter()
        .flat_map(|b| ["-p".to_owned(), (*b).to_owned()])
        .collect();
    cmd!(sh, "cargo build --release --quiet {packages...}")
        .run()
        .context("building the service binaries")?;
    step.done();
    let release = crate::stack::launch::release_dir();
    let todo: Vec<(&str, String)> = SERVICE_BINARIES
        .iter()
        .map(|b| Ok((*b, fingerprint(&release.join(b))?)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|(b, fp)| {
            force
                || engine
                    .label(sh, &service_image(b), "octollm.fingerprint")
                    .as_deref()
                    != Some(fp.as_str())
        })
        .collect();
    if todo.is_empty() {
        say!("service images up to date ({})", SERVICE_BINARIES.len());
        return Ok(());
    }
    if !container_engine::is_root(sh) {
        bail!(
            "building the service images needs root (debootstrap, chroot); run `sudo cargo xtask images`"
        );
    }
    container_engine::apt_install(sh, "debootstrap", &["debootstrap"])?;
    let source = debian_source()?;
    let work_dir = sh.current_dir().join("target/octollm-images");
    let base = work_dir.join("rootfs-service-base");
    remove_rootfs(sh, &base)?;
    let started = Instant::now();
    let step = progress::step("service base: debootstrap (ca-certificates)");
    let debs = work_dir.join("debs");
    fs::create_dir_all(&debs)?;
    debootstrap(
        sh,
        &source,
        "--include=ca-certificates",
        &format!("--cache-dir={}", debs.display()),
        &keyring_args(&source),
        &base,
        "the service base",
    )?;
    step.done();
    let tools: Vec<String> =
        crate::stack::launch::env_template(crate::stack::Component::ExecutorArm)?
            .into_iter()
            .find(|(k, _)| k == "EXECUTOR_ALLOWED_COMMANDS")
            .map(|(_, v)| {
                v.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default();
    for (binary, fp) in todo {
        let extra: &[String] = if binary == "executor-arm" {
            &tools
        } else {
            &[]
        };
        build_service_image(sh, &engine, &base, &work_dir, &release, binary, extra, &fp)?;
    }
    remove_rootfs(sh, &base)?;
    say!(
        "service images built in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Identifies a binary build: its size and modification time.
fn fingerprint(binary: &Path) -> Result<String> {
    let meta =
        fs::metadata(binary).with_context(|| format!("{} is not built", binary.display()))?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(format!("{}-{}", meta.len(), modified.as_nanos()))
}

/// A path inside the base, every symlink resolved (absolute ones inside it).
fn resolve_in(sh: &Shell, base: &Path, path: &str) -> Result<String> {
    let resolved = cmd!(sh, "chroot {base} readlink -f {path}")
        .quiet()
        .read()?;
    Ok(resolved.trim().to_owned())
}

/// The shared libraries `program` (a path inside the base) loads, as the
/// paths the loader asks for (`/lib64/ld-linux-x86-64.so.2`, …).
fn libraries(sh: &Shell, base: &Path, program: &str) -> Result<Vec<String>> {
    let out = cmd!(sh, "chroot {base} ldd {program}").quiet().read()?;
    Ok(parse_ldd(&out))
}

/// The absolute paths in `ldd` output (the vDSO has none).
fn parse_ldd(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// Copies `path` of the base (symlinks resolved) to the same path in `root`.
fn copy_from_base(sh: &Shell, base: &Path, root: &Path, path: &str) -> Result<()> {
    let source = base.join(resolve_in(sh, base, path)?.trim_start_matches('/'));
    let target = root.join(path.trim_start_matches('/'));
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(&source, &target)
        .with_context(|| format!("copying {} into the image", source.display()))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build_service_image(
    sh: &Shell,
    engine: &Engine,
    base: &Path,
    work_dir: &Path,
    release: &Path,
    binary: &str,
    tools: &[String],
    fingerprint: &str,
) -> Result<()> {
    let started = Instant::now();
    let reference = service_image(binary);
    let root = work_dir.join(format!("rootfs-{binary}"));
    remove_rootfs(sh, &root)?;
    fs::create_dir_all(root.join("usr/local/bin"))?;
    // The binary, without its debug sections (line tables stay in target/).
    let inside = format!("/usr/local/bin/{binary}");
    let staged = base.join(inside.trim_start_matches('/'));
    fs::create_dir_all(base.join("usr/local/bin"))?;
    let from = release.join(binary);
    cmd!(sh, "strip --strip-debug -o {staged} {from}")
        .quiet()
        .run()?;
    fs::copy(&staged, root.join(inside.trim_start_matches('/')))?;
    let mut files: Vec<String> = libraries(sh, base, &inside)?;
    for tool in tools {
        let path = format!("/usr/bin/{tool}");
        files.push(path.clone());
        files.extend(libraries(sh, base, &path)?);
    }
    files.push("/etc/ssl/certs/ca-certificates.crt".to_owned());
    files.sort();
    files.dedup();
    for file in &files {
        copy_from_base(sh, base, &root, file)?;
    }
    fs::create_dir_all(root.join("etc"))?;
    fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\noctollm:x:{SERVICE_UID}:{SERVICE_UID}:octollm:/nonexistent:/usr/sbin/nologin\n"
        ),
    )?;
    fs::write(
        root.join("etc/group"),
        format!("root:x:0:\noctollm:x:{SERVICE_UID}:\n"),
    )?;
    fs::create_dir_all(root.join("tmp"))?;
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    for dir in ["usr/local/bin", "usr/bin"] {
        for entry in fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o755))?;
        }
    }
    let changes = [
        format!("USER {SERVICE_UID}:{SERVICE_UID}"),
        format!(r#"ENTRYPOINT ["{inside}"]"#),
        "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_owned(),
        format!("LABEL octollm.fingerprint={fingerprint}"),
        "WORKDIR /tmp".to_owned(),
    ];
    let old_id = engine.image_id(sh, &reference);
    import_dir(engine, &root, &reference, &changes)?;
    if let Some(old_id) = old_id
        && engine.image_id(sh, &reference).as_deref() != Some(old_id.as_str())
    {
        let _ = engine
            .command()
            .args(["image", "rm", &old_id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    remove_rootfs(sh, &root)?;
    fs::remove_file(&staged)?;
    say!(
        "{reference}: {} files, built in {:.1}s",
        files.len() + 1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `tar -C dir . | <engine> import --change … - reference`.
fn import_dir(engine: &Engine, dir: &Path, reference: &str, changes: &[String]) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning tar")?;
    let tar_out = tar.stdout.take().context("tar has no stdout")?;
    let mut import = engine.command();
    import.arg("import");
    for change in changes {
        import.arg("--change").arg(change);
    }
    let output = import
        .arg("-")
        .arg(reference)
        .stdin(Stdio::from(tar_out))
        .output()
        .with_context(|| format!("running {} import", engine.flavor.cli()))?;
    let tar_status = tar.wait()?;
    if !output.status.success() || !tar_status.success() {
        bail!(
            "importing {reference} failed (tar: {tar_status}, import: {}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The existing paths under `root` that match `pattern` (`/`-separated; `*`
/// inside a component matches any run of characters). Never follows `..`.
fn expand(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut paths = vec![root.to_path_buf()];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != "..") {
        paths = paths
            .into_iter()
            .flat_map(|dir| {
                if !component.contains('*') {
                    let path = dir.join(component);
                    return if path.symlink_metadata().is_ok() {
                        vec![path]
                    } else {
                        Vec::new()
                    };
                }
                let mut matches: Vec<PathBuf> = fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .filter_map(|entry| entry.ok())
                    .filter(|entry| wildcard_match(component, &entry.file_name().to_string_lossy()))
                    .map(|entry| entry.path())
                    .collect();
                matches.sort();
                matches
            })
            .collect();
    }
    paths.retain(|p| p != root);
    paths
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Deletes a root filesystem, first unmounting anything a failed debootstrap
/// left mounted inside it (never delete through a live /proc or /sys).
fn remove_rootfs(sh: &Shell, rootfs: &Path) -> Result<()> {
    if !rootfs.exists() {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = format!("{}/", rootfs.display());
    let mut inside: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    inside.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in inside {
        cmd!(sh, "umount -l {point}").quiet().run()?;
    }
    fs::remove_dir_all(rootfs).with_context(|| format!("removing {}", rootfs.display()))
}

/// A Debian archive from the machine's apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AptSource {
    uri: String,
    suite: String,
    keyring: Option<PathBuf>,
}

/// The apt source that serves this machine's release (its codename suite).
fn debian_source() -> Result<AptSource> {
    let os_release = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    let codename = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .context("no VERSION_CODENAME in /etc/os-release: debootstrap needs a Debian host")?;

    let mut sources = Vec::new();
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        sources.extend(parse_one_line(&text));
    }
    let mut parts: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    parts.sort();
    for path in parts {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("list") => sources.extend(parse_one_line(&text)),
            Some("sources") => sources.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    pick_source(&sources, &codename).with_context(|| {
        format!(
            "no usable `deb` source for suite {codename} in /etc/apt/sources.list or \
             /etc/apt/sources.list.d/*.{{list,sources}} (found: {sources:?})"
        )
    })
}

/// The first source with a URI debootstrap can fetch from and the codename suite.
fn pick_source(sources: &[AptSource], codename: &str) -> Option<AptSource> {
    let usable = |s: &&AptSource| {
        ["http://", "https://", "ftp://", "file:/"]
            .iter()
            .any(|scheme| s.uri.starts_with(scheme))
    };
    sources
        .iter()
        .filter(usable)
        .find(|s| s.suite == codename)
        .cloned()
}

/// `deb [options] uri suite components...` lines.
fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut tokens = line.split_whitespace().peekable();
        if tokens.next() != Some("deb") {
            continue;
        }
        let mut keyring = None;
        if tokens.peek().is_some_and(|t| t.starts_with('[')) {
            for token in tokens.by_ref() {
                let option = token.trim_start_matches('[').trim_end_matches(']');
                if let Some(path) = option.strip_prefix("signed-by=") {
                    keyring = Some(PathBuf::from(path));
                }
                if token.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (tokens.next(), tokens.next()) {
            sources.push(AptSource {
                uri: uri.to_owned(),
                suite: suite.to_owned(),
                keyring,
            });
        }
    }
    sources
}

/// deb822 `.sources` stanzas: one source per (URI, suite) of each enabled
/// `Types: deb` stanza.
fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    let mut stanza: Vec<(String, String)> = Vec::new();
    let flush = |stanza: &mut Vec<(String, String)>, sources: &mut Vec<AptSource>| {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let enabled = field("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        let is_deb = field("Types").is_some_and(|v| v.split_whitespace().any(|t| t == "deb"));
        if enabled && is_deb {
            // Signed-By is either a keyring path or an inline key block.
            let keyring = field("Signed-By")
                .map(str::trim)
                .filter(|v| v.starts_with('/') && !v.contains(char::is_whitespace))
                .map(PathBuf::from);
            for uri in field("URIs").unwrap_or_default().split_whitespace() {
                for suite in field("Suites").unwrap_or_default().split_whitespace() {
                    sources.push(AptSource {
                        uri: uri.to_owned(),
                        suite: suite.to_owned(),
                        keyring: keyring.clone(),
                    });
                }
            }
        }
        stanza.clear();
    };
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut stanza, &mut sources);
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanza.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    flush(&mut stanza, &mut sources);
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007fb58a0d4000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007fb58a0d6000)\n";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("libLLVM-*", "libLLVM-14.so.1"));
        assert!(wildcard_match("libz3.so*", "libz3.so"));
        assert!(wildcard_match("llvmjit*", "llvmjit_types.bc"));
        assert!(wildcard_match("a*b*c", "a-x-b-y-c"));
        assert!(wildcard_match("plain", "plain"));
        assert!(!wildcard_match("plain", "plainer"));
        assert!(!wildcard_match("libLLVM-*", "libllvm-14"));
        assert!(!wildcard_match("a*c", "ab"));
    }

    #[test]
    fn expand_matches_inside_a_tree() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("xtask-expand-{}", std::process::id()));
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu"))?;
        fs::write(root.join("usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"), "")?;
        fs::write(root.join("usr/lib/x86_64-linux-gnu/libc.so.6"), "")?;
        let found = expand(&root, "usr/lib/*/libLLVM-*");
        let missing = expand(&root, "usr/share/doc");
        fs::remove_dir_all(&root)?;
        assert_eq!(
            found,
            vec![root.join("usr/lib/x86_64-linux-gnu/libLLVM-14.so.1")]
        );
        assert!(missing.is_empty());
        Ok(())
    }

    #[test]
    fn deb822_picks_the_release_suite_not_security() {
        let text = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
                    URIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                    Types: deb\nURIs: http://deb.example/debian-security\n\
                    Suites: bookworm-security\nComponents: main\n\n\
                    Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nEnabled: no\n";
        let sources = parse_deb822(text);
        assert_eq!(sources.len(), 3);
        assert_eq!(
            pick_source(&sources, "bookworm"),
            Some(AptSource {
                uri: "http://deb.example/debian".into(),
                suite: "bookworm".into(),
                keyring: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
            })
        );
    }

    #[test]
    fn one_line_format_with_options_and_comments() {
        let text = "# deb http://old.example/debian bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] https://mirror.example/debian bookworm main # x\n\
                    deb mirror+file:/etc/apt/mirrors.txt bookworm main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            pick_source(&sources, "bookworm"),
            Some(AptSource {
                uri: "https://mirror.example/debian".into(),
                suite: "bookworm".into(),
                keyring: Some("/k.gpg".into()),
            })
        );
        assert_eq!(pick_source(&sources, "trixie"), None);
    }
}
