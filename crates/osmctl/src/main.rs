//! `osmctl`: the operator CLI for osm. See `osmctl --help` and the README's "osmctl" section.

mod api;
mod cli;
mod commands;
mod output;
mod parse;
mod report;
mod wait;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "osmctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("osmctl: cannot start: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("osmctl: {}", failure.line());
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Help and version print as clap renders them; every usage error becomes one line and exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            eprintln!(
                "osmctl: {} (see --help)",
                usage_line(&e.render().to_string())
            );
            ExitCode::from(2)
        }
    }
}

/// clap's multi-line error text as one line, without the usage block that follows it.
fn usage_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .fold(String::new(), |mut line, part| {
            if !line.is_empty() {
                line.push_str(if part.starts_with("tip:") { "; " } else { " " });
            }
            line.push_str(part);
            line
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_line(args: &[&str]) -> String {
        let e = Cli::try_parse_from(args).unwrap_err();
        usage_line(&e.render().to_string())
    }

    #[test]
    fn usage_errors_fit_on_one_line() {
        let line = error_line(&["osmctl", "job", "get", "nope"]);
        assert!(line.starts_with("invalid value 'nope'"), "{line}");
        assert!(line.contains("scheduled job"), "{line}");
        let line = error_line(&["osmctl", "job", "create", "--name", "x", "--evry", "1d"]);
        assert!(line.contains("unexpected argument '--evry'"), "{line}");
        assert!(line.contains("--every"), "{line}");
        let line = error_line(&["osmctl", "group", "create"]);
        assert!(
            line.contains("required arguments were not provided: --name"),
            "{line}"
        );
        assert!(!line.contains("Usage"), "{line}");
    }
}
