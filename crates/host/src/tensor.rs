//! Tensors on the GPU: a storage buffer of f32 or f16 elements, and how a [`Gpu`] makes them
//! (uploads, NaN-filled outputs, placeholders for absent inputs) and reads them back.

use std::sync::Arc;

use ceiling_shaders::Precision;
use half::f16;

use crate::error::{HostError, Result};
use crate::gpu::Gpu;

/// A flat array of `len` elements stored at `precision` in one GPU buffer.
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub len: usize,
    pub precision: Precision,
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Bytes of `len` elements, padded to the 4-byte granularity of bindings and copies; None
/// when that overflows 64 bits.
fn padded_bytes(len: usize, precision: Precision) -> Option<u64> {
    (len as u64)
        .checked_mul(precision.size() as u64)?
        .max(4)
        .checked_next_multiple_of(4)
}

/// The same for data already in memory (its size cannot overflow).
fn held_bytes(len: usize, precision: Precision) -> u64 {
    padded_bytes(len, precision).expect("the size of data in memory fits 64 bits")
}

fn encode(data: &[f32], precision: Precision) -> Vec<u8> {
    let mut bytes = match precision {
        Precision::F32 => bytemuck::cast_slice(data).to_vec(),
        Precision::F16 => data
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
    };
    bytes.resize(held_bytes(data.len(), precision) as usize, 0);
    bytes
}

impl Gpu {
    fn check_buffer_size(&self, what: &str, bytes: Option<u64>) -> Result<u64> {
        match bytes {
            Some(b) if b <= self.limits.max_buffer_size => Ok(b),
            _ => Err(HostError::Limit {
                what: format!(
                    "{what} ({})",
                    bytes.map_or("more than 2^64 bytes".into(), |b| format!("{b} bytes"))
                ),
                need: bytes.unwrap_or(u64::MAX),
                max: self.limits.max_buffer_size,
                fix: "use smaller shapes or fewer samples per batch",
            }),
        }
    }

    /// A storage buffer of `bytes`, created inside an error scope: when the device cannot
    /// allocate it, a Result names the tensor and its size (wgpu's `create_buffer_init`
    /// panics instead). The contents are written with `write_buffer`.
    fn storage_buffer(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let filters = [
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Validation,
        ];
        let (buffer, error) = self.scoped(&filters, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size: bytes,
                usage: USAGE,
                mapped_at_creation: false,
            })
        });
        if let Some(e) = error {
            return Err(HostError::Gpu(format!(
                "{what} needs {} of GPU memory, which '{}' could not allocate ({e}): use \
                 smaller shapes or fewer samples per batch, or an adapter with more memory",
                ceiling_core::memory::human_bytes(bytes),
                self.summary.name
            )));
        }
        Ok(buffer)
    }

    /// Uploads `data`, converted to `precision`. NaN and infinity are refused, and so are
    /// values that the conversion would turn into infinity (beyond +-65504 at f16).
    pub fn upload(&self, what: &str, data: &[f32], precision: Precision) -> Result<Tensor> {
        crate::error::check_finite(what, data)?;
        if precision == Precision::F16 {
            if let Some(index) = data.iter().position(|&v| f16::from_f32(v).is_infinite()) {
                return Err(HostError::F16Range {
                    what: what.to_string(),
                    value: data[index],
                    index,
                });
            }
        }
        self.upload_unchecked(what, data, precision)
    }

    /// Uploads without the finiteness check: for NaN-poisoned outputs in tests.
    pub fn upload_unchecked(
        &self,
        what: &str,
        data: &[f32],
        precision: Precision,
    ) -> Result<Tensor> {
        self.require_precision(precision)?;
        let size = self.check_buffer_size(what, padded_bytes(data.len(), precision))?;
        let buffer = self.storage_buffer(what, size)?;
        // Encoded and written in slices, so a large upload needs no second full-size copy.
        let step = 1 << 20;
        for (i, chunk) in data.chunks(step).enumerate() {
            let mut bytes = encode(chunk, precision);
            if (i + 1) * step < data.len() {
                bytes.truncate(chunk.len() * precision.size());
            }
            let offset = (i * step * precision.size()) as u64;
            self.queue.write_buffer(&buffer, offset, &bytes);
        }
        if data.is_empty() {
            self.queue
                .write_buffer(&buffer, 0, &encode(data, precision));
        }
        Ok(Tensor {
            buffer,
            len: data.len(),
            precision,
        })
    }

    /// An output tensor of `len` elements filled with NaN, so that any element a kernel
    /// fails to write shows up in the comparison.
    pub fn nan_tensor(&self, what: &str, len: usize, precision: Precision) -> Result<Tensor> {
        self.require_precision(precision)?;
        let bytes = self.check_buffer_size(what, padded_bytes(len, precision))?;
        let buffer = self.storage_buffer(what, bytes)?;
        // Written in slices of at most 2^16 elements, so a large tensor never needs a large
        // host copy, and a small one encodes no more NaNs than it holds.
        let nan = encode(&vec![f32::NAN; len.clamp(1, 1 << 16)], precision);
        let mut offset = 0;
        while offset < bytes {
            let n = (bytes - offset).min(nan.len() as u64);
            self.queue.write_buffer(&buffer, offset, &nan[..n as usize]);
            offset += n;
        }
        Ok(Tensor {
            buffer,
            len,
            precision,
        })
    }

    /// Reads a tensor back as f32.
    #[maybe_async::maybe_async]
    pub async fn download(&self, t: &Tensor) -> Result<Vec<f32>> {
        let bytes = self
            .read_bytes(&t.buffer, 0, held_bytes(t.len, t.precision))
            .await?;
        Ok(decode(&bytes, t.len, t.precision))
    }

    /// A small buffer to bind where a kernel's optional input is absent (its flags tell the
    /// kernel not to read it). Made once per precision: launchers bind one on most calls.
    pub fn unused_input(&self, precision: Precision) -> Result<Arc<Tensor>> {
        self.placeholder(precision, false)
    }

    /// The same for an absent optional output, bound read-write: a buffer of its own, as
    /// one buffer bound both read-only and read-write in a dispatch is a usage conflict.
    pub fn unused_output(&self) -> Result<Arc<Tensor>> {
        self.placeholder(Precision::F32, true)
    }

    fn placeholder(&self, precision: Precision, output: bool) -> Result<Arc<Tensor>> {
        const LEN: usize = 4;
        let mut cache = self.placeholders.lock().unwrap();
        let buffer = match cache.get(&(precision, output)) {
            Some(b) => b.clone(),
            None => {
                let t = self.upload("unused", &[0.0; LEN], precision)?;
                cache.insert((precision, output), t.buffer.clone());
                t.buffer
            }
        };
        Ok(Arc::new(Tensor {
            buffer,
            len: LEN,
            precision,
        }))
    }
}

fn decode(bytes: &[u8], len: usize, precision: Precision) -> Vec<f32> {
    match precision {
        Precision::F32 => bytemuck::cast_slice::<u8, f32>(&bytes[..len * 4]).to_vec(),
        Precision::F16 => bytes[..len * 2]
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

impl Tensor {
    /// The whole buffer as a binding.
    pub fn binding(&self) -> wgpu::BufferBinding<'_> {
        self.buffer.as_entire_buffer_binding()
    }

    /// Elements `start..start + count` as a binding; `start * element size` must be aligned
    /// to the adapter's storage offset alignment (see [`row_chunks`]).
    pub fn slice(&self, start: usize, count: usize) -> wgpu::BufferBinding<'_> {
        let es = self.precision.size() as u64;
        let offset = start as u64 * es;
        let end = (offset + count as u64 * es)
            .next_multiple_of(4)
            .min(self.buffer.size());
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset,
            size: std::num::NonZeroU64::new(end - offset),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }
}

/// Splits `rows` rows into chunks for tensors with `row_elems[i]` elements per row, so that
/// each tensor's binding of a chunk fits in `max_binding` bytes and starts at an offset
/// aligned to `align` bytes. Work larger than one storage binding runs chunk by chunk
/// instead of being refused.
pub fn row_chunks(
    rows: usize,
    row_elems: &[usize],
    elem_bytes: usize,
    max_binding: u64,
    align: u64,
) -> Result<Vec<std::ops::Range<usize>>> {
    let widest = row_elems.iter().copied().max().unwrap_or(1).max(1);
    let row_bytes = (widest * elem_bytes) as u64;
    // Smallest row count that keeps every tensor's chunk offsets aligned.
    let step = row_elems.iter().fold(1u64, |step, &e| {
        let per = align / gcd((e * elem_bytes) as u64, align);
        step / gcd(step, per) * per
    }) as usize;
    let fit = (max_binding.saturating_sub(4) / row_bytes) as usize;
    let per_chunk = fit / step * step;
    if per_chunk == 0 {
        return Err(HostError::Limit {
            what: format!("one row of {widest} elements"),
            need: row_bytes * step as u64,
            max: max_binding,
            fix: "use a smaller inner dimension",
        });
    }
    Ok((0..rows)
        .step_by(per_chunk)
        .map(|r| r..(r + per_chunk).min(rows))
        .collect())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_rows_and_fit() {
        let chunks = row_chunks(1000, &[7, 3], 4, 4096, 256).unwrap();
        assert_eq!(chunks.first().unwrap().start, 0);
        assert_eq!(chunks.last().unwrap().end, 1000);
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for c in &chunks {
            assert_eq!((c.start * 28) % 256, 0);
            assert_eq!((c.start * 12) % 256, 0);
            assert!((c.len() * 28) as u64 <= 4096);
        }
        assert!(row_chunks(10, &[5000], 4, 4096, 256).is_err());
    }
}
