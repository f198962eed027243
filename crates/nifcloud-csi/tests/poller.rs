//! The shared poller: concurrent readers and waiters share DescribeVolumes calls, never decide on
//! state older than their registration, stop costing calls when dropped, and give up in time.

mod common;

use std::time::Duration;

use common::*;
use nifcloud_csi::cloud::{Cloud, CloudError};
use nifcloud_csi::poller::{PollMode, VolumeWatch};

fn watch(emu: &nifcloud_emulator::Emulator, mode: PollMode, timeout: Duration) -> VolumeWatch {
    let cloud = Cloud::new(sdk_client(emu), Duration::from_secs(1));
    VolumeWatch::new(cloud, mode, Duration::from_millis(50), timeout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_readers_share_a_couple_of_describe_calls() {
    let emu = emulator().await;
    let w = watch(&emu, PollMode::Shared, Duration::from_secs(5));
    emu.reset_calls();
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move { w.fresh().await.map(|d| d.len()) })
        })
        .collect();
    for r in readers {
        assert_eq!(r.await.unwrap().unwrap(), 0);
    }
    let calls = emu.call_count("DescribeVolumes");
    assert!((1..=2).contains(&calls), "{calls} DescribeVolumes for 50 readers");

    // The per-request mode, for contrast, pays one call each.
    let naive = watch(&emu, PollMode::PerRequest, Duration::from_secs(5));
    emu.reset_calls();
    for _ in 0..10 {
        naive.fresh().await.unwrap();
    }
    assert_eq!(emu.call_count("DescribeVolumes"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_gets_state_older_than_its_call() {
    let emu = emulator().await;
    let w = watch(&emu, PollMode::Shared, Duration::from_secs(5));
    assert!(w.fresh().await.unwrap().is_empty());
    // A disk appears; the very next read must see it (no stale snapshot reuse).
    sdk_client(&emu)
        .create_volume(
            nifcloud_sdk::types::CreateVolumeRequest::default()
                .size(100)
                .instance_id("node1"),
        )
        .await
        .unwrap();
    assert_eq!(w.fresh().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_waiters_stop_the_polling_and_waits_are_bounded() {
    let emu = emulator().await;
    let w = watch(&emu, PollMode::Shared, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = w
        .wait_until("csinothing", "a disk that never comes", |d| !d.is_empty())
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::WaitTimeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A waiter cancelled by its caller (RPC deadline, client gone) withdraws its interest.
    let cancelled = tokio::time::timeout(Duration::from_millis(120), w.wait_until("x", "never", |_| false)).await;
    cancelled.expect_err("the caller's 120 ms deadline ends a wait that never succeeds");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = emu.call_count("DescribeVolumes");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(emu.call_count("DescribeVolumes"), before, "idle poller makes no calls");
}
