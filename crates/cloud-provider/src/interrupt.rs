//! Ctrl-C for the binaries: each SIGINT runs the next handler (the first typically asks the
//! work to stop cleanly, a second may quit at once). The handlers run on a watcher thread;
//! a binary's main flow is never async.

/// A handler for one Ctrl-C.
pub type Handler = Box<dyn FnOnce() + Send + 'static>;

/// Watches for Ctrl-C on a background thread: the n-th Ctrl-C runs `handlers[n-1]`; after
/// the last handler the default is not restored (further Ctrl-C are ignored), so a handler
/// that must end the process calls `std::process::exit` itself.
pub fn on_ctrl_c(handlers: Vec<Handler>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            for h in handlers {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                h();
            }
        });
    });
}
