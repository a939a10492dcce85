//! Ctrl-C handling: the first Ctrl-C asks xtask to stop what it started and exit;
//! a second one exits at once.
//!
//! Child processes (cargo, tests, Maven) share our process group and receive the same
//! SIGINT from the terminal, so they stop by themselves; the Kafka broker and PostgreSQL
//! run in their own process groups and are stopped by the command that started them.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Starts watching for Ctrl-C on a background thread. Call once, early.
pub fn watch() {
    let spawned = std::thread::Builder::new().name("ctrl-c".to_string()).spawn(|| {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("xtask: cannot watch for Ctrl-C ({e}); Ctrl-C will not clean up");
                return;
            }
        };
        runtime.block_on(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    eprintln!("xtask: interrupted twice, exiting now");
                    std::process::exit(130);
                }
                eprintln!(
                    "xtask: interrupted; stopping what this command started \
                         (press Ctrl-C again to exit at once)"
                );
            }
        });
    });
    if let Err(e) = spawned {
        eprintln!("xtask: cannot watch for Ctrl-C ({e}); Ctrl-C will not clean up");
    }
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with "interrupted" once Ctrl-C was pressed; call it in every wait loop.
pub fn check() -> Result<()> {
    if requested() { Err("interrupted (Ctrl-C)".to_string()) } else { Ok(()) }
}
