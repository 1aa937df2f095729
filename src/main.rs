//! The `infraaudit` binary: parse the command line, load the configuration (exit 64 when it is
//! bad), then run the collectors and the HTTP server until SIGTERM or SIGINT, or one of the
//! one-shot subcommands of [`cli`].

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use infraaudit::aws::counters::ApiMetrics;
use infraaudit::config::{self, Settings};
use infraaudit::http::{self, AppState};
use infraaudit::metrics::Exporter;
use infraaudit::snapshot::SnapshotStore;
use infraaudit::{REVISION, VERSION, accounts, aws, discovery, web};

mod cli;

use cli::{Cli, Mode};

fn main() -> ExitCode {
    let mut args = Cli::parse();
    let mode = args.mode();
    let progress = progress_bar(&mode);
    // The SDK logs every retry at info; its warnings are enough next to our own logs. A
    // one-shot command's own messages say what matters, so by default it logs errors only.
    let (sdk_filter, filter) = match (args.log.as_deref(), &mode) {
        (Some(filter), _) => ("warn", filter),
        (None, Mode::Run) => ("warn", "info"),
        (None, _) => ("error", "error"),
    };
    init_logging(sdk_filter, filter, progress.clone());

    let flags = config::ShardFlags {
        shard: args.shard,
        total_shards: args.total_shards,
    };
    let settings = match config::load_with(
        args.config.as_deref(),
        &|name| std::env::var(name).ok(),
        flags,
        &infraaudit::collector::sections(),
    ) {
        Ok(s) => s,
        Err(e) => return cli::config_error(format_args!("bad configuration: {e}")),
    };
    // The web configuration matters to the daemon, and check-config vouches for it too.
    let serves = matches!(
        mode,
        Mode::Run | Mode::CheckConfig | Mode::LegacyCheckConfig
    );
    let web_file = args
        .web_config_file
        .take()
        .or_else(|| settings.config.server.web_config_file.clone())
        .filter(|_| serves);
    let web = match web_file {
        None => None,
        Some(path) => match web::Live::load(&path) {
            Ok(live) => Some(Arc::new(live)),
            Err(e) => {
                return cli::config_error(format_args!(
                    "bad web configuration {}: {e}",
                    path.display()
                ));
            }
        },
    };
    match mode {
        Mode::Run => {}
        Mode::Audit(a) => return cli::audit::main(settings, &a, &progress),
        Mode::Policy(p) => return cli::policy::main(&settings, &p),
        Mode::CheckConfig => return cli::show_config::main(&settings),
        Mode::LegacyPrintPolicy => {
            return if cli::write_stdout(&cli::policy::permission_policy(&settings)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Mode::LegacyCheckConfig => {
            return if cli::write_stdout("configuration OK\n") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    }
    let runtime = match cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(run(settings, web)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infraaudit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `audit`'s progress, per account and collector, on stderr when it is a terminal; hidden
/// otherwise and for every other mode.
fn progress_bar(mode: &Mode) -> ProgressBar {
    if !matches!(mode, Mode::Audit(_)) || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} auditing [{bar:30}] {pos}/{len} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Log lines go to stderr without tearing the progress bar (a no-op when it is hidden).
struct LogWriter(ProgressBar);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `sdk` is the level of the AWS SDK's crates, `filter` the rest.
fn init_logging(sdk: &str, filter: &str, progress: ProgressBar) {
    let filter = [
        "aws_config",
        "aws_smithy_runtime",
        "aws_sdk_sts",
        "aws_sdk_iam",
        "aws_sdk_s3",
        "aws_sdk_s3control",
        "aws_sdk_ec2",
        "aws_sdk_organizations",
    ]
    .iter()
    .map(|target| format!("{target}={sdk},"))
    .collect::<String>()
        // The chain's warning is the SDK's debug dump of the failed provider; the error that
        // follows names the cause in one line.
        + "aws_config::meta::credentials::chain=error,"
        + filter;
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || LogWriter(progress.clone()))
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(settings: Settings, web: Option<Arc<web::Live>>) -> Result<(), String> {
    let cfg = &settings.config;
    let listener = TcpListener::bind(cfg.server.listen_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.server.listen_address))?;

    let base = aws::base_config(&cfg.aws).await;
    // With discovery, the organization's accounts are the default, not the ambient one.
    let statics = if settings.accounts.is_empty() && settings.organizations.is_none() {
        let id = aws::caller_account(&base)
            .await
            .map_err(|e| cli::ambient_unknown(&e))?;
        tracing::info!(account_id = %id, "no [[accounts]] configured: auditing the account of the ambient credentials");
        vec![cfg.ambient_account(id)]
    } else {
        settings.accounts.clone()
    };

    let api = Arc::new(ApiMetrics::default());
    let config = Arc::new(cfg.clone());
    let store = Arc::new(SnapshotStore::new(Vec::new(), 0));
    let shutdown = CancellationToken::new();
    let registry = Arc::new(accounts::Registry::new(
        base.clone(),
        config.clone(),
        api.clone(),
        store.clone(),
        shutdown.clone(),
    ));
    let api_server = cfg.api.enabled.then(|| {
        Arc::new(infraaudit::api::Api::new(
            settings.api_tokens.clone(),
            config.clone(),
            registry.active(),
            base.clone(),
        ))
    });
    let exporter = Exporter::new(
        store.clone(),
        api.clone(),
        cfg,
        VERSION,
        REVISION,
        infraaudit::time::unix_now,
    );

    tokio::spawn(on_signal(shutdown.clone())?);
    let hangup = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(on_hangup(hangup.clone(), web.is_some())?);
    if let Some(web) = &web {
        let current = web.current();
        tracing::info!(
            path = %web.path().display(),
            tls = current.tls.is_some(),
            basic_auth = current.auth.is_some(),
            "web configuration loaded; reloaded on SIGHUP and when it changes"
        );
        tokio::spawn(web.clone().watch(hangup, shutdown.clone()));
    }
    // The configured accounts start at once; with discovery, readiness waits for the first
    // discovery, which adds the organization's accounts.
    let org = settings.organizations.clone();
    store.set_waiting(org.is_some());
    let accounts_n = registry
        .apply(accounts::merge(&statics, &[], org.as_ref(), cfg))
        .await;
    let discovering = org.map(|org| {
        tracing::info!(
            refresh_interval = %humantime::format_duration(org.refresh_interval),
            "discovering accounts in AWS Organizations"
        );
        let interval = org.refresh_interval;
        let following = accounts::Following {
            registry: registry.clone(),
            statics,
            org: org.clone(),
        };
        let discoverer = discovery::Discoverer::new(base.clone(), config.clone(), api.clone(), org);
        tokio::spawn(discovery::run(
            discoverer,
            following,
            interval,
            shutdown.clone(),
        ))
    });
    // The address bound: with port 0, the one the kernel picked.
    let address = listener.local_addr().unwrap_or(cfg.server.listen_address);
    tracing::info!(
        address = %address,
        accounts = accounts_n,
        shard = cfg.sharding.shard,
        total_shards = cfg.sharding.total_shards,
        version = VERSION,
        "serving /metrics"
    );
    let state = AppState {
        exporter,
        store,
        config,
        api: api_server,
    };
    http::serve_with(listener, Arc::new(state), web, shutdown).await;
    if let Some(task) = discovering {
        // Cancelled with the rest; it ends at its next await.
        let _ = task.await;
    }
    registry.stop_all().await;
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

/// Registers the SIGHUP handler now (its default action would end the process); the returned
/// future notifies `hangup` at each SIGHUP, which reloads the web configuration.
#[cfg(unix)]
fn on_hangup(
    hangup: Arc<tokio::sync::Notify>,
    reloadable: bool,
) -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    Ok(async move {
        while hup.recv().await.is_some() {
            if reloadable {
                tracing::info!("SIGHUP: reloading the web configuration");
                hangup.notify_one();
            } else {
                tracing::info!("SIGHUP: nothing to reload (no web configuration file)");
            }
        }
    })
}

#[cfg(not(unix))]
fn on_hangup(
    _hangup: Arc<tokio::sync::Notify>,
    _reloadable: bool,
) -> Result<impl std::future::Future<Output = ()>, String> {
    Ok(std::future::pending())
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
