//! Graceful shutdown, as tokio's mini-redis does it: a broadcast tells every task to stop,
//! and each task holds a clone of a drop guard, so the owner can wait until all are gone.

use tokio::sync::{broadcast, mpsc};

/// Starts a shutdown and waits for every task that holds a [`Shutdown`] to finish.
#[derive(Debug)]
pub struct ShutdownController {
    notify: broadcast::Sender<()>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

/// A task's view of the shutdown: a signal to watch and a guard whose drop says "finished".
#[derive(Debug)]
pub struct Shutdown {
    requested: bool,
    notify: broadcast::Receiver<()>,
    _done: mpsc::Sender<()>,
}

impl Default for ShutdownController {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownController {
    /// A controller with no tasks yet.
    pub fn new() -> ShutdownController {
        let (notify, _) = broadcast::channel(1);
        let (done_tx, done_rx) = mpsc::channel(1);
        ShutdownController {
            notify,
            done_tx: Some(done_tx),
            done_rx,
        }
    }

    /// A handle for one more task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            requested: false,
            notify: self.notify.subscribe(),
            _done: self
                .done_tx
                .clone()
                .expect("subscribe is not called after shutdown"),
        }
    }

    /// Tells every task to stop and waits until each has dropped its handle.
    pub async fn shutdown(mut self) {
        let _ = self.notify.send(());
        self.done_tx.take();
        // recv returns None once every guard is dropped.
        let _ = self.done_rx.recv().await;
    }
}

impl Shutdown {
    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.requested
    }

    /// Waits until shutdown is requested (at once if it already was).
    pub async fn recv(&mut self) {
        if self.requested {
            return;
        }
        // A closed or lagged channel also means the controller wants us gone.
        let _ = self.notify.recv().await;
        self.requested = true;
    }

    /// Another handle for a task this task spawns.
    pub fn resubscribe(&self) -> Shutdown {
        Shutdown {
            requested: self.requested,
            notify: self.notify.resubscribe(),
            _done: self._done.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_every_task() {
        let ctl = ShutdownController::new();
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let mut s = ctl.subscribe();
            let finished = finished.clone();
            tokio::spawn(async move {
                s.recv().await;
                tokio::task::yield_now().await;
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        ctl.shutdown().await;
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
