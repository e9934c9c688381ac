//! The AFL++ harness: `ceiling-fuzz-afl TARGET` under `afl-fuzz` (persistent mode), or
//! `ceiling-fuzz-afl --seeds TARGET DIR` to write the target's seeds. Built and run by
//! `cargo xtask fuzz`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, target, dir] if flag == "--seeds" => {
            std::fs::create_dir_all(dir).expect("the seed folder");
            for (i, seed) in ceiling_fuzz::seeds(target).iter().enumerate() {
                let path = std::path::Path::new(dir).join(format!("seed-{i:03}"));
                std::fs::write(path, seed).expect("a seed file");
            }
        }
        [target] if ceiling_fuzz::TARGETS.contains(&target.as_str()) => {
            let target = target.clone();
            afl::fuzz!(|data: &[u8]| {
                ceiling_fuzz::run(&target, data);
            });
        }
        _ => {
            eprintln!(
                "usage: ceiling-fuzz-afl TARGET | --seeds TARGET DIR; targets: {}",
                ceiling_fuzz::TARGETS.join(", ")
            );
            std::process::exit(2);
        }
    }
}
