//! Generates the gRPC code for proto/gsl/v1 with a vendored `protoc`, so a
//! fresh machine needs nothing installed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "common",
        "workorders",
        "results",
        "bus",
        "backoffice",
        "push",
    ]
    .map(|f| root.join(format!("gsl/v1/{f}.proto")));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("gsl_descriptor.bin"))
        .compile_with_config(config, &files, &[root])?;
    Ok(())
}
