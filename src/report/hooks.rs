//! Event hooks (`--on-event CMD`), like serf's event handlers: on offline,
//! back online, left, flapping, cut off and restored, run `sh -c CMD` with the
//! event in `P2PMON_*` environment variables and its JSON line on stdin.
//!
//! They run on the HTTP thread, never on the sender's or listener's: events
//! wait in a bounded queue ([`MAX_HOOK_QUEUE`], excess dropped and counted),
//! at most [`MAX_HOOKS_RUNNING`] run at once, and one that outlives
//! [`HOOK_TIMEOUT`] is killed. A failing or hanging hook is logged and costs
//! the monitoring nothing.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::limits::{HOOK_TIMEOUT, MAX_HOOKS_RUNNING};
use crate::node::{SharedState, lock};
use crate::peers::Event;
use crate::report::output::event_fields;

#[derive(Debug)]
struct Running {
    child: Child,
    command: String,
    event: &'static str,
    deadline: Instant,
}

/// The configured hook commands and the ones running now.
#[derive(Debug, Default)]
pub struct Hooks {
    commands: Vec<String>,
    running: Vec<Running>,
}

/// How often to look for finished hooks while some run.
const REAP_EVERY: Duration = Duration::from_millis(100);

impl Hooks {
    pub fn new(commands: Vec<String>) -> Hooks {
        Hooks {
            commands,
            running: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Reaps finished hooks, kills late ones, starts queued events.
    pub fn run_pending(&mut self, shared: &SharedState, now: Instant) {
        self.reap(now);
        if self.commands.is_empty() {
            return;
        }
        while self.running.len() + self.commands.len() <= MAX_HOOKS_RUNNING {
            let Some(event) = lock(shared).hook_queue.pop_front() else {
                break;
            };
            for command in self.commands.clone() {
                self.start(&command, &event, now);
            }
        }
    }

    /// When the loop must look again (a deadline, or reaping while hooks run).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        self.running
            .iter()
            .map(|running| running.deadline.min(now + REAP_EVERY))
            .min()
    }

    /// Leaves running hooks to finish on their own (they are processes of
    /// their own), but kills none: a hook on our way out may still matter.
    pub fn stop(&mut self) {
        self.reap(Instant::now());
        if !self.running.is_empty() {
            log::info!("{} event hook(s) still running at exit", self.running.len());
        }
    }

    fn start(&mut self, command: &str, event: &Event, now: Instant) {
        let (name, fields) = event_fields(event);
        let mut process = Command::new("sh");
        process
            .args(["-c", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .env("P2PMON_EVENT", name);
        if let Value::Object(map) = &fields {
            for (key, value) in map {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                process.env(format!("P2PMON_{}", key.to_ascii_uppercase()), text);
            }
        }
        match process.spawn() {
            Ok(mut child) => {
                if let Some(mut stdin) = child.stdin.take() {
                    let mut line = serde_json::to_vec(&fields).unwrap_or_default();
                    line.push(b'\n');
                    // Under 1 KiB into an empty pipe: never blocks.
                    if let Err(e) = stdin.write_all(&line) {
                        log::debug!("hook {command:?} did not take its stdin: {e}");
                    }
                }
                self.running.push(Running {
                    child,
                    command: command.to_string(),
                    event: name,
                    deadline: now + HOOK_TIMEOUT,
                });
            }
            Err(e) => log::warn!("cannot run event hook {command:?}: {e}"),
        }
    }

    fn reap(&mut self, now: Instant) {
        self.running
            .retain_mut(|running| match running.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        log::warn!(
                            "event hook {:?} for {} failed: {status}",
                            running.command,
                            running.event
                        );
                    }
                    false
                }
                Ok(None) if now >= running.deadline => {
                    log::warn!(
                        "event hook {:?} for {} still running after {} s: killed",
                        running.command,
                        running.event,
                        HOOK_TIMEOUT.as_secs()
                    );
                    let _ = running.child.kill();
                    let _ = running.child.wait();
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    log::warn!("cannot watch event hook {:?}: {e}", running.command);
                    false
                }
            });
    }
}
