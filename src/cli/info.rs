//! `ceiling info`: every adapter wgpu sees, with what matters for these kernels.

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `adapter`: the global --adapter filter (else WGPU_ADAPTER_NAME), a case-insensitive
/// part of the name, as every GPU command applies it.
pub fn run(args: Args, adapter: Option<&str>) -> anyhow::Result<()> {
    ceiling_host::check_backend_env()?;
    let filter = adapter
        .map(str::to_string)
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .map(|f| f.to_lowercase());
    let mut adapters = ceiling_host::list_adapters();
    if let Some(f) = &filter {
        adapters.retain(|a| a.name.to_lowercase().contains(f));
        if adapters.is_empty() {
            return Err(ceiling_host::gpu::no_adapter(Some(f)).into());
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        // The same error, with the fix, that every GPU command gives.
        return Err(ceiling_host::gpu::no_adapter(None).into());
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
