//! The credential rotations of `runbooks/security.md` ("Rotating
//! credentials"), step by step on a live stack: the service token the
//! orchestrator presents to the reflex layer and the arms, then the users'
//! API token. No service restarts; after each step the services reload on
//! SIGHUP, a task still goes through the real arms, and at the end the old
//! tokens are refused.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::say;
use crate::stack::api::smoke;
use crate::stack::{Component, Stack};
use crate::util::{http_status, random_hex, read_token, signal, wait_for, write_secret};

/// Longer than service-kit's reload interval (5 s), so a missed SIGHUP
/// would still be caught up by the file poll.
const RELOADED_WITHIN: Duration = Duration::from_secs(12);

pub fn run(stack: &Stack) -> Result<()> {
    rotate_service_token(stack)?;
    rotate_users_token(stack)?;
    say!(
        "rotation drill: service and users' tokens rotated with no restart; tasks kept succeeding; the old tokens are refused"
    );
    Ok(())
}

/// Receivers first: the new token is accepted everywhere before the
/// orchestrator presents it, and the old one is dropped last.
fn rotate_service_token(stack: &Stack) -> Result<()> {
    let file = stack.service_token_path()?;
    let old = read_token(&file)?;
    let new = random_hex(24)?;
    let probe = stack.url(Component::PlannerArm) + "/v1/capabilities";

    // 1. Add the new token after the old one; reload.
    write_secret(&file, &format!("{old}\n{new}\n"))?;
    reload(stack)?;
    until_status(
        stack,
        &probe,
        &new,
        200,
        "the planner arm accepts the new service token",
    )?;
    smoke(stack)?;
    // 2. Present the new one: put it first; reload.
    write_secret(&file, &format!("{new}\n{old}\n"))?;
    reload(stack)?;
    smoke(stack)?;
    // 3. Drop the old one; reload.
    write_secret(&file, &format!("{new}\n"))?;
    reload(stack)?;
    until_status(
        stack,
        &probe,
        &old,
        401,
        "the planner arm refuses the old service token",
    )?;
    let reflex = stack.url(Component::ReflexLayer) + "/v1/reflex/check";
    let as_old = status_of(stack, &reflex, &old)?;
    if as_old != 401 {
        bail!("the reflex layer answers the old service token {as_old}, not 401");
    }
    smoke(stack)
}

/// Clients first: the new token works before anyone is told, the old one is
/// dropped once the clients moved.
fn rotate_users_token(stack: &Stack) -> Result<()> {
    let file = stack.token_path();
    let old = read_token(&file)?;
    let new = random_hex(32)?;
    let tasks = stack.url(Component::Orchestrator) + "/v1/tasks?limit=1";

    // 1. Add the new token (first, so the stack's own tools move to it).
    write_secret(&file, &format!("{new}\n{old}\n"))?;
    reload(stack)?;
    until_status(
        stack,
        &tasks,
        &new,
        200,
        "the orchestrator accepts the new API token",
    )?;
    // 2. The clients move (here: the header file the runbooks use).
    stack.bearer_header(&file)?;
    smoke(stack)?;
    // 3. Drop the old one.
    write_secret(&file, &format!("{new}\n"))?;
    reload(stack)?;
    until_status(
        stack,
        &tasks,
        &old,
        401,
        "the orchestrator refuses the old API token",
    )?;
    smoke(stack)
}

/// SIGHUP to every service that holds a credential.
fn reload(stack: &Stack) -> Result<()> {
    let services = [Component::Orchestrator, Component::ReflexLayer]
        .into_iter()
        .chain(Component::ARMS);
    for component in services {
        if let Some(pid) = stack.pid(component) {
            signal(pid, "HUP")?;
        }
    }
    Ok(())
}

/// The status `url` answers `token` (a POST with a small text for the
/// reflex layer's `/check`, a GET otherwise). The token goes to curl in a
/// 0600 header file in the stack's secrets (not a predictable /tmp path),
/// never on its argv.
pub(super) fn status_of(stack: &Stack, url: &str, token: &str) -> Result<u16> {
    let file = stack.secret_path("probe-token.header");
    write_secret(&file, &format!("Authorization: Bearer {token}\n"))?;
    let header = format!("@{}", file.display());
    let mut args = vec!["-H", &header];
    if url.ends_with("/check") {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"text":"credential probe"}"#,
        ]);
    }
    args.push(url);
    let status = http_status(&args);
    let _ = std::fs::remove_file(&file);
    status
}

fn until_status(stack: &Stack, url: &str, token: &str, want: u16, what: &str) -> Result<()> {
    wait_for(what, RELOADED_WITHIN, || {
        status_of(stack, url, token).is_ok_and(|s| s == want)
    })
}
