//! In-context emergence (claim 3, docs/METHOD.md "In-context emergence"): tasks whose answer
//! is only in the context, posed at growing context lengths. Each sample has a binary label
//! (which of two label tokens comes next); per probed layer the Fisher SNR of that label in
//! the hidden state at the last token and the accuracy of a linear read-out of it, and the
//! model's own choice between the two label tokens (accuracy, and the label's log-probability
//! over the whole vocabulary as the continuous metric beside it).

use ceiling_core::model::ForwardInput;
use ceiling_core::stats::{fisher_snr_debiased, linear_readout_accuracy, Moments};
use ceiling_core::text::Tokenizer;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};
use crate::model::GpuModel;
use crate::Gpu;

/// A task whose label the context determines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A random token sequence, then its repeat cut just before the label token that
    /// followed in the first copy: the probe must copy it (an induction head's job).
    Induction,
    /// "word : label" lines of a fixed arbitrary mapping of four words to two labels (two
    /// each, drawn per sample), then "query :" for a word shown above: the probe must
    /// recall the query's label. The context length sets the number of lines k.
    Fewshot,
}

impl Task {
    pub const ALL: [Task; 2] = [Task::Induction, Task::Fewshot];

    pub fn parse(s: &str) -> std::result::Result<Task, String> {
        match s.trim() {
            "induction" => Ok(Task::Induction),
            "fewshot" => Ok(Task::Fewshot),
            other => Err(format!(
                "unknown task '{other}': the tasks are induction and fewshot"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Task::Induction => "induction",
            Task::Fewshot => "fewshot",
        }
    }

    /// The shortest context the task can be posed in: induction needs a repeated token
    /// before the label, few-shot one line and the query.
    pub fn min_len(self) -> usize {
        match self {
            Task::Induction => 4,
            Task::Fewshot => 6,
        }
    }
}

/// Everyday words that most tokenizers keep as one token after a space: the few-shot
/// task's words, so that a language model reads words rather than arbitrary pieces.
const WORDS: &[&str] = &[
    "apple", "river", "house", "table", "chair", "window", "garden", "horse", "bread", "water",
    "stone", "cloud", "music", "paper", "glass", "money", "train", "field", "light", "night",
    "story", "color", "plant", "sound", "black", "green", "white", "bird", "fish", "tree", "door",
    "road", "ship", "book", "song", "milk", "rain", "snow", "wind", "fire", "gold", "iron", "wood",
    "salt", "corn", "rice", "king", "queen", "child", "woman", "man", "dog", "cat", "cow", "pig",
    "sheep", "city", "town", "farm", "hill", "lake", "sea", "sun", "moon", "star", "hand", "head",
    "heart", "eye", "face", "foot", "arm", "leg", "hair", "bed", "box", "cup", "hat", "coat",
    "shoe", "ball", "game", "car", "bus", "boat", "bank", "shop", "school", "church", "room",
    "wall", "floor", "roof", "bridge", "tower", "castle", "forest", "island", "mountain", "valley",
    "desert", "summer", "winter", "spring", "morning", "evening", "doctor", "teacher", "farmer",
    "soldier", "letter", "number", "picture", "question", "answer", "problem", "family", "friend",
    "mother", "father",
];

/// The tokens the tasks are written with, chosen once per model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskTokens {
    /// The two label tokens: label 0 and label 1.
    pub labels: [u32; 2],
    pub separator: u32,
    pub newline: u32,
    /// The few-shot task's words.
    pub words: Vec<u32>,
    /// Ids the induction task never draws: the special ones and the four above.
    excluded: Vec<u32>,
    pub vocab: usize,
    /// Where the tokens came from, in words.
    pub source: String,
}

/// Few-shot words needed for a word list to be used (fewer: random ids instead).
const MIN_WORDS: usize = 16;

impl TaskTokens {
    /// With a tokenizer that keeps " A", " B", ":", a newline and at least 16 of [`WORDS`]
    /// as one token each, those; otherwise the last four ids of the vocabulary and every
    /// other id as a word (the tasks stay well posed: only the context tells the label).
    pub fn for_model(vocab: usize, tokenizer: Option<&Tokenizer>) -> Result<Self> {
        let specials = tokenizer.map(Tokenizer::special_ids).unwrap_or_default();
        let one = |text: &str| -> Option<u32> {
            let ids = tokenizer?.encode_plain(text).ok()?;
            (ids.len() == 1 && (ids[0] as usize) < vocab && !specials.contains(&ids[0]))
                .then(|| ids[0])
        };
        if let (Some(a), Some(b), Some(sep), Some(nl)) = (one(" A"), one(" B"), one(":"), one("\n"))
        {
            let reserved = [a, b, sep, nl];
            let mut seen = std::collections::BTreeSet::from(reserved);
            let words: Vec<u32> = WORDS
                .iter()
                .filter_map(|w| one(&format!(" {w}")))
                .filter(|id| seen.insert(*id))
                .collect();
            if seen.len() == 4 + words.len() && words.len() >= MIN_WORDS {
                let source = format!(
                    "the tokenizer's \" A\" / \" B\" labels, \":\" and a newline, and {} \
                     one-token words",
                    words.len()
                );
                return Ok(Self::new([a, b], sep, nl, words, specials, vocab, source));
            }
        }
        if vocab < 8 + specials.len() {
            return Err(HostError::Config(format!(
                "a vocabulary of {vocab} tokens is too small for the tasks (they need four \
                 reserved tokens and words besides)"
            )));
        }
        let v = vocab as u32;
        let (labels, sep, nl) = ([v - 1, v - 2], v - 3, v - 4);
        let words: Vec<u32> = (0..v - 4).filter(|id| !specials.contains(id)).collect();
        let source = "ids: labels the last two of the vocabulary, separator and newline the two \
                      before them, words every other id (no tokenizer, or it lacks one-token \
                      \" A\", \" B\", \":\", newline or 16 everyday words)"
            .to_string();
        Ok(Self::new(labels, sep, nl, words, specials, vocab, source))
    }

    fn new(
        labels: [u32; 2],
        separator: u32,
        newline: u32,
        words: Vec<u32>,
        specials: Vec<u32>,
        vocab: usize,
        source: String,
    ) -> Self {
        let mut excluded = specials;
        excluded.extend([labels[0], labels[1], separator, newline]);
        excluded.sort_unstable();
        excluded.dedup();
        Self {
            labels,
            separator,
            newline,
            words,
            excluded,
            vocab,
            source,
        }
    }

    /// A random token for the induction sequence: any id but the special and task tokens.
    fn random_token(&self, rng: &mut ChaCha8Rng) -> u32 {
        loop {
            let id = rng.random_range(0..self.vocab as u32);
            if self.excluded.binary_search(&id).is_err() {
                return id;
            }
        }
    }
}

/// One sample of `task` with exactly `n` tokens (n >= the task's minimum): its ids and its
/// label, 0 or 1, the label token the model should predict after the last one.
pub fn draw_sample(
    task: Task,
    t: &TaskTokens,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<u32>, usize) {
    match task {
        Task::Induction => {
            // r_0 .. r_{m-1}, then r_0 .. r_{j-1} again (m + j = n): after r_{j-1} the first
            // copy continued with r_j, the label token.
            let label = rng.random_range(0..2);
            let m = n / 2 + 1;
            let j = n - m;
            let mut first: Vec<u32> = (0..m).map(|_| t.random_token(rng)).collect();
            first[j] = t.labels[label];
            let mut ids = first.clone();
            ids.extend_from_slice(&first[..j]);
            (ids, label)
        }
        Task::Fewshot => {
            let mut pick: Vec<usize> = (0..t.words.len()).collect();
            pick.shuffle(rng);
            let words: Vec<u32> = pick[..4].iter().map(|&i| t.words[i]).collect();
            let mut label_of = [0usize, 0, 1, 1];
            label_of.shuffle(rng);
            let lines = (n - 2) / 4;
            let mut ids = vec![t.newline; n - 2 - 4 * lines];
            let mut shown = Vec::with_capacity(lines);
            for _ in 0..lines {
                let w = rng.random_range(0..4);
                ids.extend([words[w], t.separator, t.labels[label_of[w]], t.newline]);
                shown.push(w);
            }
            let q = shown[rng.random_range(0..shown.len())];
            ids.extend([words[q], t.separator]);
            (ids, label_of[q])
        }
    }
}

/// One probed layer at one context length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    pub layer: usize,
    /// Between-label over within-label variance of the hidden state at the probe, the
    /// sampling noise of the label means taken out (`stats::fisher_snr_debiased`; at or
    /// below 0 where the label is not measurably there).
    #[serde(with = "ceiling_core::nonfinite")]
    pub fisher_snr: f64,
    /// Accuracy of a linear read-out of the label, fitted on half the samples (at most
    /// [`READOUT_SAMPLES`]) and scored on the other half, `readout_trials` of them.
    #[serde(with = "ceiling_core::nonfinite")]
    pub readout_accuracy: f64,
    pub readout_trials: usize,
}

/// One task at one context length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmergencePoint {
    pub task: Task,
    pub n: usize,
    pub samples: usize,
    pub layers: Vec<LayerScore>,
    /// Share of samples where the model gives the right label token a higher probability
    /// than the other one.
    pub model_accuracy: f64,
    /// Mean log-probability (nats, over the whole vocabulary) of the right label token, and
    /// its standard error: the continuous metric beside the accuracy.
    pub label_logprob: f64,
    pub label_logprob_se: f64,
    /// Share of samples whose most probable next token is the right label.
    pub top1_accuracy: f64,
    pub seconds: f64,
}

/// Samples kept per layer for the read-out: a stable accuracy at a bounded cost.
pub const READOUT_SAMPLES: usize = 1024;

/// Samples per forward batch: about 2^20 activations of width d_model per batch.
fn batch_size(n: usize, model: &GpuModel) -> usize {
    let c = model.config();
    ((1 << 20) / (n * c.d_model.max(c.ff_dim / 4)).max(1)).clamp(1, 256)
}

/// Measures `task` at context length `n` over `samples` samples drawn from `seed` (one
/// stream per task and length, so a resumed run draws what an uninterrupted one would).
#[allow(clippy::too_many_arguments)]
#[maybe_async::maybe_async]
pub async fn measure_point(
    gpu: &Gpu,
    model: &GpuModel,
    tokens: &TaskTokens,
    task: Task,
    n: usize,
    samples: usize,
    layers: &[usize],
    seed: u64,
    progress: &mut dyn FnMut(usize),
) -> Result<EmergencePoint> {
    let start = web_time::Instant::now();
    let c = model.config();
    let d = c.d_model;
    let stats_err = |e: ceiling_core::stats::StatsError| HostError::Stats(e.to_string());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((task as u64) << 32) + n as u64);
    // Per probed layer: the hidden state's moments per label, and read-out features.
    let mut classes: Vec<[Moments; 2]> = layers
        .iter()
        .map(|_| [Moments::new(d), Moments::new(d)])
        .collect();
    let mut features: Vec<Vec<Vec<f64>>> = layers.iter().map(|_| Vec::new()).collect();
    let mut signs = Vec::new();
    let (mut right, mut top1) = (0usize, 0usize);
    // The right label's log-probability per sample, for its mean and standard error.
    let mut logprob = Moments::new(1);
    let mut done = 0;
    while done < samples {
        let b = batch_size(n, model).min(samples - done);
        let (mut ids, mut labels) = (Vec::with_capacity(b * n), Vec::with_capacity(b));
        for _ in 0..b {
            let (s, y) = draw_sample(task, tokens, n, &mut rng);
            ids.extend(s);
            labels.push(y);
        }
        let input = ForwardInput::Tokens {
            ids: &ids,
            batch: b,
            n,
        };
        let states = model.forward(gpu, &input, &[n - 1]).await?;
        for (k, &l) in layers.iter().enumerate() {
            for (row, &y) in states.hidden[l].chunks(d).zip(&labels) {
                let v: Vec<f64> = row.iter().map(|&x| x as f64).collect();
                classes[k][y].push(&v).map_err(stats_err)?;
                if features[k].len() < READOUT_SAMPLES {
                    features[k].push(v);
                }
            }
        }
        signs.extend(labels.iter().map(|&y| if y == 1 { 1.0 } else { -1.0 }));
        // The model's own reading: scores of both label tokens from the final state.
        let last = match &states.final_norm {
            Some(f) => f,
            None => &states.hidden[c.layers - 1],
        };
        let target = |which: usize| -> Vec<u32> {
            labels
                .iter()
                .map(|&y| tokens.labels[if which == 0 { y } else { 1 - y }])
                .collect()
        };
        let good = model.score_states(gpu, last, &target(0)).await?;
        let bad = model.score_states(gpu, last, &target(1)).await?;
        for (g, w) in good.chunks(4).zip(bad.chunks(4)) {
            let (nll, other) = (g[1] as f64, w[1] as f64);
            if !nll.is_finite() || !other.is_finite() {
                return Err(HostError::Config(format!(
                    "{} at n = {n}: a non-finite label score (the model's outputs \
                     overflowed; try f32 storage)",
                    task.name()
                )));
            }
            right += (nll < other) as usize;
            top1 += (g[3] == 1.0) as usize;
            logprob.push(&[-nll]).map_err(stats_err)?;
        }
        done += b;
        progress(done);
    }
    signs.truncate(READOUT_SAMPLES);
    let s = samples as f64;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(k, &layer)| {
            let [neg, pos] = &classes[k];
            let kept = features[k].len();
            LayerScore {
                layer,
                fisher_snr: fisher_snr_debiased(pos, neg).unwrap_or(f64::NAN),
                readout_accuracy: linear_readout_accuracy(&features[k], &signs, seed ^ n as u64)
                    .unwrap_or(f64::NAN),
                readout_trials: kept - kept / 2,
            }
        })
        .collect();
    Ok(EmergencePoint {
        task,
        n,
        samples,
        layers,
        model_accuracy: right as f64 / s,
        label_logprob: logprob.mean[0],
        label_logprob_se: (logprob.trace_variance() / s).sqrt(),
        top1_accuracy: top1 as f64 / s,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> TaskTokens {
        TaskTokens::for_model(100, None).unwrap()
    }

    #[test]
    fn induction_repeats_the_sequence_up_to_the_label_token() {
        let t = tokens();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [4, 5, 16, 33] {
            let (ids, y) = draw_sample(Task::Induction, &t, n, &mut rng);
            assert_eq!(ids.len(), n);
            let (m, j) = (n / 2 + 1, n - n / 2 - 1);
            assert_eq!(&ids[m..], &ids[..j], "n = {n}: the repeat");
            assert_eq!(
                ids[j], t.labels[y],
                "n = {n}: the label follows the repeat's end"
            );
            // The label token appears nowhere else, and nothing reserved is drawn.
            let count = ids.iter().filter(|&&i| t.labels.contains(&i)).count();
            assert_eq!(count, 1, "{ids:?}");
        }
    }

    #[test]
    fn fewshot_lines_follow_one_mapping_and_the_query_was_shown() {
        let t = tokens();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for n in [6, 7, 9, 64] {
            let (ids, y) = draw_sample(Task::Fewshot, &t, n, &mut rng);
            assert_eq!(ids.len(), n);
            let body = &ids[(n - 2) % 4..n - 2];
            let mut mapping = std::collections::HashMap::new();
            for line in body.chunks(4) {
                assert_eq!((line[1], line[3]), (t.separator, t.newline), "{ids:?}");
                let old = mapping.insert(line[0], line[2]);
                assert!(
                    old.is_none_or(|o| o == line[2]),
                    "one label per word: {ids:?}"
                );
            }
            assert_eq!(ids[n - 1], t.separator);
            assert_eq!(mapping[&ids[n - 2]], t.labels[y], "{ids:?}");
        }
    }

    #[test]
    fn labels_are_balanced() {
        let t = tokens();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for task in Task::ALL {
            let ones: usize = (0..2000)
                .map(|_| draw_sample(task, &t, 32, &mut rng).1)
                .sum();
            assert!((900..1100).contains(&ones), "{task:?}: {ones} of 2000");
        }
    }
}
