//! The stop signal, as one token every thread holds. Setting it wakes the
//! threads blocked in `poll` (through their `mio::Waker`s) and main blocked
//! waiting for signals, so Ctrl+C or SIGTERM stops the node in well under a
//! second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

/// Cheap to clone; all clones share one flag.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopping: AtomicBool,
    wakers: Mutex<Vec<Arc<Waker>>>,
    /// Unblocks main's wait for signals when a thread triggers the stop.
    signal_handles: Mutex<Vec<signal_hook::iterator::Handle>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Registers a waker to be woken when the node stops (one per event loop).
    pub fn add_waker(&self, waker: Arc<Waker>) {
        if let Ok(mut wakers) = self.inner.wakers.lock() {
            wakers.push(waker);
        }
    }

    /// Makes `trigger` also end main's `Signals::forever()` loop.
    pub fn close_on_trigger(&self, handle: signal_hook::iterator::Handle) {
        if let Ok(mut handles) = self.inner.signal_handles.lock() {
            handles.push(handle);
        }
    }

    /// Asks every thread to stop. Idempotent.
    pub fn trigger(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        if let Ok(wakers) = self.inner.wakers.lock() {
            for waker in wakers.iter() {
                if let Err(e) = waker.wake() {
                    log::debug!("cannot wake an event loop: {e}");
                }
            }
        }
        if let Ok(handles) = self.inner.signal_handles.lock() {
            for handle in handles.iter() {
                handle.close();
            }
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_wakes_a_blocked_poll() {
        let mut poll = match mio::Poll::new() {
            Ok(poll) => poll,
            Err(e) => panic!("{e}"),
        };
        let waker = match Waker::new(poll.registry(), mio::Token(7)) {
            Ok(waker) => Arc::new(waker),
            Err(e) => panic!("{e}"),
        };
        let shutdown = Shutdown::new();
        shutdown.add_waker(waker);
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        shutdown.trigger();
        assert!(clone.is_triggered());
        let mut events = mio::Events::with_capacity(4);
        let result = poll.poll(&mut events, Some(std::time::Duration::from_secs(5)));
        assert!(result.is_ok());
        assert!(events.iter().any(|e| e.token() == mio::Token(7)));
    }
}
