//! The `ferrosfu` binary's command line: documented flags, configuration errors exit with 2.
//! (Also makes `cargo test --workspace` build the binary the end-to-end tests in `tests/` run.)

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

const BIN: &str = env!("CARGO_BIN_EXE_ferrosfu");

#[test]
fn bad_configuration_exits_with_2() {
    for args in [
        &["--worker-cores", "99999"][..],
        &["--rtc-ports", "9-1"],
        &["--config", "/nonexistent/ferrosfu.toml"],
        &["--log-level", "[[["],
    ] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .args(["--http-listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn help_documents_the_flags() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--http-listen",
        "--worker-cores",
        "--log-level",
        "--log-format",
        "--rtc-ports",
        "--announced-ip",
        "--database-url",
        "--recordings-dir",
        "--dev",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}
