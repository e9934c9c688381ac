//! The contenders: ceiling's launchers, burn's wgpu backend, and the `gemm` crate on the CPU.
//!
//! Every contender times one run the same way: the wall clock from the launch to the end of
//! a synchronisation (ceiling: `Timer::wall_clock`, recording + submit + `device.poll(wait)`;
//! burn: the tensor ops + `Device::sync`; gemm: the call, which returns when it is done).
//! Before the clock starts, earlier work is synchronised and the previous output dropped.

use std::time::Instant;

use anyhow::{anyhow, Result};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor as BurnTensor, TensorData};
use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape};
use ceiling_host::kernels::{self, AttentionKernel, MatmulKernel};
use ceiling_host::timing::{Clock, CopyBench, Timer};
use ceiling_host::{Gpu, Tensor};
use ceiling_shaders::Precision;

/// One implementation of one case.
pub trait Contender {
    /// Runs once on input set `set` and returns the seconds from launch to completion.
    fn run(&mut self, set: usize) -> Result<f64>;
    /// The output of the last run (empty where there is nothing to compare).
    fn output(&mut self) -> Result<Vec<f32>>;
}

fn upload_all(gpu: &Gpu, sets: &[Vec<Vec<f32>>]) -> Result<Vec<Vec<Tensor>>> {
    sets.iter()
        .map(|set| {
            set.iter()
                .map(|x| Ok(gpu.upload("input", x, Precision::F32)?))
                .collect()
        })
        .collect()
}

/// `kernels::matmul` with its Auto plan (autotuned like burn's), no bias, no epilogue.
pub struct CeilingMatmul<'g> {
    gpu: &'g Gpu,
    shape: MatmulShape,
    inputs: Vec<Vec<Tensor>>,
    out: Tensor,
}

impl<'g> CeilingMatmul<'g> {
    pub fn new(gpu: &'g Gpu, shape: MatmulShape, sets: &[Vec<Vec<f32>>]) -> Result<Self> {
        Ok(Self {
            gpu,
            shape,
            inputs: upload_all(gpu, sets)?,
            out: gpu.nan_tensor("out", shape.out_len(), Precision::F32)?,
        })
    }
}

impl Contender for CeilingMatmul<'_> {
    fn run(&mut self, set: usize) -> Result<f64> {
        let [a, b] = &self.inputs[set][..] else {
            unreachable!("two matmul inputs")
        };
        Ok(Timer::wall_clock(self.gpu).time(Clock::WallClock, || {
            kernels::matmul(
                self.gpu,
                &self.shape,
                a,
                b,
                None,
                None,
                Activation::None,
                &self.out,
                MatmulKernel::Auto,
            )
            .map(|_| ())
        })?)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.gpu.download(&self.out)?)
    }
}

/// `kernels::attention` (fused, `AttentionKernel::Auto`, no per-row stats) or
/// `kernels::attention_unfused`.
pub struct CeilingAttention<'g> {
    gpu: &'g Gpu,
    shape: AttentionShape,
    fused: bool,
    inputs: Vec<Vec<Tensor>>,
    out: Tensor,
}

impl<'g> CeilingAttention<'g> {
    pub fn new(
        gpu: &'g Gpu,
        shape: AttentionShape,
        fused: bool,
        sets: &[Vec<Vec<f32>>],
    ) -> Result<Self> {
        Ok(Self {
            gpu,
            shape,
            fused,
            inputs: upload_all(gpu, sets)?,
            out: gpu.nan_tensor("out", shape.q_len(), Precision::F32)?,
        })
    }
}

impl Contender for CeilingAttention<'_> {
    fn run(&mut self, set: usize) -> Result<f64> {
        let [q, k, v] = &self.inputs[set][..] else {
            unreachable!("three attention inputs")
        };
        let (gpu, shape, out) = (self.gpu, &self.shape, &self.out);
        Ok(Timer::wall_clock(gpu).time(Clock::WallClock, || {
            if self.fused {
                kernels::attention(gpu, shape, q, k, v, None, out, None, AttentionKernel::Auto)
                    .map(|_| ())
            } else {
                kernels::attention_unfused(gpu, shape, q, k, v, None, out)
            }
        })?)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.gpu.download(&self.out)?)
    }
}

/// A buffer-to-buffer copy on ceiling's device: the bandwidth roof of the report.
pub struct CeilingCopy<'g> {
    gpu: &'g Gpu,
    copy: CopyBench,
}

impl<'g> CeilingCopy<'g> {
    pub fn new(gpu: &'g Gpu, bytes: u64) -> Result<Self> {
        Ok(Self {
            gpu,
            copy: CopyBench::new(gpu, bytes)?,
        })
    }
}

impl Contender for CeilingCopy<'_> {
    fn run(&mut self, _set: usize) -> Result<f64> {
        Ok(Timer::wall_clock(self.gpu).time(Clock::WallClock, || self.copy.copy(self.gpu))?)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }
}

fn burn_err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("burn: {e:?}")
}

fn burn_tensor<const D: usize>(device: &Device, x: &[f32], shape: [usize; D]) -> BurnTensor<D> {
    BurnTensor::<D>::from_data(TensorData::new(x.to_vec(), shape), device)
}

fn burn_output<const D: usize>(t: &Option<BurnTensor<D>>) -> Result<Vec<f32>> {
    let t = t.as_ref().ok_or_else(|| anyhow!("no run yet"))?;
    t.to_data().try_to_vec::<f32>().map_err(burn_err)
}

/// Times `op` on burn's device: earlier work synchronised first, then the clock runs over
/// the ops and `Device::sync` (fusion flushes its queue there; autotune has run in warm-up).
fn burn_timed<T>(device: &Device, op: impl FnOnce() -> T) -> Result<(T, f64)> {
    device.sync().map_err(burn_err)?;
    let start = Instant::now();
    let out = op();
    device.sync().map_err(burn_err)?;
    Ok((out, start.elapsed().as_secs_f64()))
}

/// `Tensor::matmul` of two row-major f32 tensors.
pub struct BurnMatmul {
    device: Device,
    inputs: Vec<(BurnTensor<2>, BurnTensor<2>)>,
    last: Option<BurnTensor<2>>,
}

impl BurnMatmul {
    pub fn new(device: &Device, shape: MatmulShape, sets: &[Vec<Vec<f32>>]) -> Self {
        let inputs = sets
            .iter()
            .map(|s| {
                (
                    burn_tensor(device, &s[0], [shape.m, shape.k]),
                    burn_tensor(device, &s[1], [shape.k, shape.n]),
                )
            })
            .collect();
        Self {
            device: device.clone(),
            inputs,
            last: None,
        }
    }
}

impl Contender for BurnMatmul {
    fn run(&mut self, set: usize) -> Result<f64> {
        self.last = None;
        let (a, b) = &self.inputs[set];
        let (out, t) = burn_timed(&self.device, || a.clone().matmul(b.clone()))?;
        self.last = Some(out);
        Ok(t)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        burn_output(&self.last)
    }
}

/// `burn::tensor::module::attention` (fused: flash attention or its fallback, autotuned), or
/// attention written with burn tensors: q k^T * scale, causal mask_fill, softmax, times v.
pub struct BurnAttention {
    device: Device,
    fused: bool,
    causal: bool,
    scale: f32,
    inputs: Vec<[BurnTensor<4>; 3]>,
    /// The causal mask (true above the diagonal: key j > query i is masked), built once
    /// outside the timed region.
    mask: Option<BurnTensor<4, Bool>>,
    last: Option<BurnTensor<4>>,
}

impl BurnAttention {
    pub fn new(
        device: &Device,
        shape: &AttentionShape,
        fused: bool,
        sets: &[Vec<Vec<f32>>],
    ) -> Self {
        let dims = [shape.batch, shape.heads, shape.n_q, shape.head_dim];
        let inputs = sets
            .iter()
            .map(|s| {
                [
                    burn_tensor(device, &s[0], dims),
                    burn_tensor(device, &s[1], dims),
                    burn_tensor(device, &s[2], dims),
                ]
            })
            .collect();
        let n = shape.n_q;
        let mask = (shape.causal && !fused).then(|| {
            // tril_mask is false on and below the diagonal, true above it.
            BurnTensor::<2, Bool>::tril_mask([n, n], 0, device)
                .reshape([1, 1, n, n])
                .expand([shape.batch, shape.heads, n, n])
        });
        Self {
            device: device.clone(),
            fused,
            causal: shape.causal,
            scale: shape.scale as f32,
            inputs,
            mask,
            last: None,
        }
    }
}

impl Contender for BurnAttention {
    fn run(&mut self, set: usize) -> Result<f64> {
        self.last = None;
        let [q, k, v] = &self.inputs[set];
        let (q, k, v) = (q.clone(), k.clone(), v.clone());
        let (out, t) = burn_timed(&self.device, || {
            if self.fused {
                let options = AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: self.causal,
                };
                attention(q, k, v, None, None, options)
            } else {
                let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(self.scale);
                let scores = match &self.mask {
                    Some(mask) => scores.mask_fill(mask.clone(), f32::NEG_INFINITY),
                    None => scores,
                };
                softmax(scores, 3).matmul(v)
            }
        })?;
        self.last = Some(out);
        Ok(t)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        burn_output(&self.last)
    }
}

/// `gemm::gemm` in f32 on the CPU, row-major, every thread of rayon's pool.
pub struct CpuGemm {
    shape: MatmulShape,
    inputs: Vec<Vec<Vec<f32>>>,
    out: Vec<f32>,
}

impl CpuGemm {
    pub fn new(shape: MatmulShape, sets: &[Vec<Vec<f32>>]) -> Self {
        Self {
            shape,
            inputs: sets.to_vec(),
            out: vec![f32::NAN; shape.m * shape.n],
        }
    }
}

impl Contender for CpuGemm {
    fn run(&mut self, set: usize) -> Result<f64> {
        let (m, k, n) = (self.shape.m, self.shape.k, self.shape.n);
        let (a, b) = (&self.inputs[set][0], &self.inputs[set][1]);
        assert!(a.len() == m * k && b.len() == k * n && self.out.len() == m * n);
        let start = Instant::now();
        // SAFETY: the three slices hold m x k, k x n and m x n row-major f32 values (checked
        // above), the strides below stay inside them, and `out` does not alias the inputs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                self.out.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
        Ok(start.elapsed().as_secs_f64())
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.out.clone())
    }
}
