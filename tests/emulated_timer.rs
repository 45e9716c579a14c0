//! Regression test for the mips/mipsel musl timer bug (issue 3).
//!
//! On 32-bit-time musl targets rustix (reached through smol -> async-io -> polling) passed a 64-bit
//! `itimerspec` to musl's 32-bit-time `timerfd_settime`, arming the poller's timerfd ~5e9 s in the
//! future: every `smol::Timer` hung forever, on real routers as well as under qemu. The fix is
//! `--cfg fix_y2038` in `.cargo/config.toml` for those targets. On a real mips/mipsel kernel this
//! test fails (watchdog abort) without it. Under qemu-user it does NOT guard the fix: Debian 12's
//! qemu 7.2 has no `timerfd_settime64` for mips, so musl falls back and the test passes with or
//! without `fix_y2038` (measured, see cross/README.md). There the guard is `cross/test.sh`'s check
//! that the mips targets' rustflags carry `--cfg fix_y2038`; `cross/test.sh` still runs this test
//! for every target (a smol timer must fire under emulation too), and it is the test to run on a
//! real router. On the host it is just fast.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the timer may take before we call it hung. Generous: qemu on a busy CI box is slow.
const WATCHDOG: Duration = Duration::from_secs(5);

#[test]
fn smol_timer_fires_under_block_on() {
    let fired = Arc::new(AtomicBool::new(false));
    let watch = Arc::clone(&fired);
    // A hung timer never returns control to the test harness, so only a separate thread can
    // report it; abort (not panic) because a panic in this thread would not stop the test.
    std::thread::spawn(move || {
        std::thread::sleep(WATCHDOG);
        if !watch.load(Ordering::SeqCst) {
            eprintln!(
                "emulated_timer: smol::Timer::after(50ms) did not fire within {WATCHDOG:?}: \
                 timerfd armed with the wrong time layout? (mips/mipsel musl need \
                 `--cfg fix_y2038` in rustflags, see .cargo/config.toml)"
            );
            std::process::abort();
        }
    });

    let start = Instant::now();
    smol::block_on(async {
        smol::Timer::after(Duration::from_millis(50)).await;
    });
    fired.store(true, Ordering::SeqCst);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(50),
        "timer fired early: {took:?}"
    );
    assert!(took < WATCHDOG, "timer took {took:?}");
}

#[test]
fn smol_timer_deadline_races_io() {
    // The shape the VICI client uses: a read raced against a deadline. Nothing ever becomes
    // readable here, so only the deadline can end the race.
    let fired = Arc::new(AtomicBool::new(false));
    let watch = Arc::clone(&fired);
    std::thread::spawn(move || {
        std::thread::sleep(WATCHDOG);
        if !watch.load(Ordering::SeqCst) {
            eprintln!(
                "emulated_timer: deadline raced against a silent socket never fired (fix_y2038?)"
            );
            std::process::abort();
        }
    });
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    smol::block_on(async {
        let a = smol::Async::new(a).expect("async socket");
        let read = async {
            let mut buf = [0u8; 1];
            smol::io::AsyncReadExt::read(&mut &a, &mut buf)
                .await
                .map(|_| "read")
        };
        let deadline = async {
            smol::Timer::after(Duration::from_millis(50)).await;
            Ok("deadline")
        };
        let won = smol::future::or(read, deadline).await.expect("no io error");
        assert_eq!(won, "deadline");
    });
    fired.store(true, Ordering::SeqCst);
}
