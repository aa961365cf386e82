//! How to reach the broker: URL, credentials, TLS, reconnection. Plain configuration, checked
//! before the test forks; the client itself is made in the Block's process.

use crabby::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Connection settings shared by [`MqttPublish`](crate::MqttPublish) and
/// [`MqttSubscribe`](crate::MqttSubscribe).
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub(crate) url: String,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) anonymous: bool,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) keep_alive: Duration,
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Broker {
    pub(crate) fn new(url: &str) -> Broker {
        Broker {
            url: url.to_owned(),
            credentials: None,
            anonymous: false,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            backoff: (Duration::from_millis(100), Duration::from_secs(2)),
            keep_alive: Duration::from_secs(5),
        }
    }

    /// Parses `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883).
    pub(crate) fn address(&self) -> std::result::Result<Address, String> {
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = self.url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(format!(
                "the broker URL \"{}\" must start with mqtt:// (plain TCP) or mqtts:// (TLS), e.g. mqtt://192.168.1.10:1883",
                self.url
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') {
            return Err(format!(
                "the broker URL \"{}\" holds credentials; give them with .credentials(user, password) instead",
                self.url
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                let port: u16 = p.parse().map_err(|_| {
                    format!(
                        "the port \"{p}\" of broker URL \"{}\" is not a number from 1 to 65535",
                        self.url
                    )
                })?;
                (h, port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!(
                "the broker URL \"{}\" lacks a host or port, e.g. mqtt://localhost:1883",
                self.url
            ));
        }
        Ok(Address {
            host: host.to_owned(),
            port,
            tls,
        })
    }

    /// Checks everything that can be checked without the network; `block` names the Block.
    pub(crate) fn check(&self, block: &str) -> Result<Address> {
        let err = |m: String| Err(Error::config(m).with_origin(block));
        let addr = match self.address() {
            Ok(a) => a,
            Err(m) => return err(m),
        };
        if self.credentials.is_none() && !self.anonymous {
            return err(format!(
                "no credentials for broker {}: call .credentials(user, password), or .anonymous() if the broker really accepts anyone",
                self.url
            ));
        }
        if self.credentials.is_some() && self.anonymous {
            return err("both .credentials() and .anonymous() are set; keep one".into());
        }
        if let Some((u, _)) = &self.credentials {
            if u.is_empty() {
                return err(
                    "the MQTT user name is empty; give the broker's user name to .credentials()"
                        .into(),
                );
            }
        }
        if self.ca_file.is_some() && !addr.tls {
            return err(format!(
                "a CA file is set but the broker URL {} is plain mqtt://; use mqtts:// for TLS",
                self.url
            ));
        }
        if addr.tls && !cfg!(feature = "tls") {
            return err(format!(
                "the broker URL {} asks for TLS but crabby-mqtt was built without its \"tls\" feature; enable it in Cargo.toml",
                self.url
            ));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.is_file() {
                return err(format!(
                    "the CA file {} does not exist; give the PEM file of the authority that signed the broker's certificate",
                    ca.display()
                ));
            }
        }
        if self.connect_timeout.is_zero() {
            return err("the connect timeout is zero; give at least a second".into());
        }
        let (lo, hi) = self.backoff;
        if lo.is_zero() || hi < lo {
            return err(format!(
                "the reconnection backoff ({lo:?} to {hi:?}) must start above zero and not decrease"
            ));
        }
        if self.keep_alive < Duration::from_secs(1) {
            return err("the keep-alive must be at least 1 s".into());
        }
        Ok(addr)
    }

    /// The client options; runs in the Block's process.
    pub(crate) fn options(&self, client_id: &str, block: &str) -> Result<rumqttc::MqttOptions> {
        let addr = self.check(block)?;
        let mut o = rumqttc::MqttOptions::new(client_id, addr.host.clone(), addr.port);
        o.set_keep_alive(self.keep_alive);
        o.set_max_packet_size(16 << 20, 16 << 20);
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u.clone(), p.clone());
            if !addr.tls {
                log::warn!(
                    "the password for broker {} travels in clear text: use mqtts:// outside a trusted network",
                    self.url
                );
            }
        }
        if addr.tls {
            o.set_transport(self.tls_transport(block)?);
        }
        Ok(o)
    }

    #[cfg(feature = "tls")]
    fn tls_transport(&self, block: &str) -> Result<rumqttc::Transport> {
        // rumqttc builds its rustls config with the process's default provider: ring here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &self.ca_file {
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|e| {
                    Error::io(format!("cannot read the CA file {}", ca.display()), e)
                        .with_origin(block)
                })?;
                Ok(rumqttc::Transport::tls(pem, None, None))
            }
            None => Err(Error::config(format!(
                "TLS to {} needs the CA that signed the broker's certificate: call .tls_ca_file(path)",
                self.url
            ))
            .with_origin(block)),
        }
    }

    #[cfg(not(feature = "tls"))]
    fn tls_transport(&self, block: &str) -> Result<rumqttc::Transport> {
        Err(Error::config(format!(
            "the broker URL {} asks for TLS but crabby-mqtt was built without its \"tls\" feature",
            self.url
        ))
        .with_origin(block))
    }
}

/// Builder methods on the connection settings, shared by both Blocks.
macro_rules! broker_methods {
    () => {
        /// Logs in with this user name and password (see the crate docs on security).
        pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
            self.broker.credentials = Some((user.into(), password.into()));
            self
        }
        /// Connects without credentials: only for a broker that accepts anyone, on a
        /// trusted network. Without this or [`credentials`](Self::credentials) the
        /// configuration is refused.
        pub fn anonymous(mut self) -> Self {
            self.broker.anonymous = true;
            self
        }
        /// For `mqtts://`: the PEM file of the authority that signed the broker's
        /// certificate (needs the `tls` feature).
        pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.broker.ca_file = Some(path.into());
            self
        }
        /// How long `prepare` waits for the first connection before failing (default 5 s).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.broker.connect_timeout = timeout;
            self
        }
        /// Reconnection delays after a lost connection: from `min`, doubling up to `max`
        /// (default 0.1 s to 2 s).
        pub fn backoff(mut self, min: std::time::Duration, max: std::time::Duration) -> Self {
            self.broker.backoff = (min, max);
            self
        }
        /// MQTT keep-alive: how soon a dead connection is noticed, and the last will sent
        /// (default 5 s, at least 1 s).
        pub fn keep_alive(mut self, period: std::time::Duration) -> Self {
            self.broker.keep_alive = period;
            self
        }
        /// The topic namespace: `crabby/<test>/…` (default: this test's name). Both ends of
        /// a stream must use the same.
        pub fn test(mut self, name: impl Into<String>) -> Self {
            self.namespace = Some(name.into());
            self
        }
    };
}
pub(crate) use broker_methods;

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(url: &str) -> std::result::Result<Address, String> {
        Broker::new(url).address()
    }

    #[test]
    fn urls() {
        assert_eq!(
            addr("mqtt://127.0.0.1:1884").unwrap(),
            Address {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(addr("mqtt://broker").unwrap().port, 1883);
        assert_eq!(addr("mqtts://broker").unwrap().port, 8883);
        assert_eq!(addr("mqtt://[::1]:1999").unwrap().host, "::1");
        assert!(addr("tcp://x:1").unwrap_err().contains("mqtt://"));
        assert!(addr("mqtt://x:99999").unwrap_err().contains("99999"));
        assert!(addr("mqtt://u:p@x:1").unwrap_err().contains(".credentials"));
        assert!(addr("mqtt://:1").is_err());
    }

    #[test]
    fn anonymous_only_when_asked() {
        let b = Broker::new("mqtt://localhost");
        let e = b.check("pub").unwrap_err();
        assert_eq!(e.origin(), Some("pub"));
        assert!(e.description().contains(".anonymous()"), "{e}");
        let mut b = b;
        b.anonymous = true;
        assert!(b.check("pub").is_ok());
        b.credentials = Some(("u".into(), "p".into()));
        assert!(b.check("pub").is_err());
        b.anonymous = false;
        assert!(b.check("pub").is_ok());
        b.backoff = (Duration::ZERO, Duration::ZERO);
        assert!(b
            .check("pub")
            .unwrap_err()
            .description()
            .contains("backoff"));
    }
}
