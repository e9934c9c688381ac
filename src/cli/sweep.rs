#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _adapter: &ceiling_host::AdapterRequest) -> anyhow::Result<()> {
    anyhow::bail!("`ceiling sweep` is not built yet")
}
