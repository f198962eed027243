//! The typed waiters against the emulator's real state transitions (creating -> in-use, detach -> available,
//! delete -> gone), with delays so that each waiter has to poll more than once.

use std::time::Duration;

use nifcloud_emulator::{DelayConfig, Emulator, EmulatorConfig};
use nifcloud_sdk::types::{CreateVolumeRequest, DeleteVolumeRequest, DetachVolumeRequest};
use nifcloud_sdk::waiters::{VolumeState, WaitOptions};
use nifcloud_sdk::{Client, Config, Credentials};

#[tokio::test]
async fn volume_waiters_follow_the_emulated_lifecycle() {
    let emu = Emulator::builder()
        .config(EmulatorConfig::sample())
        .start()
        .await
        .unwrap();
    emu.set_delays(DelayConfig::uniform(300));
    let (ak, sk) = emu.credentials();
    let config = Config::builder()
        .endpoint(emu.endpoint())
        .region_name(&emu.region())
        .credentials(Credentials::new(ak, sk))
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    let fast = WaitOptions {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
    };

    client
        .create_volume(
            CreateVolumeRequest::default()
                .size(100)
                .volume_id("waitvol")
                .instance_id("node1"),
        )
        .await
        .unwrap();
    emu.reset_calls();
    client
        .wait_for_volume("waitvol", VolumeState::InUse, fast)
        .await
        .unwrap();
    client
        .wait_for_volume("waitvol", VolumeState::Attached, fast)
        .await
        .unwrap();
    assert!(
        emu.call_count("DescribeVolumes") >= 2,
        "the in-use wait had to poll more than once"
    );

    client
        .detach_volume(
            DetachVolumeRequest::default()
                .volume_id("waitvol")
                .instance_id("node1")
                .agreement(true),
        )
        .await
        .unwrap();
    client
        .wait_for_volume("waitvol", VolumeState::Available, fast)
        .await
        .unwrap();

    // A waiter that cannot succeed gives up at its timeout with the last state.
    let short = WaitOptions {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
    };
    let err = client
        .wait_for_volume("waitvol", VolumeState::InUse, short)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("available"), "{err}");

    client
        .delete_volume(DeleteVolumeRequest::default().volume_id("waitvol"))
        .await
        .unwrap();
    client
        .wait_for_volume("waitvol", VolumeState::Deleted, fast)
        .await
        .unwrap();
    emu.shutdown().await;
}
