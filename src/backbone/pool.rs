//! A small pool of ONNX Runtime sessions so that many threads can embed at once.
//!
//! `Session::run` needs `&mut Session`; rather than one global lock, callers borrow a whole
//! session. Sessions are created on demand up to the cap; beyond it callers wait.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};

use ort::session::{HasSelectedOutputs, RunOptions, Session};

use crate::error::Result;

/// A session plus the run options that select the outputs tandem reads; the options are `Send`
/// but not `Sync`, so each lives with its session.
pub(crate) struct Worker {
    /// The ONNX Runtime session.
    pub(crate) session: Session,
    /// Selects only the output tandem reads, so no other output is copied out.
    pub(crate) run_options: RunOptions<HasSelectedOutputs>,
    /// Selects the pooled output and the per-token output together, for sequence heads
    /// (`None` when the graph has no per-token output).
    pub(crate) token_run_options: Option<RunOptions<HasSelectedOutputs>>,
}

type Factory = Box<dyn Fn() -> Result<Worker> + Send + Sync>;

struct State {
    idle: Vec<Worker>,
    total: usize,
}

/// Sessions for one graph, shared by all callers of a backbone.
pub(crate) struct SessionPool {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
    make: Factory,
}

impl SessionPool {
    /// A pool holding `first`, growing to at most `max` sessions made by `make`.
    pub(crate) fn new(first: Worker, max: usize, make: Factory) -> Self {
        SessionPool {
            state: Mutex::new(State {
                idle: vec![first],
                total: 1,
            }),
            freed: Condvar::new(),
            max: max.max(1),
            make,
        }
    }

    /// Borrows a session, creating one if none is idle and the cap allows, else waiting.
    pub(crate) fn acquire(&self) -> Result<PooledSession<'_>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(PooledSession {
                    pool: self,
                    session: Some(s),
                });
            }
            if st.total < self.max {
                st.total += 1;
                drop(st);
                // Build outside the lock: loading a graph takes a while.
                return match (self.make)() {
                    Ok(s) => Ok(PooledSession {
                        pool: self,
                        session: Some(s),
                    }),
                    Err(e) => {
                        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                        st.total -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give_back(&self, s: Worker) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.idle.push(s);
        self.freed.notify_one();
    }
}

/// A borrowed session; returned to the pool on drop.
pub(crate) struct PooledSession<'a> {
    pool: &'a SessionPool,
    session: Option<Worker>,
}

impl Deref for PooledSession<'_> {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        self.session.as_ref().expect("session present until drop")
    }
}

impl DerefMut for PooledSession<'_> {
    fn deref_mut(&mut self) -> &mut Worker {
        self.session.as_mut().expect("session present until drop")
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.give_back(s);
        }
    }
}
