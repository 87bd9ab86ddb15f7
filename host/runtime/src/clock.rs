//! The host's clock: tokio's (real time) everywhere but a virtual day, where
//! [`run_virtual`] drives a future on a clock that moves only when every
//! task waits, straight to the next timer. `emmaa-host simulate --quotas`
//! runs a day of AWS's quotas this way in seconds, and the host's deadline
//! passes in the simulation's time because the gate, the store and the
//! throttling layer read the time here.
//!
//! The clock is the runtime's own rather than tokio's paused one (its
//! `test-util`): the Lambda bootstrap must not carry `test-util`, and a
//! tokio built with it for the tests and without it for the bootstrap is two
//! builds of tokio and of everything over it (docs/benchmarks.md).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::future::{Either, select};

thread_local! {
    /// The virtual clock of the day this thread runs, if it runs one.
    static VIRTUAL: RefCell<Option<Arc<VirtualClock>>> = const { RefCell::new(None) };
}

fn virtual_clock() -> Option<Arc<VirtualClock>> {
    VIRTUAL.with(|clock| clock.borrow().clone())
}

/// The time now: the virtual day's on a thread that runs one, else the real
/// time.
pub fn now() -> Instant {
    match virtual_clock() {
        Some(clock) => clock.now(),
        None => Instant::now(),
    }
}

/// Waits `duration`.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(now() + duration)
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep(match virtual_clock() {
        Some(clock) => Timer::Virtual {
            clock,
            deadline,
            key: None,
        },
        None => Timer::Real {
            deadline,
            sleep: None,
        },
    })
}

/// `future`'s output, or [`Elapsed`] when `deadline` comes first.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    match select(pin!(future), sleep_until(deadline)).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(Elapsed),
    }
}

/// The deadline of a [`timeout_at`] came first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// A wait on the clock (see [`sleep`]).
pub struct Sleep(Timer);

enum Timer {
    /// tokio's timer, made when first polled (inside tokio's runtime).
    Real {
        deadline: Instant,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    Virtual {
        clock: Arc<VirtualClock>,
        deadline: Instant,
        /// Its place among the clock's timers, once it waits.
        key: Option<u64>,
    },
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Timer::Real { deadline, sleep } => sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until((*deadline).into())))
                .as_mut()
                .poll(cx),
            Timer::Virtual { clock, deadline, key } => {
                let mut state = clock.state();
                if clock.start + state.elapsed >= *deadline {
                    if let Some(key) = key.take() {
                        state.timers.remove(&(*deadline, key));
                    }
                    return Poll::Ready(());
                }
                let key = *key.get_or_insert_with(|| {
                    state.next_key += 1;
                    state.next_key
                });
                state.timers.insert((*deadline, key), cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    /// A timer dropped before its time no longer holds the clock back.
    fn drop(&mut self) {
        if let Timer::Virtual {
            clock,
            deadline,
            key: Some(key),
        } = &self.0
        {
            clock.state().timers.remove(&(*deadline, *key));
        }
    }
}

/// A clock that stands still until [`VirtualClock::advance`] moves it to
/// its next timer.
struct VirtualClock {
    start: Instant,
    state: Mutex<ClockState>,
}

#[derive(Default)]
struct ClockState {
    elapsed: Duration,
    /// The waiting timers, earliest first.
    timers: BTreeMap<(Instant, u64), Waker>,
    next_key: u64,
}

impl VirtualClock {
    fn state(&self) -> MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Instant {
        self.start + self.state().elapsed
    }

    /// Moves the time to the earliest waiting timer and wakes every timer
    /// due then; `false` when none waits.
    fn advance(&self) -> bool {
        let due = {
            let mut state = self.state();
            let Some(&(deadline, _)) = state.timers.keys().next() else {
                return false;
            };
            state.elapsed = state.elapsed.max(deadline.saturating_duration_since(self.start));
            let later = state.timers.split_off(&(deadline, u64::MAX));
            std::mem::replace(&mut state.timers, later)
        };
        due.into_values().for_each(Waker::wake);
        true
    }
}

/// Runs `future` to its end on this thread, in virtual time: the clock
/// starts now, and whenever nothing can go on without time passing, it
/// jumps to the next timer. `future` runs its tasks itself (a
/// `FuturesUnordered`, say); a wake from another thread is waited for.
pub fn run_virtual<F: Future>(future: F) -> F::Output {
    let clock = Arc::new(VirtualClock {
        start: Instant::now(),
        state: Mutex::default(),
    });
    let _installed = Installed::new(clock.clone());
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        signal.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        if signal.woken.load(Ordering::SeqCst) || clock.advance() {
            continue;
        }
        while !signal.woken.load(Ordering::SeqCst) {
            std::thread::park();
        }
    }
}

/// The virtual clock installed for this thread until dropped.
struct Installed(Option<Arc<VirtualClock>>);

impl Installed {
    fn new(clock: Arc<VirtualClock>) -> Self {
        Installed(VIRTUAL.with(|installed| installed.replace(Some(clock))))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.0.take();
        VIRTUAL.with(|installed| *installed.borrow_mut() = previous);
    }
}

/// Wakes [`run_virtual`]'s loop.
struct Signal {
    woken: AtomicBool,
    thread: std::thread::Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream::{FuturesUnordered, StreamExt};

    #[test]
    fn a_virtual_day_jumps_to_each_timer_in_turn() {
        let order = run_virtual(async {
            let started = now();
            let mut waits: FuturesUnordered<_> = [30, 10, 20]
                .into_iter()
                .map(|seconds| async move {
                    sleep(Duration::from_secs(seconds)).await;
                    (seconds, now().duration_since(started))
                })
                .collect();
            let mut order = Vec::new();
            while let Some(done) = waits.next().await {
                order.push(done);
            }
            order
        });
        let seconds = |s| Duration::from_secs(s);
        assert_eq!(
            order,
            vec![(10, seconds(10)), (20, seconds(20)), (30, seconds(30))]
        );
    }

    #[test]
    fn a_timeout_cuts_a_longer_wait_short_and_its_timer_goes_with_it() {
        run_virtual(async {
            let started = now();
            let late = timeout_at(started + Duration::from_secs(5), sleep(Duration::from_secs(60))).await;
            assert_eq!(late, Err(Elapsed));
            assert_eq!(now().duration_since(started), Duration::from_secs(5));
            // The 60 s wait was dropped with the timeout: the next jump is
            // to the next live timer, 1 s on.
            sleep(Duration::from_secs(1)).await;
            assert_eq!(now().duration_since(started), Duration::from_secs(6));
            let early = timeout_at(now() + Duration::from_secs(5), async { 7 }).await;
            assert_eq!(early, Ok(7));
        });
    }

    #[test]
    fn outside_a_virtual_day_the_clock_is_real() {
        assert!(virtual_clock().is_none());
        run_virtual(async { assert!(virtual_clock().is_some()) });
        assert!(
            virtual_clock().is_none(),
            "the day's clock is removed when it ends"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let started = Instant::now();
        runtime.block_on(sleep(Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
