//! Identity and Controller checks.

use std::collections::HashSet;

use tonic::Code;
use tonic::transport::Channel;

use super::{SanityConfig, SanityReport, expect_code};
use crate::proto::controller_client::ControllerClient;
use crate::proto::controller_service_capability::rpc::Type as Cap;
use crate::proto::identity_client::IdentityClient;
use crate::proto::plugin_capability::service::Type as PluginCap;
use crate::proto::*;

pub(super) struct ControllerSuite<'a> {
    identity: IdentityClient<Channel>,
    pub(super) client: ControllerClient<Channel>,
    pub(super) config: &'a SanityConfig,
    caps: HashSet<i32>,
    has_controller: bool,
    pub(super) has_topology: bool,
    created: Vec<String>,
    counter: u32,
}

fn err(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

impl<'a> ControllerSuite<'a> {
    pub(super) fn new(channel: Channel, config: &'a SanityConfig) -> Self {
        Self {
            identity: IdentityClient::new(channel.clone()),
            client: ControllerClient::new(channel),
            config,
            caps: HashSet::new(),
            has_controller: false,
            has_topology: false,
            created: Vec::new(),
            counter: 0,
        }
    }

    fn has(&self, cap: Cap) -> bool {
        self.caps.contains(&(cap as i32))
    }

    pub(super) fn unique_name(&mut self, what: &str) -> String {
        self.counter += 1;
        format!(
            "{}-{what}-{}-{}",
            self.config.name_prefix,
            std::process::id(),
            self.counter
        )
    }

    pub(super) fn create_request(&self, name: &str) -> CreateVolumeRequest {
        CreateVolumeRequest {
            name: name.to_string(),
            capacity_range: Some(CapacityRange {
                required_bytes: self.config.volume_size_bytes,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![self.config.capability.clone()],
            parameters: self.config.parameters.clone(),
            secrets: self.config.secrets.clone(),
            ..Default::default()
        }
    }

    /// Creates a volume and remembers it for cleanup.
    pub(super) async fn create(&mut self, req: CreateVolumeRequest) -> Result<Volume, String> {
        let v = self
            .client
            .create_volume(req)
            .await
            .map_err(err)?
            .into_inner()
            .volume
            .ok_or("CreateVolume returned no volume")?;
        if v.volume_id.is_empty() {
            return Err("CreateVolume returned an empty volume_id".into());
        }
        if !self.created.contains(&v.volume_id) {
            self.created.push(v.volume_id.clone());
        }
        Ok(v)
    }

    pub(super) async fn identity(&mut self, r: &mut SanityReport) {
        let mut id = self.identity.clone();
        r.check("identity/plugin-info", async {
            let info = id
                .get_plugin_info(GetPluginInfoRequest {})
                .await
                .map_err(err)?
                .into_inner();
            crate::identity::validate_plugin_name(&info.name).map_err(|e| e.to_string())?;
            if info.vendor_version.is_empty() {
                return Err("vendor_version is empty".into());
            }
            Ok(())
        })
        .await;
        let caps = self
            .identity
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await;
        let services: Vec<i32> = match &caps {
            Ok(c) => c
                .get_ref()
                .capabilities
                .iter()
                .filter_map(|c| match &c.r#type {
                    Some(plugin_capability::Type::Service(s)) => Some(s.r#type),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        self.has_controller = services.contains(&(PluginCap::ControllerService as i32));
        self.has_topology = services.contains(&(PluginCap::VolumeAccessibilityConstraints as i32));
        r.check("identity/plugin-capabilities", async { caps.map(|_| ()).map_err(err) })
            .await;
        let mut id = self.identity.clone();
        r.check("identity/probe", async {
            let p = id.probe(ProbeRequest {}).await.map_err(err)?.into_inner();
            match p.ready {
                Some(false) => Err("plugin reports ready=false".into()),
                _ => Ok(()),
            }
        })
        .await;
    }

    pub(super) async fn run(&mut self, r: &mut SanityReport, node_id: Option<&str>) {
        if !self.has_controller {
            r.skip("controller", "plugin does not advertise CONTROLLER_SERVICE");
            return;
        }
        let caps = self
            .client
            .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
            .await;
        if let Ok(c) = &caps {
            self.caps = c
                .get_ref()
                .capabilities
                .iter()
                .filter_map(|c| {
                    c.r#type
                        .as_ref()
                        .map(|controller_service_capability::Type::Rpc(rpc)| rpc.r#type)
                })
                .collect();
        }
        r.check("controller/get-capabilities", async { caps.map(|_| ()).map_err(err) })
            .await;
        if !self.has(Cap::CreateDeleteVolume) {
            r.skip("create", "CREATE_DELETE_VOLUME not advertised");
        } else {
            self.create_checks(r).await;
            self.delete_checks(r).await;
            self.validate_checks(r).await;
        }
        self.publish_checks(r, node_id).await;
        self.list_checks(r).await;
        self.capacity_and_snapshot_checks(r).await;
        self.expand_checks(r).await;
    }

    async fn create_checks(&mut self, r: &mut SanityReport) {
        let name = self.unique_name("create");
        let mut c = self.client.clone();
        let mut req = self.create_request(&name);
        req.name.clear();
        r.check("create/missing-name", async {
            expect_code(c.create_volume(req).await, &[Code::InvalidArgument])
        })
        .await;
        let mut c = self.client.clone();
        let mut req = self.create_request(&name);
        req.volume_capabilities.clear();
        r.check("create/missing-capabilities", async {
            expect_code(c.create_volume(req).await, &[Code::InvalidArgument])
        })
        .await;

        let req = self.create_request(&name);
        let first = self.create(req.clone()).await;
        let has_topology = self.has_topology;
        let size = self.config.volume_size_bytes;
        let first2 = first.clone();
        r.check("create/creates-volume", async move {
            let v = first2?;
            if v.capacity_bytes != 0 && v.capacity_bytes < size {
                return Err(format!("capacity {} is below required {size}", v.capacity_bytes));
            }
            if has_topology && v.accessible_topology.is_empty() {
                return Err(
                    "plugin has VOLUME_ACCESSIBILITY_CONSTRAINTS but the volume has no accessible_topology".into(),
                );
            }
            Ok(())
        })
        .await;
        let Ok(first) = first else {
            r.skip("create/idempotent", "create failed");
            return;
        };
        let second = self.create(req.clone()).await;
        r.check("create/idempotent", async {
            let v = second?;
            if v.volume_id != first.volume_id || v.capacity_bytes != first.capacity_bytes {
                return Err(format!("second CreateVolume returned {v:?}, first {first:?}"));
            }
            Ok(())
        })
        .await;
        let mut c = self.client.clone();
        let mut bigger = req.clone();
        bigger.capacity_range = Some(CapacityRange {
            required_bytes: first.capacity_bytes.max(size) + 1,
            limit_bytes: 0,
        });
        r.check("create/same-name-incompatible-size", async {
            expect_code(c.create_volume(bigger).await, &[Code::AlreadyExists])
        })
        .await;

        let exact_name = self.unique_name("exact");
        let mut exact = self.create_request(&exact_name);
        let cap = first.capacity_bytes.max(size);
        exact.capacity_range = Some(CapacityRange {
            required_bytes: cap,
            limit_bytes: cap,
        });
        let got = self.create(exact).await;
        r.check("create/limit-honoured", async {
            let v = got?;
            if v.capacity_bytes > cap {
                return Err(format!("capacity {} exceeds limit_bytes {cap}", v.capacity_bytes));
            }
            Ok(())
        })
        .await;
        let bad_name = self.unique_name("badrange");
        let mut bad = self.create_request(&bad_name);
        let mut c = self.client.clone();
        bad.capacity_range = Some(CapacityRange {
            required_bytes: 2 * size,
            limit_bytes: size,
        });
        r.check("create/required-above-limit", async {
            expect_code(c.create_volume(bad).await, &[Code::OutOfRange, Code::InvalidArgument])
        })
        .await;
    }

    async fn delete_checks(&mut self, r: &mut SanityReport) {
        let mut c = self.client.clone();
        let secrets = self.config.secrets.clone();
        r.check("delete/missing-id", async {
            expect_code(
                c.delete_volume(DeleteVolumeRequest {
                    volume_id: String::new(),
                    secrets,
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        let secrets = self.config.secrets.clone();
        r.check("delete/unknown-id-succeeds", async {
            c.delete_volume(DeleteVolumeRequest {
                volume_id: "sanity-does-not-exist".into(),
                secrets,
            })
            .await
            .map(|_| ())
            .map_err(err)
        })
        .await;
        let name = self.unique_name("delete");
        let created = self.create(self.create_request(&name)).await;
        let deleted_id = created.as_ref().map(|v| v.volume_id.clone()).ok();
        let mut c = self.client.clone();
        let secrets = self.config.secrets.clone();
        let ok = r
            .check("delete/twice", async {
                let v = created?;
                for _ in 0..2 {
                    c.delete_volume(DeleteVolumeRequest {
                        volume_id: v.volume_id.clone(),
                        secrets: secrets.clone(),
                    })
                    .await
                    .map_err(err)?;
                }
                Ok(())
            })
            .await;
        if ok && let Some(id) = deleted_id {
            self.created.retain(|v| *v != id);
        }
    }

    async fn validate_checks(&mut self, r: &mut SanityReport) {
        let Some(vol) = self.created.first().cloned() else {
            return;
        };
        let cap = self.config.capability.clone();
        let mut c = self.client.clone();
        let v2 = vol.clone();
        r.check("validate/missing-id", async {
            expect_code(
                c.validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_capabilities: vec![cap],
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        r.check("validate/missing-capabilities", async {
            expect_code(
                c.validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: v2,
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        let cap = self.config.capability.clone();
        r.check("validate/unknown-volume", async {
            expect_code(
                c.validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: "sanity-does-not-exist".into(),
                    volume_capabilities: vec![cap],
                    ..Default::default()
                })
                .await,
                &[Code::NotFound],
            )
        })
        .await;
        let mut c = self.client.clone();
        let cap = self.config.capability.clone();
        let params = self.config.parameters.clone();
        r.check("validate/confirms-supported", async {
            let resp = c
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: vol,
                    volume_capabilities: vec![cap],
                    parameters: params,
                    ..Default::default()
                })
                .await
                .map_err(err)?
                .into_inner();
            match resp.confirmed {
                Some(c) if !c.volume_capabilities.is_empty() => Ok(()),
                _ => Err(format!("capability not confirmed: {}", resp.message)),
            }
        })
        .await;
    }

    async fn publish_checks(&mut self, r: &mut SanityReport, node_id: Option<&str>) {
        if !self.has(Cap::PublishUnpublishVolume) {
            let mut c = self.client.clone();
            r.check("publish/unimplemented-without-capability", async {
                expect_code(
                    c.controller_publish_volume(ControllerPublishVolumeRequest::default())
                        .await,
                    &[Code::Unimplemented],
                )
            })
            .await;
            return;
        }
        let Some(node) = node_id.map(String::from) else {
            r.skip("publish", "no node ID configured");
            return;
        };
        let Some(vol) = self.created.first().cloned() else {
            r.skip("publish", "no volume was created");
            return;
        };
        let base = ControllerPublishVolumeRequest {
            volume_id: vol.clone(),
            node_id: node.clone(),
            volume_capability: Some(self.config.capability.clone()),
            readonly: false,
            secrets: self.config.secrets.clone(),
            ..Default::default()
        };
        let invalid = [
            (
                "publish/missing-volume-id",
                ControllerPublishVolumeRequest {
                    volume_id: String::new(),
                    ..base.clone()
                },
            ),
            (
                "publish/missing-node-id",
                ControllerPublishVolumeRequest {
                    node_id: String::new(),
                    ..base.clone()
                },
            ),
            (
                "publish/missing-capability",
                ControllerPublishVolumeRequest {
                    volume_capability: None,
                    ..base.clone()
                },
            ),
        ];
        for (name, req) in invalid {
            let mut c = self.client.clone();
            r.check(name, async {
                expect_code(c.controller_publish_volume(req).await, &[Code::InvalidArgument])
            })
            .await;
        }
        let mut c = self.client.clone();
        let req = ControllerPublishVolumeRequest {
            volume_id: "sanity-does-not-exist".into(),
            ..base.clone()
        };
        r.check("publish/unknown-volume", async {
            expect_code(c.controller_publish_volume(req).await, &[Code::NotFound])
        })
        .await;
        let mut c = self.client.clone();
        let req = ControllerPublishVolumeRequest {
            node_id: "sanity-no-such-node".into(),
            ..base.clone()
        };
        r.check("publish/unknown-node", async {
            expect_code(c.controller_publish_volume(req).await, &[Code::NotFound])
        })
        .await;
        let mut c = self.client.clone();
        let req = base.clone();
        r.check("publish/idempotent", async {
            let a = c
                .controller_publish_volume(req.clone())
                .await
                .map_err(err)?
                .into_inner();
            let b = c.controller_publish_volume(req).await.map_err(err)?.into_inner();
            if a.publish_context != b.publish_context {
                return Err(format!(
                    "publish_context changed: {:?} then {:?}",
                    a.publish_context, b.publish_context
                ));
            }
            Ok(())
        })
        .await;
        let unpub = ControllerUnpublishVolumeRequest {
            volume_id: vol,
            node_id: node,
            secrets: self.config.secrets.clone(),
        };
        let mut c = self.client.clone();
        let req = ControllerUnpublishVolumeRequest {
            volume_id: String::new(),
            ..unpub.clone()
        };
        r.check("unpublish/missing-volume-id", async {
            expect_code(c.controller_unpublish_volume(req).await, &[Code::InvalidArgument])
        })
        .await;
        let mut c = self.client.clone();
        let req = unpub.clone();
        r.check("unpublish/twice", async {
            for _ in 0..2 {
                c.controller_unpublish_volume(req.clone()).await.map_err(err)?;
            }
            Ok(())
        })
        .await;
        let mut c = self.client.clone();
        let req = ControllerUnpublishVolumeRequest {
            volume_id: "sanity-does-not-exist".into(),
            ..unpub
        };
        r.check("unpublish/unknown-volume", async {
            match c.controller_unpublish_volume(req).await {
                Ok(_) => Ok(()),
                Err(s) if s.code() == Code::NotFound => Ok(()),
                Err(s) => Err(err(s)),
            }
        })
        .await;
    }

    async fn list_checks(&mut self, r: &mut SanityReport) {
        if !self.has(Cap::ListVolumes) {
            let mut c = self.client.clone();
            r.check("list/unimplemented-without-capability", async {
                expect_code(
                    c.list_volumes(ListVolumesRequest::default()).await,
                    &[Code::Unimplemented],
                )
            })
            .await;
            return;
        }
        let mut extra = Vec::new();
        if self.has(Cap::CreateDeleteVolume) {
            for _ in 0..3 {
                let name = self.unique_name("list");
                if let Ok(v) = self.create(self.create_request(&name)).await {
                    extra.push(v.volume_id);
                }
            }
        }
        let expected: Vec<String> = self.created.clone();
        let mut c = self.client.clone();
        r.check("list/pagination-visits-every-volume", async {
            let mut token = String::new();
            let mut seen = Vec::new();
            for _ in 0..10_000 {
                let page = c
                    .list_volumes(ListVolumesRequest {
                        max_entries: 1,
                        starting_token: token.clone(),
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                if page.entries.len() > 1 {
                    return Err(format!("max_entries 1 returned {} entries", page.entries.len()));
                }
                seen.extend(page.entries.into_iter().filter_map(|e| e.volume.map(|v| v.volume_id)));
                if page.next_token.is_empty() {
                    break;
                }
                token = page.next_token;
            }
            let unique: HashSet<&String> = seen.iter().collect();
            if unique.len() != seen.len() {
                return Err(format!("duplicate entries across pages: {seen:?}"));
            }
            let missing: Vec<&String> = expected.iter().filter(|v| !unique.contains(v)).collect();
            if !missing.is_empty() {
                return Err(format!("volumes missing from ListVolumes: {missing:?}"));
            }
            Ok(())
        })
        .await;
        let mut c = self.client.clone();
        r.check("list/invalid-token", async {
            expect_code(
                c.list_volumes(ListVolumesRequest {
                    max_entries: 0,
                    starting_token: "sanity-bogus-token".into(),
                })
                .await,
                &[Code::Aborted],
            )
        })
        .await;
        let mut c = self.client.clone();
        r.check("list/negative-max-entries", async {
            expect_code(
                c.list_volumes(ListVolumesRequest {
                    max_entries: -1,
                    starting_token: String::new(),
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
    }

    async fn capacity_and_snapshot_checks(&mut self, r: &mut SanityReport) {
        let mut c = self.client.clone();
        let params = self.config.parameters.clone();
        if self.has(Cap::GetCapacity) {
            r.check("get-capacity/answers", async {
                let cap = c
                    .get_capacity(GetCapacityRequest {
                        parameters: params,
                        ..Default::default()
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                if cap.available_capacity < 0 {
                    Err("negative available_capacity".into())
                } else {
                    Ok(())
                }
            })
            .await;
        } else {
            r.check("get-capacity/unimplemented-without-capability", async {
                expect_code(
                    c.get_capacity(GetCapacityRequest::default()).await,
                    &[Code::Unimplemented],
                )
            })
            .await;
        }
        if !self.has(Cap::CreateDeleteSnapshot) {
            let mut c = self.client.clone();
            let secrets = self.config.secrets.clone();
            r.check("snapshot/create-unimplemented", async {
                expect_code(
                    c.create_snapshot(CreateSnapshotRequest {
                        source_volume_id: "v".into(),
                        name: "s".into(),
                        secrets,
                        ..Default::default()
                    })
                    .await,
                    &[Code::Unimplemented],
                )
            })
            .await;
            let mut c = self.client.clone();
            r.check("snapshot/delete-unimplemented", async {
                expect_code(
                    c.delete_snapshot(DeleteSnapshotRequest {
                        snapshot_id: "s".into(),
                        ..Default::default()
                    })
                    .await,
                    &[Code::Unimplemented],
                )
            })
            .await;
        }
        if !self.has(Cap::ListSnapshots) {
            let mut c = self.client.clone();
            r.check("snapshot/list-unimplemented", async {
                expect_code(
                    c.list_snapshots(ListSnapshotsRequest::default()).await,
                    &[Code::Unimplemented],
                )
            })
            .await;
        }
    }

    async fn expand_checks(&mut self, r: &mut SanityReport) {
        if !self.has(Cap::ExpandVolume) {
            let mut c = self.client.clone();
            r.check("expand/unimplemented-without-capability", async {
                expect_code(
                    c.controller_expand_volume(ControllerExpandVolumeRequest::default())
                        .await,
                    &[Code::Unimplemented],
                )
            })
            .await;
            return;
        }
        let name = self.unique_name("expand");
        let vol = self.create(self.create_request(&name)).await;
        let mut c = self.client.clone();
        let secrets = self.config.secrets.clone();
        let size = self.config.volume_size_bytes;
        r.check("expand/missing-id", async {
            expect_code(
                c.controller_expand_volume(ControllerExpandVolumeRequest {
                    capacity_range: Some(CapacityRange {
                        required_bytes: size,
                        limit_bytes: 0,
                    }),
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        r.check("expand/unknown-volume", async {
            expect_code(
                c.controller_expand_volume(ControllerExpandVolumeRequest {
                    volume_id: "sanity-does-not-exist".into(),
                    capacity_range: Some(CapacityRange {
                        required_bytes: size,
                        limit_bytes: 0,
                    }),
                    ..Default::default()
                })
                .await,
                &[Code::NotFound],
            )
        })
        .await;
        let Ok(vol) = vol else {
            r.skip("expand/grows", "create failed");
            return;
        };
        let mut c = self.client.clone();
        let v2 = vol.volume_id.clone();
        r.check("expand/missing-capacity-range", async {
            expect_code(
                c.controller_expand_volume(ControllerExpandVolumeRequest {
                    volume_id: v2,
                    ..Default::default()
                })
                .await,
                &[Code::InvalidArgument],
            )
        })
        .await;
        let mut c = self.client.clone();
        let cap = self.config.capability.clone();
        r.check("expand/grows-and-is-idempotent", async {
            let want = vol.capacity_bytes.max(size) + 1;
            let req = ControllerExpandVolumeRequest {
                volume_id: vol.volume_id.clone(),
                capacity_range: Some(CapacityRange {
                    required_bytes: want,
                    limit_bytes: 0,
                }),
                secrets,
                volume_capability: Some(cap),
            };
            for _ in 0..2 {
                let got = c.controller_expand_volume(req.clone()).await.map_err(err)?.into_inner();
                if got.capacity_bytes < want {
                    return Err(format!("expanded to {} bytes, {want} required", got.capacity_bytes));
                }
            }
            Ok(())
        })
        .await;
    }

    /// Deletes every volume the suite created.
    pub(super) async fn cleanup(&mut self, r: &mut SanityReport) {
        if self.created.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.created);
        let mut c = self.client.clone();
        let secrets = self.config.secrets.clone();
        r.check("cleanup/delete-created-volumes", async {
            let mut failed = Vec::new();
            for id in ids {
                if let Err(s) = c
                    .delete_volume(DeleteVolumeRequest {
                        volume_id: id.clone(),
                        secrets: secrets.clone(),
                    })
                    .await
                {
                    failed.push(format!("{id}: {}", err(s)));
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join("; "))
            }
        })
        .await;
    }
}
