//! What the build needs to know about a Dockerfile before it starts: its stages and which of
//! them a target depends on (`FROM <stage>`, `COPY --from=<stage>`, `RUN --mount=from=<stage>`,
//! with `ARG`s expanded in `FROM`), the features only BuildKit has, and the line of each step,
//! so a failing step can be named by file and line.
//!
//! The parsing itself is parse-dockerfile's, which follows BuildKit's parser (line
//! continuations, the `escape` directive, here-documents); this module reads the result.

use std::collections::{BTreeSet, HashMap};

use parse_dockerfile::{Flag, Instruction};

/// A stage: its position, and its name when `FROM … AS name` gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageId {
    pub index: usize,
    pub name: Option<String>,
}

impl StageId {
    /// The name, or the index when it has none: how BuildKit's `--target` and the cache tags
    /// (`cache-<label>`) name it.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// One instruction, as an error names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based.
    pub line: usize,
    /// The instruction's first line, trimmed (`RUN cargo chef cook --release`).
    pub text: String,
    /// Whether BuildKit makes it a step of its own (`FROM`, `RUN`, `COPY`, `ADD`, `WORKDIR`);
    /// `ENV`, `ARG`, `LABEL` and the like only change the image config.
    op: bool,
}

/// Why the Dockerfile needs BuildKit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildKitOnly {
    pub line: usize,
    pub feature: &'static str,
}

#[derive(Debug, Clone)]
struct Stage {
    id: StageId,
    /// `FROM`'s image text, before `ARG` expansion.
    from: String,
    /// Stage references of `COPY --from`, `ADD --from`, `RUN --mount=…,from=`, unexpanded.
    refs: Vec<String>,
    /// The stage's steps in order, `FROM` first.
    steps: Vec<Step>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    stages: Vec<Stage>,
    /// `ARG`s before the first `FROM`, with their defaults.
    global_args: Vec<(String, Option<String>)>,
    /// Those `ARG` instructions: the classic builder counts them as steps.
    global_steps: Vec<Step>,
    buildkit_only: Option<BuildKitOnly>,
}

/// The Dockerfile could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    #[error("{0}")]
    Syntax(String),
    #[error("target stage {0:?} is not in the Dockerfile")]
    UnknownTarget(String),
}

impl Dockerfile {
    pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
        let parsed =
            parse_dockerfile::parse(text).map_err(|e| DockerfileError::Syntax(e.to_string()))?;
        let lines = LineIndex::new(text);
        let mut out = Dockerfile {
            stages: Vec::new(),
            global_args: Vec::new(),
            global_steps: Vec::new(),
            buildkit_only: None,
        };
        if let Some(syntax) = &parsed.parser_directives.syntax {
            out.note_buildkit(lines.line(syntax.span().start), "the `# syntax=` directive");
        }
        for instruction in &parsed.instructions {
            let Some(start) = start_of(instruction) else {
                continue;
            };
            let line = lines.line(start);
            let step = Step {
                line,
                text: first_line(&text[start..]),
                op: matches!(
                    instruction,
                    Instruction::From(_)
                        | Instruction::Run(_)
                        | Instruction::Copy(_)
                        | Instruction::Add(_)
                        | Instruction::Workdir(_)
                ),
            };
            match instruction {
                Instruction::From(from) => {
                    if let Some(f) = from.options.iter().find(|f| flag_name(f) != "platform") {
                        out.note_buildkit(line, unknown_flag(f));
                    }
                    out.stages.push(Stage {
                        id: StageId {
                            index: out.stages.len(),
                            name: from.as_.as_ref().map(|(_, n)| n.value.to_lowercase()),
                        },
                        from: from.image.value.to_string(),
                        refs: Vec::new(),
                        steps: vec![step],
                    });
                    continue;
                }
                Instruction::Arg(arg) if out.stages.is_empty() => {
                    out.global_args
                        .extend(arg_definitions(&arg.arguments.value));
                    out.global_steps.push(step);
                    continue;
                }
                _ => {}
            }
            let buildkit = buildkit_feature(instruction);
            if let Some(feature) = buildkit {
                out.note_buildkit(line, feature);
            }
            let refs = stage_refs(instruction);
            if let Some(stage) = out.stages.last_mut() {
                stage.refs.extend(refs);
                stage.steps.push(step);
            }
        }
        // The parser refuses a file without FROM; a later version might not.
        if out.stages.is_empty() {
            return Err(DockerfileError::Syntax("the Dockerfile has no FROM".into()));
        }
        Ok(out)
    }

    fn note_buildkit(&mut self, line: usize, feature: &'static str) {
        self.buildkit_only
            .get_or_insert(BuildKitOnly { line, feature });
    }

    /// The first feature the classic builder refuses, if any.
    pub fn buildkit_only(&self) -> Option<&BuildKitOnly> {
        self.buildkit_only.as_ref()
    }

    /// The stage `target` names (the last stage when `None`).
    pub fn target(&self, target: Option<&str>) -> Result<StageId, DockerfileError> {
        match target {
            None => Ok(self.stages.last().expect("parse checks").id.clone()),
            Some(t) => self
                .find(t, self.stages.len())
                .map(|i| self.stages[i].id.clone())
                .ok_or_else(|| DockerfileError::UnknownTarget(t.to_string())),
        }
    }

    /// The stages `target` depends on, other than itself, in the order they are defined:
    /// what a fresh runner would rebuild without a cache for each.
    pub fn dependencies(&self, target: &StageId, build_args: &[(String, String)]) -> Vec<StageId> {
        let vars = self.arg_values(build_args);
        let mut needed = BTreeSet::new();
        let mut todo = vec![target.index];
        while let Some(i) = todo.pop() {
            let stage = &self.stages[i];
            let mut refs = vec![expand(&stage.from, &vars)];
            refs.extend(stage.refs.iter().map(|r| expand(r, &vars)));
            for r in refs {
                if let Some(dep) = self.find(&r, i)
                    && needed.insert(dep)
                {
                    todo.push(dep);
                }
            }
        }
        needed.remove(&target.index);
        needed
            .into_iter()
            .map(|i| self.stages[i].id.clone())
            .collect()
    }

    /// The stage an earlier reference `r` in stage `before` names: a stage name
    /// (case-insensitive) or index defined before it. `None` for an image.
    fn find(&self, r: &str, before: usize) -> Option<usize> {
        let r = r.to_lowercase();
        let earlier = &self.stages[..before.min(self.stages.len())];
        earlier
            .iter()
            .position(|s| s.id.name.as_deref() == Some(r.as_str()))
            .or_else(|| r.parse::<usize>().ok().filter(|i| *i < earlier.len()))
    }

    /// Global `ARG` values: their defaults, overridden by the build args.
    fn arg_values(&self, build_args: &[(String, String)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = HashMap::new();
        for (name, default) in &self.global_args {
            let given = build_args.iter().rev().find(|(k, _)| k == name);
            if let Some(v) = given.map(|(_, v)| v.clone()).or_else(|| default.clone()) {
                vars.insert(name.clone(), v);
            }
        }
        vars
    }

    /// The step BuildKit names `[<label> <n>/<m>]` (no label for a Dockerfile of one unnamed
    /// stage; `stage-<i>` for other unnamed stages). BuildKit numbers only its own steps.
    pub fn buildkit_step(&self, label: Option<&str>, n: usize) -> Option<&Step> {
        let stage = match label {
            None if self.stages.len() == 1 => &self.stages[0],
            None => return None,
            Some(l) => {
                let index = l
                    .strip_prefix("stage-")
                    .and_then(|i| i.parse::<usize>().ok());
                self.stages
                    .iter()
                    .find(|s| s.id.name.as_deref() == Some(l) || Some(s.id.index) == index)?
            }
        };
        stage.steps.iter().filter(|s| s.op).nth(n.checked_sub(1)?)
    }

    /// The step the classic builder names `Step <n>/<m>`: it counts every instruction, the
    /// `ARG`s before the first `FROM` and each `FROM` included.
    pub fn classic_step(&self, n: usize) -> Option<&Step> {
        self.global_steps
            .iter()
            .chain(self.stages.iter().flat_map(|s| &s.steps))
            .nth(n.checked_sub(1)?)
    }
}

/// Where an instruction's keyword starts. `None` for kinds this version of the parser adds
/// later; they are skipped.
fn start_of(i: &Instruction<'_>) -> Option<usize> {
    Some(match i {
        Instruction::Add(x) => x.add.span.start,
        Instruction::Arg(x) => x.arg.span.start,
        Instruction::Cmd(x) => x.cmd.span.start,
        Instruction::Copy(x) => x.copy.span.start,
        Instruction::Entrypoint(x) => x.entrypoint.span.start,
        Instruction::Env(x) => x.env.span.start,
        Instruction::Expose(x) => x.expose.span.start,
        Instruction::From(x) => x.from.span.start,
        Instruction::Healthcheck(x) => x.healthcheck.span.start,
        Instruction::Label(x) => x.label.span.start,
        Instruction::Maintainer(x) => x.maintainer.span.start,
        Instruction::Onbuild(x) => x.onbuild.span.start,
        Instruction::Run(x) => x.run.span.start,
        Instruction::Shell(x) => x.shell.span.start,
        Instruction::Stopsignal(x) => x.stopsignal.span.start,
        Instruction::User(x) => x.user.span.start,
        Instruction::Volume(x) => x.volume.span.start,
        Instruction::Workdir(x) => x.workdir.span.start,
        _ => return None,
    })
}

fn flag_name<'f>(f: &'f Flag<'_>) -> &'f str {
    &f.name.value
}

fn flag_value<'f>(f: &'f Flag<'_>) -> &'f str {
    f.value.as_ref().map_or("", |v| &v.value)
}

fn unknown_flag(_: &Flag<'_>) -> &'static str {
    "a FROM flag other than --platform"
}

/// What in this instruction the classic builder refuses.
fn buildkit_feature(i: &Instruction<'_>) -> Option<&'static str> {
    match i {
        Instruction::Run(run) => {
            if !run.here_docs.is_empty() {
                return Some("a here-document (`<<EOF`)");
            }
            run.options.iter().find_map(|f| match flag_name(f) {
                "mount" => Some("`RUN --mount`"),
                "network" => Some("`RUN --network`"),
                "security" => Some("`RUN --security`"),
                _ => None,
            })
        }
        Instruction::Copy(copy) => copy.options.iter().find_map(|f| match flag_name(f) {
            "chmod" => Some("`COPY --chmod`"),
            "link" => Some("`COPY --link`"),
            "parents" | "exclude" => Some("a COPY flag of newer BuildKit"),
            _ => None,
        }),
        Instruction::Add(add) => add.options.iter().find_map(|f| match flag_name(f) {
            "chmod" => Some("`ADD --chmod`"),
            "link" => Some("`ADD --link`"),
            "keep-git-dir" | "checksum" => Some("an ADD flag of newer BuildKit"),
            _ => None,
        }),
        _ => None,
    }
}

/// The stages an instruction reads from: `--from=` of COPY and ADD, `from=` of RUN mounts.
fn stage_refs(i: &Instruction<'_>) -> Vec<String> {
    let from_flag = |options: &[Flag<'_>]| -> Vec<String> {
        options
            .iter()
            .filter(|f| flag_name(f) == "from")
            .map(|f| flag_value(f).to_string())
            .collect()
    };
    match i {
        Instruction::Copy(copy) => from_flag(&copy.options),
        Instruction::Add(add) => from_flag(&add.options),
        Instruction::Run(run) => run
            .options
            .iter()
            .filter(|f| flag_name(f) == "mount")
            .filter_map(|f| mount_from(flag_value(f)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `from=` of a `--mount` spec (`type=bind,from=builder,source=/out`), a CSV of `k=v`.
fn mount_from(spec: &str) -> Option<String> {
    spec.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("from")).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `ARG A=1 B` → `[("A", Some("1")), ("B", None)]`.
fn arg_definitions(text: &str) -> Vec<(String, Option<String>)> {
    text.split_whitespace()
        .map(|def| match def.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
            None => (def.to_string(), None),
        })
        .collect()
}

/// `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}`, as BuildKit expands `FROM`.
/// An unset variable expands to nothing.
fn expand(word: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let inner: String = chars.by_ref().take_while(|&c| c != '}').collect();
            let (name, op) = match inner.find(':') {
                Some(i) => (&inner[..i], Some(&inner[i + 1..])),
                None => (inner.as_str(), None),
            };
            let value = vars.get(name).filter(|v| !v.is_empty());
            match (op, value) {
                (None, v) => out.push_str(v.map_or("", String::as_str)),
                (Some(op), Some(v)) if op.starts_with('-') => out.push_str(v),
                (Some(op), None) if op.starts_with('-') => out.push_str(&op[1..]),
                (Some(op), Some(_)) if op.starts_with('+') => out.push_str(&op[1..]),
                _ => {}
            }
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
            } else if let Some(v) = vars.get(&name) {
                out.push_str(v);
            }
        }
    }
    out
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.trim_end_matches('\\').trim_end().to_string()
}

/// Byte offset → 1-based line.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEF: &str = "\
ARG BASE=rust:1
FROM ${BASE} AS chef
RUN cargo install cargo-chef

FROM chef AS planner
COPY . .
RUN cargo chef prepare

FROM chef AS builder
COPY --from=planner /recipe.json recipe.json
RUN cargo chef cook --release
COPY . .
RUN cargo build --release

FROM $BASE AS runtime
COPY --from=builder /app/target/release/app /app
";

    fn labels(ids: Vec<StageId>) -> Vec<String> {
        ids.into_iter().map(|s| s.label()).collect()
    }

    fn deps(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> Vec<String> {
        let d = Dockerfile::parse(text).unwrap();
        let args: Vec<(String, String)> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels(d.dependencies(&d.target(target).unwrap(), &args))
    }

    #[test]
    fn a_cargo_chef_build_depends_on_every_stage_but_the_runtime() {
        assert_eq!(deps(CHEF, None, &[]), ["chef", "planner", "builder"]);
        assert_eq!(deps(CHEF, Some("builder"), &[]), ["chef", "planner"]);
        assert_eq!(deps(CHEF, Some("planner"), &[]), ["chef"]);
        assert!(deps(CHEF, Some("chef"), &[]).is_empty());
    }

    /// (sentence, Dockerfile, target, build args, stages the target depends on)
    #[test]
    fn stage_references_are_found_in_every_form() {
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (
                "FROM a stage by name, case-insensitively",
                "FROM busybox AS Base\nFROM base\n",
                None,
                &[],
                &["base"],
            ),
            (
                "COPY --from by index",
                "FROM busybox\nRUN x\nFROM busybox\nCOPY --from=0 /a /a\n",
                None,
                &[],
                &["0"],
            ),
            (
                "COPY --from an image is no stage",
                "FROM busybox AS a\nFROM busybox\nCOPY --from=nginx:1 /a /a\n",
                None,
                &[],
                &[],
            ),
            (
                "RUN --mount=from= a stage",
                "FROM busybox AS deps\nFROM busybox\nRUN --mount=type=bind,from=deps,source=/x,target=/x true\n",
                None,
                &[],
                &["deps"],
            ),
            (
                "an ARG in FROM names a stage through its default",
                "ARG FROM_STAGE=one\nFROM busybox AS one\nFROM busybox AS two\nFROM ${FROM_STAGE}\n",
                None,
                &[],
                &["one"],
            ),
            (
                "a build arg overrides the ARG's default",
                "ARG FROM_STAGE=one\nFROM busybox AS one\nFROM busybox AS two\nFROM ${FROM_STAGE}\n",
                None,
                &[("FROM_STAGE", "two")],
                &["two"],
            ),
            (
                "a default in the expansion",
                "FROM busybox AS one\nFROM ${X:-one}\n",
                None,
                &[],
                &["one"],
            ),
            (
                "parallel stages both feed the last",
                "FROM busybox AS a\nFROM busybox AS b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
                None,
                &[],
                &["a", "b"],
            ),
            (
                "a stage no one uses is not a dependency",
                "FROM busybox AS unused\nFROM busybox AS used\nFROM used\n",
                None,
                &[],
                &["used"],
            ),
            (
                "a later stage of the same name is not a reference back",
                "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n",
                Some("a"),
                &[],
                &[],
            ),
            (
                "line continuations and lower-case instructions",
                "from busybox as one\nfrom busybox\ncopy \\\n  --from=one /a /a\n",
                None,
                &[],
                &["one"],
            ),
        ];
        for (sentence, text, target, args, want) in cases {
            assert_eq!(deps(text, *target, args), *want, "{sentence}");
        }
    }

    #[test]
    fn features_only_buildkit_has_are_found_with_their_line() {
        let cases: &[(&str, Option<(usize, &str)>)] = &[
            ("FROM busybox\nRUN true\nCOPY --chown=1 a b\n", None),
            (
                "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
                Some((2, "`RUN --mount`")),
            ),
            (
                "FROM busybox\nRUN true\nCOPY --chmod=755 a b\n",
                Some((3, "`COPY --chmod`")),
            ),
            (
                "FROM busybox\nRUN --mount=type=secret,id=t cat /run/secrets/t\n",
                Some((2, "`RUN --mount`")),
            ),
            (
                "# syntax=docker/dockerfile:1\nFROM busybox\n",
                Some((1, "the `# syntax=` directive")),
            ),
            (
                "FROM busybox\nRUN <<EOF\necho hi\nEOF\n",
                Some((2, "a here-document (`<<EOF`)")),
            ),
        ];
        for (text, want) in cases {
            let got = Dockerfile::parse(text).unwrap().buildkit_only().cloned();
            assert_eq!(got.map(|b| (b.line, b.feature)), *want, "{text}");
        }
    }

    #[test]
    fn steps_are_found_by_buildkit_and_classic_numbering() {
        let d = Dockerfile::parse(CHEF).unwrap();
        let step = d.buildkit_step(Some("builder"), 3).unwrap();
        assert_eq!(
            (step.line, step.text.as_str()),
            (11, "RUN cargo chef cook --release")
        );
        // Classic counts every instruction, the global ARG and the FROMs included.
        assert_eq!(d.classic_step(1).unwrap().text, "ARG BASE=rust:1");
        assert_eq!(d.classic_step(3).unwrap().line, 3);
        assert_eq!(d.classic_step(4).unwrap().text, "FROM chef AS planner");
        let single = Dockerfile::parse("FROM busybox\nRUN a \\\n  b\nENV X=1\nRUN c\n").unwrap();
        assert_eq!(single.buildkit_step(None, 2).unwrap().text, "RUN a");
        assert_eq!(
            single.buildkit_step(None, 3).unwrap().line,
            5,
            "ENV is no BuildKit step"
        );
        assert_eq!(single.classic_step(3).unwrap().text, "ENV X=1");
        let unnamed = Dockerfile::parse("FROM busybox\nRUN a\nFROM busybox\nRUN b\n").unwrap();
        assert_eq!(
            unnamed.buildkit_step(Some("stage-1"), 2).unwrap().text,
            "RUN b"
        );
        assert_eq!(
            unnamed.buildkit_step(None, 2),
            None,
            "ambiguous without a label"
        );
    }

    #[test]
    fn a_target_that_is_not_a_stage_and_a_file_without_from_are_errors() {
        let d = Dockerfile::parse(CHEF).unwrap();
        assert_eq!(
            d.target(Some("nope")).unwrap_err(),
            DockerfileError::UnknownTarget("nope".into())
        );
        assert_eq!(d.target(Some("BUILDER")).unwrap().label(), "builder");
        let err = Dockerfile::parse("# nothing\n").unwrap_err();
        assert!(err.to_string().contains("FROM"), "{err}");
    }

    #[test]
    fn arg_expansion_follows_the_shell_forms() {
        let vars = HashMap::from([
            ("A".to_string(), "x".to_string()),
            ("E".to_string(), String::new()),
        ]);
        for (word, want) in [
            ("$A", "x"),
            ("${A}y", "xy"),
            ("${B:-d}", "d"),
            ("${E:-d}", "d"),
            ("${A:-d}", "x"),
            ("${A:+alt}", "alt"),
            ("${B:+alt}", ""),
            ("$B", ""),
            ("r/$A:1", "r/x:1"),
            ("\\$A", "$A"),
        ] {
            assert_eq!(expand(word, &vars), want, "{word}");
        }
    }
}
