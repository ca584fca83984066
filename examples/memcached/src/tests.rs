//! The session tests (`session_tests.rs`), run on each store: [`MemStore`]
//! and [`RcuStore`], the latter on plain threads' RCU (one domain per test
//! thread, whose deferred frees run when the thread ends).
//!
//! [`MemStore`]: crate::MemStore
//! [`RcuStore`]: crate::RcuStore

mod mem {
    fn new_store(limit: u64) -> alloc::boxed::Box<dyn crate::Store> {
        alloc::boxed::Box::new(crate::MemStore::new(limit))
    }

    include!("session_tests.rs");
}

mod rcu {
    use ebbrt_rcu::threads::{Participant, Threads};

    std::thread_local! {
        static RCU: (Arc<Threads>, Participant) = {
            let threads = Threads::new(1);
            let me = threads.enter();
            (threads, me)
        };
    }

    fn new_store(limit: u64) -> alloc::boxed::Box<dyn crate::Store> {
        let threads = RCU.with(|(t, _)| t.clone());
        alloc::boxed::Box::new(crate::RcuStore::with_rcu(limit, threads))
    }

    include!("session_tests.rs");
}
