//! The binding tables and params structs of `ceiling_host::kernels::bindings` against naga's
//! reflection of every shader variant (no GPU needed): for every entry point, the globals it
//! uses are exactly its table's (index, WGSL name, uniform / read-only / read-write storage),
//! and its params uniform has the Rust struct's name, size, member names, offsets and types.

use std::collections::BTreeSet;

use ceiling_host::kernels::bindings::{find, Access, Kernel, StructLayout, KERNELS};
use ceiling_shaders::{Family, Precision, Variant};

/// Every variant the launchers make: each family at each precision, and the rows attention
/// kernel at a tile other than its default.
fn variants() -> Vec<Variant> {
    let mut out: Vec<Variant> = Variant::all().collect();
    out.extend(Precision::ALL.map(|p| Variant::attention_rows(p, 3, 7)));
    out
}

/// A binding as (index, name, access), from the Rust table or from naga.
type Entry = (u32, String, Access);

fn table(kernel: &Kernel) -> Vec<Entry> {
    let mut t: Vec<Entry> = kernel
        .bindings
        .iter()
        .map(|b| (b.index, b.name.to_string(), b.access))
        .collect();
    t.sort();
    t
}

fn scalar_name(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    use naga::{ScalarKind, TypeInner};
    match &module.types[ty].inner {
        TypeInner::Scalar(s) => match (s.kind, s.width) {
            (ScalarKind::Uint, 4) => "u32".into(),
            (ScalarKind::Sint, 4) => "i32".into(),
            (ScalarKind::Float, 4) => "f32".into(),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// The params struct naga lays out for a uniform of type `ty`, in the Rust layout's terms.
fn wgsl_struct(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    let t = &module.types[ty];
    let size = t.inner.size(module.to_ctx());
    let naga::TypeInner::Struct { members, .. } = &t.inner else {
        return format!("{:?} (not a struct)", t.inner);
    };
    let fields: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "{}@{}: {}",
                m.name.as_deref().unwrap_or("?"),
                m.offset,
                scalar_name(module, m.ty)
            )
        })
        .collect();
    format!(
        "{} ({size} bytes) {{ {} }}",
        t.name.as_deref().unwrap_or("?"),
        fields.join(", ")
    )
}

fn rust_struct(layout: &StructLayout) -> String {
    let fields: Vec<String> = layout
        .fields
        .iter()
        .map(|f| format!("{}@{}: {}", f.name, f.offset, f.ty))
        .collect();
    format!(
        "{} ({} bytes) {{ {} }}",
        layout.name,
        layout.size,
        fields.join(", ")
    )
}

/// What is wrong with the tables of one variant's entry points (empty when they match).
fn check_variant(v: Variant, used_kernels: &mut BTreeSet<(Family, &'static str)>) -> Vec<String> {
    let mut errors = Vec::new();
    let (module, info) = v.reflect().unwrap_or_else(|e| panic!("{e}"));
    for (i, ep) in module.entry_points.iter().enumerate() {
        let at = format!("{} / {}", v.label(), ep.name);
        let Some(kernel) = find(v.family, &ep.name) else {
            errors.push(format!("{at}: no binding table declares this entry point"));
            continue;
        };
        used_kernels.insert((v.family, kernel.entry));
        let usage = info.get_entry_point(i);
        let mut wgsl: Vec<Entry> = Vec::new();
        let mut uniform = None;
        for (h, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            if usage[h].is_empty() {
                continue;
            }
            let name = var.name.clone().unwrap_or_default();
            if binding.group != 0 {
                errors.push(format!("{at}: {name} is in group {}", binding.group));
            }
            let access = match var.space {
                naga::AddressSpace::Uniform => {
                    uniform = Some((binding.binding, var.ty));
                    Access::Uniform
                }
                naga::AddressSpace::Storage { access } => {
                    if access.contains(naga::StorageAccess::STORE) {
                        Access::ReadWrite
                    } else {
                        Access::ReadOnly
                    }
                }
                other => {
                    errors.push(format!("{at}: {name} is in {other:?}"));
                    continue;
                }
            };
            wgsl.push((binding.binding, name, access));
        }
        wgsl.sort();
        let rust = table(kernel);
        if wgsl != rust {
            errors.push(format!(
                "{at}: the WGSL binds\n    {wgsl:?}\n  the table of kernels::bindings says\n    {rust:?}"
            ));
        }
        match uniform {
            Some((0, ty)) => {
                let (w, r) = (wgsl_struct(&module, ty), rust_struct(&kernel.params));
                if w != r {
                    errors.push(format!(
                        "{at}: the WGSL params struct is\n    {w}\n  the Rust one\n    {r}"
                    ));
                }
            }
            other => errors.push(format!(
                "{at}: the params uniform should be at binding 0, found {other:?}"
            )),
        }
    }
    errors
}

#[test]
fn binding_tables_and_params_structs_match_naga_reflection() {
    let mut errors = Vec::new();
    let mut used = BTreeSet::new();
    for v in variants() {
        errors.extend(check_variant(v, &mut used));
    }
    // Every table is for an entry point that exists, in every family it names.
    for k in KERNELS {
        for &f in k.families {
            if !used.contains(&(f, k.entry)) {
                errors.push(format!("{f:?} has no entry point {}", k.entry));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Each table is well formed: the params uniform first at binding 0, storage after it at
/// distinct indices, and one table per (family, entry point).
#[test]
fn binding_tables_are_well_formed() {
    let mut seen = BTreeSet::new();
    for k in KERNELS {
        let first = k.bindings.first().expect("a table lists its params");
        assert_eq!(
            (first.index, first.access),
            (0, Access::Uniform),
            "{}: the params uniform comes first, at binding 0",
            k.entry
        );
        for b in &k.bindings[1..] {
            assert_ne!(b.access, Access::Uniform, "{}: {}", k.entry, b.name);
        }
        let indices: BTreeSet<u32> = k.bindings.iter().map(|b| b.index).collect();
        assert_eq!(
            indices.len(),
            k.bindings.len(),
            "{}: repeated index",
            k.entry
        );
        for &f in k.families {
            assert!(
                seen.insert((f, k.entry)),
                "two tables for {f:?} / {}",
                k.entry
            );
        }
    }
}
