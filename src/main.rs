//! The `infraaudit` binary: parse the command line, load the configuration (exit 64 when it is
//! bad), then run the collectors and the HTTP server until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use infraaudit::config::{self, Settings};
use infraaudit::http::{self, AppState};
use infraaudit::metrics::{ApiMetrics, Exporter};
use infraaudit::snapshot::{AccountInfo, SnapshotStore};
use infraaudit::{REVISION, VERSION, aws, collector, scheduler};

/// EX_CONFIG from sysexits.h: the configuration is wrong, restarting will not help.
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "infraaudit",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("INFRAAUDIT_REVISION"), ")"),
    about = "Exports the security posture of AWS accounts (IAM access keys, ...) as Prometheus metrics.",
    long_about = None
)]
struct Cli {
    /// TOML configuration file. Without one: defaults, INFRAAUDIT_* variables, and the one
    /// account of the ambient AWS credentials.
    #[arg(long, short = 'c', value_name = "FILE", env = "INFRAAUDIT_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `infraaudit=debug`.
    #[arg(
        long,
        value_name = "FILTER",
        env = "INFRAAUDIT_LOG",
        default_value = "info"
    )]
    log: String,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Print the IAM policy the audit role needs for the configured collectors, and exit.
    #[arg(long)]
    print_policy: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);

    let settings = match config::load(cli.config.as_deref(), &|name| std::env::var(name).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("infraaudit: bad configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.print_policy {
        print!("{}", collector::policy_json(&required_actions(&settings)));
        return ExitCode::SUCCESS;
    }
    if cli.check_config {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("infraaudit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infraaudit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The actions of every collector that runs for some account.
fn required_actions(settings: &Settings) -> Vec<&'static str> {
    let names: Vec<&str> = if settings.accounts.is_empty() {
        settings.config.enabled_collectors()
    } else {
        settings
            .accounts
            .iter()
            .flat_map(|a| a.collectors.iter().copied())
            .collect()
    };
    collector::permissions(names)
}

fn init_logging(filter: &str) {
    // The SDK logs every retry at info; its warnings are enough next to our own run logs.
    let filter = format!(
        "aws_config=warn,aws_smithy_runtime=warn,aws_sdk_sts=warn,aws_sdk_iam=warn,aws_sdk_s3=warn,aws_sdk_s3control=warn,aws_sdk_ec2=warn,{filter}"
    );
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(settings: Settings) -> Result<(), String> {
    let cfg = &settings.config;
    let listener = TcpListener::bind(cfg.server.listen_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.server.listen_address))?;

    let base = aws::base_config(&cfg.aws).await;
    let accounts = if settings.accounts.is_empty() {
        let id = aws::caller_account(&base).await.map_err(|e| {
            format!(
                "no [[accounts]] configured and the ambient credentials' account is unknown: {e}"
            )
        })?;
        tracing::info!(account_id = %id, "no [[accounts]] configured: auditing the account of the ambient credentials");
        vec![cfg.ambient_account(id)]
    } else {
        settings.accounts.clone()
    };

    let api = Arc::new(ApiMetrics::default());
    let mut jobs = Vec::new();
    let mut infos = Vec::new();
    for account in accounts {
        infos.push(AccountInfo {
            id: account.id.clone(),
            name: account.name.clone(),
        });
        let session = Arc::new(aws::AccountSession::new(
            &base,
            &cfg.aws,
            account,
            api.clone(),
        ));
        for (c, schedule) in collector::for_account(cfg, &session) {
            jobs.push(scheduler::Job {
                account_id: session.account.id.clone(),
                collector: c,
                schedule,
            });
        }
    }
    let store = Arc::new(SnapshotStore::new(infos, jobs.len()));
    let exporter = Exporter::new(
        store.clone(),
        api,
        cfg,
        VERSION,
        REVISION,
        scheduler::unix_now,
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone())?);
    let accounts_n = store.load().accounts.len();
    let mut tasks = scheduler::spawn(jobs, store.clone(), shutdown.clone());
    tracing::info!(
        address = %cfg.server.listen_address,
        accounts = accounts_n,
        version = VERSION,
        "serving /metrics"
    );
    let state = AppState {
        exporter,
        store,
        config: Arc::new(cfg.clone()),
        api: None,
    };
    http::serve(listener, Arc::new(state), shutdown).await;
    tasks.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Registers the SIGTERM and SIGINT handlers now, before anything is served, so that an early
/// signal still takes the graceful path; the returned future cancels `shutdown` on either.
#[cfg(unix)]
fn on_signal(shutdown: CancellationToken) -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    })
}

#[cfg(not(unix))]
fn on_signal(shutdown: CancellationToken) -> Result<impl std::future::Future<Output = ()>, String> {
    Ok(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    })
}
