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
        "--tls-cert",
        "--tls-key",
        "--web-dir",
        "--allowed-origin",
        "--rtc-listen-ip",
        "--supervisor-cores",
        "--worker-max-load",
        "--worker-max-consumers",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

/// Defaults < file < environment < flags, observed through `--print-config`.
#[test]
fn precedence_is_file_then_environment_then_flags() {
    let dir = std::env::temp_dir().join(format!("ferrosfu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ferrosfu.toml");
    std::fs::write(
        &file,
        "[http]\nlisten = \"0.0.0.0:7000\"\n[media]\nrtc_ports = \"1000-2000\"\n[log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            file.to_str().unwrap(),
            "--print-config",
            "--http-listen",
            "127.0.0.1:7001",
        ])
        .env("FERROSFU_RTC_PORTS", "3000-4000")
        .env("FERROSFU_HTTP_LISTEN", "127.0.0.1:7002")
        .env_remove("FERROSFU_LOG_LEVEL")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["http"]["listen"], "127.0.0.1:7001",
        "flag beats env and file"
    );
    assert_eq!(v["media"]["rtc_ports"], "3000-4000", "env beats file");
    assert_eq!(v["log"]["level"], "debug", "file beats default");
    assert_eq!(
        v["store"]["database_url"], "sqlite://data/ferrosfu.db",
        "default"
    );
    assert_eq!(v["workers"]["cores"], "auto");
}
