//! Source ports chosen by the load generator, not searched for by the
//! kernel.
//!
//! A connect from a bound address without a port (`IP_BIND_ADDRESS_NO_PORT`)
//! lets the kernel pick the port: it walks the ephemeral range
//! (`ip_local_port_range`, 28,232 ports by default) from a random point
//! until a port gives a free 4-tuple, checking each in its bind and
//! established tables. The fuller the range, the longer the walk: in a walk
//! toward a million connections whose connects were being retried, 77% of
//! the machine's CPU went to `__inet_check_established`. A worker holds at
//! most ~19,000 connections from its own source address, so a plan does it
//! in one step: each connect takes the next port of 1024–65535 (64,512
//! ports) round the range, bound with `SO_REUSEADDR` (a port whose last
//! connection is in TIME_WAIT, or that serves another destination, may be
//! bound again; only the same 4-tuple is refused). A port the kernel
//! refuses (a listener on it, or the same 4-tuple still in use) is skipped
//! for the next, at most [`TRIES`] times a connect.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};

/// The ports a plan hands out, round and round.
const FIRST: u32 = 1024;
const PORTS: u32 = 65536 - FIRST;
/// Ports tried for one connect before giving up.
pub const TRIES: usize = 64;

/// The next source port of one source address; shared by every connect
/// from it.
#[derive(Debug, Default)]
pub struct PortPlan {
    next: AtomicU32,
}

impl PortPlan {
    /// A plan whose first port is `port` (1024 or above).
    pub fn starting_at(port: u16) -> Self {
        PortPlan {
            next: AtomicU32::new(u32::from(port).saturating_sub(FIRST)),
        }
    }

    /// The next port of the round.
    pub fn take(&self) -> u16 {
        (FIRST + self.next.fetch_add(1, Ordering::Relaxed) % PORTS) as u16
    }

    /// A TCP connection to `addr` from `ip` and the plan's next port that
    /// the kernel takes (see the module doc).
    pub async fn connect(&self, ip: Ipv4Addr, addr: SocketAddr) -> anyhow::Result<TcpStream> {
        let mut last = None;
        for _ in 0..TRIES {
            let port = self.take();
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            if let Err(e) = socket.bind(SocketAddr::from((ip, port))) {
                if e.kind() == ErrorKind::AddrInUse {
                    last = Some(e);
                    continue;
                }
                return Err(e).with_context(|| format!("binding source address {ip}:{port}"));
            }
            match socket.connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e)
                    if matches!(e.kind(), ErrorKind::AddrInUse | ErrorKind::AddrNotAvailable) =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(e).with_context(|| format!("TCP connect to {addr}")),
            }
        }
        Err(anyhow::anyhow!(
            "TCP connect to {addr}: no free source port on {ip} in {TRIES} tries of the plan (last: {last:?})"
        ))
    }
}
