//! Admin sessions: random ids kept as digests in memory (a restart logs everyone out).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::tokens::{digest, is_token_shaped, random_token};

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; the oldest goes when a new login would exceed it.
const MAX_SESSIONS: usize = 1024;

/// The live sessions: SHA-256 of each id → when it expires. The ids themselves are never kept.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// Starts a session: returns a new random id (256 bits from the operating system) for the session cookie.
    pub fn start(&self) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                live.remove(&oldest);
            }
        }
        live.insert(digest(&id), now + SESSION_TTL);
        id
    }

    /// True when `id` is a live session.
    pub fn is_valid(&self, id: &str) -> bool {
        if !is_token_shaped(id) {
            return false;
        }
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.get(&digest(id))
            .is_some_and(|expires| *expires > Instant::now())
    }

    /// Ends session `id` (a logout). Unknown ids are ignored.
    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.remove(&digest(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_and_end() {
        let sessions = Sessions::default();
        let id = sessions.start();
        assert!(is_token_shaped(&id));
        assert!(sessions.is_valid(&id));
        assert!(!sessions.is_valid(&random_token()));
        assert!(!sessions.is_valid("' OR 1=1 --"));
        sessions.end(&id);
        assert!(!sessions.is_valid(&id));
        let many: Vec<String> = (0..MAX_SESSIONS + 1).map(|_| sessions.start()).collect();
        assert!(sessions.is_valid(&many[MAX_SESSIONS]), "the newest stays");
        assert_eq!(
            many.iter().filter(|id| sessions.is_valid(id)).count(),
            MAX_SESSIONS,
            "one went"
        );
    }
}
