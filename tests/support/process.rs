//! External processes the tests start (the gateway, the real provider, django-oauth-toolkit,
//! redis-server, the demo): each start is bounded and fails at once, with what the process
//! printed, when it exits or the bound passes; each process is stopped, with every process it
//! started, when its guard drops — the test passed or panicked — and when the test binary
//! itself dies (killed by a timeout, say), so no server is left behind for the next test.
//!
//! How: every child is its own process group (a kill reaches its children too, such as
//! Django's), and is spawned by one thread that lives as long as the test binary, with
//! `PR_SET_PDEATHSIG`: Linux kills the child when the thread that spawned it ends, and that
//! thread only ends with the process.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` in a process group of its own, bound to the life of the test binary.
pub fn spawn_bound(mut cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-process-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("the spawner thread starts");
        Mutex::new(tx)
    });
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes one system call.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .expect("the spawner thread is alive");
    answer.recv().expect("the spawner thread answers")
}

/// A running child process and the file its output goes to; its whole process group is
/// killed (and the child reaped) on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stderr (and stdout unless the caller set it) into
    /// `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, pipe_stdout: bool) -> Proc {
        let file = std::fs::File::create(log).expect("the log file can be made");
        cmd.stdin(Stdio::null())
            .stderr(file.try_clone().expect("the log file can be shared"));
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(file);
        }
        let child = spawn_bound(cmd).unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process is running").id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the process is running")
    }

    /// SIGKILL to the process group, as a crash would, and reap it: its ports are free after.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the group this child leads; a stale group id only fails.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Hands the child to the caller, who then stops it (the group is no longer killed here).
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("the process is running")
    }

    /// Fails the test with the process's output.
    pub fn fail(&mut self, why: &str) -> ! {
        let status = self.exited();
        let log = self.log();
        self.kill();
        panic!(
            "{} {why} (exit: {status:?}); it printed:\n{}",
            self.name,
            tail(&log, 60)
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let running = self.child.is_some();
        self.kill();
        if running && std::thread::panicking() {
            let log = self.log();
            if !log.trim().is_empty() {
                eprintln!("--- {} (last lines) ---\n{}", self.name, tail(&log, 30));
            }
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A server that says it is ready by printing a line starting with a known prefix on stdout
/// (`READY {json}` for the test servers, `demo ready: …` for the demo).
pub struct Server {
    pub proc: Proc,
    /// The ready line, without its prefix.
    pub ready: String,
    stdout: Arc<Mutex<String>>,
    /// Holds the log and any data the server keeps (DOT's sqlite, provider keys).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Spawns `cmd` and waits at most `within` for a stdout line starting with `prefix`.
    /// Blocking: it waits on the calling thread.
    pub fn start(
        name: &str,
        cmd: Command,
        prefix: &'static str,
        within: Duration,
        dir: tempfile::TempDir,
    ) -> Server {
        let log = dir.path().join(format!("{name}.log"));
        let mut proc = Proc::spawn(name, cmd, &log, true);
        let out = proc.child_mut().stdout.take().expect("stdout is piped");
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (seen, log_copy) = (Arc::clone(&stdout), log.clone());
        // Reads until EOF, so the child never writes into a closed pipe; copies each line to
        // the log so a failure shows stdout and stderr in order.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut file = std::fs::OpenOptions::new().append(true).open(log_copy).ok();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                {
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
                if let Some(rest) = line.strip_prefix(prefix) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.to_owned());
                    }
                }
            }
        });
        let ready = match rx.recv_timeout(within) {
            Ok(rest) => rest,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                proc.fail(&format!("exited before printing {prefix:?}"))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                proc.fail(&format!("printed no {prefix:?} line within {within:?}"))
            }
        };
        Server {
            proc,
            ready,
            stdout,
            dir,
        }
    }

    /// The ready line parsed as JSON (`READY {"port": …}`).
    pub fn ready_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ready).unwrap_or_else(|e| {
            panic!("{}: bad ready line {:?}: {e}", self.proc.name(), self.ready)
        })
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

/// Waits at most `within` until every address in `addrs` accepts a connection; fails the
/// test at once, with its output, if `proc` exits first.
pub async fn wait_listening(proc: &mut Proc, addrs: &[SocketAddr], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut all = true;
        for addr in addrs {
            all &= tokio::net::TcpStream::connect(addr).await.is_ok();
        }
        if all {
            return;
        }
        if proc.exited().is_some() {
            proc.fail("exited before it listened");
        }
        if Instant::now() >= deadline {
            proc.fail(&format!("was not listening on {addrs:?} within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
