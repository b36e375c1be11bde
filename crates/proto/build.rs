//! Generates the groups.v1 code with the vendored protoc, so no system protoc is needed.

use std::path::PathBuf;

/// The contract's files, under `proto/`.
const PROTOS: [&str; 3] = [
    "groups/v1/group_members.proto",
    "groups/v1/directory.proto",
    "groups/v1/audit.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| proto_root.join(p)).collect();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("groups_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &protos,
            &[proto_root, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
