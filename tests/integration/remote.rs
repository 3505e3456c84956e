//! Training on another machine's device (`descent serve`, `--device remote:ws://...`), on
//! loopback: the same losses as a local run, a wrong token refused while the server keeps
//! serving, and a server that dies mid-run ending the client with a clear message in bounded time.
#![cfg(all(unix, feature = "remote"))]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{descent, descent_with_env, numbers, summary};

/// Far longer than any step here takes when it works: only a hang reaches it.
const HANG_LIMIT: Duration = Duration::from_secs(120);

fn scratch(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("remote").join(name);
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

/// A `descent serve` on a free loopback port, its address, and the lines it prints after the
/// address (sessions opened and refused), as they come.
struct Server {
    child: Child,
    address: String,
    events: mpsc::Receiver<String>,
}

impl Server {
    fn start(token_file: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
            .args(["serve", "--listen", "127.0.0.1:0", "--device", "flex", "--token-file"])
            .arg(token_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines
            .by_ref()
            .map(Result::unwrap)
            .find_map(|line| line.split(" on ").nth(1).filter(|a| a.starts_with("ws://")).map(String::from))
            .expect("the server prints its address");
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, address, events }
    }

    fn device(&self) -> String {
        format!("remote:{}", self.address)
    }

    /// The next session the server reports (a line naming the client), waiting at most
    /// `HANG_LIMIT`; Burn's own log lines in between are skipped.
    fn next_event(&self) -> String {
        loop {
            let line = self.events.recv_timeout(HANG_LIMIT).expect("the server reports the session");
            if line.starts_with("WebSocket client") {
                return line;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

#[test]
fn the_lesson_on_a_remote_device_gives_the_local_losses_and_a_wrong_token_is_refused() {
    let dir = scratch("lesson");
    let token = token_file(&dir, "s3cret-token");
    let server = Server::start(&token);

    let local = descent(&[
        "lesson2",
        "--device",
        "flex",
        "--json",
        "-q",
        "--out",
        dir.join("local").to_str().unwrap(),
    ]);
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let device = server.device();
    let args = ["lesson2", "--device", &device, "--json", "-q", "--token-file", token.to_str().unwrap()];
    let remote = descent(&[&args[..], &["--out", dir.join("remote").to_str().unwrap()]].concat());
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    assert!(server.next_event().contains("opened"));
    let losses = |output| {
        numbers(&summary(output)["losses"].as_array().unwrap().iter().map(|r| r["loss"].clone()).collect())
    };
    let (local_losses, remote_losses) = (losses(&local), losses(&remote));
    assert_eq!(local_losses.len(), remote_losses.len());
    for (l, r) in local_losses.iter().zip(&remote_losses) {
        assert!((l - r).abs() <= 1e-6 * l.abs().max(1.0), "local {l} vs remote {r}");
    }

    // A wrong token: refused on both sides, exit code 2, and the server serves the next client.
    let refused = descent_with_env(
        &["lesson2", "--device", &device, "-q", "--out", dir.join("refused").to_str().unwrap()],
        &[("DESCENT_REMOTE_TOKEN", "wrong")],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused the token"), "{stderr}");
    assert!(!dir.join("refused").exists(), "nothing is written for a refused client");
    assert!(server.next_event().contains("refused"));
    let again = descent(&[&args[..], &["--out", dir.join("again").to_str().unwrap()]].concat());
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

#[test]
fn a_server_that_goes_away_mid_run_ends_the_client_with_a_clear_message() {
    server_killed_mid_run("gone", |server| vec!["--device".into(), server.device()]);
}

#[cfg(unix)]
#[test]
fn a_server_that_stops_answering_mid_run_ends_the_client_in_bounded_time() {
    // Suspended (SIGSTOP), the server keeps its connection open and answers nothing: Burn's
    // client waited for the reply for good.
    server_stopped_mid_run("silent", |server| vec!["--device".into(), server.device()], Stop::Suspend);
}

#[test]
fn a_server_that_goes_away_mid_data_parallel_run_ends_the_client_with_a_clear_message() {
    server_killed_mid_run("gone-parallel", |server| {
        vec!["--devices".into(), format!("flex,{}", server.device())]
    });
}

/// How the server stops at step 300.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// Killed: its connections close.
    Kill,
    /// Suspended: its connections stay open and nothing answers.
    #[cfg(unix)]
    Suspend,
}

fn server_killed_mid_run(name: &str, devices: impl Fn(&Server) -> Vec<String>) {
    server_stopped_mid_run(name, devices, Stop::Kill);
}

/// Train on the devices `devices` names, stop the server at step 300 as `stop` says, and check
/// the client ends in bounded time with a message naming the remote device, and a whole
/// checkpoint.
fn server_stopped_mid_run(name: &str, devices: impl Fn(&Server) -> Vec<String>, stop: Stop) {
    let dir = scratch(name);
    let token = token_file(&dir, "another-token");
    let mut server = Server::start(&token);
    let out = dir.join("run");
    let mut client = Command::new(env!("CARGO_BIN_EXE_descent"))
        .arg("train")
        .args(devices(&server))
        .args(["--token-file", token.to_str().unwrap()])
        .args(["--steps", "1000000", "--print-every", "100", "--checkpoint-every", "100"])
        .args(["--out", out.to_str().unwrap()])
        .env("DESCENT_REPLY_TIMEOUT", "3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("step   300") {
            break;
        }
    }
    match stop {
        Stop::Kill => server.child.kill().unwrap(),
        #[cfg(unix)]
        Stop::Suspend => crate::common::signal(&server.child, libc::SIGSTOP),
    }
    let started = Instant::now();
    std::thread::spawn(move || lines.for_each(drop));
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < HANG_LIMIT, "the client still runs {HANG_LIMIT:?} after the server died");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut client.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("the remote device at ws://") && !stderr.contains("panicked"), "{stderr}");
    // In words, not Burn's debug text (`Execution(… RecvError(()))`).
    assert!(!stderr.contains("RecvError") && !stderr.contains("Execution("), "{stderr}");
    #[cfg(unix)]
    if stop == Stop::Suspend {
        assert!(
            stderr.contains("no reply within 3 s") && stderr.contains("DESCENT_REPLY_TIMEOUT"),
            "{stderr}"
        );
    }
    assert!(stderr.contains("descent train --resume"), "{stderr}");
    // The last checkpoint, written while the server was alive, is whole.
    descent::train::Checkpoint::read(&out.join(descent::train::CHECKPOINT_FILE)).unwrap();
}

#[test]
fn data_parallel_over_local_and_remote_devices_gives_the_local_result() {
    // Burn's multi-device strategy with replicas on servers: a share of every batch crosses the
    // WebSocket, and its gradients come back to the main device to be summed. With two servers
    // the main device is itself remote, and the other server's gradients go from one to the other.
    let dir = scratch("parallel");
    let token = token_file(&dir, "parallel-token");
    let (first, second) = (Server::start(&token), Server::start(&token));
    let run = |devices: &[&str], out: &str| {
        let output = descent(
            &[
                &["lesson2", "--json", "-q", "--token-file", token.to_str().unwrap()],
                devices,
                &["--out", dir.join(out).to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(output.status.success(), "{devices:?}: {}", String::from_utf8_lossy(&output.stderr));
        summary(&output)
    };
    let local = run(&["--device", "flex"], "local");
    let a = |summary: &serde_json::Value| numbers(&summary["a"]);
    for (devices, out) in [
        (format!("flex,{}", first.device()), "local-and-remote"),
        (format!("{},{}", first.device(), second.device()), "two-servers"),
    ] {
        let parallel = run(&["--devices", &devices], out);
        assert_eq!(parallel["devices"].as_array().unwrap().len(), 2);
        for (l, r) in a(&local).iter().zip(&a(&parallel)) {
            assert!(
                (l - r).abs() <= 1e-6 * l.abs().max(1.0),
                "{devices}: a {:?} vs local {:?}",
                a(&parallel),
                a(&local)
            );
        }
    }
    assert!(first.next_event().contains("opened"));
    assert!(second.next_event().contains("opened"));
}

#[test]
fn a_server_that_accepts_the_connection_and_never_answers_is_refused_in_bounded_time() {
    // Burn's client waited for the handshake forever (a run was killed at 170 s).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        // Accept, hold the connection open, never answer.
        let connection = listener.accept().map(|(stream, _)| stream);
        std::thread::sleep(Duration::from_secs(30));
        drop(connection);
    });
    let url = format!("remote:ws://{address}");
    let started = Instant::now();
    let output = descent_with_env(
        &["lesson2", "--device", &url, "--steps", "2", "-q"],
        &[("DESCENT_CONNECT_TIMEOUT", "2"), ("DESCENT_REMOTE_TOKEN", "0123456789abcdef")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(started.elapsed() < Duration::from_secs(25), "took {:?}", started.elapsed());
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&address.to_string()) && stderr.contains("within 2 s"), "{stderr}");
    drop(held);
}

#[test]
fn a_server_whose_address_and_token_cannot_be_shown_does_not_start() {
    // `serve > /dev/full` served on, its generated token never shown to anyone.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["serve", "--listen", "127.0.0.1:0", "--device", "flex"])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot write to standard output") && stderr.contains("not started"), "{stderr}");
}
