//! Generates the groups.v1 code with the vendored protoc, so no system protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let proto = proto_root.join("groups/v1/group_members.proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        // Undecodable requests must be INVALID_ARGUMENT, not prost's INTERNAL (see src/codec.rs).
        .codec_path("crate::codec::StrictProstCodec")
        .file_descriptor_set_path(out_dir.join("groups_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &[proto],
            &[proto_root, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
