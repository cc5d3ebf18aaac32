//! deploy-action's command line: parse, run, and map any error to `::error::` and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use deploy_action::failure::Failure;
use deploy_action::github::Runner;
use deploy_action::inputs::{Inputs, Raw};
use deploy_action::{kustomize, pipeline};

/// Build, push and roll out one service image through a Kustomize overlay in git.
///
/// With no subcommand, runs the whole job from the action's INPUT_* environment.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Set images in a kustomization, like `kustomize edit set image`, changing only their values.
    SetImage {
        /// Directory holding kustomization.yaml, kustomization.yml or Kustomization.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// name=newName:tag@digest, name:tag, name@digest, … (`*` keeps the file's value).
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<String>,
    },
}

fn main() -> ExitCode {
    // First, while this is the only thread: it sets an environment variable.
    deploy_action::gitops::start();
    let cli = Cli::parse();
    let runner = Runner::from_env();
    let result = match cli.command {
        Some(Command::SetImage { dir, specs }) => set_image(&dir, &specs),
        None => run_job(&runner),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            runner.error(&Failure::of(&err));
            ExitCode::FAILURE
        }
    }
}

fn run_job(runner: &Runner) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let inputs = Inputs::parse(&Raw::from_env(), &cwd)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(pipeline::run(&inputs, runner))?;
    runner.set_outputs(&report.outputs())?;
    runner.summary(&report.summary_markdown())?;
    Ok(())
}

fn set_image(dir: &std::path::Path, specs: &[String]) -> anyhow::Result<()> {
    let specs = kustomize::parse_specs(specs)?;
    let changed = kustomize::set_image_in_dir(dir, &specs)?;
    println!(
        "{}",
        if changed {
            "updated"
        } else {
            "already up to date"
        }
    );
    Ok(())
}
