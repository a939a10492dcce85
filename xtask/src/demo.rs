//! `cargo xtask demo`: every seed scenario end to end through the `platform` binary.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::services::Services;
use crate::{paths, process};

/// Runs `platform demo --out DIR`, over Kafka when `kafka` is given: `Some(Some(addr))`
/// uses that broker, `Some(None)` uses `$KAFKA_BOOTSTRAP` or our local broker (started
/// and stopped again if needed). `None` uses the in-process bus.
/// With `screenshot`, renders the report in headless Chromium (an empty path
/// means `<out>/report.png`).
pub fn run(kafka: Option<Option<String>>, out: Option<&Path>, screenshot: Option<&Path>) -> Result<()> {
    let root = paths::workspace_root();
    let out: PathBuf = out.map_or_else(|| root.join("target").join("demo"), paths::absolute);
    let mut services = Services::new();
    let bootstrap = match kafka {
        None => None,
        Some(Some(addr)) => Some(addr),
        Some(None) => Some(services.kafka()?),
    };
    let mut cmd = process::cargo_command();
    cmd.args(["run", "--release", "-p", "platform", "--", "demo", "--out"]).arg(&out).current_dir(&root);
    if let Some(addr) = &bootstrap {
        cmd.args(["--kafka", addr]);
    }
    let result = process::run(&mut cmd);
    let stopped = services.stop();
    result?;
    stopped?;
    println!("demo output: {} (summary.json, report.html)", out.display());
    if let Some(png) = screenshot {
        let png = if png.as_os_str().is_empty() { out.join("report.png") } else { paths::absolute(png) };
        let picture = crate::screenshot::take(&out.join("report.html"), &png)?;
        println!(
            "screenshot: {} ({}x{} px, {:.1}% ink, {} colours)",
            png.display(),
            picture.width,
            picture.height,
            picture.ink * 100.0,
            picture.colours
        );
    }
    Ok(())
}
