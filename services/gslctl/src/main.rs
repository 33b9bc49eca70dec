//! `gslctl`: see the crate docs (`gslctl --help`).

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = gslctl::cli::Cli::parse();
    std::process::exit(gslctl::cli::run(cli).await);
}
