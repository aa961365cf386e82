//! A real mosquitto broker for tests: started on a free loopback port with a config file in a
//! temporary folder, stopped (killed and waited for) on drop.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mosquitto.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// Who may connect.
#[derive(Clone, Copy)]
pub enum Auth {
    Anonymous,
    /// `user` / `password` only.
    Password,
    /// `user` / `password` over TLS, the certificate signed by `ca.crt` in the folder.
    PasswordTls,
}

pub const USER: &str = "lab";
pub const PASSWORD: &str = "s3cret";

impl Mosquitto {
    /// Starts a broker whose config, password file, persistence and log live in `dir`.
    pub fn start(dir: &Path, auth: Auth) -> Result<Mosquitto, String> {
        let port = free_port()?;
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\nlog_dest file {}\nlog_type error\nlog_type warning\nlog_type notice\n",
            dir.display(),
            dir.join("mosquitto.log").display()
        );
        if nix::unistd::geteuid().is_root() {
            // Stay root: the temp folder is root's (mosquitto would switch to its own user).
            conf.push_str("user root\n");
        }
        match auth {
            Auth::Anonymous => conf.push_str("allow_anonymous true\n"),
            Auth::Password | Auth::PasswordTls => {
                let pw = dir.join("passwd");
                let st = Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&pw)
                    .args([USER, PASSWORD])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| format!("mosquitto_passwd: {e}"))?;
                if !st.success() {
                    return Err("mosquitto_passwd failed".into());
                }
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    pw.display()
                ));
            }
        }
        if let Auth::PasswordTls = auth {
            make_certs(dir)?;
            conf.push_str(&format!(
                "cafile {0}/ca.crt\ncertfile {0}/server.crt\nkeyfile {0}/server.key\n",
                dir.display()
            ));
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).map_err(|e| e.to_string())?;
        let mut m = Mosquitto {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        m.restart()?;
        Ok(m)
    }

    /// (Re)starts the broker on the same port with the same config; waits until it listens.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Err("the broker is already running".into());
        }
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start mosquitto (is it installed?): {e}"))?;
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = c.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    self.child = None;
                    return Err(format!("mosquitto exited ({st}): {err} {}", self.log()));
                }
            }
            if Instant::now() >= deadline {
                return Err("mosquitto did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the broker with `signal` and waits for it (it saves its sessions on SIGTERM).
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) -> Result<(), String> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = c.try_wait() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return Err("mosquitto did not stop within 5 s; killed".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mosquitto_bin() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits until `cond` holds, up to `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a child process, up to `limit`; kills it past that.
pub fn wait_child(c: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = c.try_wait().map_err(|e| e.to_string())? {
            return Ok(st);
        }
        if Instant::now() >= end {
            let _ = c.kill();
            let _ = c.wait();
            return Err(format!(
                "process {} did not end within {limit:?}; killed",
                c.id()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A CA (`ca.crt`) and the broker's key and certificate for 127.0.0.1, signed by it, made
/// with the openssl command (EC keys: fast).
pub fn make_certs(dir: &Path) -> Result<(), String> {
    make_ca(dir, "ca")?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
        .map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    )
}

/// A self-signed CA: `<name>.crt` and `<name>.key` in `dir`.
pub fn make_ca(dir: &Path, name: &str) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "1",
            "-subj",
            &format!("/CN=crabby test {name}"),
        ],
    )
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
