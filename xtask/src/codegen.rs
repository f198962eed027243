//! `cargo xtask codegen`: writes the SDK's typed operations from the vendored NIFCLOUD computing model.
//!
//! Output (all under `crates/nifcloud-sdk/`):
//! - `src/generated/mod.rs`, `src/generated/types/{mod,<group>}.rs`: one struct per structure shape, grouped by
//!   the operations that use it, with setters and `ToParams` for inputs and `FromXml` for outputs;
//! - `src/generated/client_ops.rs`: one `Client` method per operation;
//! - `tests/vectors/operations.rs`: the operation table the conformance test dispatches on.
//!
//! The text is formatted with rustfmt (workspace `rustfmt.toml`), so `cargo fmt` leaves it unchanged and
//! `--check` can compare byte for byte.

mod model;
mod naming;
mod plan;
mod render;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use model::Model;
use plan::Plan;
use render::HEADER;

/// Arguments of `cargo xtask codegen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not write anything: fail if the committed files differ from what the model generates.
    #[arg(long)]
    pub check: bool,
}

const SDK: &str = "crates/nifcloud-sdk";
const MODEL: &str = "model/computing/3.0/service-2.json";
/// Groups compiled always (the CCM and the CSI driver need them); the others could be feature-gated.
const GROUP_DOCS: &[(&str, &str)] = &[
    ("common", "Structures shared by operations of several groups."),
    (
        "elastic_load_balancers",
        "Elastic load balancer (`Nifty*ElasticLoadBalancer*`) operations.",
    ),
    ("load_balancers", "L4 load balancer operations."),
    ("volumes", "Additional storage (volume) operations."),
    ("security_groups", "Security group (firewall) operations."),
    ("regions", "Region and availability zone operations."),
    (
        "instances",
        "Server (instance) operations, including backups, snapshots and separation rules.",
    ),
    ("vpn", "VPN gateways, customer gateways and VPN connections."),
    (
        "network",
        "Routers, DHCP, NAT, private LANs, addresses and network interfaces.",
    ),
    (
        "misc",
        "Every other operation: images, key pairs, SSL certificates, alarms, auto scaling, usage, ...",
    ),
];

/// Runs the generator from the workspace root `root`.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    let sdk = root.join(SDK);
    let text =
        std::fs::read_to_string(sdk.join(MODEL)).with_context(|| format!("reading {}", sdk.join(MODEL).display()))?;
    let model = Model::parse(&text)?;
    let plan = Plan::build(&model)?;
    let files = generate(&model, &plan)?;
    let rustfmt_config = root.join("rustfmt.toml");
    let mut formatted = BTreeMap::new();
    for (path, source) in files {
        formatted.insert(
            path.clone(),
            rustfmt(&source, &rustfmt_config).with_context(|| format!("formatting {path}"))?,
        );
    }
    let generated_dir = sdk.join("src/generated");
    if args.check {
        let mut stale = Vec::new();
        for (path, text) in &formatted {
            let current = std::fs::read_to_string(sdk.join(path)).unwrap_or_default();
            if &current != text {
                stale.push(path.clone());
            }
        }
        for extra in existing_generated(&generated_dir)? {
            let rel = extra
                .strip_prefix(&sdk)
                .unwrap_or(&extra)
                .to_string_lossy()
                .replace('\\', "/");
            if !formatted.contains_key(&rel) {
                stale.push(format!("{rel} (no longer generated)"));
            }
        }
        if !stale.is_empty() {
            bail!(
                "generated SDK code is out of date with {MODEL}:\n  {}\nrun `cargo xtask codegen` and commit the result",
                stale.join("\n  ")
            );
        }
        println!("codegen: {} files up to date", formatted.len());
        return Ok(());
    }
    for extra in existing_generated(&generated_dir)? {
        let rel = extra
            .strip_prefix(&sdk)
            .unwrap_or(&extra)
            .to_string_lossy()
            .replace('\\', "/");
        if !formatted.contains_key(&rel) {
            std::fs::remove_file(&extra).with_context(|| format!("removing stale {}", extra.display()))?;
        }
    }
    for (path, text) in &formatted {
        let full = sdk.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::fs::read_to_string(&full).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&full, text).with_context(|| format!("writing {}", full.display()))?;
        }
    }
    let lines: usize = formatted.values().map(|t| t.lines().count()).sum();
    println!(
        "codegen: {} operations, {} structures, {} files, {lines} lines",
        model.operations.len(),
        plan.structs.len(),
        formatted.len()
    );
    Ok(())
}

fn existing_generated(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn rustfmt(source: &str, config: &Path) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet", "--config-path"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (is the rustfmt component installed?)")?;
    let mut stdin = child.stdin.take().context("rustfmt stdin")?;
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("rustfmt writer panicked"))??;
    if !output.status.success() {
        bail!("rustfmt failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// All generated files, by path relative to the SDK crate, unformatted.
fn generate(model: &Model, plan: &Plan) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let groups = plan.groups();
    for group in &groups {
        let mut src = String::from(HEADER);
        let doc = GROUP_DOCS
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, d)| *d)
            .unwrap_or("Generated types.");
        let _ = writeln!(src, "//! {doc}\n\n#[allow(unused_imports)]\nuse super::*;\n");
        for s in plan.structs.values().filter(|s| s.group == *group) {
            render::render_struct(model, plan, s, &mut src)?;
        }
        files.insert(format!("src/generated/types/{group}.rs"), src);
    }
    let mut types_mod = String::from(HEADER);
    types_mod.push_str(
        "//! One Rust type per structure of the API model. Inputs (`<Op>Request`) have fluent setters and implement\n\
         //! [`Operation`](crate::operation::Operation); outputs implement [`FromXml`](crate::xml::FromXml).\n\n\
         pub use crate::xml::Timestamp;\n\n",
    );
    for group in &groups {
        let _ = writeln!(types_mod, "mod {group};\npub use {group}::*;");
    }
    files.insert("src/generated/types/mod.rs".into(), types_mod);
    files.insert(
        "src/generated/mod.rs".into(),
        format!(
            "{HEADER}//! Code generated from the API model (computing API version {}) by `cargo xtask codegen`.\n\n\
             mod client_ops;\npub mod types;\n",
            model.api_version
        ),
    );
    files.insert("src/generated/client_ops.rs".into(), client_ops(model, plan));
    files.insert("tests/vectors/operations.rs".into(), conformance_table(model, plan));
    Ok(files)
}

fn client_ops(model: &Model, plan: &Plan) -> String {
    let mut src = String::from(HEADER);
    src.push_str("//! One method per API operation.\n\nimpl crate::Client {\n");
    for op in &model.operations {
        let method = naming::field_ident(&naming::snake_case(&op.name));
        let _ = writeln!(
            src,
            "/// Calls `{name}`: validates and sends `input`, then parses the reply.\n\
             pub async fn {method}(&self, input: crate::types::{input}) -> Result<crate::types::{output}, crate::Error> {{\n\
             self.send(&input).await\n}}\n",
            name = op.name,
            input = plan.rust_name(&op.input),
            output = plan.rust_name(&op.output),
        );
    }
    src.push_str("}\n");
    src
}

fn conformance_table(model: &Model, plan: &Plan) -> String {
    let mut src = String::from(HEADER);
    src.push_str(
        "//! The operation table of the conformance test: every operation's input type, by action name.\n\n\
         use nifcloud_sdk::types::*;\n\n\
         /// Number of operations in the model.\n\
         pub const OPERATION_COUNT: usize = ",
    );
    let _ = writeln!(src, "{};\n", model.operations.len());
    src.push_str(
        "/// Runs `f` with the input type of `action` (`None` for an unknown action).\n\
         pub fn dispatch<V: super::Visitor>(action: &str, v: V) -> Option<V::Out> {\nSome(match action {\n",
    );
    for op in &model.operations {
        let _ = writeln!(src, "\"{}\" => v.visit::<{}>(),", op.name, plan.rust_name(&op.input));
    }
    src.push_str("_ => return None,\n})\n}\n");
    src
}
