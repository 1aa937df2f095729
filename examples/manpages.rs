//! Writes the man pages of the Debian package from the command line's clap definitions:
//! infraaudit(1) and one page per subcommand (infraaudit-audit(1), ...), as roff, into DIR
//! (its earlier `*.1` pages removed first). cargo-deb gzips them into /usr/share/man/man1/.
//!
//! `cargo run --locked --example manpages -- DIR` (`make deb` runs it with `target/man`).
//!
//! The CLI lives in the binary crate (`src/main.rs` declares `mod cli`), so this example includes
//! the same module file: the pages describe exactly the parser the binary uses, and no subcommand
//! of the binary exists for them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

// Only the clap definitions are used here; the rest of the module serves the binary.
#[allow(dead_code)]
#[path = "../src/cli/mod.rs"]
mod cli;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: manpages DIR");
        return ExitCode::from(2);
    };
    let written = (|| -> std::io::Result<usize> {
        // Only earlier pages go: DIR may be any directory a typo names.
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(path)?;
            }
        }
        // Built first, so that each subcommand's page carries the version too; without the
        // help subcommand, which building would add and which needs no page.
        let mut cmd = cli::Cli::command()
            .propagate_version(true)
            .disable_help_subcommand(true);
        cmd.build();
        clap_mangen::generate_to(cmd, &dir)?;
        Ok(std::fs::read_dir(&dir)?.count())
    })();
    match written {
        Ok(n) => {
            eprintln!("manpages: {n} pages in {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("manpages: cannot write {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
