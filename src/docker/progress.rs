//! BuildKit's progress, as the build log shows it: one line per step as it completes, with
//! `CACHED` or its seconds (no per-byte updates), each step's output kept so that a failing
//! step can be shown with its last lines, and the count of Dockerfile steps and cached ones.
//!
//! BuildKit re-sends a vertex whole on every change (no times, then started, then completed);
//! the last state wins. The daemon's `StatusResponse` is read into [`Update`]s at the edge
//! (`from_status`), so the core here is plain data.

use std::collections::HashMap;

use bollard::moby::buildkit::v1::StatusResponse;

/// What one status message said about one vertex.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VertexUpdate {
    pub digest: String,
    pub name: String,
    pub cached: bool,
    /// Seconds since the epoch.
    pub started: Option<f64>,
    pub completed: Option<f64>,
    pub error: String,
}

/// Output a vertex printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogUpdate {
    pub digest: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub vertexes: Vec<VertexUpdate>,
    pub logs: Vec<LogUpdate>,
}

/// The daemon's message as plain data.
pub fn from_status(s: &StatusResponse) -> Update {
    // google.protobuf.Timestamp is not re-exported by bollard; read its two fields.
    macro_rules! secs {
        ($t:expr) => {
            $t.as_ref()
                .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
        };
    }
    Update {
        vertexes: s
            .vertexes
            .iter()
            .map(|v| VertexUpdate {
                digest: v.digest.clone(),
                name: v.name.clone(),
                cached: v.cached,
                started: secs!(v.started),
                completed: secs!(v.completed),
                error: v.error.clone(),
            })
            .collect(),
        logs: s
            .logs
            .iter()
            .map(|l| LogUpdate {
                digest: l.vertex.clone(),
                data: l.msg.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Default)]
struct Vertex {
    name: String,
    cached: bool,
    started: Option<f64>,
    completed: Option<f64>,
    error: String,
    printed: bool,
    log: Vec<u8>,
}

/// A step that failed: its BuildKit name (`[builder 3/5] RUN make`), BuildKit's error and the
/// last lines it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedStep {
    pub name: String,
    pub error: String,
    pub tail: Vec<String>,
}

/// How many Dockerfile steps (by vertex digest) ran, and which came from the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// `(digest, cached)` of each completed Dockerfile step, in completion order.
    pub steps: Vec<(String, bool)>,
}

impl StepCounts {
    pub fn total(&self) -> usize {
        self.steps.len()
    }

    pub fn cached(&self) -> usize {
        self.steps.iter().filter(|(_, c)| *c).count()
    }

    /// Adds `other`'s steps not seen yet: across the builds of one job, a step counts once, as
    /// it was the first time.
    pub fn merge(&mut self, other: &StepCounts) {
        for (digest, cached) in &other.steps {
            if !self.steps.iter().any(|(d, _)| d == digest) {
                self.steps.push((digest.clone(), *cached));
            }
        }
    }
}

/// Lines of a failing step's output kept for the error.
pub const TAIL_LINES: usize = 20;

/// The state of one build's progress.
#[derive(Debug, Default)]
pub struct BuildKitLog {
    order: Vec<String>,
    vertexes: HashMap<String, Vertex>,
    counts: StepCounts,
    /// Values never to print (build secrets), replaced by `***`.
    secrets: Vec<String>,
}

impl BuildKitLog {
    pub fn new(secrets: Vec<String>) -> BuildKitLog {
        BuildKitLog {
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Default::default()
        }
    }

    /// The lines for the steps this update completes.
    pub fn observe(&mut self, update: &Update) -> Vec<String> {
        for v in &update.vertexes {
            if !self.vertexes.contains_key(&v.digest) {
                self.order.push(v.digest.clone());
            }
            let e = self.vertexes.entry(v.digest.clone()).or_default();
            e.name = v.name.clone();
            e.cached = v.cached;
            e.started = v.started.or(e.started);
            e.completed = v.completed;
            e.error = v.error.clone();
        }
        for l in &update.logs {
            let e = self.vertexes.entry(l.digest.clone()).or_default();
            e.log.extend_from_slice(&l.data);
        }
        let mut lines = Vec::new();
        for digest in &self.order {
            let Some(e) = self.vertexes.get_mut(digest) else {
                continue;
            };
            if e.printed || e.completed.is_none() {
                continue;
            }
            e.printed = true;
            if is_dockerfile_step(&e.name) {
                self.counts.steps.push((digest.clone(), e.cached));
            }
            let verdict = if is_cache_import(&e.name) && !e.error.is_empty() {
                // A cache image that is not there yet (the first run, a new stage) is no failure.
                format!("not used: {}", e.error)
            } else if !e.error.is_empty() {
                format!("ERROR: {}", e.error)
            } else if e.cached {
                "CACHED".to_string()
            } else {
                let secs = match (e.started, e.completed) {
                    (Some(a), Some(b)) => (b - a).max(0.0),
                    _ => 0.0,
                };
                format!("{secs:.1}s")
            };
            lines.push(scrub(&format!("{}  {verdict}", e.name), &self.secrets));
            if !e.error.is_empty() && !is_cache_import(&e.name) {
                for line in tail(&e.log, TAIL_LINES) {
                    lines.push(scrub(&format!("  | {line}"), &self.secrets));
                }
            }
        }
        lines
    }

    /// The first step (in the order they started) that reported an error; a cache import that
    /// found nothing does not fail the build.
    pub fn failed(&self) -> Option<FailedStep> {
        self.order.iter().find_map(|d| {
            let e = self.vertexes.get(d)?;
            (!e.error.is_empty() && !is_cache_import(&e.name)).then(|| FailedStep {
                name: scrub(&e.name, &self.secrets),
                error: scrub(&e.error, &self.secrets),
                tail: tail(&e.log, TAIL_LINES)
                    .into_iter()
                    .map(|l| scrub(&l, &self.secrets))
                    .collect(),
            })
        })
    }

    pub fn counts(&self) -> &StepCounts {
        &self.counts
    }

    /// The Dockerfile steps the cache answered, by name.
    pub fn cached_names(&self) -> Vec<String> {
        self.counts
            .steps
            .iter()
            .filter(|(_, cached)| *cached)
            .filter_map(|(d, _)| self.vertexes.get(d).map(|v| v.name.clone()))
            .collect()
    }
}

/// `importing cache manifest from <image>`: BuildKit goes on without a cache image it cannot
/// read.
fn is_cache_import(name: &str) -> bool {
    name.starts_with("importing cache manifest from ")
}

/// `[stage n/m] …` or `[n/m] …`, not `[internal] …` or `exporting to image`.
fn is_dockerfile_step(name: &str) -> bool {
    step_of(name).is_some()
}

/// The stage label (none for a one-stage Dockerfile) and the step number in a vertex name like
/// `[builder 3/5] RUN make`.
pub fn step_of(name: &str) -> Option<(Option<&str>, usize)> {
    let inner = name.strip_prefix('[')?.split(']').next()?;
    let (label, fraction) = match inner.rsplit_once(' ') {
        Some((l, f)) => (Some(l), f),
        None => (None, inner),
    };
    let (n, m) = fraction.split_once('/')?;
    m.parse::<usize>().ok()?;
    Some((label, n.parse().ok()?))
}

/// The last `n` non-empty lines of `data`.
fn tail(data: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |acc, s| acc.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(digest: &str, name: &str) -> VertexUpdate {
        VertexUpdate {
            digest: digest.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn update(vertexes: Vec<VertexUpdate>) -> Update {
        Update {
            vertexes,
            logs: Vec::new(),
        }
    }

    #[test]
    fn a_step_prints_one_line_when_it_completes_with_its_seconds_or_cached() {
        let mut log = BuildKitLog::default();
        let run = vertex("a", "[builder 3/5] RUN cargo chef cook");
        assert!(log.observe(&update(vec![run.clone()])).is_empty());
        let started = VertexUpdate {
            started: Some(100.0),
            ..run.clone()
        };
        assert!(
            log.observe(&update(vec![started])).is_empty(),
            "no line while running"
        );
        let done = VertexUpdate {
            started: Some(100.0),
            completed: Some(108.25),
            ..run
        };
        assert_eq!(
            log.observe(&update(vec![done.clone()])),
            ["[builder 3/5] RUN cargo chef cook  8.2s"]
        );
        assert!(log.observe(&update(vec![done])).is_empty(), "printed once");
        let cached = VertexUpdate {
            cached: true,
            started: Some(1.0),
            completed: Some(1.0),
            ..vertex("b", "[builder 2/5] COPY recipe.json .")
        };
        assert_eq!(
            log.observe(&update(vec![cached])),
            ["[builder 2/5] COPY recipe.json .  CACHED"]
        );
        assert_eq!((log.counts().total(), log.counts().cached()), (2, 1));
    }

    #[test]
    fn internal_steps_are_printed_but_not_counted() {
        let mut log = BuildKitLog::default();
        let lines = log.observe(&update(vec![VertexUpdate {
            started: Some(1.0),
            completed: Some(1.5),
            ..vertex("i", "[internal] load build context")
        }]));
        assert_eq!(lines, ["[internal] load build context  0.5s"]);
        assert_eq!(log.counts().total(), 0);
    }

    #[test]
    fn a_failing_step_shows_its_error_and_the_last_lines_of_its_output() {
        let mut log = BuildKitLog::new(vec!["s3cr3t".into()]);
        let run = vertex("r", "[2/2] RUN make");
        log.observe(&update(vec![VertexUpdate {
            started: Some(1.0),
            ..run.clone()
        }]));
        let mut output = String::new();
        for i in 0..30 {
            output.push_str(&format!("line {i}\n"));
        }
        output.push_str("token s3cr3t rejected\n");
        let lines = log.observe(&Update {
            vertexes: vec![VertexUpdate {
                started: Some(1.0),
                completed: Some(2.0),
                error: "exit code: 2".into(),
                ..run
            }],
            logs: vec![LogUpdate {
                digest: "r".into(),
                data: output.into_bytes(),
            }],
        });
        assert_eq!(lines[0], "[2/2] RUN make  ERROR: exit code: 2");
        assert_eq!(lines.len(), 1 + TAIL_LINES);
        assert_eq!(lines.last().unwrap(), "  | token *** rejected");
        let failed = log.failed().unwrap();
        assert_eq!(failed.name, "[2/2] RUN make");
        assert_eq!(failed.tail.len(), TAIL_LINES);
        assert_eq!(failed.tail[0], "line 11");
        assert!(!format!("{failed:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_cache_image_that_is_not_there_yet_is_no_failure() {
        let mut log = BuildKitLog::default();
        let lines = log.observe(&update(vec![VertexUpdate {
            started: Some(1.0),
            completed: Some(1.0),
            error: "r/a:cache-builder: not found".into(),
            ..vertex("c", "importing cache manifest from r/a:cache-builder")
        }]));
        assert_eq!(
            lines,
            [
                "importing cache manifest from r/a:cache-builder  not used: r/a:cache-builder: not found"
            ]
        );
        assert_eq!(log.failed(), None);
    }

    #[test]
    fn step_names_give_the_stage_and_number() {
        assert_eq!(
            step_of("[builder 3/5] RUN make"),
            Some((Some("builder"), 3))
        );
        assert_eq!(step_of("[2/4] COPY . ."), Some((None, 2)));
        assert_eq!(step_of("[stage-1 1/2] FROM x"), Some((Some("stage-1"), 1)));
        assert_eq!(step_of("[internal] load metadata"), None);
        assert_eq!(step_of("exporting to image"), None);
    }

    #[test]
    fn steps_count_once_across_builds_as_they_were_first_seen() {
        let mut job = StepCounts::default();
        job.merge(&StepCounts {
            steps: vec![("a".into(), false), ("b".into(), true)],
        });
        job.merge(&StepCounts {
            steps: vec![("a".into(), true), ("c".into(), true)],
        });
        assert_eq!((job.total(), job.cached()), (3, 2));
    }
}
