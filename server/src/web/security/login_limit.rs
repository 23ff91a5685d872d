//! The login attempt limit: per client network, and a ceiling across all clients.
//!
//! - **Per client**: [`CLIENT_ATTEMPTS`] per [`WINDOW`] from one IPv4 address, or one IPv6 **/64** (a single
//!   IPv6 host usually holds a whole /64, so counting per address would give it billions of budgets). An
//!   IPv4-mapped IPv6 address counts as its IPv4 address. A client over its budget is refused without being
//!   counted anywhere else, so one client cannot use up the others' budget.
//! - **Everyone**: at most [`GLOBAL_ATTEMPTS`] attempts per [`WINDOW`] are checked in all, whatever the number of
//!   addresses they come from, so spraying guesses from many addresses gains nothing: at most
//!   43,200 guesses a day. While someone keeps the ceiling full from many networks, logins wait (existing sessions
//!   are not affected); an attacker on one network only ever locks out that network, for a minute after it stops.
//!
//! The client is the socket's peer address: behind a reverse proxy that is the proxy, so every client shares one
//! budget (README, "Security"). Proxy headers such as `X-Forwarded-For` are not believed: the client writes them.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Login attempts accepted from one client network per [`WINDOW`].
pub const CLIENT_ATTEMPTS: usize = 5;
/// Login attempts accepted from all clients together per [`WINDOW`].
pub const GLOBAL_ATTEMPTS: usize = 30;
/// The window of both limits.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What one budget is kept for: an IPv4 address, an IPv6 /64, or clients of unknown address (no socket, as in
/// tests driving the router directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientNet {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6([u8; 8]),
    /// No address known.
    Unknown,
}

impl ClientNet {
    /// The network whose budget an attempt from `ip` uses.
    pub fn of(ip: Option<IpAddr>) -> ClientNet {
        match ip {
            None => ClientNet::Unknown,
            Some(IpAddr::V4(v4)) => ClientNet::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientNet::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    ClientNet::V6(prefix)
                }
            },
        }
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// This client network used its [`CLIENT_ATTEMPTS`].
    Client {
        /// When the next attempt will be accepted, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
    /// All clients together used the [`GLOBAL_ATTEMPTS`].
    Everyone {
        /// When the next attempt will be accepted, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
}

impl Limited {
    /// When the next attempt will be accepted, in whole seconds.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Limited::Client { retry_after_secs } | Limited::Everyone { retry_after_secs } => retry_after_secs,
        }
    }
}

#[derive(Default)]
struct Attempts {
    per_client: HashMap<ClientNet, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

/// The recent login attempts; one per server.
#[derive(Default)]
pub struct LoginLimiter {
    attempts: Mutex<Attempts>,
}

/// Drops the times older than the window; `Err(seconds)` when `limit` remain.
fn check(times: &mut VecDeque<Instant>, limit: usize, now: Instant) -> Result<(), u64> {
    while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        times.pop_front();
    }
    if times.len() < limit {
        return Ok(());
    }
    let oldest = times.front().copied().unwrap_or(now);
    Err(WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1))
}

impl LoginLimiter {
    /// Counts a login attempt from `client` at `now`, or refuses it (then it is not counted).
    ///
    /// # Errors
    /// [`Limited`]: which limit, and when to try again.
    pub fn attempt(&self, client: ClientNet, now: Instant) -> Result<(), Limited> {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let Attempts { per_client, all } = &mut *attempts;
        // Only attempts within the window are kept, and at most GLOBAL_ATTEMPTS of them are accepted per window,
        // so the map stays small; forget the clients whose attempts are all older.
        if per_client.len() > GLOBAL_ATTEMPTS {
            per_client.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let times = per_client.entry(client).or_default();
        check(times, CLIENT_ATTEMPTS, now)
            .map_err(|retry_after_secs| Limited::Client { retry_after_secs })?;
        check(all, GLOBAL_ATTEMPTS, now)
            .map_err(|retry_after_secs| Limited::Everyone { retry_after_secs })?;
        times.push_back(now);
        all.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str) -> ClientNet {
        ClientNet::of(Some(ip.parse().unwrap()))
    }

    #[test]
    fn clients_are_counted_per_ipv4_address_and_ipv6_64() {
        assert_eq!(net("192.0.2.1"), ClientNet::V4([192, 0, 2, 1]));
        assert_ne!(net("192.0.2.1"), net("192.0.2.2"));
        assert_eq!(net("::ffff:192.0.2.1"), net("192.0.2.1"), "IPv4-mapped");
        assert_eq!(
            net("2001:db8:1:2::1"),
            net("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "one /64"
        );
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"), "another /64");
        assert_eq!(ClientNet::of(None), ClientNet::Unknown);
    }

    #[test]
    fn a_client_has_its_budget_and_everyone_a_ceiling() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for i in 0..CLIENT_ATTEMPTS {
            assert!(limiter.attempt(net("2001:db8::1"), start).is_ok(), "{i}");
        }
        let refused = limiter.attempt(net("2001:db8::ffff"), start).unwrap_err();
        assert_eq!(refused, Limited::Client { retry_after_secs: 60 }, "the same /64");
        // Refused attempts are not counted: hammering from one network does not fill the ceiling.
        for _ in 0..1000 {
            assert!(limiter.attempt(net("2001:db8::2"), start).is_err());
        }
        // Many networks: the ceiling.
        let mut accepted = CLIENT_ATTEMPTS;
        let mut refused = None;
        for i in 0..100u16 {
            match limiter.attempt(
                ClientNet::of(Some(IpAddr::from([198, 51, (i >> 8) as u8, i as u8]))),
                start,
            ) {
                Ok(()) => accepted += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert_eq!(accepted, GLOBAL_ATTEMPTS);
        assert_eq!(refused, Some(Limited::Everyone { retry_after_secs: 60 }));
        // A minute later every budget is back.
        let later = start + WINDOW;
        assert!(limiter.attempt(net("2001:db8::1"), later).is_ok());
        assert!(limiter.attempt(net("203.0.113.9"), later).is_ok());
        let half = start + WINDOW / 2;
        let fresh = LoginLimiter::default();
        for _ in 0..CLIENT_ATTEMPTS {
            fresh.attempt(ClientNet::Unknown, start).unwrap();
        }
        assert_eq!(
            fresh
                .attempt(ClientNet::Unknown, half)
                .unwrap_err()
                .retry_after_secs(),
            30
        );
    }

    #[test]
    fn the_map_of_clients_stays_small() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for minute in 0..20u32 {
            let now = start + WINDOW * minute;
            for i in 0..200u8 {
                let _ = limiter.attempt(ClientNet::V4([10, minute as u8, 0, i]), now);
            }
        }
        let attempts = limiter.attempts.lock().unwrap();
        assert!(
            attempts.per_client.len() <= 2 * GLOBAL_ATTEMPTS + 1,
            "{}",
            attempts.per_client.len()
        );
        assert!(attempts.all.len() <= GLOBAL_ATTEMPTS);
    }
}
