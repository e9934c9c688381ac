//! Adapter and device: choosing an adapter, asking for what it really offers, the pipeline
//! cache, and a queue of dispatches that is submitted when results are read back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ceiling_core::adapter::{AdapterSummary, DeviceType};
use ceiling_shaders::{Precision, Variant};
use wgpu::util::DeviceExt;

use crate::error::{HostError, Result};

/// How to choose an adapter. Empty fields fall back to WGPU_ADAPTER_NAME and WGPU_BACKEND.
#[derive(Clone, Debug, Default)]
pub struct AdapterRequest {
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
    /// Leave out shader-f16 even where the adapter has it (to see what f16-less adapters do).
    pub without_f16: bool,
    /// How `Auto` kernels choose their plans (see [`crate::autotune`]).
    pub autotune: crate::Autotune,
}

/// The description of an adapter that result files carry.
fn adapter_summary(
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: &wgpu::Limits,
) -> AdapterSummary {
    let mut names = Vec::new();
    for (flag, name) in [
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::SUBGROUP, "subgroup"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
            "timestamp-query-inside-encoders",
        ),
        (wgpu::Features::SHADER_F64, "shader-f64"),
    ] {
        if features.contains(flag) {
            names.push(name.to_string());
        }
    }
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: device_type(info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        vendor: info.vendor,
        device: info.device,
        features: names,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
    }
}

/// wgpu's device type as result files name it.
fn device_type(t: wgpu::DeviceType) -> DeviceType {
    match t {
        wgpu::DeviceType::Other => DeviceType::Other,
        wgpu::DeviceType::IntegratedGpu => DeviceType::IntegratedGpu,
        wgpu::DeviceType::DiscreteGpu => DeviceType::DiscreteGpu,
        wgpu::DeviceType::VirtualGpu => DeviceType::VirtualGpu,
        wgpu::DeviceType::Cpu => DeviceType::Cpu,
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// The value of a wgpu future: natively wgpu resolves them at once (or on a poll), so the
/// blocking build waits for it here; in a browser the JavaScript promise behind it resolves
/// only after the page's task yields, so it is awaited.
#[maybe_async::sync_impl]
pub(crate) fn resolve<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

#[maybe_async::async_impl]
pub(crate) async fn resolve<F: std::future::Future>(future: F) -> F::Output {
    future.await
}

/// Every adapter `instance` finds (in a browser: the one the browser offers).
#[maybe_async::maybe_async]
async fn adapters(instance: wgpu::Instance) -> Vec<wgpu::Adapter> {
    resolve(instance.enumerate_adapters(wgpu::Backends::all())).await
}

/// The backend names WGPU_BACKEND takes (comma-separated), as wgpu reads them.
const BACKEND_NAMES: [&str; 11] = [
    "vulkan", "vk", "dx12", "d3d12", "metal", "mtl", "opengl", "gles", "gl", "webgpu", "noop",
];

/// Refuses a WGPU_BACKEND that names no backend: wgpu would skip the unknown names and find
/// no adapter, which reads as a missing driver.
pub fn check_backend_env() -> Result<()> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else {
        return Ok(());
    };
    let lower = value.to_lowercase();
    let names: Vec<&str> = lower
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    let valid = "use vulkan, metal, dx12, gl (comma-separated; wgpu also takes vk, mtl, \
                 d3d12, gles, opengl, webgpu and noop), or unset it to try every backend";
    if let Some(bad) = names.iter().find(|b| !BACKEND_NAMES.contains(b)) {
        return Err(HostError::Config(format!(
            "WGPU_BACKEND={value}: '{bad}' is not a backend; {valid}"
        )));
    }
    if names.is_empty() {
        return Err(HostError::Config(format!(
            "WGPU_BACKEND='{value}' names no backend; {valid}"
        )));
    }
    Ok(())
}

/// Every adapter wgpu sees (honouring WGPU_BACKEND), described.
#[maybe_async::maybe_async]
pub async fn list_adapters() -> Vec<AdapterSummary> {
    adapters(instance())
        .await
        .iter()
        .map(|a| adapter_summary(&a.get_info(), a.features(), &a.limits()))
        .collect()
}

/// What to install (or where to go) for adapters on `backend`.
fn backend_fix(backend: wgpu::Backend) -> String {
    let built = wgpu::Instance::enabled_backend_features();
    match backend {
        wgpu::Backend::Vulkan if built.contains(wgpu::Backends::VULKAN) => {
            "Vulkan needs a driver and the loader; without a GPU, Mesa's lavapipe: \
             `sudo apt-get install -y mesa-vulkan-drivers libvulkan1` (Debian/Ubuntu)"
                .into()
        }
        wgpu::Backend::Gl if built.contains(wgpu::Backends::GL) => {
            "GL runs through EGL, no display needed; without a GPU, Mesa's llvmpipe: \
             `sudo apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri` (Debian/Ubuntu)"
                .into()
        }
        wgpu::Backend::Metal => "Metal exists only on macOS and iOS".into(),
        wgpu::Backend::Dx12 => "DX12 exists only on Windows".into(),
        wgpu::Backend::BrowserWebGpu => "the webgpu backend exists only in a browser".into(),
        other => format!("{other:?} is not built into this binary"),
    }
}

/// Why no adapter matched, told apart: no driver on any backend; none on the backends
/// WGPU_BACKEND names (with what the other backends have); or none whose name contains
/// `filter`. Every GPU command and `ceiling info` give this error.
#[maybe_async::maybe_async]
pub async fn no_adapter(filter: Option<&str>) -> HostError {
    if cfg!(target_arch = "wasm32") {
        return HostError::NoAdapter(
            "the browser offers no WebGPU adapter: open the page in a browser with WebGPU \
             enabled (Chrome or Edge 113+, Safari 26+, Firefox 141+ on Windows), or start \
             Chromium with --enable-unsafe-webgpu"
                .into(),
        );
    }
    let env = std::env::var("WGPU_BACKEND").ok();
    let describe = |a: &wgpu::Adapter| {
        let i = a.get_info();
        format!("{} ({:?})", i.name, i.backend)
    };
    // What the backends WGPU_BACKEND names offer, and what every backend offers.
    let chosen = adapters(instance()).await;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::all();
    let everywhere = adapters(wgpu::Instance::new(desc)).await;
    let info = "`ceiling info` lists the adapters wgpu sees";
    if let (Some(f), false) = (filter, chosen.is_empty()) {
        let seen: Vec<String> = chosen.iter().map(describe).collect();
        return HostError::NoAdapter(format!(
            "no GPU adapter whose name contains '{f}'; wgpu sees {}. {info}",
            seen.join(", ")
        ));
    }
    if let Some(value) = env {
        let wanted = wgpu::Backends::from_comma_list(&value);
        let fixes: Vec<String> = [
            (wgpu::Backends::VULKAN, wgpu::Backend::Vulkan),
            (wgpu::Backends::GL, wgpu::Backend::Gl),
            (wgpu::Backends::METAL, wgpu::Backend::Metal),
            (wgpu::Backends::DX12, wgpu::Backend::Dx12),
            (wgpu::Backends::BROWSER_WEBGPU, wgpu::Backend::BrowserWebGpu),
            (wgpu::Backends::NOOP, wgpu::Backend::Noop),
        ]
        .into_iter()
        .filter(|(set, _)| wanted.contains(*set))
        .map(|(_, b)| backend_fix(b))
        .collect();
        let elsewhere = if everywhere.is_empty() {
            " and none on any other backend either: no GPU driver is installed".to_string()
        } else {
            let seen: Vec<String> = everywhere.iter().map(describe).collect();
            format!(
                "; other backends have {}: unset WGPU_BACKEND (or name their backend) to use them",
                seen.join(", ")
            )
        };
        return HostError::NoAdapter(format!(
            "WGPU_BACKEND={value}: no GPU adapter on {}{elsewhere}. {}. {info}",
            if fixes.len() == 1 {
                "that backend"
            } else {
                "those backends"
            },
            fixes.join("; ")
        ));
    }
    HostError::NoAdapter(format!(
        "no GPU driver installed: wgpu finds no adapter on any backend. Install a Vulkan \
         driver; without a GPU, Mesa's lavapipe runs everywhere: `sudo apt-get install -y \
         mesa-vulkan-drivers libvulkan1` (Debian/Ubuntu), then run with WGPU_BACKEND=vulkan \
         (or Mesa's llvmpipe through GL: `sudo apt-get install -y libegl1 libegl-mesa0 \
         libgl1-mesa-dri`, WGPU_BACKEND=gl). {info}"
    ))
}

/// Preference among device types: a real GPU first, the CPU (lavapipe) last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

type PipelineKey = (Variant, &'static str, Vec<(&'static str, u64)>);

/// A kernel's pipeline layout is keyed by the address of its (static) binding table: the
/// attention kernels of three WGSL files share one.
type LayoutKey = usize;

/// A device on one adapter, with the features and limits it offers.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub summary: AdapterSummary,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    layouts: Mutex<HashMap<LayoutKey, Arc<wgpu::PipelineLayout>>>,
    /// The buffers of [`Gpu::unused_input`] and [`Gpu::unused_output`] (see crate::tensor),
    /// by precision and whether it is an output.
    pub(crate) placeholders: Mutex<HashMap<(Precision, bool), wgpu::Buffer>>,
    pending: Mutex<Pending>,
    errors: Arc<Mutex<Vec<String>>>,
    /// Kernel plan choices: off unless [`Gpu::set_autotune`] says otherwise.
    pub tuner: crate::autotune::Tuner,
}

#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
}

/// Dispatches recorded before a submit; bounds the memory of queued uniforms.
const MAX_PENDING_DISPATCHES: usize = 256;

impl Gpu {
    /// Opens the best adapter that matches the request (a discrete GPU first).
    #[maybe_async::maybe_async]
    pub async fn new(request: &AdapterRequest) -> Result<Gpu> {
        check_backend_env()?;
        let filter = request
            .name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .map(|s| s.to_lowercase());
        let best = adapters(instance())
            .await
            .into_iter()
            .filter(|a| {
                filter
                    .as_ref()
                    .is_none_or(|f| a.get_info().name.to_lowercase().contains(f))
            })
            .min_by_key(|a| rank(a.get_info().device_type));
        match best {
            Some(adapter) => Self::open(adapter, request).await,
            None => Err(no_adapter(filter.as_deref()).await),
        }
    }

    #[maybe_async::maybe_async]
    async fn open(adapter: wgpu::Adapter, request: &AdapterRequest) -> Result<Gpu> {
        let info = adapter.get_info();
        let wanted = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        let mut features = adapter.features() & wanted;
        if request.without_f16 {
            features.remove(wgpu::Features::SHADER_F16);
        }
        // Ask for every limit the adapter really has: wgpu's defaults are far lower
        // (16 KiB of workgroup memory, 128 MiB bindings) than most GPUs offer.
        let limits = adapter.limits();
        let (device, queue) = resolve(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ceiling"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .await
        .map_err(|e| HostError::Device {
            adapter: info.name.clone(),
            message: e.to_string(),
        })?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        // Validation errors must become Results, never the default handler's panic.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let summary = adapter_summary(&info, features, &device.limits());
        let mut gpu = Gpu {
            limits: device.limits(),
            device,
            queue,
            summary,
            features,
            pipelines: Mutex::default(),
            layouts: Mutex::default(),
            placeholders: Mutex::default(),
            pending: Mutex::default(),
            errors,
            tuner: Default::default(),
        };
        gpu.set_autotune(request.autotune);
        Ok(gpu)
    }

    pub fn name(&self) -> &str {
        &self.summary.name
    }

    /// Sets how `Auto` kernels pick their plans (see [`crate::autotune`]); the cache is
    /// keyed by this adapter's name, driver and backend.
    pub fn set_autotune(&mut self, mode: crate::Autotune) {
        let s = &self.summary;
        let key = format!(
            "{} | {} {} | {}",
            s.name, s.driver, s.driver_info, s.backend
        );
        self.tuner = crate::autotune::Tuner::new(mode, &key);
    }

    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether the adapter runs on the CPU (lavapipe, llvmpipe, WARP, SwiftShader).
    pub fn is_cpu(&self) -> bool {
        self.summary.is_cpu()
    }

    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Fails with a clear error when the adapter cannot store tensors at `precision`.
    pub fn require_precision(&self, precision: Precision) -> Result<()> {
        if precision == Precision::F16 && !self.has_f16() {
            return Err(HostError::MissingFeature {
                adapter: self.summary.name.clone(),
                feature: "shader-f16",
                fix: "use f32 storage, or an adapter that lists shader-f16 in `ceiling info`",
            });
        }
        Ok(())
    }

    /// The largest storage binding, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }

    /// The explicit pipeline layout of a kernel, made once from its binding table
    /// ([`crate::kernels::bindings`]): one bind group of the table's bindings.
    fn pipeline_layout(
        &self,
        kernel: &'static crate::kernels::bindings::Kernel,
    ) -> Arc<wgpu::PipelineLayout> {
        let key = kernel as *const crate::kernels::bindings::Kernel as LayoutKey;
        let mut layouts = self.layouts.lock().unwrap();
        layouts
            .entry(key)
            .or_insert_with(|| {
                let group =
                    self.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(kernel.entry),
                            entries: &kernel.layout_entries(),
                        });
                Arc::new(
                    self.device
                        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(kernel.entry),
                            bind_group_layouts: &[Some(&group)],
                            immediate_size: 0,
                        }),
                )
            })
            .clone()
    }

    /// A cached compute pipeline for one entry point of a variant with override constants,
    /// on the explicit layout of the entry point's binding table.
    pub fn pipeline(
        &self,
        variant: Variant,
        entry: &'static str,
        constants: &[(&'static str, u32)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.require_precision(variant.precision)?;
        if variant.family.needs_subgroups() && !self.has_subgroups() {
            return Err(HostError::MissingFeature {
                adapter: self.summary.name.clone(),
                feature: "subgroup",
                fix: "use the portable kernel variant",
            });
        }
        let key: PipelineKey = (
            variant,
            entry,
            constants.iter().map(|&(n, v)| (n, v as u64)).collect(),
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let kernel = crate::kernels::bindings::find(variant.family, entry).ok_or_else(|| {
            HostError::Gpu(format!(
                "no binding table declares {} / {entry} (see kernels::bindings)",
                variant.label()
            ))
        })?;
        let source = variant.source_for(ceiling_shaders::WgslTarget::of_build());
        let layout = self.pipeline_layout(kernel);
        // Bounds checks stay on. Loop bounding (a guard against infinite loops that naga
        // adds to every loop) is off: every loop in shaders/ counts to a bound taken from
        // its parameters, and the guard cost 30% of matmul speed on lavapipe (BENCH_NOTES.md).
        let checks = wgpu::ShaderRuntimeChecks {
            force_loop_bounding: false,
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        // SAFETY: bounds checks are kept, and no loop in our WGSL can run forever.
        let constants: Vec<(&str, f64)> = constants.iter().map(|&(n, v)| (n, v as f64)).collect();
        let (pipeline, error) = self.scoped(&[wgpu::ErrorFilter::Validation], || {
            let module = unsafe {
                self.device.create_shader_module_trusted(
                    wgpu::ShaderModuleDescriptor {
                        label: Some(&variant.label()),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    },
                    checks,
                )
            };
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        // Every kernel writes its workgroup memory before reading it.
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
        });
        if let Some(e) = error {
            return Err(HostError::Gpu(format!(
                "pipeline {} / {entry} failed: {e}",
                variant.label()
            )));
        }
        let pipeline = Arc::new(pipeline);
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Records one dispatch; it runs at the next [`Gpu::submit`] (or read-back).
    /// `params` fills a uniform at binding 0; `bindings` are (binding index, buffer range).
    pub fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: &[u8],
        bindings: &[(u32, wgpu::BufferBinding<'_>)],
        groups: [u32; 3],
    ) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if let Some(&g) = groups.iter().find(|&&g| g > max) {
            return Err(HostError::Limit {
                what: "a dispatch".into(),
                need: g as u64,
                max: max as u64,
                fix: "split the work into smaller calls",
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(bindings.iter().map(|(i, b)| wgpu::BindGroupEntry {
            binding: *i,
            resource: wgpu::BindingResource::Buffer(b.clone()),
        }));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pending = self.pending.lock().unwrap();
        let encoder = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        pending.dispatches += 1;
        let full = pending.dispatches >= MAX_PENDING_DISPATCHES;
        drop(pending);
        if full {
            self.submit()?;
        }
        Ok(())
    }

    /// Records a command outside a compute pass (copies, timestamps) in order with dispatches.
    pub fn encode(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut pending = self.pending.lock().unwrap();
        let encoder = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        f(encoder);
    }

    /// Submits what was recorded, without waiting.
    pub fn submit(&self) -> Result<()> {
        // The lock is held through the queue submit: another thread that records and
        // submits after us must not overtake the work we took (it would read results
        // before they are written).
        let mut pending = self.pending.lock().unwrap();
        pending.dispatches = 0;
        if let Some(encoder) = pending.encoder.take() {
            self.queue.submit([encoder.finish()]);
        }
        drop(pending);
        self.take_errors()
    }

    /// Submits what was recorded and waits until the GPU is done.
    #[maybe_async::maybe_async]
    pub async fn sync(&self) -> Result<()> {
        self.submit()?;
        self.wait().await?;
        self.take_errors()
    }

    /// Waits for the submitted work, blocking: for the autotuner, which times candidates in
    /// a loop. A browser cannot block (autotuning is off there, see crate::autotune).
    pub fn sync_blocking(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.sync();
        #[cfg(target_arch = "wasm32")]
        Err(HostError::Gpu(
            "a browser cannot wait for the GPU without yielding".into(),
        ))
    }

    #[maybe_async::sync_impl]
    fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| HostError::Gpu(e.to_string()))
    }

    /// The browser runs the queue by itself; its callback says when the work is done.
    #[maybe_async::async_impl]
    async fn wait(&self) -> Result<()> {
        let (done, finished) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = done.send(());
        });
        finished
            .await
            .map_err(|_| HostError::Gpu("the device was lost while waiting".into()))
    }

    /// Runs `f` inside error scopes of `filters` and returns the first error they caught.
    /// In a browser a scope resolves only after the page yields, so there `f` runs without
    /// scopes: its errors reach the uncaptured-error sink, and the next submit or read-back
    /// returns them.
    pub(crate) fn scoped<T>(
        &self,
        filters: &[wgpu::ErrorFilter],
        f: impl FnOnce() -> T,
    ) -> (T, Option<wgpu::Error>) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let scopes: Vec<_> = filters
                .iter()
                .map(|&filter| self.device.push_error_scope(filter))
                .collect();
            let value = f();
            // Scopes pop innermost first.
            let error = scopes
                .into_iter()
                .rev()
                .filter_map(|s| pollster::block_on(s.pop()))
                .next();
            (value, error)
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = filters;
            (f(), None)
        }
    }

    fn take_errors(&self) -> Result<()> {
        let mut errors = self.errors.lock().unwrap();
        if errors.is_empty() {
            Ok(())
        } else {
            let all = errors.join("\n");
            errors.clear();
            Err(HostError::Gpu(all))
        }
    }

    /// Reads `size` bytes of `buffer` from `offset` back to the host (submits first).
    #[maybe_async::maybe_async]
    pub async fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.encode(|e| e.copy_buffer_to_buffer(buffer, offset, &staging, 0, size));
        self.submit()?;
        self.map_read(&staging)
            .await
            .map_err(|e| HostError::Gpu(format!("mapping a read-back buffer failed: {e}")))?;
        let bytes = staging
            .get_mapped_range(..)
            .map_err(|e| HostError::Gpu(e.to_string()))?
            .to_vec();
        staging.unmap();
        self.take_errors()?;
        Ok(bytes)
    }

    /// Maps `staging` for reading once the queue reaches it.
    #[maybe_async::sync_impl]
    fn map_read(&self, staging: &wgpu::Buffer) -> std::result::Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait().map_err(|e| e.to_string())?;
        rx.recv()
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    #[maybe_async::async_impl]
    async fn map_read(&self, staging: &wgpu::Buffer) -> std::result::Result<(), String> {
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .map_err(|_| "the device was lost while mapping".to_string())?
            .map_err(|e| e.to_string())
    }
}
