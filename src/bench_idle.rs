//! `satellite bench --idle`: what the agent costs while it waits, next to
//! two classic device daemons from Debian measured in the same run.
//!
//! * **The agent**: this binary's `run`, as a child process, with a
//!   temporary configuration (no chip, no upstream) whose printer is the
//!   simulator (speed 0) behind a pseudo-terminal: `printer-sim` beside this
//!   binary, else the bundled one in this (the bench's) process; `--agent
//!   PATH` measures another build (the package's, without the simulator).
//!   It runs as under systemd: `NOTIFY_SOCKET` (a socket of the bench's)
//!   and `WATCHDOG_USEC` of the unit's 30 s, so STATUS= lines and watchdog
//!   pings count. Measured once it is idle with the printer connected and
//!   ready, and a few seconds more for start-up to settle.
//! * **NUT**: `upsd` and its `dummy-ups` driver (a `.dev` file, its default
//!   poll interval), foreground, configured in a temporary directory.
//! * **gpsd**: `gpsd -N -n` on a pseudo-terminal the bench feeds with one
//!   burst of NMEA (GGA and RMC) a second, as a receiver does.
//!
//! Over the same window, for each: RSS (`VmRSS` at its end, the largest seen
//! too), CPU ticks (`utime + stime` of `/proc/PID/stat`, every thread, in
//! USER_HZ = 1/100 s) and wake-ups: context switches, voluntary and not,
//! summed over every thread (`/proc/PID/task/*/status`), each thread's
//! counters read every second so that a thread which starts or ends in the
//! window is counted too (to within its last second). A voluntary switch is
//! the thread going to sleep, so each one is a wake-up that follows.
//!
//! Then the fault-detection delay while idle: `cover-open` raised in the
//! simulator at a random moment, timed until the agent's published view
//! (`GET /v1/printer`, polled every 10 ms) shows PRT_COVER_OPEN; cleared,
//! and timed until it reads ready again. The polling comes after the
//! footprint window, so it wakes nobody during it. Figures, not assertions.

use crate::api::client::Client;
use crate::bench::Printer;
use crate::store::Keys;
use printer_sim::control::Request;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How many times a fault is raised and cleared.
const FAULTS: usize = 10;
/// After the agent first reads ready: start-up's threads and timers settle.
const SETTLE: Duration = Duration::from_secs(5);

pub async fn run(
    seconds: u64,
    agent: Option<PathBuf>,
    probe_ms: Option<u64>,
    json_out: bool,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = dir.path();
    let printer = Printer::start(dir).await?;
    let exe = match agent {
        Some(p) => p,
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    // As under systemd (`Type=notify`, `WatchdogSec=30s`): the agent sends
    // its STATUS= lines and watchdog pings to a socket of the bench's, which
    // reads and drops them.
    let notify_path = dir.join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).map_err(|e| e.to_string())?;
    let notified = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let drain = tokio::spawn({
        let notified = notified.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            while notify.recv(&mut buf).await.is_ok() {
                notified.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let agent = start_agent(&exe, dir, printer.link(), &notify_path, probe_ms).await?;
    // The others start meanwhile, so that all three are measured together.
    let nut = start_nut(dir).await;
    let gps = start_gpsd(dir).await;
    let api = Client::new(&dir.join("api.sock"));
    wait_ready(&api, &agent.pid, dir).await?;
    tokio::time::sleep(SETTLE).await;

    let mut subjects: Vec<(String, Result<Vec<u32>, String>)> = vec![
        ("satellite run".into(), Ok(vec![agent.pid])),
        (
            "NUT upsd + dummy-ups".into(),
            nut.as_ref().map(|n| n.pids()).map_err(Clone::clone),
        ),
        (
            "gpsd, fed 1 burst/s".into(),
            gps.as_ref().map(|g| vec![g.pid]).map_err(Clone::clone),
        ),
    ];
    for (name, pids) in &mut subjects {
        if let Ok(p) = pids {
            if let Some(gone) = p
                .iter()
                .find(|p| !Path::new(&format!("/proc/{p}")).exists())
            {
                *pids = Err(format!(
                    "exited before the window (pid {gone}); see {}",
                    dir.display()
                ));
                eprintln!("satellite bench --idle: {name}: exited before the window");
            }
        }
    }
    let window = Duration::from_secs(seconds.max(1));
    let measured = measure(&subjects, window).await;
    let agent_mem = memory(agent.pid);

    let faults = fault_delays(&api, &printer).await?;
    let sim_where = if printer.separate() {
        "printer-sim, a separate process"
    } else {
        "the bundled simulator, in the bench's process"
    };
    drop(gps);
    drop(nut);
    drop(agent);
    drain.abort();
    if notified.load(Ordering::Relaxed) == 0 {
        return Err("the agent sent no notification (READY=1, STATUS=, WATCHDOG=1) to the bench's NOTIFY_SOCKET".into());
    }

    if json_out {
        let rows: Vec<Value> = subjects
            .iter()
            .zip(&measured)
            .map(|((name, _), m)| match m {
                Ok(m) => json!({
                    "name": name, "pids": m.pids, "rss_kb": m.rss_kb, "rss_max_kb": m.rss_max_kb,
                    "rss_anon_kb": m.anon_kb, "rss_file_kb": m.file_kb,
                    "cpu_ticks": m.ticks, "wakeups": m.voluntary + m.involuntary,
                    "voluntary": m.voluntary, "involuntary": m.involuntary,
                    "wakeups_per_s": (m.voluntary + m.involuntary) as f64 / window.as_secs_f64(),
                    "threads": m.threads,
                }),
                Err(e) => json!({ "name": name, "missing": e }),
            })
            .collect();
        println!(
            "{:#}",
            json!({
                "seconds": window.as_secs(), "printer": sim_where, "daemons": rows,
                "agent": exe.display().to_string(), "idle_probe_ms": probe_ms.unwrap_or(1000),
                "agent_memory_kb": agent_mem,
                "fault_detection_ms": faults.json(),
            })
        );
        return Ok(());
    }
    println!(
        "satellite bench --idle: {} s idle with the printer connected ({sim_where}, speed 0, over a pseudo-terminal); the agent {}, idle probe every {} ms",
        window.as_secs(),
        exe.display(),
        probe_ms.unwrap_or(1000)
    );
    println!(
        "  {:<24} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "", "RSS MB", "anon MB", "file MB", "CPU tk", "wake-ups", "per s", "threads"
    );
    for ((name, _), m) in subjects.iter().zip(&measured) {
        match m {
            Ok(m) => println!(
                "  {name:<24} {:>8.1} {:>8.1} {:>8.1} {:>8} {:>10} {:>8.2} {:>8}",
                m.rss_kb as f64 / 1024.0,
                m.anon_kb as f64 / 1024.0,
                m.file_kb as f64 / 1024.0,
                m.ticks,
                m.voluntary + m.involuntary,
                (m.voluntary + m.involuntary) as f64 / window.as_secs_f64(),
                m.threads
            ),
            Err(e) => println!("  {name:<24} {e}"),
        }
    }
    println!("  (RSS: VmRSS at the window's end; CPU: utime+stime in 1/100 s; wake-ups: context switches of every thread, voluntary and not)");
    if let Some(m) = &agent_mem {
        println!(
            "  the agent's RSS: {} kB anonymous, {} kB file-backed (its code), {} kB shared memory",
            m["RssAnon"], m["RssFile"], m["RssShmem"]
        );
    }
    println!(
        "  fault detection while idle (cover-open, until GET /v1/printer shows it; {} times): p50 {} ms, max {} ms; cleared until ready: p50 {} ms, max {} ms",
        faults.raised.len(),
        faults.p(&faults.raised, 0.5),
        faults.p(&faults.raised, 1.0),
        faults.p(&faults.cleared, 0.5),
        faults.p(&faults.cleared, 1.0),
    );
    Ok(())
}

/// A child process killed (and reaped) when dropped.
/// A child process, killed when dropped (`bench --d1-kills` too).
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) child: Child,
}

/// Starts `cmd` with its output in `log`.
pub(crate) fn spawn(cmd: &mut Command, log: &Path) -> Result<Proc, String> {
    let err = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(err.try_clone().map_err(|e| e.to_string())?)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{:?}: {e}", cmd.as_std().get_program()))?;
    let pid = child.id().ok_or("the child exited at once")?;
    Ok(Proc { pid, child })
}

/// `satellite run` with a configuration like a kiosk's, less the chip and
/// the upstream: the store, the API socket, one card type.
async fn start_agent(
    exe: &Path,
    dir: &Path,
    printer: &Path,
    notify: &Path,
    probe_ms: Option<u64>,
) -> Result<Proc, String> {
    Keys::generate(&dir.join("card.key")).map_err(|e| e.to_string())?;
    let config = dir.join("satellite.toml");
    let mut text = crate::config::Config::local_text(dir, "IDLE01", &printer.display().to_string());
    if let Some(ms) = probe_ms {
        text = text.replacen(
            "[printer]\n",
            &format!("[printer]\nidle_probe_ms = {ms}\n"),
            1,
        );
    }
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    spawn(
        Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(&config)
            // The daemon's own default logging, whatever the bench's.
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env("NOTIFY_SOCKET", notify)
            .env("WATCHDOG_USEC", "30000000")
            .env_remove("WATCHDOG_PID"),
        &dir.join("agent.log"),
    )
}

/// Until the agent says it is idle and the printer ready, with a full reading.
async fn wait_ready(api: &Client, pid: &u32, dir: &Path) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(a) = api.get("/v1/status").await {
            let b = &a.body;
            if b["state"] == "idle"
                && b["printer"]["ready"] == true
                && !b["printer"]["fullReadAt"].is_null()
            {
                return Ok(());
            }
        }
        if !Path::new(&format!("/proc/{pid}")).exists() || start.elapsed() > Duration::from_secs(30)
        {
            let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
            return Err(format!(
                "the agent is not idle and ready after 30 s: {}",
                log.trim()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first of `names` in the usual places of Debian's packages.
fn find(names: &[&str]) -> Option<PathBuf> {
    let dirs = [
        "/lib/nut",
        "/usr/lib/nut",
        "/usr/libexec/nut",
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
    ];
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| Path::new(d).join(n)))
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Nut {
    driver: Proc,
    upsd: Proc,
}

impl Nut {
    fn pids(&self) -> Vec<u32> {
        vec![self.driver.pid, self.upsd.pid]
    }
}

/// `dummy-ups` on a `.dev` file and `upsd` serving it on loopback, both in
/// the foreground, with the least configuration they accept. Debian's
/// `/usr/sbin/upsd` is a script that refuses to start unless
/// /etc/nut/nut.conf says MODE: the program itself is /lib/nut/upsd.
async fn start_nut(dir: &Path) -> Result<Nut, String> {
    let (Some(driver), Some(upsd)) = (find(&["dummy-ups"]), find(&["upsd"])) else {
        return Err("not installed (apt-get install nut-server)".into());
    };
    let nut = dir.join("nut");
    let state = nut.join("state");
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(&state).map_err(io)?;
    std::fs::write(
        nut.join("bench.dev"),
        "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 3600\ninput.voltage: 230.0\noutput.voltage: 230.0\nups.load: 20\ndevice.mfr: Bench\ndevice.model: Dummy\n",
    )
    .map_err(io)?;
    std::fs::write(
        nut.join("ups.conf"),
        format!(
            "[bench]\n  driver = dummy-ups\n  port = {}\n  desc = \"satellite bench --idle\"\n",
            nut.join("bench.dev").display()
        ),
    )
    .map_err(io)?;
    std::fs::write(
        nut.join("upsd.conf"),
        format!(
            "LISTEN 127.0.0.1 {}\nSTATEPATH {}\n",
            free_port()?,
            state.display()
        ),
    )
    .map_err(io)?;
    std::fs::write(nut.join("upsd.users"), "").map_err(io)?;
    let root = is_root();
    let env = |c: &mut Command| {
        c.env("NUT_CONFPATH", &nut)
            .env("NUT_STATEPATH", &state)
            .env("NUT_ALTPIDPATH", &state);
        if root {
            // NUT refuses to keep root; the temporary files are root's.
            c.args(["-u", "root"]);
        }
    };
    let mut c = Command::new(&driver);
    c.args(["-a", "bench", "-F"]);
    env(&mut c);
    let driver = spawn(&mut c, &nut.join("dummy-ups.log"))?;
    // upsd finds the driver by its socket in the state directory.
    for _ in 0..100 {
        let found = std::fs::read_dir(&state)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("dummy-ups"))
            })
            .unwrap_or(false);
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = Command::new(&upsd);
    c.arg("-F");
    env(&mut c);
    let upsd = spawn(&mut c, &nut.join("upsd.log"))?;
    Ok(Nut { driver, upsd })
}

/// gpsd on a pseudo-terminal, fed by a thread of the bench.
struct Gps {
    pid: u32,
    _gpsd: Proc,
    stop: Arc<AtomicBool>,
}

impl Drop for Gps {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn start_gpsd(dir: &Path) -> Result<Gps, String> {
    let Some(gpsd) = find(&["gpsd"]) else {
        return Err("not installed (apt-get install gpsd)".into());
    };
    let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
    let slave = nix::unistd::ttyname(&pty.slave).map_err(|e| format!("ttyname: {e}"))?;
    // Raw, so that the line discipline does not echo the sentences back.
    let mut t = nix::sys::termios::tcgetattr(&pty.slave).map_err(|e| e.to_string())?;
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t)
        .map_err(|e| e.to_string())?;
    let proc = spawn(
        Command::new(gpsd)
            .args(["-N", "-n", "-S"])
            .arg(free_port()?.to_string())
            .arg(&slave),
        &dir.join("gpsd.log"),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        // The slave stays open here, so that writes never meet a closed line.
        let _slave = pty.slave;
        let mut master = std::fs::File::from(pty.master);
        let _ = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut sink = [0u8; 4096];
        while !flag.load(Ordering::Relaxed) {
            let _ = master.write_all(nmea_burst(std::time::SystemTime::now()).as_bytes());
            // What gpsd writes while it probes the receiver: drained.
            while matches!(master.read(&mut sink), Ok(n) if n > 0) {}
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    Ok(Gps {
        pid: proc.pid,
        _gpsd: proc,
        stop,
    })
}

/// One second of a receiver's output: a fix (GGA) and the recommended
/// minimum (RMC, which carries the date).
fn nmea_burst(now: std::time::SystemTime) -> String {
    // "2026-11-29T00:28:35Z"
    let t = humantime::format_rfc3339_seconds(now).to_string();
    let hms = format!("{}{}{}.00", &t[11..13], &t[14..16], &t[17..19]);
    let dmy = format!("{}{}{}", &t[8..10], &t[5..7], &t[2..4]);
    [
        format!("GPGGA,{hms},4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        format!("GPRMC,{hms},A,4807.038,N,01131.000,E,000.0,000.0,{dmy},,,A"),
    ]
    .iter()
    .map(|b| format!("${b}*{:02X}\r\n", b.bytes().fold(0u8, |c, x| c ^ x)))
    .collect()
}

struct Measured {
    pids: Vec<u32>,
    rss_kb: u64,
    rss_max_kb: u64,
    /// The resident set's anonymous part (heap, stacks) and its file-backed
    /// part (code and libraries, shared with the page cache), summed.
    anon_kb: u64,
    file_kb: u64,
    ticks: u64,
    voluntary: u64,
    involuntary: u64,
    threads: usize,
}

/// Samples every subject each second over `window`.
async fn measure(
    subjects: &[(String, Result<Vec<u32>, String>)],
    window: Duration,
) -> Vec<Result<Measured, String>> {
    struct Acc {
        seen: HashMap<(u32, u32), (u64, u64)>,
        voluntary: u64,
        involuntary: u64,
        ticks0: u64,
        rss_max: u64,
    }
    let mut accs: Vec<Option<Acc>> = subjects
        .iter()
        .map(|(_, p)| {
            p.as_ref().ok().map(|pids| Acc {
                seen: switches(pids),
                voluntary: 0,
                involuntary: 0,
                ticks0: ticks(pids),
                rss_max: rss(pids),
            })
        })
        .collect();
    let start = tokio::time::Instant::now();
    let mut next = start;
    loop {
        next += Duration::from_secs(1);
        let last = next >= start + window;
        tokio::time::sleep_until(if last { start + window } else { next }).await;
        for ((_, pids), acc) in subjects.iter().zip(&mut accs) {
            let (Ok(pids), Some(acc)) = (pids, acc) else {
                continue;
            };
            let now = switches(pids);
            for (tid, (v, n)) in &now {
                // A thread first seen now started in the window: all of its switches are.
                let (v0, n0) = acc.seen.get(tid).copied().unwrap_or((0, 0));
                acc.voluntary += v.saturating_sub(v0);
                acc.involuntary += n.saturating_sub(n0);
            }
            acc.seen = now;
            acc.rss_max = acc.rss_max.max(rss(pids));
        }
        if last {
            break;
        }
    }
    subjects
        .iter()
        .zip(accs)
        .map(|((_, pids), acc)| {
            let pids = pids.as_ref().map_err(Clone::clone)?;
            let acc = acc.expect("measured");
            Ok(Measured {
                pids: pids.clone(),
                rss_kb: rss(pids),
                rss_max_kb: acc.rss_max,
                anon_kb: pids.iter().filter_map(|&p| status_kb(p, "RssAnon")).sum(),
                file_kb: pids.iter().filter_map(|&p| status_kb(p, "RssFile")).sum(),
                ticks: ticks(pids).saturating_sub(acc.ticks0),
                voluntary: acc.voluntary,
                involuntary: acc.involuntary,
                threads: acc.seen.len(),
            })
        })
        .collect()
}

/// Each thread's (voluntary, involuntary) context switches, by (pid, tid).
fn switches(pids: &[u32]) -> HashMap<(u32, u32), (u64, u64)> {
    let mut out = HashMap::new();
    for &pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(tid) = t.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(s) = std::fs::read_to_string(t.path().join("status")) else {
                continue;
            };
            let field = |name: &str| -> u64 {
                s.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            out.insert(
                (pid, tid),
                (
                    field("voluntary_ctxt_switches:"),
                    field("nonvoluntary_ctxt_switches:"),
                ),
            );
        }
    }
    out
}

/// utime + stime of every thread, living and gone, in USER_HZ ticks.
fn ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // Fields after the command, which may hold spaces, in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15: 12 and 13 after the command.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| status_kb(p, "VmRSS")).sum()
}

/// The agent's resident set by kind.
fn memory(pid: u32) -> Option<Value> {
    let mut m = serde_json::Map::new();
    for k in ["VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"] {
        m.insert(k.into(), status_kb(pid, k)?.into());
    }
    Some(Value::Object(m))
}

struct Delays {
    raised: Vec<Duration>,
    cleared: Vec<Duration>,
}

impl Delays {
    fn p(&self, v: &[Duration], q: f64) -> u128 {
        let mut v = v.to_vec();
        v.sort();
        if v.is_empty() {
            return 0;
        }
        v[((v.len() - 1) as f64 * q).round() as usize].as_millis()
    }

    fn json(&self) -> Value {
        let ms = |v: &[Duration]| v.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>();
        json!({
            "raised": { "p50": self.p(&self.raised, 0.5) as u64, "max": self.p(&self.raised, 1.0) as u64, "each": ms(&self.raised) },
            "cleared": { "p50": self.p(&self.cleared, 0.5) as u64, "max": self.p(&self.cleared, 1.0) as u64, "each": ms(&self.cleared) },
        })
    }
}

/// `cover-open` raised at a random moment of the idle probe's cycle, timed
/// from the simulator's answer until the published view shows it, then
/// cleared and timed until it reads ready.
async fn fault_delays(api: &Client, printer: &Printer) -> Result<Delays, String> {
    let mut d = Delays {
        raised: Vec::new(),
        cleared: Vec::new(),
    };
    for _ in 0..FAULTS {
        tokio::time::sleep(Duration::from_millis(500 + random_below(2000))).await;
        printer
            .control(Request::Raise {
                condition: "cover-open".into(),
            })
            .await?;
        d.raised.push(
            until(api, |v| v["notReady"]["code"] == "PRT_COVER_OPEN")
                .await
                .map_err(|e| format!("cover-open never showed: {e}"))?,
        );
        tokio::time::sleep(Duration::from_millis(random_below(1000))).await;
        printer
            .control(Request::Clear {
                condition: Some("cover-open".into()),
            })
            .await?;
        d.cleared.push(
            until(api, |v| v["ready"] == true)
                .await
                .map_err(|e| format!("ready never came back: {e}"))?,
        );
    }
    Ok(d)
}

async fn until(api: &Client, ok: impl Fn(&Value) -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(a) = api.get("/v1/printer").await {
            if ok(&a.body) {
                return Ok(start.elapsed());
            }
            last = a.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("not within 20 s: {last}"))
}

/// A random number below `n`, for picking moments.
pub(crate) fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return n / 2;
    }
    u64::from_le_bytes(b) % n.max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nmea_checksums_and_fields() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_912_115);
        let s = super::nmea_burst(t);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(lines[0].starts_with("$GPGGA,002835.00,"), "{s}");
        assert!(lines[1].contains(",291126,"), "{s}");
        for l in lines {
            let (body, sum) = l[1..].split_once('*').expect("checksum");
            let c = body.bytes().fold(0u8, |c, x| c ^ x);
            assert_eq!(format!("{c:02X}"), sum, "{l}");
        }
    }
}
