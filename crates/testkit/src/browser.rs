//! The dashboard's browser tests' prerequisites: Debian's `/usr/bin/chromium` and Playwright
//! (PyPI) in a venv of its own, `/opt/edgecap-browser` (scripts/test installs both), or the
//! Python named by `EDGECAP_BROWSER_PYTHON`. One rule for every browser test (the server's and
//! the fleet's): found, or a note and a skip outside CI, or a failure under `CI=true`.

use std::path::Path;
use std::process::Command;

/// Where Debian's chromium is; Playwright drives it and downloads no browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The Python that runs the browser scripts, or None (after a note) outside CI when chromium
/// or Playwright is missing; under `CI=true` a missing one panics.
pub fn python() -> Option<String> {
    let python = std::env::var("EDGECAP_BROWSER_PYTHON")
        .unwrap_or_else(|_| "/opt/edgecap-browser/bin/python".into());
    let ready = Path::new(CHROMIUM).exists()
        && Command::new(&python)
            .args(["-c", "import playwright.sync_api"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ready {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{CHROMIUM} or Playwright in {python} is missing (scripts/test installs them)"
    );
    eprintln!("note: chromium or Playwright is not installed; skipping the browser test");
    None
}
