//! A `redis-server` of the test's own, on a free port, so it can be killed, restarted on the same
//! port or frozen (SIGSTOP) without disturbing anything else.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `TOLLGATE_TEST_REDIS_URL`. Tests that call this are marked
/// `#[cfg_attr(not(tollgate_redis), ignore = …)]`: ignored with the reason where it is unset,
/// run (and failing here if it is missing) in CI.
pub fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)")
}

/// A running `redis-server`; killed when dropped, so a failing test leaves none behind.
pub struct RedisProcess {
    child: Option<Child>,
    pub port: u16,
}

impl RedisProcess {
    /// On a free port. Tests that call this are marked
    /// `#[cfg_attr(not(tollgate_redis_server), ignore = …)]`.
    pub fn start() -> RedisProcess {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Self::start_on(port)
    }

    /// On `port` (again, after [`RedisProcess::kill`]); waits until it answers PING.
    pub fn start_on(port: u16) -> RedisProcess {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (it is on PATH)");
        let r = RedisProcess {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} never answered PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the process: it keeps its port and accepts connections, and answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} {pid} failed");
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        // A frozen process ignores SIGTERM until thawed; SIGKILL (Child::kill) does not wait.
        self.kill();
    }
}
