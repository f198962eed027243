//! Node checks.

use std::collections::HashMap;
use std::path::Path;

use tonic::Code;
use tonic::transport::Channel;

use super::controller::ControllerSuite;
use super::{NodeSanityConfig, SanityConfig, SanityReport, expect_code};
use crate::proto::node_client::NodeClient;
use crate::proto::*;

pub(super) struct NodeSuite<'a> {
    client: NodeClient<Channel>,
    config: &'a SanityConfig,
    node: &'a NodeSanityConfig,
}

fn err(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

impl<'a> NodeSuite<'a> {
    pub(super) fn new(channel: Channel, config: &'a SanityConfig, node: &'a NodeSanityConfig) -> Self {
        Self {
            client: NodeClient::new(channel),
            config,
            node,
        }
    }

    /// NodeGetInfo; returns the node ID when the check passes.
    pub(super) async fn node_id(&mut self, r: &mut SanityReport, has_topology: bool) -> Option<String> {
        let info = self.client.node_get_info(NodeGetInfoRequest {}).await;
        let id = info
            .as_ref()
            .ok()
            .map(|i| i.get_ref().node_id.clone())
            .filter(|s| !s.is_empty());
        r.check("node/get-info", async {
            let i = info.map_err(err)?.into_inner();
            if i.node_id.is_empty() {
                return Err("empty node_id".into());
            }
            if i.max_volumes_per_node < 0 {
                return Err(format!("negative max_volumes_per_node {}", i.max_volumes_per_node));
            }
            if has_topology && i.accessible_topology.as_ref().is_none_or(|t| t.segments.is_empty()) {
                return Err("plugin has VOLUME_ACCESSIBILITY_CONSTRAINTS but NodeGetInfo has no topology".into());
            }
            Ok(())
        })
        .await;
        id
    }

    pub(super) async fn run(&mut self, r: &mut SanityReport, ctl: &mut ControllerSuite<'_>, node_id: Option<&str>) {
        let mut c = self.client.clone();
        r.check("node/get-capabilities", async {
            c.node_get_capabilities(NodeGetCapabilitiesRequest {})
                .await
                .map(|_| ())
                .map_err(err)
        })
        .await;
        let staging = self.node.staging_root.join("sanity-staging");
        let target = self.node.target_root.join("sanity-target");
        let cap = self.config.capability.clone();
        let stage = NodeStageVolumeRequest {
            volume_id: "sanity-vol".into(),
            staging_target_path: path(&staging),
            volume_capability: Some(cap.clone()),
            secrets: self.config.secrets.clone(),
            ..Default::default()
        };
        let publish = NodePublishVolumeRequest {
            volume_id: "sanity-vol".into(),
            staging_target_path: path(&staging),
            target_path: path(&target),
            volume_capability: Some(cap.clone()),
            secrets: self.config.secrets.clone(),
            ..Default::default()
        };
        let stage_cases = [
            (
                "node/stage-missing-volume-id",
                NodeStageVolumeRequest {
                    volume_id: String::new(),
                    ..stage.clone()
                },
            ),
            (
                "node/stage-missing-staging-path",
                NodeStageVolumeRequest {
                    staging_target_path: String::new(),
                    ..stage.clone()
                },
            ),
            (
                "node/stage-missing-capability",
                NodeStageVolumeRequest {
                    volume_capability: None,
                    ..stage.clone()
                },
            ),
        ];
        for (name, req) in stage_cases {
            let mut c = self.client.clone();
            r.check(name, async {
                expect_code(c.node_stage_volume(req).await, &[Code::InvalidArgument])
            })
            .await;
        }
        let publish_cases = [
            (
                "node/publish-missing-volume-id",
                NodePublishVolumeRequest {
                    volume_id: String::new(),
                    ..publish.clone()
                },
            ),
            (
                "node/publish-missing-target-path",
                NodePublishVolumeRequest {
                    target_path: String::new(),
                    ..publish.clone()
                },
            ),
            (
                "node/publish-missing-capability",
                NodePublishVolumeRequest {
                    volume_capability: None,
                    ..publish.clone()
                },
            ),
        ];
        for (name, req) in publish_cases {
            let mut c = self.client.clone();
            r.check(name, async {
                expect_code(c.node_publish_volume(req).await, &[Code::InvalidArgument])
            })
            .await;
        }
        let mut c = self.client.clone();
        let t = path(&target);
        r.check("node/unpublish-missing-args", async {
            expect_code(
                c.node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: String::new(),
                    target_path: t.clone(),
                })
                .await,
                &[Code::InvalidArgument],
            )?;
            expect_code(
                c.node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: "v".into(),
                    target_path: String::new(),
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        let s = path(&staging);
        r.check("node/unstage-missing-args", async {
            expect_code(
                c.node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id: String::new(),
                    staging_target_path: s.clone(),
                })
                .await,
                &[Code::InvalidArgument],
            )?;
            expect_code(
                c.node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id: "v".into(),
                    staging_target_path: String::new(),
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        let t = path(&target);
        r.check("node/unpublish-when-not-published", async {
            c.node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: "sanity-vol".into(),
                target_path: t,
            })
            .await
            .map(|_| ())
            .map_err(err)
        })
        .await;
        let mut c = self.client.clone();
        let s = path(&staging);
        r.check("node/unstage-when-not-staged", async {
            c.node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: "sanity-vol".into(),
                staging_target_path: s,
            })
            .await
            .map(|_| ())
            .map_err(err)
        })
        .await;
        let mut c = self.client.clone();
        let missing = path(&self.node.target_root.join("sanity-missing"));
        r.check("node/stats-errors", async {
            expect_code(
                c.node_get_volume_stats(NodeGetVolumeStatsRequest {
                    volume_id: "v".into(),
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )?;
            expect_code(
                c.node_get_volume_stats(NodeGetVolumeStatsRequest {
                    volume_id: "v".into(),
                    volume_path: missing,
                    ..Default::default()
                })
                .await,
                &[Code::NotFound],
            )
        })
        .await;
        let mut c = self.client.clone();
        r.check("node/expand-missing-args", async {
            expect_code(
                c.node_expand_volume(NodeExpandVolumeRequest {
                    volume_path: "/".into(),
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )?;
            expect_code(
                c.node_expand_volume(NodeExpandVolumeRequest {
                    volume_id: "v".into(),
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        if self.node.full_lifecycle {
            self.lifecycle(r, ctl, node_id, stage, publish).await;
        }
    }

    async fn lifecycle(
        &mut self,
        r: &mut SanityReport,
        ctl: &mut ControllerSuite<'_>,
        node_id: Option<&str>,
        stage: NodeStageVolumeRequest,
        publish: NodePublishVolumeRequest,
    ) {
        let Some(node_id) = node_id.map(String::from) else {
            r.skip("node/lifecycle", "no node ID");
            return;
        };
        let name = ctl.unique_name("node");
        let vol = match ctl.create(ctl.create_request(&name)).await {
            Ok(v) => v,
            Err(e) => {
                r.check("node/lifecycle", async { Err::<(), _>(format!("CreateVolume: {e}")) })
                    .await;
                return;
            }
        };
        let mut cc = ctl.client.clone();
        let mut nc = self.client.clone();
        let cap = ctl.config.capability.clone();
        let secrets = ctl.config.secrets.clone();
        r.check("node/lifecycle-is-idempotent", async move {
            let ctx: HashMap<String, String> = cc
                .controller_publish_volume(ControllerPublishVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    node_id: node_id.clone(),
                    volume_capability: Some(cap),
                    secrets: secrets.clone(),
                    volume_context: vol.volume_context.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("ControllerPublishVolume: {}", err(s)))?
                .into_inner()
                .publish_context;
            let stage = NodeStageVolumeRequest {
                volume_id: vol.volume_id.clone(),
                publish_context: ctx.clone(),
                volume_context: vol.volume_context.clone(),
                ..stage
            };
            let publish = NodePublishVolumeRequest {
                volume_id: vol.volume_id.clone(),
                publish_context: ctx,
                volume_context: vol.volume_context.clone(),
                ..publish
            };
            for i in 0..2 {
                nc.node_stage_volume(stage.clone())
                    .await
                    .map_err(|s| format!("NodeStageVolume #{i}: {}", err(s)))?;
            }
            for i in 0..2 {
                nc.node_publish_volume(publish.clone())
                    .await
                    .map_err(|s| format!("NodePublishVolume #{i}: {}", err(s)))?;
            }
            let stats = nc
                .node_get_volume_stats(NodeGetVolumeStatsRequest {
                    volume_id: vol.volume_id.clone(),
                    volume_path: publish.target_path.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("NodeGetVolumeStats: {}", err(s)))?
                .into_inner();
            if stats.usage.is_empty() {
                return Err("NodeGetVolumeStats returned no usage".into());
            }
            for i in 0..2 {
                nc.node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    target_path: publish.target_path.clone(),
                })
                .await
                .map_err(|s| format!("NodeUnpublishVolume #{i}: {}", err(s)))?;
            }
            for i in 0..2 {
                nc.node_unstage_volume(NodeUnstageVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    staging_target_path: stage.staging_target_path.clone(),
                })
                .await
                .map_err(|s| format!("NodeUnstageVolume #{i}: {}", err(s)))?;
            }
            cc.controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: vol.volume_id.clone(),
                node_id,
                secrets,
            })
            .await
            .map_err(|s| format!("ControllerUnpublishVolume: {}", err(s)))?;
            Ok(())
        })
        .await;
    }
}
