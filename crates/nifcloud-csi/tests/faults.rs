//! Fault injection: errors, busy replies and a process kill (the RPC future dropped mid-flight,
//! then retried by a brand-new controller) at each step of the create, publish and expand flows.
//! Every scenario ends with the emulator holding exactly the disks it should: none leaked, none
//! duplicated, none attached where it should not be, none grown past its target.

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use csi_core::proto::controller_server::Controller;
use csi_core::proto::{self as csi};
use nifcloud_csi::controller::NifcloudController;
use nifcloud_emulator::{DelayConfig, Emulator, FaultConfig, FaultRule, LatencyConfig};
use tonic::Request;

/// One NIFCLOUD "GB": a GiB.
const GB: i64 = 1 << 30;

/// Runs `fut` until the emulator has seen `count` calls of `action`, then drops it ("kill -9").
/// Returns the output if the future finished first.
async fn kill_after<F: Future>(emu: &Emulator, action: &str, count: u64, fut: F) -> Option<F::Output> {
    tokio::select! {
        r = fut => Some(r),
        _ = async {
            while emu.call_count(action) < count {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Let the request reach the emulator's state, not just its counter.
            tokio::time::sleep(Duration::from_millis(5)).await;
        } => None,
    }
}

fn slow() -> DelayConfig {
    DelayConfig {
        volume_create_ms: 150,
        volume_attach_ms: 150,
        volume_detach_ms: 150,
        volume_extend_ms: 150,
        ..DelayConfig::default()
    }
}

async fn create(ctl: &NifcloudController, name: &str) -> Result<csi::Volume, tonic::Status> {
    ctl.create_volume(Request::new(create_req(name, 100 * GB)))
        .await
        .map(|r| r.into_inner().volume.unwrap_or_default())
}

/// The one way an injected `Server.InternalError` (HTTP 500, not retried: the call may have acted) may fail an
/// RPC: INTERNAL, naming the call that failed (`context`, the start of the message) and the fault.
fn assert_injected_internal_error(status: &tonic::Status, context: &str) {
    assert_eq!(status.code(), tonic::Code::Internal, "{context}: {status:?}");
    let message = status.message();
    assert!(message.starts_with(context), "expected {context:?}…, got {message:?}");
    assert!(
        message.contains("NIFCLOUD error Server.InternalError (HTTP 500, request id ")
            && message.ends_with(": injected fault"),
        "{message}"
    );
}

/// Calls `rpc` as a CO would until it succeeds (at most 30 times): under random `Server.ServiceUnavailable`
/// faults the only failure allowed is UNAVAILABLE naming that fault (the SDK's own retries ran out).
async fn until_ok<T, F: Future<Output = Result<T, tonic::Status>>>(what: &str, mut rpc: impl FnMut() -> F) -> T {
    for _ in 0..30 {
        match rpc().await {
            Ok(v) => return v,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{what}: {e:?}");
                assert!(e.message().contains("Server.ServiceUnavailable"), "{what}: {e:?}");
            }
        }
    }
    panic!("{what}: still UNAVAILABLE after 30 attempts");
}

/// Exactly one disk named `name`, finished (final id), detached, 100 GB.
fn assert_one_clean_disk(emu: &Emulator, name: &str, id: &str) {
    let vols = volumes_named(emu, name);
    assert_eq!(vols.len(), 1, "{name}: {vols:?}");
    assert_eq!(vols[0].name, id);
    assert_eq!(vols[0].name, nifcloud_csi::disk::final_id(name));
    assert_eq!(vols[0].attached_to, None, "{name}: helper attachment left behind");
    assert_eq!(vols[0].size_gb, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_survives_a_kill_at_every_step() {
    for (step, action) in ["CreateVolume", "DetachVolume", "ModifyVolumeAttribute"]
        .iter()
        .enumerate()
    {
        let emu = emulator().await;
        emu.set_delays(slow());
        // DescribeVolumes takes a moment, as on the real service: the poll right after the rename must not
        // return (and finish the create) before the kill 5 ms after it lands.
        emu.set_latency(LatencyConfig {
            default_ms: 0,
            per_action: [("DescribeVolumes".to_string(), 30)].into(),
        });
        let name = format!("pvc-kill-{step}");
        let first = controller(&emu);
        let out = kill_after(&emu, action, 1, create(&first, &name)).await;
        assert!(out.is_none(), "{action}: the kill came too late");
        drop(first);
        let second = controller(&emu);
        if *action == "ModifyVolumeAttribute" {
            // The rename was sent: the disk is finished and detached, so a new process just finds it.
            let v = create(&second, &name)
                .await
                .unwrap_or_else(|e| panic!("{action}: second process: {e}"));
            assert_eq!(v.volume_id, nifcloud_csi::disk::final_id(&name));
        } else {
            // The helper attachment is still changing (150 ms): a new process waits on it, and is killed too.
            tokio::time::timeout(Duration::from_millis(40), create(&second, &name))
                .await
                .expect_err("the second process is still waiting when it is killed");
        }
        drop(second);
        let third = controller(&emu);
        let v = create(&third, &name)
            .await
            .unwrap_or_else(|e| panic!("{action}: retry failed: {e}"));
        assert_one_clean_disk(&emu, &name, &v.volume_id);
        assert_eq!(
            emu.call_count("CreateVolume"),
            1,
            "{action}: never a second CreateVolume"
        );
        // And once more: idempotent, no new calls that change anything.
        let again = create(&third, &name).await.unwrap();
        assert_eq!(again.volume_id, v.volume_id);
        assert_eq!(volumes(&emu).len(), 1);
        emu.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_survives_errors_and_busy_replies_at_every_step() {
    for (i, action) in [
        "DescribeInstances",
        "CreateVolume",
        "DetachVolume",
        "ModifyVolumeAttribute",
        "DescribeVolumes",
    ]
    .iter()
    .enumerate()
    {
        let emu = emulator().await;
        emu.set_delays(slow());
        // A hard error: the RPC fails naming the call, the retry (new process) finishes the job.
        emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(action, 1, "Server.InternalError", 500)));
        let name = format!("pvc-err-{i}");
        let (creating, done) = (
            nifcloud_csi::disk::creating_id(&name),
            nifcloud_csi::disk::final_id(&name),
        );
        let context = match *action {
            "DescribeInstances" => "finding servers: DescribeInstances: ".to_string(),
            "CreateVolume" => format!("CreateVolume {creating}: "),
            "DetachVolume" => format!("DetachVolume {creating} from "),
            "ModifyVolumeAttribute" => format!("ModifyVolumeAttribute {creating} -> {done}: "),
            _ => "DescribeVolumes failed while waiting: DescribeVolumes (all): ".to_string(),
        };
        let first = controller(&emu);
        let err = create(&first, &name).await.unwrap_err();
        drop(first);
        assert_injected_internal_error(&err, &context);
        let v = create(&controller(&emu), &name)
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_one_clean_disk(&emu, &name, &v.volume_id);

        // Busy replies are waited out within one RPC.
        let busy_name = format!("pvc-busy-{i}");
        emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(
            action,
            2,
            "Server.ResourceIncorrectState.Volume.Processing",
            400,
        )));
        let v = create(&controller(&emu), &busy_name)
            .await
            .unwrap_or_else(|e| panic!("{action} busy: {e}"));
        assert_one_clean_disk(&emu, &busy_name, &v.volume_id);
        assert_eq!(volumes(&emu).len(), 2);
        emu.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_survives_kill_errors_and_busy_replies() {
    let emu = emulator().await;
    let id = create(&controller(&emu), "pvc-pub").await.unwrap().volume_id;
    emu.set_delays(slow());
    let publish = |ctl: NifcloudController, node: &'static str| {
        let id = id.clone();
        async move {
            ctl.controller_publish_volume(Request::new(publish_req(&id, node)))
                .await
                .map(|r| r.into_inner().publish_context)
        }
    };
    // Kill right after AttachVolume; a new process publishing to the same node finishes it.
    assert!(
        kill_after(&emu, "AttachVolume", 1, publish(controller(&emu), "node3"))
            .await
            .is_none()
    );
    let ctx = publish(controller(&emu), "node3").await.unwrap();
    assert_eq!(ctx["devicePath"], "SCSI (0:1)");
    assert_eq!(emu.call_count("AttachVolume"), 1, "no second attach");
    // The interrupted attach to node3 is never moved to node4 behind the CO's back.
    let err = publish(controller(&emu), "node4").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(volumes_named(&emu, "pvc-pub")[0].attached_to.as_deref(), Some("node3"));

    // Kill mid-unpublish, then finish with a new process.
    let unpub = |node: &str| csi::ControllerUnpublishVolumeRequest {
        volume_id: id.clone(),
        node_id: node.into(),
        ..Default::default()
    };
    let ctl = controller(&emu);
    assert!(
        kill_after(
            &emu,
            "DetachVolume",
            1,
            ctl.controller_unpublish_volume(Request::new(unpub("node3")))
        )
        .await
        .is_none()
    );
    drop(ctl);
    controller(&emu)
        .controller_unpublish_volume(Request::new(unpub("node3")))
        .await
        .unwrap();
    assert_eq!(volumes_named(&emu, "pvc-pub")[0].attached_to, None);

    // Errors: the RPC fails, the retry succeeds; busy replies are absorbed.
    emu.set_faults(FaultConfig::none().with(FaultRule::fail_next("AttachVolume", 1, "Server.InternalError", 500)));
    let err = publish(controller(&emu), "node2").await.unwrap_err();
    assert_injected_internal_error(&err, &format!("AttachVolume {id} to node2: "));
    let ctx = publish(controller(&emu), "node2").await.unwrap();
    assert!(ctx["devicePath"].starts_with("SCSI (0:"));
    controller(&emu)
        .controller_unpublish_volume(Request::new(unpub("node2")))
        .await
        .unwrap();
    emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(
        "AttachVolume",
        2,
        "Server.ResourceIncorrectState.Volume.Processing",
        400,
    )));
    publish(controller(&emu), "node1").await.unwrap();
    let vols = volumes_named(&emu, "pvc-pub");
    assert_eq!((vols.len(), vols[0].attached_to.as_deref()), (1, Some("node1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_never_overshoots_after_kill_error_or_busy() {
    let emu = emulator().await;
    let ctl = controller(&emu);
    let offline = create(&ctl, "pvc-off").await.unwrap().volume_id;
    let online = create(&ctl, "pvc-on").await.unwrap().volume_id;
    ctl.controller_publish_volume(Request::new(publish_req(&online, "node1")))
        .await
        .unwrap();
    drop(ctl);
    emu.set_delays(slow());
    for id in [&offline, &online] {
        let req = |gb: i64| csi::ControllerExpandVolumeRequest {
            volume_id: id.clone(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: gb * GB,
                limit_bytes: 0,
            }),
            volume_capability: Some(cap()),
            ..Default::default()
        };
        emu.reset_calls();
        // Kill right after the first ExtendVolumeSize (the extension is still running; offline it
        // is invisible in DescribeVolumes), then a new process expands to the same target.
        let first = controller(&emu);
        assert!(
            kill_after(
                &emu,
                "ExtendVolumeSize",
                1,
                first.controller_expand_volume(Request::new(req(300)))
            )
            .await
            .is_none()
        );
        drop(first);
        let r = controller(&emu)
            .controller_expand_volume(Request::new(req(300)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.capacity_bytes, 300 * GB);
        let size = emu.with_state(|st| st.volumes[id.as_str()].size_gb);
        assert_eq!(size, 300, "{id}: grown past the target");
        // An error on the way: the RPC fails, the retry lands exactly.
        emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(
            "ExtendVolumeSize",
            1,
            "Server.InternalError",
            500,
        )));
        let err = controller(&emu)
            .controller_expand_volume(Request::new(req(500)))
            .await
            .unwrap_err();
        assert_injected_internal_error(&err, &format!("ExtendVolumeSize {id}: "));
        controller(&emu)
            .controller_expand_volume(Request::new(req(500)))
            .await
            .unwrap();
        // Busy replies: absorbed, still exact.
        emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(
            "ExtendVolumeSize",
            3,
            "Server.ResourceIncorrectState.Volume.Processing",
            400,
        )));
        controller(&emu)
            .controller_expand_volume(Request::new(req(700)))
            .await
            .unwrap();
        let size = emu.with_state(|st| st.volumes[id.as_str()].size_gb);
        assert_eq!(size, 700, "{id}");
        emu.set_faults(FaultConfig::none());
    }
    assert_eq!(
        volumes_named(&emu, "pvc-on")[0].attached_to.as_deref(),
        Some("node1"),
        "online stays attached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_everywhere_still_converge() {
    let emu = emulator().await;
    emu.set_delays(DelayConfig::uniform(20));
    emu.set_faults(FaultConfig::none().with(FaultRule::random(0.25)));
    let names: Vec<String> = (0..6).map(|i| format!("pvc-chaos-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let node = format!("node{}", 1 + i % 4);
        let id = until_ok(&format!("create {name}"), || async {
            create(&controller(&emu), name).await
        })
        .await
        .volume_id;
        until_ok(&format!("publish {name} to {node}"), || async {
            controller(&emu)
                .controller_publish_volume(Request::new(publish_req(&id, &node)))
                .await
        })
        .await;
    }
    emu.set_faults(FaultConfig::none());
    let vols = volumes(&emu);
    assert_eq!(vols.len(), names.len(), "{vols:?}");
    for (i, name) in names.iter().enumerate() {
        let v = volumes_named(&emu, name);
        assert_eq!(v.len(), 1, "{name}");
        assert_eq!(v[0].name, nifcloud_csi::disk::final_id(name));
        assert_eq!(
            v[0].attached_to.as_deref(),
            Some(format!("node{}", 1 + i % 4).as_str()),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_creations_are_reaped_but_live_ones_are_not() {
    let emu = emulator().await;
    emu.set_delays(slow());
    // A creation killed for good right after CreateVolume: its disk sits on a helper server.
    let first = controller(&emu);
    assert!(
        kill_after(&emu, "CreateVolume", 1, create(&first, "pvc-gone"))
            .await
            .is_none()
    );
    drop(first);
    let ctl = controller(&emu);
    let reaper = nifcloud_csi::reaper::Reaper::new(&ctl, Duration::from_millis(300));
    assert!(
        reaper.pass().await.unwrap().is_empty(),
        "first sighting starts the grace period"
    );
    assert_eq!(volumes_named(&emu, "pvc-gone").len(), 1);
    // A live creation of another name runs while the grace period passes.
    let live = {
        let ctl = ctl.clone();
        tokio::spawn(async move { create(&ctl, "pvc-live").await })
    };
    tokio::time::sleep(Duration::from_millis(350)).await;
    let deleted = reaper.pass().await.unwrap();
    assert_eq!(deleted, [nifcloud_csi::disk::creating_id("pvc-gone")]);
    let v = live.await.unwrap().unwrap();
    assert!(volumes_named(&emu, "pvc-gone").is_empty());
    assert_one_clean_disk(&emu, "pvc-live", &v.volume_id);
    // Finished disks are never touched.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(reaper.pass().await.unwrap().is_empty());
    assert_eq!(volumes(&emu).len(), 1);
}
