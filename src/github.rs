//! The runner's side channels: workflow commands on stdout and the `$GITHUB_OUTPUT` /
//! `$GITHUB_STEP_SUMMARY` file commands, with a readable fallback for local runs.

use std::io::Write;
use std::path::PathBuf;

use crate::failure::Failure;
use crate::inputs::env;

/// Where workflow commands and file commands go for this process.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    /// `GITHUB_ACTIONS=true`: stdout is parsed for `::commands::`.
    pub actions: bool,
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
}

impl Runner {
    pub fn from_env() -> Runner {
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Runner {
            actions: std::env::var(env::GITHUB_ACTIONS).is_ok_and(|v| v == "true"),
            output_file: path(env::GITHUB_OUTPUT),
            summary_file: path(env::GITHUB_STEP_SUMMARY),
        }
    }

    /// Registers a secret with the runner so it is redacted from every later log line.
    /// Locally nothing is printed: echoing a secret to a terminal is exactly what masking prevents.
    pub fn mask(&self, secret: &str) {
        if !self.actions || secret.is_empty() {
            return;
        }
        // The runner masks line by line, so a multi-line secret needs one command per line.
        for line in secret.lines().filter(|l| !l.is_empty()) {
            line_out(&format!("::add-mask::{}", escape_data(line)));
        }
    }

    pub fn group(&self, title: &str) {
        if self.actions {
            line_out(&format!("::group::{}", escape_data(title)));
        } else {
            line_out(&format!("── {title}"));
        }
    }

    pub(crate) fn end_group(&self) {
        if self.actions {
            line_out("::endgroup::");
        }
    }

    /// One `::error::` line (the hint on a second line, escaped into the same command), with
    /// the file and line as the command's properties.
    pub fn error(&self, failure: &Failure) {
        if self.actions {
            let (file, line) = match &failure.location {
                Some(l) => (Some(l.file.as_str()), l.line),
                None => (None, None),
            };
            line_out(&format_command(
                "error",
                &location(file, line),
                &failure.text(),
            ));
        } else {
            let text = match &failure.hint {
                Some(h) => format!("error: {}\nhint: {h}", failure.located_message()),
                None => format!("error: {}", failure.located_message()),
            };
            // Locally the error goes to stderr like any CLI.
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// A `::notice::`: something the user should know that is not a problem.
    pub fn notice(&self, message: &str) {
        if self.actions {
            line_out(&format_command("notice", &[], message));
        } else {
            let _ = writeln!(std::io::stderr().lock(), "notice: {message}");
        }
    }

    pub fn warning(&self, message: &str) {
        if self.actions {
            line_out(&format_command("warning", &[], message));
        } else {
            let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
        }
    }

    /// Appends outputs to `$GITHUB_OUTPUT`, or prints `name=value` lines when it is unset.
    pub fn set_outputs(&self, outputs: &[(&str, String)]) -> std::io::Result<()> {
        let Some(path) = &self.output_file else {
            for (k, v) in outputs {
                line_out(&format!("{k}={v}"));
            }
            return Ok(());
        };
        let mut text = String::new();
        for (k, v) in outputs {
            text.push_str(&output_entry(k, v, &random_delimiter()));
        }
        append(path, &text)
    }

    /// Appends markdown to `$GITHUB_STEP_SUMMARY`, or prints it when it is unset.
    pub fn summary(&self, markdown: &str) -> std::io::Result<()> {
        match &self.summary_file {
            Some(path) => append(path, markdown),
            None => {
                let _ = std::io::stdout().lock().write_all(markdown.as_bytes());
                Ok(())
            }
        }
    }
}

/// Writes one whole line to stdout in a single call so parallel writers never split a command.
pub(crate) fn line_out(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(buf.as_bytes());
    let _ = out.flush();
}

fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut f = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn location(file: Option<&str>, line: Option<usize>) -> Vec<(&'static str, String)> {
    let mut props = Vec::new();
    if let Some(f) = file {
        props.push(("file", f.to_string()));
        if let Some(l) = line {
            props.push(("line", l.to_string()));
        }
    }
    props
}

/// `::name k=v,k=v::data` with the runner's escaping rules.
pub(crate) fn format_command(name: &str, props: &[(&str, String)], data: &str) -> String {
    let mut s = format!("::{name}");
    for (i, (k, v)) in props.iter().enumerate() {
        s.push(if i == 0 { ' ' } else { ',' });
        s.push_str(k);
        s.push('=');
        s.push_str(&escape_property(v));
    }
    s.push_str("::");
    s.push_str(&escape_data(data));
    s
}

/// Escaping for a command's data (actions/toolkit `escapeData`).
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping for a command's property values (actions/toolkit `escapeProperty`).
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn random_delimiter() -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("ghadelimiter_{n:032x}")
}

/// One `$GITHUB_OUTPUT` entry: `k=v`, or the heredoc form for values with line breaks.
pub(crate) fn output_entry(name: &str, value: &str, delimiter: &str) -> String {
    if value.contains('\n') || value.contains('\r') {
        format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
    } else {
        format!("{name}={value}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_escapes_percent_and_line_breaks_only() {
        assert_eq!(
            escape_data("50% done\r\nnext: a,b"),
            "50%25 done%0D%0Anext: a,b"
        );
    }

    #[test]
    fn properties_also_escape_colon_and_comma() {
        assert_eq!(escape_property("C:\\a,b%\n"), "C%3A\\a%2Cb%25%0A");
    }

    #[test]
    fn an_error_with_a_location_is_one_line_with_escaped_properties() {
        let cmd = format_command(
            "error",
            &location(Some("k8s/a:b,c.yaml"), Some(7)),
            "bad\nthing",
        );
        assert_eq!(cmd, "::error file=k8s/a%3Ab%2Cc.yaml,line=7::bad%0Athing");
        assert!(!cmd.contains('\n'));
    }

    #[test]
    fn a_line_number_without_a_file_is_dropped() {
        assert_eq!(
            format_command("error", &location(None, Some(3)), "x"),
            "::error::x"
        );
    }

    #[test]
    fn single_line_outputs_use_the_plain_form() {
        assert_eq!(output_entry("changed", "true", "D"), "changed=true\n");
    }

    #[test]
    fn multi_line_outputs_use_a_heredoc_with_the_delimiter() {
        assert_eq!(
            output_entry("log", "a\nb", "ghadelimiter_x"),
            "log<<ghadelimiter_x\na\nb\nghadelimiter_x\n"
        );
    }

    #[test]
    fn delimiters_are_random() {
        assert_ne!(random_delimiter(), random_delimiter());
    }

    #[test]
    fn outputs_append_to_the_output_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        std::fs::write(&file, "earlier=1\n").unwrap();
        let runner = Runner {
            actions: true,
            output_file: Some(file.clone()),
            summary_file: None,
        };
        runner
            .set_outputs(&[("image", "r/a:1".into()), ("notes", "x\ny".into())])
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("earlier=1\nimage=r/a:1\nnotes<<ghadelimiter_"),
            "{text}"
        );
        assert!(
            text.ends_with("\nx\ny\nghadelimiter_".to_string().as_str())
                || text.contains("\nx\ny\nghadelimiter_"),
            "{text}"
        );
    }
}
