//! What an Argo CD Application says about itself, read from the REST API's JSON, and the pure
//! decision the wait is made of: done, superseded, failed, or not yet.
//!
//! The fields are those of `pkg/apis/application/v1alpha1/types.go`: `status.sync`,
//! `status.health`, `status.operationState`, `operation`, `status.conditions`,
//! `status.resources` and `status.summary.images`.

use serde_json::Value;

/// The parts of an Application the wait looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppState {
    /// `Synced`, `OutOfSync` or `Unknown`.
    pub sync: String,
    /// The commit the app is synced (or comparing) to.
    pub revision: Option<String>,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` or `Unknown`.
    pub health: String,
    /// `operation`: a sync requested and not started.
    pub operation_requested: bool,
    /// `status.operationState.phase`: `Running`, `Terminating`, `Failed`, `Error`, `Succeeded`.
    pub phase: Option<String>,
    pub phase_message: Option<String>,
    /// The revision the operation synced (`operationState.syncResult.revision`).
    pub phase_revision: Option<String>,
    pub conditions: Vec<Condition>,
    /// Resources whose health is `Degraded`.
    pub degraded: Vec<Resource>,
    /// `status.summary.images`: every live pod's image (old and new during a rollout).
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

impl AppState {
    pub fn from_json(app: &Value) -> AppState {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let status = &app["status"];
        let op = &status["operationState"];
        AppState {
            sync: text(&status["sync"]["status"]).unwrap_or_else(|| "Unknown".into()),
            revision: text(&status["sync"]["revision"]).filter(|r| !r.is_empty()),
            health: text(&status["health"]["status"]).unwrap_or_else(|| "Unknown".into()),
            operation_requested: !app["operation"].is_null(),
            phase: text(&op["phase"]),
            phase_message: text(&op["message"]).filter(|m| !m.is_empty()),
            phase_revision: text(&op["syncResult"]["revision"])
                .or_else(|| text(&op["operation"]["sync"]["revision"]))
                .filter(|r| !r.is_empty()),
            conditions: status["conditions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| Condition {
                            kind: text(&c["type"]).unwrap_or_default(),
                            message: text(&c["message"]).unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            degraded: status["resources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|r| r["health"]["status"] == "Degraded")
                        .map(|r| Resource {
                            kind: text(&r["kind"]).unwrap_or_default(),
                            namespace: text(&r["namespace"]).unwrap_or_default(),
                            name: text(&r["name"]).unwrap_or_default(),
                            message: text(&r["health"]["message"]).unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            images: status["summary"]["images"]
                .as_array()
                .map(|a| a.iter().filter_map(text).collect())
                .unwrap_or_default(),
        }
    }

    /// An operation is still to run or running.
    pub fn operating(&self) -> bool {
        self.operation_requested || matches!(self.phase.as_deref(), Some("Running" | "Terminating"))
    }

    /// `Synced at abc1234, Healthy, operation Succeeded`: what a state-change line shows.
    pub fn describe(&self) -> String {
        let mut s = self.sync.clone();
        if let Some(r) = &self.revision {
            s.push_str(&format!(" at {}", short(r)));
        }
        s.push_str(&format!(", {}", self.health));
        if let Some(p) = &self.phase {
            s.push_str(&format!(", operation {p}"));
        } else if self.operation_requested {
            s.push_str(", operation requested");
        }
        s
    }
}

pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// Where a revision stands against our commit on the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// Our commit.
    Ours,
    /// A later commit whose overlay still sets our image (a sibling job's, say).
    LaterWithOurs,
    /// A later commit that set another image: ours will not be deployed.
    LaterReplaced { image: String },
    /// Before our commit, or not a commit of the branch (yet): Argo CD has not seen ours.
    Earlier,
}

/// What one look at the app decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Synced at our revision (or a later one with our image), Healthy, our image running.
    Deployed,
    /// A later commit replaced our image before it was deployed.
    Superseded {
        image: String,
    },
    Failed(Failure),
    /// Not yet; why, for the timeout's message.
    Waiting,
}

/// A failure Argo CD reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A `status.conditions[]` entry of a type ending in `Error`.
    Condition(Condition),
    /// The sync operation failed (`Failed` or `Error`) for our revision or a later one.
    Operation { phase: String, message: String },
    /// Degraded at our revision after the sync finished.
    Degraded(Vec<Resource>),
}

/// Decides from one state. `classify` places a revision against our commit; `ours` is every
/// spelling of our image a pod may show (`name:tag`, `name@digest`, `name:tag@digest`).
pub fn decide(
    state: &AppState,
    classify: &mut dyn FnMut(&str) -> Revision,
    ours: &[String],
) -> Verdict {
    if let Some(c) = state.conditions.iter().find(|c| c.kind.ends_with("Error")) {
        return Verdict::Failed(Failure::Condition(c.clone()));
    }
    let at = |rev: Option<&str>, classify: &mut dyn FnMut(&str) -> Revision| {
        rev.map_or(Revision::Earlier, &mut *classify)
    };
    if matches!(state.phase.as_deref(), Some("Failed" | "Error")) {
        let rev = at(
            state
                .phase_revision
                .as_deref()
                .or(state.revision.as_deref()),
            classify,
        );
        if rev != Revision::Earlier {
            return Verdict::Failed(Failure::Operation {
                phase: state.phase.clone().unwrap_or_default(),
                message: state.phase_message.clone().unwrap_or_default(),
            });
        }
    }
    let rev = at(state.revision.as_deref(), classify);
    match rev {
        Revision::LaterReplaced { image } => Verdict::Superseded { image },
        Revision::Earlier => Verdict::Waiting,
        Revision::Ours | Revision::LaterWithOurs => {
            if state.sync != "Synced" || state.operating() {
                return Verdict::Waiting;
            }
            match state.health.as_str() {
                "Degraded" => Verdict::Failed(Failure::Degraded(state.degraded.clone())),
                "Healthy" if state.images.iter().any(|i| ours.contains(i)) => Verdict::Deployed,
                _ => Verdict::Waiting,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OURS: &str = "r.io/nova/auth:t2";

    fn app(v: Value) -> AppState {
        AppState::from_json(&v)
    }

    fn healthy_at(rev: &str, images: &[&str]) -> Value {
        json!({"status": {
            "sync": {"status": "Synced", "revision": rev},
            "health": {"status": "Healthy"},
            "operationState": {"phase": "Succeeded", "syncResult": {"revision": rev}},
            "summary": {"images": images},
        }})
    }

    /// `old` is before ours, `ours` is ours, `sib` a later commit with our image, `new` a
    /// later one with another image.
    fn classify(rev: &str) -> Revision {
        match rev {
            "ours" => Revision::Ours,
            "sib" => Revision::LaterWithOurs,
            "new" => Revision::LaterReplaced {
                image: "r.io/nova/auth:t3".into(),
            },
            _ => Revision::Earlier,
        }
    }

    fn verdict(v: Value) -> Verdict {
        decide(&app(v), &mut classify, &[OURS.to_string()])
    }

    #[test]
    fn a_stale_synced_and_healthy_at_an_older_revision_is_not_done() {
        assert_eq!(
            verdict(healthy_at("old", &["r.io/nova/auth:t1"])),
            Verdict::Waiting
        );
    }

    #[test]
    fn synced_healthy_at_our_revision_or_a_later_one_with_our_image_running_is_done() {
        assert_eq!(verdict(healthy_at("ours", &[OURS])), Verdict::Deployed);
        assert_eq!(
            verdict(healthy_at("sib", &["x:1", OURS])),
            Verdict::Deployed
        );
        assert_eq!(
            verdict(healthy_at("ours", &["r.io/nova/auth:t1"])),
            Verdict::Waiting,
            "our image is not running yet"
        );
    }

    #[test]
    fn an_operation_in_progress_or_requested_is_not_done() {
        let mut v = healthy_at("ours", &[OURS]);
        v["status"]["operationState"]["phase"] = json!("Running");
        assert_eq!(verdict(v.clone()), Verdict::Waiting);
        v["status"]["operationState"]["phase"] = json!("Succeeded");
        v["operation"] = json!({"sync": {"revision": "ours"}});
        assert_eq!(verdict(v), Verdict::Waiting);
    }

    #[test]
    fn a_later_commit_that_replaced_our_image_supersedes_it() {
        assert_eq!(
            verdict(healthy_at("new", &["r.io/nova/auth:t3"])),
            Verdict::Superseded {
                image: "r.io/nova/auth:t3".into()
            }
        );
    }

    #[test]
    fn a_failed_operation_for_our_revision_fails_with_argo_cds_message() {
        let mut v = healthy_at("ours", &[]);
        v["status"]["sync"]["status"] = json!("OutOfSync");
        v["status"]["operationState"] = json!({
            "phase": "Failed", "message": "one or more objects failed to apply",
            "syncResult": {"revision": "ours"}
        });
        assert_eq!(
            verdict(v.clone()),
            Verdict::Failed(Failure::Operation {
                phase: "Failed".into(),
                message: "one or more objects failed to apply".into()
            })
        );
        // One that failed for an older revision is history.
        v["status"]["operationState"]["syncResult"]["revision"] = json!("old");
        v["status"]["sync"]["revision"] = json!("old");
        assert_eq!(verdict(v), Verdict::Waiting);
    }

    #[test]
    fn an_error_condition_fails_at_once() {
        let mut v = healthy_at("old", &[]);
        v["status"]["conditions"] = json!([
            {"type": "SyncWarning", "message": "w"},
            {"type": "ComparisonError", "message": "rpc error: kustomize build failed"},
        ]);
        assert_eq!(
            verdict(v),
            Verdict::Failed(Failure::Condition(Condition {
                kind: "ComparisonError".into(),
                message: "rpc error: kustomize build failed".into()
            }))
        );
    }

    #[test]
    fn degraded_at_our_revision_after_the_sync_lists_the_degraded_resources() {
        let mut v = healthy_at("ours", &[OURS]);
        v["status"]["health"]["status"] = json!("Degraded");
        v["status"]["resources"] = json!([
            {"kind": "Deployment", "namespace": "staging", "name": "auth-service",
             "health": {"status": "Degraded", "message": "Deployment has timed out progressing."}},
            {"kind": "Service", "namespace": "staging", "name": "auth-service",
             "health": {"status": "Healthy"}},
        ]);
        assert_eq!(
            verdict(v.clone()),
            Verdict::Failed(Failure::Degraded(vec![Resource {
                kind: "Deployment".into(),
                namespace: "staging".into(),
                name: "auth-service".into(),
                message: "Deployment has timed out progressing.".into()
            }]))
        );
        // Degraded while the sync still runs is not the end yet.
        v["status"]["operationState"]["phase"] = json!("Running");
        assert_eq!(verdict(v), Verdict::Waiting);
    }

    #[test]
    fn the_state_reads_missing_fields_as_unknown_and_describes_itself() {
        let s = app(json!({"metadata": {"name": "x"}}));
        assert_eq!((s.sync.as_str(), s.health.as_str()), ("Unknown", "Unknown"));
        let s = app(healthy_at("0123456789abcdef", &[]));
        assert_eq!(
            s.describe(),
            "Synced at 0123456, Healthy, operation Succeeded"
        );
    }
}
