#[derive(clap::Subcommand)]
pub enum Command {}

pub fn run(cmd: Command, _adapter: &ceiling_host::AdapterRequest) -> anyhow::Result<()> {
    match cmd {}
}
