//! What a sweep measures: the preset (a control experiment of docs/METHOD.md or a model), the
//! input process, the grid of context lengths and the sampling effort.

use crate::model::ModelConfig;
use crate::process::Process;
use ceiling_shaders::Precision;
use serde::{Deserialize, Serialize};

/// The built-in controls of docs/METHOD.md ("The controls").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// One attention layer, no residual, i.i.d. Gaussian inputs, O(1) logits: slope -1.
    Clt,
    /// As clt with AR(1) inputs, rho = 0.5: slope -1, larger constant.
    Ar1,
    /// Logits scaled up until attention is near one-hot: slope near 0.
    Sharp,
    /// A first token with a large logit (attention sink): a floor.
    Sink,
    /// Student-t inputs with df < 2 (no finite variance): no 1/n law.
    Heavy,
    /// Fractional Gaussian noise inputs, Hurst 0.7: slope 2H - 2 = -0.6.
    Lrd,
    /// A full multi-layer model (random from a config, or a checkpoint): measured, not assumed.
    Model,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Clt,
        Preset::Ar1,
        Preset::Sharp,
        Preset::Sink,
        Preset::Heavy,
        Preset::Lrd,
        Preset::Model,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Clt => "clt",
            Preset::Ar1 => "ar1",
            Preset::Sharp => "sharp",
            Preset::Sink => "sink",
            Preset::Heavy => "heavy",
            Preset::Lrd => "lrd",
            Preset::Model => "model",
        }
    }

    pub fn parse(s: &str) -> Result<Preset, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown preset '{s}': choose from {}",
                    Preset::ALL.map(|p| p.name()).join(", ")
                )
            })
    }

    /// The input process of the control.
    pub fn process(self) -> Process {
        match self {
            Preset::Ar1 => Process::Ar1 { rho: 0.5 },
            Preset::Heavy => Process::StudentT { df: 1.5 },
            Preset::Lrd => Process::Fgn { hurst: 0.7 },
            _ => Process::Gaussian,
        }
    }

    /// Multiplier on the usual 1/sqrt(d) logit scale: logits of standard deviation 0.5.
    /// (With 1.0, n_eff / n still falls from 0.54 to 0.38 between n = 16 and 2048, and the
    /// slope against n reads -0.93 while the slope against n_eff stays at -1.)
    pub fn logit_gain(self) -> f64 {
        match self {
            Preset::Sharp => 24.0,
            _ => 0.5,
        }
    }

    /// Share of the attention that the first key (the sink) takes at every length.
    pub fn sink_mass(self) -> f64 {
        match self {
            Preset::Sink => 0.25,
            _ => 0.0,
        }
    }

    /// The slope of ln V against ln n the control should show, where it has one.
    pub fn expected_slope(self) -> Option<f64> {
        match self {
            Preset::Clt | Preset::Ar1 => Some(-1.0),
            Preset::Sharp => Some(0.0),
            Preset::Lrd => Some(-0.6),
            Preset::Sink | Preset::Heavy | Preset::Model => None,
        }
    }

    pub fn expectation(self) -> &'static str {
        match self {
            Preset::Clt => "slope -1",
            Preset::Ar1 => "slope -1, larger constant",
            Preset::Sharp => "slope near 0",
            Preset::Sink => "a floor",
            Preset::Heavy => "no 1/n law",
            Preset::Lrd => "slope 2H-2 = -0.6",
            Preset::Model => "measured, not assumed",
        }
    }
}

/// One sweep of one preset. Everything that changes a number is in here, so that a
/// results directory can tell whether it may resume or merge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    pub preset: Preset,
    pub process: Process,
    pub lengths: Vec<usize>,
    pub samples: usize,
    /// Width of the inputs and of the attention head.
    pub d_model: usize,
    pub logit_gain: f64,
    /// Share of attention the first key takes (0: no sink): its logit is raised by
    /// ln(mass / (1 - mass)) + ln(n - 1), which holds the share near `mass` at every n.
    pub sink_mass: f64,
    pub seed: u64,
    /// Storage precision ("f32" or "f16" in run.json).
    pub precision: Precision,
    /// Poisson-bootstrap replicates per length.
    pub bootstrap: usize,
    /// SNR threshold for the emergence point.
    pub theta: f64,
    /// The model of the `model` preset.
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// Layers whose states are probed (`model` preset); empty: all.
    #[serde(default)]
    pub layers: Vec<usize>,
    /// Token models: weights of a unigram distribution over the vocabulary to draw the
    /// input ids from (uniform when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unigram: Option<Vec<f64>>,
    /// Token models: windows of real text instead of drawn ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSpec>,
    /// Where the `model` preset probes each sample (`--probe`); runs written before the
    /// option existed read as [`Probe::Last`].
    #[serde(default)]
    pub probe: Probe,
}

/// The probe design of the `model` preset (docs/METHOD.md, "Probe designs"), written in
/// run.json as the option reads: `"last"` or `"suffix:TEXT"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Probe {
    /// The hidden state at the last token of the n-token window.
    #[default]
    Last,
    /// A fixed text appended after the n tokens of context (tokenised by the model's
    /// tokenizer, without BOS); the probe is its last token, at position n + s - 1.
    Suffix { text: String },
}

impl Probe {
    pub fn parse(s: &str) -> Result<Probe, String> {
        if s == "last" {
            return Ok(Probe::Last);
        }
        if let Some(text) = s.strip_prefix("suffix:") {
            return Ok(Probe::Suffix { text: text.into() });
        }
        Err(format!(
            "unknown probe '{s}': use last (the last token of the window) or suffix:TEXT \
             (TEXT appended after the window, probed at its last token)"
        ))
    }

    /// The suffix text, for [`Probe::Suffix`].
    pub fn suffix(&self) -> Option<&str> {
        match self {
            Probe::Last => None,
            Probe::Suffix { text } => Some(text),
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Last => write!(f, "last"),
            Probe::Suffix { text } => write!(f, "suffix:{text}"),
        }
    }
}

impl From<Probe> for String {
    fn from(p: Probe) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for Probe {
    type Error = String;
    fn try_from(s: String) -> Result<Probe, String> {
        Probe::parse(&s)
    }
}

/// A corpus by path and content: a resumed run refuses a corpus that changed under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSpec {
    pub path: String,
    /// [`crate::text::CorpusInfo::sha256`] when the run was configured.
    pub sha256: String,
}

/// Where the `model` preset's model comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Weights drawn from the sweep seed.
    Random { config: ModelConfig },
    /// A GGUF file or a Hugging Face directory (config.json + model.safetensors).
    Checkpoint { path: String },
}

impl ModelSpec {
    /// The default model: a small GPT-2-like pre-norm model fed the process's vectors.
    pub fn default_random(max_n: usize) -> Self {
        let mut config = ModelConfig::gpt2_like(2, 64, 4, 0);
        config.position = crate::model::Position::Learned {
            max_positions: max_n.max(1),
        };
        ModelSpec::Random { config }
    }
}

/// The fewest samples per length a sweep accepts: the smallest count at which fewer than 1%
/// of the Poisson-bootstrap replicates draw under two distinct samples (such a replicate has
/// no variance and is left out of the intervals). Every other estimator needs less: the
/// unbiased variance, the SNR and the n_eff standard error need 2, the planted task's
/// read-out 4 (half to fit, half to score).
pub const MIN_SAMPLES: usize = 8;
const _: () = assert!(MIN_SAMPLES >= 4, "the planted read-out needs 4 samples");

/// The share of Poisson(1) bootstrap replicates of `samples` samples that draw fewer than two
/// distinct samples: e^-S (none) + S (1 - 1/e) e^-(S-1) (exactly one).
pub fn bootstrap_degenerate_share(samples: usize) -> f64 {
    let s = samples as f64;
    (-s).exp() + s * (1.0 - (-1.0f64).exp()) * (1.0 - s).exp()
}

/// Host bytes of the Poisson bootstrap of `sites` probed sites of width `d`: a weight, a mean
/// and a sum of squares per replicate (f64).
pub fn bootstrap_bytes(replicates: usize, d: usize, sites: usize) -> Option<u64> {
    let per = (d as u64).checked_mul(2)?.checked_add(1)?;
    crate::memory::product(&[replicates as u64, per, 8, sites as u64])
}

/// Host bytes that one sample at context length `n` needs at the least: its inputs
/// [n, d] and its keys [n, d + 1], as f32.
pub fn length_bytes(n: usize, d: usize) -> Option<u64> {
    let per = (d as u64).checked_mul(2)?.checked_add(1)?;
    crate::memory::product(&[n as u64, per, 4])
}

/// Why a sweep was refused before any GPU work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Fields of a [`SweepConfig`] that no point depends on: `lengths` only says which points
/// exist (each point is drawn from its own stream of the seed, whatever the other
/// lengths), and `theta` only moves the SNR threshold of the fits.
const NOT_IN_POINTS: [&str; 2] = ["lengths", "theta"];

/// The option that sets a field of the configuration, for messages.
fn flag_of(field: &str) -> &'static str {
    match field {
        "preset" => "--preset",
        "process" => "--process (or the preset's input)",
        "samples" => "--samples",
        "d_model" => "--d-model",
        "logit_gain" => "--logit-gain",
        "sink_mass" => "the preset's sink",
        "seed" => "--seed",
        "precision" => "--f16",
        "bootstrap" => "--bootstrap",
        "model" => "--model/--config",
        "layers" => "--layers",
        "unigram" => "--unigram",
        "text" => "--text",
        "probe" => "--probe",
        _ => "",
    }
}

/// A JSON value for a message, cut short when long (a model config, unigram weights).
fn brief(v: Option<&serde_json::Value>) -> String {
    let s = v.map_or("(none)".to_string(), |v| v.to_string());
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

impl SweepConfig {
    /// The configuration without the fields that no point depends on: two runs with the
    /// same key measure the same points (a point of one may stand in for the other's).
    pub fn point_key(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for f in NOT_IN_POINTS {
                o.remove(f);
            }
        }
        v
    }

    /// How `other` would measure a point differently from `self`: one line per field,
    /// `samples 32 -> 64 (--samples)`. Empty when every finished point of `self` is also a
    /// point of `other` (only the lengths or the SNR threshold differ).
    pub fn point_differences(&self, other: &SweepConfig) -> Vec<String> {
        let (a, b) = (self.point_key(), other.point_key());
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec!["the configuration".into()];
        };
        let mut fields: Vec<&String> = a.keys().chain(b.keys()).collect();
        fields.sort();
        fields.dedup();
        fields
            .into_iter()
            .filter(|f| a.get(*f) != b.get(*f))
            .map(|f| {
                let flag = flag_of(f);
                let mut line = format!("{f} {} -> {}", brief(a.get(f)), brief(b.get(f)));
                if !flag.is_empty() {
                    line.push_str(&format!(" ({flag})"));
                }
                if f == "model" {
                    if let (
                        Some(ModelSpec::Random { config: x }),
                        Some(ModelSpec::Random { config: y }),
                    ) = (&self.model, &other.model)
                    {
                        if x.position != y.position {
                            line.push_str(
                                "; the default model's learned positions follow the longest \
                                 length (--max-n), so give --config FILE to extend it",
                            );
                        }
                    }
                }
                line
            })
            .collect()
    }

    /// The lengths of `self` followed by those of `other` it lacks, ascending when any is
    /// added (unchanged otherwise, so a rerun of one command leaves its record as it was).
    pub fn union_lengths(&self, other: &[usize]) -> Vec<usize> {
        if other.iter().all(|n| self.lengths.contains(n)) {
            return self.lengths.clone();
        }
        let mut all: Vec<usize> = self.lengths.iter().chain(other).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub fn for_preset(preset: Preset) -> Self {
        Self {
            preset,
            process: preset.process(),
            lengths: (4..=11).map(|e| 1usize << e).collect(),
            samples: 256,
            d_model: 32,
            logit_gain: preset.logit_gain(),
            sink_mass: preset.sink_mass(),
            seed: 0,
            precision: Precision::F32,
            bootstrap: 200,
            theta: 1.0,
            model: None,
            layers: Vec::new(),
            unigram: None,
            text: None,
            probe: Probe::Last,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        self.process
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        if self.lengths.is_empty() {
            return bad("no context lengths: give at least one with --lengths".into());
        }
        if let Some(0) = self.lengths.iter().copied().find(|&n| n == 0) {
            return bad("context length n = 0: every length must be at least 1".into());
        }
        if self.samples < MIN_SAMPLES {
            return bad(format!(
                "--samples {}: at least {MIN_SAMPLES} samples per length are needed (with \
                 fewer, more than 1% of the bootstrap replicates draw fewer than two distinct \
                 samples and have no variance); use --samples {MIN_SAMPLES} or more",
                self.samples
            ));
        }
        if self.d_model < 2 || self.d_model + 1 > crate::kernel::AttentionShape::MAX_HEAD_DIM {
            return bad(format!(
                "d_model {} must lie in 2..={}",
                self.d_model,
                crate::kernel::AttentionShape::MAX_HEAD_DIM - 1
            ));
        }
        if !(self.logit_gain.is_finite() && self.logit_gain > 0.0) {
            return bad(format!(
                "logit gain {} must be finite and > 0",
                self.logit_gain
            ));
        }
        if !(0.0..1.0).contains(&self.sink_mass) {
            return bad(format!("sink mass {} must lie in [0, 1)", self.sink_mass));
        }
        if !(self.theta.is_finite() && self.theta > 0.0) {
            return bad(format!(
                "--theta {}: the SNR threshold must be finite and > 0 (the default is 1)",
                self.theta
            ));
        }
        if self.bootstrap < 20 {
            return bad(format!(
                "{} bootstrap replicates give no usable interval: use at least 20",
                self.bootstrap
            ));
        }
        // Sizes, in checked arithmetic, against the host memory, before anything is drawn.
        let host = |what: String, bytes: Option<u64>, fix: &str| {
            crate::memory::check_host(&what, bytes, fix).map_err(ConfigError)
        };
        host(
            format!(
                "--bootstrap {}: the replicates of one probed site (replicates x (2 x d_model \
                 {} + 1) x 8 bytes)",
                self.bootstrap, self.d_model
            ),
            bootstrap_bytes(self.bootstrap, self.d_model, 1),
            "use fewer replicates (the default is 200)",
        )?;
        let longest = self.lengths.iter().copied().max().unwrap_or(1);
        host(
            format!(
                "context length n = {longest} (one sample's inputs and keys, n x (d_model {} + \
                 1) x 4 bytes, twice)",
                self.d_model
            ),
            length_bytes(longest, self.d_model),
            "use shorter --lengths (or a smaller --max-n)",
        )?;
        if self.preset == Preset::Model && self.model.is_none() {
            return bad("the model preset needs a model: --model DIR or --config FILE".into());
        }
        if self.preset != Preset::Model && (self.model.is_some() || !self.layers.is_empty()) {
            return bad(format!(
                "--model, --config and --layers belong to --preset model, not {}",
                self.preset.name()
            ));
        }
        if let Some(text) = self.probe.suffix() {
            if self.preset != Preset::Model {
                return bad(format!(
                    "--probe suffix:... belongs to --preset model (a token model with a \
                     tokenizer), not {}",
                    self.preset.name()
                ));
            }
            if text.is_empty() {
                return bad(
                    "--probe suffix: has no text: give the suffix after the colon, e.g. \
                     --probe 'suffix: What is it about?'"
                        .into(),
                );
            }
        }
        if let Some(w) = &self.unigram {
            if w.iter().any(|p| !(p.is_finite() && *p >= 0.0)) || !w.iter().any(|&p| p > 0.0) {
                return bad("unigram weights must be finite, non-negative and not all zero".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MIN_SAMPLES is the smallest count whose bootstrap replicates have a variance 99% of the
    /// time.
    #[test]
    fn min_samples_is_derived_from_the_bootstrap() {
        assert!(bootstrap_degenerate_share(MIN_SAMPLES) < 0.01);
        assert!(bootstrap_degenerate_share(MIN_SAMPLES - 1) >= 0.01);
    }

    #[test]
    fn two_samples_are_refused_with_the_minimum() {
        let mut cfg = SweepConfig::for_preset(Preset::Clt);
        cfg.samples = 2;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("--samples 2"), "{err}");
        assert!(
            err.contains(&format!("--samples {MIN_SAMPLES} or more")),
            "{err}"
        );
    }

    /// run.json holds the probe as the option reads; a run.json without it reads as `last`.
    #[test]
    fn probes_round_trip_and_old_run_files_read_as_last() {
        let mut cfg = SweepConfig::for_preset(Preset::Model);
        cfg.probe = Probe::parse("suffix: Who: is it?").unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["probe"], "suffix: Who: is it?");
        assert_eq!(
            serde_json::from_value::<SweepConfig>(v.clone()).unwrap(),
            cfg
        );
        let mut old = v;
        old.as_object_mut().unwrap().remove("probe");
        let old: SweepConfig = serde_json::from_value(old).unwrap();
        assert_eq!(old.probe, Probe::Last);
        let diff = old.point_differences(&cfg).join("\n");
        assert!(
            diff.contains("probe \"last\" -> \"suffix: Who: is it?\" (--probe)"),
            "{diff}"
        );
        let e = Probe::parse("middle").unwrap_err();
        assert!(e.contains("unknown probe 'middle'"), "{e}");
        let mut bad = serde_json::to_value(&cfg).unwrap();
        bad["probe"] = "middle".into();
        assert!(serde_json::from_value::<SweepConfig>(bad).is_err());
    }
}
