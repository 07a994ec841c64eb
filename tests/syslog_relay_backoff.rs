//! The relay client's reconnect delays (`examples/syslog_relay/backoff.rs`): full jitter,
//! so that clients which lost the same server come back spread out, and the window
//! doubling up to its cap.

#[path = "../examples/syslog_relay/backoff.rs"]
mod backoff;

use std::time::Duration;

use backoff::Backoff;

const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(30);

#[test]
fn the_window_doubles_up_to_its_cap_and_resets() {
    let mut b = Backoff::new(BASE, CAP);
    let mut windows = Vec::new();
    for _ in 0..10 {
        windows.push(b.ceiling().as_millis());
        let d = b.next_delay();
        assert!(d <= Duration::from_millis(*windows.last().unwrap() as u64));
    }
    assert_eq!(
        windows,
        [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    );
    b.reset();
    assert_eq!(b.ceiling(), BASE);
}

#[test]
fn a_thousand_clients_after_one_restart_come_back_spread_over_the_window() {
    // 1,000 clients lose the server at once: each draws its first delay.
    let draws: Vec<f64> = (0..1000)
        .map(|_| Backoff::new(BASE, CAP).next_delay().as_secs_f64() / BASE.as_secs_f64())
        .collect();
    // Uniform on [0, 1]: every tenth of the window gets some (a fixed delay would put
    // them all in one), none gets a crowd, and the mean is near the middle.
    let mut tenths = [0usize; 10];
    for d in &draws {
        assert!((0.0..=1.0).contains(d), "{d}");
        tenths[((d * 10.0) as usize).min(9)] += 1;
    }
    assert!(
        tenths.iter().all(|&n| (40..=170).contains(&n)),
        "{tenths:?}"
    );
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((0.4..=0.6).contains(&mean), "mean {mean}");
    // Spread over the milliseconds as uniform draws are: 1,000 draws over 500 ms fill
    // about 500 × (1 − e⁻²) ≈ 432 of them (a fixed delay would fill one).
    let mut ms: Vec<u64> = draws.iter().map(|d| (d * 500.0) as u64).collect();
    ms.sort_unstable();
    ms.dedup();
    assert!(ms.len() > 380, "only {} distinct milliseconds", ms.len());
}
