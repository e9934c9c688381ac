//! Matmul (matmul.wgsl, matmul_vec4.wgsl) with its epilogues.

use ceiling_core::kernel::{Activation, MatmulShape};
use ceiling_core::reference;

use super::{with_extra, KernelCase, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels::{self, MatmulKernel, MatmulTiles, Vec4Tiles};
use crate::{Gpu, Tensor};

/// out = act(a b + bias) + residual, in the variants `kernels` lists (all that fit the
/// shape when empty).
#[derive(Clone, Debug)]
pub struct MatmulCase {
    pub shape: MatmulShape,
    pub bias: bool,
    pub residual: bool,
    pub act: Activation,
    /// Variants to check beyond the default ones.
    pub extra: Vec<MatmulKernel>,
    /// The name the benches give the shape ("qkv"...), if any.
    pub role: Option<&'static str>,
}

impl MatmulCase {
    pub fn new(m: usize, k: usize, n: usize) -> MatmulCase {
        MatmulCase {
            shape: MatmulShape::new(m, k, n),
            bias: false,
            residual: false,
            act: Activation::None,
            extra: vec![],
            role: None,
        }
    }

    fn epilogue(mut self, bias: bool, residual: bool, act: Activation) -> MatmulCase {
        (self.bias, self.residual, self.act) = (bias, residual, act);
        self
    }

    fn aligned(&self) -> bool {
        self.shape.k.is_multiple_of(4) && self.shape.n.is_multiple_of(4)
    }
}

pub(super) fn variant_name(k: &MatmulKernel) -> String {
    match k {
        MatmulKernel::Auto => "auto".into(),
        MatmulKernel::Scalar(t) => format!("scalar-{}x{}-k{}", t.wg_x, t.wg_y, t.tile_k),
        MatmulKernel::Vec4(t) => format!("vec4-{}x{}-k{}", t.wg_x, t.wg_y, t.bk),
    }
}

impl KernelCase for MatmulCase {
    fn kernel(&self) -> &'static str {
        "matmul"
    }

    fn label(&self) -> String {
        let s = &self.shape;
        let mut l = String::new();
        if let Some(role) = self.role {
            l += role;
            l += "-";
        }
        if s.batch > 1 {
            l += &format!("b{}-", s.batch);
        }
        l += &format!("{}x{}x{}", s.m, s.k, s.n);
        if s.trans_b {
            l += "-bt";
        }
        if s.b_group > 1 {
            l += &format!("-g{}", s.b_group);
        }
        if self.bias {
            l += "-bias";
        }
        if self.residual {
            l += "-res";
        }
        if self.act != Activation::None {
            l += &format!("-{}", format!("{:?}", self.act).to_lowercase());
        }
        l
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        let s = &self.shape;
        let b_shape = if s.trans_b { [s.n, s.k] } else { [s.k, s.n] };
        let mut t = vec![
            TensorSpec::new("a", &[s.batch, s.m, s.k]),
            TensorSpec::new("b", &[s.batch / s.b_group, b_shape[0], b_shape[1]]),
        ];
        if self.bias {
            t.push(TensorSpec::new("bias", &[s.n]));
        }
        if self.residual {
            t.push(TensorSpec::new("residual", &[s.batch, s.m, s.n]));
        }
        t
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        let s = &self.shape;
        vec![TensorSpec::new("out", &[s.batch, s.m, s.n])]
    }

    fn variants(&self, _gpu: &Gpu) -> Vec<Variant> {
        let mut v = vec![
            MatmulKernel::Auto,
            MatmulKernel::Scalar(MatmulTiles::default()),
        ];
        if self.aligned() {
            v.push(MatmulKernel::Vec4(Vec4Tiles::default()));
        }
        with_extra(v, &self.extra)
            .into_iter()
            .map(Variant::Matmul)
            .collect()
    }

    fn launch(
        &self,
        gpu: &Gpu,
        variant: Variant,
        inputs: &[Tensor],
        _host: &[Vec<f32>],
        outputs: &[Tensor],
    ) -> Result<String> {
        let kernel = match variant {
            Variant::Matmul(k) => k,
            _ => MatmulKernel::Auto,
        };
        let bias = self.bias.then(|| &inputs[2]);
        let residual = self.residual.then(|| &inputs[2 + self.bias as usize]);
        let plan = kernels::matmul(
            gpu,
            &self.shape,
            &inputs[0],
            &inputs[1],
            bias,
            residual,
            self.act,
            &outputs[0],
            kernel,
        )?;
        Ok(plan.to_string())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let bias = self.bias.then(|| &x[2][..]);
        let residual = self.residual.then(|| &x[2 + self.bias as usize][..]);
        vec![reference::matmul(
            &self.shape,
            &x[0],
            &x[1],
            bias,
            residual,
            self.act,
        )]
    }

    fn flops(&self) -> f64 {
        self.shape.flops()
    }
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    let mut cases: Vec<MatmulCase> = [
        (1, 1, 1),
        (7, 3, 5),
        (63, 65, 33),
        (65, 63, 1),
        (1, 1000, 7),
        (130, 257, 66),
        (256, 64, 256),
        // The vec4 kernel checked where its 128 x 64 x 16 block does not divide.
        (1, 4, 4),
        (7, 12, 20),
        (65, 4, 132),
        (130, 260, 68),
    ]
    .into_iter()
    .map(|(m, k, n)| MatmulCase::new(m, k, n))
    .collect();
    for (m, k, n) in [(63, 68, 36), (7, 12, 20)] {
        let mut c = MatmulCase::new(m, k, n);
        c.shape.trans_b = true;
        cases.push(c);
    }
    for act in [
        Activation::None,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
    ] {
        // Unaligned (scalar) and block multiples (vec4 unchecked).
        cases.push(MatmulCase::new(37, 70, 45).epilogue(true, act == Activation::Gelu, act));
        cases.push(MatmulCase::new(128, 32, 128).epilogue(true, act != Activation::None, act));
    }
    // Batched, b shared by groups of 3 batches (grouped-query attention), both layouts.
    for (m, k, n) in [(19, 24, 31), (128, 48, 64)] {
        for trans_b in [false, true] {
            let mut c = MatmulCase::new(m, k, n).epilogue(false, true, Activation::None);
            c.shape.batch = 6;
            c.shape.b_group = 3;
            c.shape.trans_b = trans_b;
            cases.push(c);
        }
    }
    // Other tiles through the plans.
    let mut c = MatmulCase::new(45, 77, 90).epilogue(true, false, Activation::None);
    c.extra = [(8, 8, 8), (16, 8, 32), (8, 16, 4)]
        .map(|(wg_x, wg_y, tile_k)| MatmulKernel::Scalar(MatmulTiles { wg_x, wg_y, tile_k }))
        .to_vec();
    cases.push(c);
    let mut c = MatmulCase::new(70, 96, 136).epilogue(true, false, Activation::Silu);
    c.extra = [(4, 8, 8), (16, 4, 32)]
        .map(|(wg_x, wg_y, bk)| MatmulKernel::Vec4(Vec4Tiles { wg_x, wg_y, bk }))
        .to_vec();
    cases.push(c);
    cases
        .into_iter()
        .map(|c| Box::new(c) as Box<dyn KernelCase>)
        .collect()
}

/// A square and the projections of a 256-wide model with a 1024-wide feed-forward
/// (384 / 1536 wide at full size).
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let (rows, d) = if small { (256, 256) } else { (512, 384) };
    let square = if small { 256 } else { 1024 };
    [
        ("square", square, square, square),
        ("qkv", rows, d, 3 * d),
        ("ffn-up", rows, d, 4 * d),
        ("ffn-down", rows, 4 * d, d),
    ]
    .into_iter()
    .map(|(role, m, k, n)| {
        let mut c = MatmulCase::new(m, k, n);
        c.role = Some(role);
        Box::new(c) as Box<dyn KernelCase>
    })
    .collect()
}
