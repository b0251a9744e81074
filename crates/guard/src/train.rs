//! Training the learned layer: the wide (linear) and deep (one hidden layer over n-gram embeddings)
//! parts together, multi-label logistic loss with AdaGrad over the hashed features, class-balanced per
//! head, heads masked where a source does not label them, then Platt calibration on the calibration
//! split. Deterministic: the initial weights and the example order come from a fixed seed.

use serde::Serialize;

use crate::{
    Taxonomy, Verdict,
    dataset::{Example, Split, split_of},
    lexicon::Lexicon,
    model::{DIM, FloatModel, HEAD_RISK, HEAD_UNSAFE, Model, sigmoid},
};

/// An example ready for training: features and per-head targets.
type Prepared = (Vec<(u32, f32)>, Vec<i8>);

/// Training settings.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// AdaGrad learning rate.
    pub learning_rate: f32,
    /// L2 penalty per update.
    pub l2: f32,
    /// Largest weight given to the positive class of a rare head.
    pub max_positive_weight: f32,
    /// Hidden units of the deep part (0: linear only).
    pub hidden: usize,
    /// AdaGrad learning rate of the deep part.
    pub deep_learning_rate: f32,
    /// Shuffle seed.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 12,
            learning_rate: 0.5,
            l2: 1e-6,
            max_positive_weight: 8.0,
            hidden: 0,
            deep_learning_rate: 0.05,
            seed: 7,
        }
    }
}

/// Head names for a taxonomy: risk, unsafe, categories, intents, techniques.
pub fn head_names(taxonomy: &Taxonomy) -> Vec<String> {
    let mut heads = vec![HEAD_RISK.to_owned(), HEAD_UNSAFE.to_owned()];
    heads.extend(taxonomy.categories.iter().map(|c| format!("cat:{}", c.id)));
    heads.extend(taxonomy.intents.iter().map(|i| format!("intent:{}", i.id)));
    heads.extend(taxonomy.techniques.iter().map(|t| format!("tech:{}", t.id)));
    heads
}

/// Per-head targets of an example: 1, 0, or -1 when the source does not say.
pub fn targets(example: &Example, heads: &[String], taxonomy: &Taxonomy) -> Vec<i8> {
    let risky = example.verdict != Verdict::Safe;
    let mut categories = example.categories.clone();
    for intent in &example.intents {
        if let Some(c) = taxonomy.category_of_intent(intent) {
            categories.push(c.to_owned());
        }
    }
    heads
        .iter()
        .map(|head| {
            if head == HEAD_RISK {
                return i8::from(risky);
            }
            if head == HEAD_UNSAFE {
                return if risky { i8::from(example.verdict == Verdict::Unsafe) } else { -1 };
            }
            if let Some(t) = head.strip_prefix("tech:") {
                return i8::from(example.techniques.iter().any(|x| x == t));
            }
            if !risky {
                return 0;
            }
            if let Some(c) = head.strip_prefix("cat:") {
                return if categories.is_empty() {
                    -1
                } else {
                    i8::from(categories.iter().any(|x| x == c))
                };
            }
            if let Some(i) = head.strip_prefix("intent:") {
                return if example.intents.is_empty() {
                    -1
                } else {
                    i8::from(example.intents.iter().any(|x| x == i))
                };
            }
            -1
        })
        .collect()
}

/// Features of an example as the guard computes them (normalised text plus lexicon tokens).
pub fn example_features(text: &str, lexicon: &Lexicon) -> Vec<(u32, f32)> {
    let normalised = text::normalize(&text::strip_pii(text));
    let hits = lexicon.find(&normalised);
    crate::guard::text_features(&normalised, hits.iter())
}

/// Trains a model on the trainable examples of the train split and calibrates it on the calibration
/// split. `progress` is called after each epoch with (epoch, mean loss).
pub fn train(
    examples: &[Example],
    taxonomy: &Taxonomy,
    lexicon: &Lexicon,
    config: &TrainConfig,
    manifest: serde_json::Value,
    mut progress: impl FnMut(usize, f32),
) -> Model {
    let heads = head_names(taxonomy);
    let n = heads.len();
    let prepare = |split: Split| -> Vec<Prepared> {
        examples
            .iter()
            .filter(|e| e.trainable && split_of(e) == split)
            .map(|e| (example_features(&e.text, lexicon), targets(e, &heads, taxonomy)))
            .collect()
    };
    let train_set = prepare(Split::Train);
    let calib_set = prepare(Split::Calibrate);
    let mut pos = vec![0usize; n];
    let mut neg = vec![0usize; n];
    for (_, t) in &train_set {
        for (h, y) in t.iter().enumerate() {
            match y {
                1 => pos[h] += 1,
                0 => neg[h] += 1,
                _ => {}
            }
        }
    }
    let pos_weight: Vec<f32> = (0..n)
        .map(|h| {
            if pos[h] == 0 {
                1.0
            } else {
                (neg[h] as f32 / pos[h] as f32).clamp(1.0, config.max_positive_weight)
            }
        })
        .collect();
    let d = config.hidden;
    let mut m = FloatModel::new(heads, d, config.seed);
    let mut grad_sq = vec![1e-8f32; DIM * n];
    let mut bias_sq = vec![1e-8f32; n];
    let mut embed_sq = vec![1e-8f32; DIM * d];
    let mut hidden_bias_sq = vec![1e-8f32; d];
    let mut out_sq = vec![1e-8f32; n * d];
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let mut rng = config.seed;
    let (lr, deep_lr) = (config.learning_rate, config.deep_learning_rate);
    for epoch in 0..config.epochs {
        shuffle(&mut order, &mut rng);
        let mut loss = 0.0f64;
        for &i in &order {
            let (x, t) = &train_set[i];
            let forward = m.forward(x);
            let hidden: Vec<f32> = forward.pre.iter().map(|p| p.max(0.0)).collect();
            // The loss's gradient with respect to each hidden unit, summed over the heads.
            let mut grad_hidden = vec![0.0f32; d];
            for h in 0..n {
                if t[h] < 0 {
                    continue;
                }
                let y = f32::from(t[h]);
                let p = sigmoid(forward.logits[h]);
                let w = if t[h] == 1 { pos_weight[h] } else { 1.0 };
                loss -=
                    f64::from(w * (y * p.max(1e-7).ln() + (1.0 - y) * (1.0 - p).max(1e-7).ln()));
                let g = w * (p - y);
                if g.abs() < 1e-4 {
                    continue;
                }
                for &(f, v) in x {
                    let k = f as usize * n + h;
                    let gk = g * v + config.l2 * m.weights[k];
                    grad_sq[k] += gk * gk;
                    m.weights[k] -= lr * gk / grad_sq[k].sqrt();
                }
                bias_sq[h] += g * g;
                m.bias[h] -= lr * g / bias_sq[h].sqrt();
                let row = h * d..(h + 1) * d;
                for (((gh, w), sq), a) in grad_hidden
                    .iter_mut()
                    .zip(&mut m.out[row.clone()])
                    .zip(&mut out_sq[row])
                    .zip(&hidden)
                {
                    *gh += g * *w;
                    let gw = g * a + config.l2 * *w;
                    *sq += gw * gw;
                    *w -= deep_lr * gw / sq.sqrt();
                }
            }
            // Back through the ReLU to the hidden biases and the embeddings of the example's n-grams.
            for (j, gh) in grad_hidden.iter_mut().enumerate() {
                if forward.pre[j] <= 0.0 {
                    *gh = 0.0;
                    continue;
                }
                hidden_bias_sq[j] += *gh * *gh;
                m.hidden_bias[j] -= deep_lr * *gh / hidden_bias_sq[j].sqrt();
            }
            if grad_hidden.iter().all(|g| *g == 0.0) {
                continue;
            }
            for &(f, v) in x {
                let row = f as usize * d..(f as usize + 1) * d;
                for ((w, sq), gh) in
                    m.embed[row.clone()].iter_mut().zip(&mut embed_sq[row]).zip(&grad_hidden)
                {
                    let ge = gh * v + config.l2 * *w;
                    *sq += ge * ge;
                    *w -= deep_lr * ge / sq.sqrt();
                }
            }
        }
        progress(epoch + 1, (loss / train_set.len().max(1) as f64) as f32);
    }
    let uncalibrated = m.quantise(vec![(1.0, 0.0); n], serde_json::Value::Null);
    let platt = (0..n)
        .map(|h| {
            let pairs: Vec<(f32, f32)> = calib_set
                .iter()
                .filter(|(_, t)| t[h] >= 0)
                .map(|(x, t)| (uncalibrated.logits(x)[h], f32::from(t[h])))
                .collect();
            fit_platt(&pairs)
        })
        .collect();
    let mut manifest = manifest;
    if let Some(obj) = manifest.as_object_mut() {
        obj.insert("train_examples".into(), train_set.len().into());
        obj.insert("calibration_examples".into(), calib_set.len().into());
        obj.insert(
            "positives_per_head".into(),
            serde_json::json!(
                m.heads
                    .iter()
                    .zip(&pos)
                    .map(|(h, p)| (h.clone(), *p))
                    .collect::<std::collections::BTreeMap<_, _>>()
            ),
        );
        obj.insert("config".into(), serde_json::json!(config));
    }
    m.quantise(platt, manifest)
}

/// Fits `sigmoid(a z + b)` to (logit, label) pairs by gradient descent; identity when too few pairs
/// or only one class.
fn fit_platt(pairs: &[(f32, f32)]) -> (f32, f32) {
    let positives = pairs.iter().filter(|(_, y)| *y > 0.5).count();
    if pairs.len() < 20 || positives < 3 || positives == pairs.len() {
        return (1.0, 0.0);
    }
    let (mut a, mut b) = (1.0f32, 0.0f32);
    let lr = 0.05;
    for _ in 0..300 {
        let (mut ga, mut gb) = (0.0f32, 0.0f32);
        for (z, y) in pairs {
            let p = sigmoid(a * z + b);
            ga += (p - y) * z;
            gb += p - y;
        }
        a -= lr * ga / pairs.len() as f32;
        b -= lr * gb / pairs.len() as f32;
    }
    (a.max(0.05), b)
}

fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let j = (*state % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}
