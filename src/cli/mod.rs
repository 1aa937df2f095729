//! The command line: the daemon (`run`, the default) and the one-shot subcommands `audit`,
//! `policy` and `check-config`. Findings and documents go to stdout; logs, progress and errors
//! to stderr.

pub mod audit;
pub mod policy;
pub mod show_config;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// EX_CONFIG from sysexits.h: the configuration (or the command line) is wrong, retrying will
/// not help.
pub const EXIT_CONFIG: u8 = 64;
/// `audit`: the audit completed and something failed a check.
pub const EXIT_FINDINGS: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "infraaudit",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("INFRAAUDIT_REVISION"), ")"),
    about = "Exports the security posture of AWS accounts (IAM access keys, ...) as Prometheus metrics.",
    long_about = None
)]
pub struct Cli {
    /// TOML configuration file. Without one: defaults, INFRAAUDIT_* variables, and the one
    /// account of the ambient AWS credentials.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "INFRAAUDIT_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,
    /// TLS and basic auth: a web configuration file in the Prometheus exporter-toolkit format
    /// (the one node_exporter takes). Overrides `[server] web_config_file`.
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `infraaudit=debug` [default: `info` for `run`, `error` for
    /// the other subcommands].
    #[arg(long, value_name = "FILTER", env = "INFRAAUDIT_LOG", global = true)]
    pub log: Option<String>,
    /// This process's shard, from 0: it audits only the accounts whose FNV-1a hash of the id,
    /// modulo --total-shards, is N. Overrides `[sharding] shard`.
    #[arg(long, value_name = "N", global = true)]
    pub shard: Option<u32>,
    /// How many processes share the accounts. Overrides `[sharding] total_shards`.
    #[arg(long, value_name = "M", global = true)]
    pub total_shards: Option<u32>,
    /// Deprecated: use `infraaudit check-config`. Validates the configuration and exits.
    #[arg(long, hide = true)]
    pub check_config: bool,
    /// Deprecated: use `infraaudit policy`. Prints the permission policy only, and exits.
    #[arg(long, hide = true)]
    pub print_policy: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the exporter until SIGTERM or SIGINT (the default without a subcommand).
    Run,
    /// Run every collector once and print each check's PASS or FAIL per resource. Exit code 0:
    /// everything passes; 3: something fails; 1: a collector failed, so verdicts are missing;
    /// 64: bad configuration, account or check.
    Audit(audit::AuditArgs),
    /// Print the IAM permission policy and the trust policy of the role in the audited accounts.
    Policy(policy::PolicyArgs),
    /// Validate the configuration and print it as it takes effect (defaults, file, environment),
    /// secrets masked.
    CheckConfig,
}

/// What to do, once the deprecated flags are resolved.
#[derive(Debug)]
pub enum Mode {
    Run,
    Audit(audit::AuditArgs),
    Policy(policy::PolicyArgs),
    CheckConfig,
    /// `--check-config`: prints "configuration OK", as it always did.
    LegacyCheckConfig,
    /// `--print-policy`: prints the permission policy alone, as it always did.
    LegacyPrintPolicy,
}

impl Cli {
    /// The mode; exits with a usage error when a deprecated flag meets a subcommand.
    pub fn mode(&mut self) -> Mode {
        let legacy = match (self.check_config, self.print_policy) {
            (false, false) => None,
            (true, false) => Some(Mode::LegacyCheckConfig),
            (false, true) => Some(Mode::LegacyPrintPolicy),
            (true, true) => Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--check-config and --print-policy cannot be used together",
                )
                .exit(),
        };
        match (legacy, self.command.take()) {
            (Some(mode), None | Some(Command::Run)) => {
                let new = match mode {
                    Mode::LegacyCheckConfig => "check-config",
                    _ => "policy",
                };
                eprintln!("infraaudit: this flag is deprecated; use `infraaudit {new}`");
                mode
            }
            (Some(_), Some(_)) => Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--check-config and --print-policy cannot be combined with a subcommand",
                )
                .exit(),
            (None, None | Some(Command::Run)) => Mode::Run,
            (None, Some(Command::Audit(a))) => Mode::Audit(a),
            (None, Some(Command::Policy(p))) => Mode::Policy(p),
            (None, Some(Command::CheckConfig)) => Mode::CheckConfig,
        }
    }
}

/// A multi-threaded runtime, or exit code 1 with the reason on stderr.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("infraaudit: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Why the ambient credentials' account is unknown, for a message that starts "infraaudit: ".
/// Without any credentials it says what to do in two lines, not the SDK's chain of causes.
pub fn ambient_unknown(e: &infraaudit::error::Error) -> String {
    if let infraaudit::error::Error::Aws { code, message, .. } = e
        && code == infraaudit::aws::error_code::NO_CREDENTIALS
    {
        use infraaudit::aws::error_code::NO_CREDENTIALS_FOUND;
        let first = match message.as_str() {
            NO_CREDENTIALS_FOUND => "no AWS credentials found (none in the environment, \
                 ~/.aws or an instance or container role)."
                .to_owned(),
            reason => format!(
                "no AWS credentials could be loaded (environment, ~/.aws, instance or container \
                 role): {reason}"
            ),
        };
        format!(
            "{first}\nSet some up as docs/aws-setup.md shows (installed: /usr/share/doc/infraaudit/docs/), \
             or try infraaudit without AWS: `make demo` in its source tree."
        )
    } else {
        format!("no [[accounts]] configured and the ambient credentials' account is unknown: {e}")
    }
}

/// Prints `message` as a usage or configuration error and returns exit code 64.
pub fn config_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("infraaudit: {message}");
    ExitCode::from(EXIT_CONFIG)
}

/// Writes `text` to stdout; false (with the reason on stderr) when stdout is gone.
pub fn write_stdout(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("infraaudit: cannot write to stdout: {e}");
            false
        }
    }
}
