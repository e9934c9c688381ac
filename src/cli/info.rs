//! `ceiling info`: every adapter wgpu sees, with what matters for these kernels.

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let adapters = ceiling_host::list_adapters();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        // The same error, with the fix, that every GPU command gives.
        return Err(ceiling_host::HostError::NoAdapter {
            filter: String::new(),
        }
        .into());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {}", a.name);
        println!("    backend            {} ({})", a.backend, a.device_type);
        println!("    driver             {} {}", a.driver, a.driver_info);
        println!("    features           {}", a.features.join(", "));
        println!(
            "    storage binding    {} MiB (buffer {} MiB)",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20
        );
        println!(
            "    workgroup memory   {} KiB, {} invocations, {} groups per dimension",
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension
        );
        println!(
            "    subgroup size      {}..{}",
            a.subgroup_min_size, a.subgroup_max_size
        );
    }
    Ok(())
}
