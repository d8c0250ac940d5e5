//! A real PostgreSQL server for tests: a fresh cluster in a temp dir, listening on a free
//! loopback port (and a unix socket in the temp dir), trust authentication, a database named
//! `ferrosfu`. Nothing is installed as a service; the server lives as long as the value.
//!
//! The binaries come from the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else from
//! `PATH`. `initdb` and `postgres` refuse to run as root: when the tests run as root, the server
//! runs as the `postgres` system user (via `runuser`) and the temp dir is handed to it.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// The superuser created by `initdb`, used in the URL.
const USER: &str = "postgres";
const DATABASE: &str = "ferrosfu";
/// How long starting, stopping and becoming ready may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// Attempts to find a port nobody takes between choosing it and the server binding it.
const PORT_ATTEMPTS: usize = 5;

/// A PostgreSQL server in a temp dir. Stopped (immediately) and removed on drop.
#[derive(Debug)]
pub struct PgServer {
    /// The temp dir: socket, log, and `data/` (the cluster).
    dir: PathBuf,
    bin: PathBuf,
    /// `runuser` when the server must run as the `postgres` user (tests running as root).
    runuser: Option<PathBuf>,
    port: u16,
    running: bool,
}

impl PgServer {
    /// initdb in a fresh temp dir, start on a free loopback port (127.0.0.1 only, unix socket
    /// in the temp dir), create database "ferrosfu"; waits until it accepts connections.
    pub fn start() -> anyhow::Result<PgServer> {
        let bin = find_bin_dir()?;
        let runuser = if effective_uid()? == 0 {
            Some(find_runuser()?)
        } else {
            None
        };
        let dir = make_temp_dir()?;
        // From here on, drop removes the dir (and stops the server once it runs).
        let mut server = PgServer {
            dir,
            bin,
            runuser,
            port: 0,
            running: false,
        };
        if server.runuser.is_some() {
            let (uid, gid) = system_user_ids(USER)?;
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .with_context(|| format!("chown {} to {USER}", server.dir.display()))?;
        }
        server.initdb()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => break,
                Err(e)
                    if attempt < PORT_ATTEMPTS && server.log_tail().contains("could not bind") =>
                {
                    eprintln!("pg: port {} taken, trying another: {e:#}", server.port);
                }
                Err(e) => return Err(e),
            }
        }
        server.wait_ready()?;
        let out = server
            .client("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                USER,
                DATABASE,
            ])
            .output()
            .context("run createdb")?;
        check(&out, "createdb")?;
        Ok(server)
    }

    /// postgres://USER@127.0.0.1:PORT/ferrosfu
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping the data dir: for
    /// outage tests.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let out = self
            .server_tool("pg_ctl")
            .args(["-D", &self.data_dir(), "-m", "fast", "-w", "-t"])
            .arg(DEADLINE.as_secs().to_string())
            .arg("stop")
            .output()
            .context("run pg_ctl stop")?;
        check(&out, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    /// Starts it again on the same port and data dir; waits until it accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start()?;
        self.wait_ready()
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(2000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// A server-side binary (initdb, pg_ctl), run as `postgres` when we are root.
    fn server_tool(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        let mut cmd = match &self.runuser {
            Some(runuser) => {
                let mut c = Command::new(runuser);
                c.args(["-u", USER, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        self.prepare(&mut cmd);
        cmd
    }

    /// A client binary (pg_isready, createdb), run as whoever we are.
    fn client(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        self.prepare(&mut cmd);
        cmd
    }

    fn prepare(&self, cmd: &mut Command) {
        // The environment must not point the tools at another server.
        for var in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGDATA",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGSSLMODE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let out = self
            .server_tool("initdb")
            .args(["-D", &self.data_dir(), "-U", USER])
            .args(["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .context("run initdb")?;
        check(&out, "initdb")
    }

    /// `pg_ctl start -w`: returns once the server accepts connections or has failed.
    fn pg_ctl_start(&mut self) -> anyhow::Result<()> {
        let socket_dir = self.dir.display().to_string();
        if socket_dir.contains(['\'', '"', '\\']) {
            bail!("temp dir {socket_dir:?} has quotes in its path");
        }
        // Durability is pointless for a test cluster; fast shutdown still writes a checkpoint.
        let options = format!(
            "-p {} -k '{socket_dir}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port
        );
        let out = self
            .server_tool("pg_ctl")
            .args(["-D", &self.data_dir(), "-l"])
            .arg(self.log_path())
            .args(["-o", &options, "-w", "-t"])
            .arg(DEADLINE.as_secs().to_string())
            .arg("start")
            .output()
            .context("run pg_ctl start")?;
        check(&out, "pg_ctl start").with_context(|| format!("server log:\n{}", self.log_tail()))?;
        self.running = true;
        Ok(())
    }

    /// Polls `pg_isready` until the server accepts connections on the TCP port.
    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self
                .client("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", "postgres", "-t", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("run pg_isready")?;
            if status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres on port {} not ready after {DEADLINE:?}; server log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .server_tool("pg_ctl")
                .args(["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, else the `PATH` entry that has
/// both `initdb` and `pg_ctl`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "pg_isready", "createdb"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d)) {
            return Ok(dir);
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin \
         or PATH: run scripts/test, which installs postgresql"
    )
}

fn find_runuser() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["/usr/sbin/runuser", "/sbin/runuser"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("runuser")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .context("running as root, and runuser (util-linux) is missing: cannot run postgres as the postgres user")
}

/// The effective uid, from /proc/self/status ("Uid: real effective saved fs").
fn effective_uid() -> anyhow::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .context("no effective uid in /proc/self/status")
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user_ids(name: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("read /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == name)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .with_context(|| {
            format!(
                "no `{name}` user in /etc/passwd (the postgresql package creates it): \
                 run scripts/test, which installs postgresql"
            )
        })
}

/// A port free on 127.0.0.1 right now (the listener is released at once; the caller retries
/// if someone takes it before the server binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn make_temp_dir() -> anyhow::Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ferrosfu-pg-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
