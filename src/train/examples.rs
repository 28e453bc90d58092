//! Training examples: texts and their targets as arrays (embeddings, per-token vectors, raw
//! metadata features), built one way for the CLI, `compare` and the C ABI's trainer alike, and
//! split into training and validation sets.

use ndarray::{Array2, Axis};

use super::config::{HeadKind, Mode, TrainConfig};
use crate::backbone::TokenSeqs;
use crate::data::{stratified_split, Targets, TaskKind, TaskSpec};
use crate::error::{Error, Result};

/// Training examples as arrays: embeddings and raw metadata features, row-aligned with targets.
#[derive(Debug, Clone)]
pub struct Examples {
    /// Embeddings `[n, d]` (0 columns when the mode does not use them).
    pub emb: Array2<f32>,
    /// Raw (un-normalized) metadata features `[n, f]` (0 columns when unused).
    pub feats: Array2<f32>,
    /// One target set per task.
    pub targets: Vec<Targets>,
    /// Per-token vectors of the same texts, for sequence heads (None for pooled heads).
    pub tokens: Option<TokenSeqs>,
    /// The hidden states of the same texts where the backbone splits, below the layers that
    /// train (`[backbone] trainable_layers`; None otherwise).
    pub hidden: Option<TokenSeqs>,
    /// What a split into training and validation (and the recipe search's folds) keeps in
    /// proportion: one value per row, such as a field's values (`--stratify-by`). None: the
    /// first task's classes (quantile bins of a regression target).
    pub strata: Option<Vec<String>>,
    /// A teacher's outputs for the same texts, per task `[n, outputs]` in the task's output
    /// space (probabilities; values in target units for regression): the soft targets a
    /// distilled student trains on besides the labels (`[distill]`). None: no teacher.
    pub soft: Option<Vec<Array2<f32>>>,
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.first().map_or(0, Targets::len)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Examples {
        Examples {
            emb: self.emb.select(Axis(0), idx),
            feats: self.feats.select(Axis(0), idx),
            targets: self.targets.iter().map(|t| t.select(idx)).collect(),
            tokens: self.tokens.as_ref().map(|t| t.select(idx)),
            hidden: self.hidden.as_ref().map(|t| t.select(idx)),
            strata: self
                .strata
                .as_ref()
                .map(|s| idx.iter().map(|&i| s[i].clone()).collect()),
            soft: self
                .soft
                .as_ref()
                .map(|s| s.iter().map(|a| a.select(Axis(0), idx)).collect()),
        }
    }

    /// These examples followed by `other`'s (the same tasks and arrays: what one has, the
    /// other must have, with the same widths).
    pub fn concat(self, other: Examples) -> Result<Examples> {
        let bad = |what: &str| {
            Err(Error::invalid(format!(
                "cannot join examples: {what} differ"
            )))
        };
        let rows = |a: Array2<f32>, b: &Array2<f32>| {
            ndarray::concatenate(Axis(0), &[a.view(), b.view()]).ok()
        };
        if self.targets.len() != other.targets.len() {
            return bad("their tasks");
        }
        let targets = self
            .targets
            .into_iter()
            .zip(other.targets)
            .map(|(a, b)| a.concat(b))
            .collect::<Option<Vec<_>>>();
        let Some(targets) = targets else {
            return bad("their task kinds");
        };
        let (Some(emb), Some(feats)) = (rows(self.emb, &other.emb), rows(self.feats, &other.feats))
        else {
            return bad("the widths of their embeddings or features");
        };
        let seqs = |a: Option<TokenSeqs>, b: Option<TokenSeqs>| match (a, b) {
            (None, None) => Some(None),
            (Some(mut a), Some(b)) if a.dim() == b.dim() => {
                a.extend(&b);
                Some(Some(a))
            }
            _ => None,
        };
        let (Some(tokens), Some(hidden)) = (
            seqs(self.tokens, other.tokens),
            seqs(self.hidden, other.hidden),
        ) else {
            return bad("their per-token vectors");
        };
        let strata = match (self.strata, other.strata) {
            (None, None) => None,
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => return bad("their strata"),
        };
        let soft = match (self.soft, other.soft) {
            (None, None) => None,
            (Some(a), Some(b)) if a.len() == b.len() => {
                let joined: Option<Vec<Array2<f32>>> =
                    a.into_iter().zip(&b).map(|(x, y)| rows(x, y)).collect();
                match joined {
                    Some(j) => Some(j),
                    None => return bad("their teacher outputs"),
                }
            }
            _ => return bad("their teacher outputs"),
        };
        Ok(Examples {
            emb,
            feats,
            targets,
            tokens,
            hidden,
            strata,
            soft,
        })
    }

    /// Each row's stratum for splits: [`Examples::strata`], or the first task's.
    pub fn split_strata(&self) -> Vec<String> {
        match (&self.strata, self.targets.first()) {
            (Some(s), _) => s.clone(),
            (None, Some(t)) => t.strata(),
            (None, None) => Vec::new(),
        }
    }

    /// These examples, split on `strata` (one value per row) instead of the first task.
    pub fn stratified_by(mut self, strata: Vec<String>) -> Result<Examples> {
        if strata.len() != self.len() {
            return Err(Error::invalid(format!(
                "{} strata for {} examples",
                strata.len(),
                self.len()
            )));
        }
        self.strata = Some(strata);
        Ok(self)
    }
}

/// Which arrays a set of examples must hold for a training mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Pooled embeddings (every mode but metadata-only).
    pub embeddings: bool,
    /// Per-token vectors (sequence heads).
    pub tokens: bool,
    /// Raw metadata features (every mode but embedding-only).
    pub features: bool,
}

impl Needs {
    /// What training with `config` reads.
    pub fn of(config: &TrainConfig) -> Needs {
        let embeddings = config.mode != Mode::MetadataOnly;
        Needs {
            embeddings,
            tokens: embeddings && config.head.kind == HeadKind::Sequence,
            features: config.mode != Mode::EmbeddingOnly,
        }
    }

    /// What either of two needs reads (examples shared by several modes).
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            embeddings: self.embeddings || other.embeddings,
            tokens: self.tokens || other.tokens,
            features: self.features || other.features,
        }
    }
}

/// Wall times of building examples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Seconds spent embedding (cache lookups included).
    pub embed_seconds: f64,
    /// Seconds spent extracting metadata features.
    pub feature_seconds: f64,
}

/// The examples of `texts` with their `targets`: what `needs` asks for, the embeddings (and
/// per-token vectors) from `embed` (called once, with every text: the caller decides how to
/// batch, cache and report progress), the features from the native extractor; arrays a mode
/// does not read have 0 columns.
pub fn build(
    texts: &[&str],
    targets: Vec<Targets>,
    needs: Needs,
    embed: impl FnOnce(&[&str]) -> Result<(Array2<f32>, Option<TokenSeqs>)>,
) -> Result<(Examples, Timings)> {
    let n = texts.len();
    if let Some(t) = targets.iter().find(|t| t.len() != n) {
        return Err(Error::invalid(format!("{} targets for {n} texts", t.len())));
    }
    let started = std::time::Instant::now();
    let (emb, tokens) = if needs.embeddings {
        embed(texts)?
    } else {
        (Array2::zeros((n, 0)), None)
    };
    let embed_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let feats = if needs.features {
        crate::metadata::extract_batch(texts)
    } else {
        Array2::zeros((n, 0))
    };
    let timings = Timings {
        embed_seconds,
        feature_seconds: started.elapsed().as_secs_f64(),
    };
    let tokens = tokens.filter(|_| needs.tokens);
    Ok((
        Examples {
            emb,
            feats,
            targets,
            tokens,
            hidden: None,
            strata: None,
            soft: None,
        },
        timings,
    ))
}

/// Splits `all` into train and validation with the config's fraction, stratified by the first
/// task, seeded by the config's seed. The linear recipe holds nothing out (validation empty):
/// it cross-validates on every example.
pub fn split_examples(all: &Examples, config: &TrainConfig) -> Result<(Examples, Examples)> {
    let (tr, va) = split_indices(all, config)?;
    Ok((all.select(&tr), all.select(&va)))
}

/// [`split_examples`], with the first task's spec to name the classes that are too small to
/// split, should there be any.
pub fn split_examples_of(
    all: &Examples,
    config: &TrainConfig,
    first_task: &TaskSpec,
) -> Result<(Examples, Examples)> {
    let (tr, va) = split_indices_of(all, config, Some(first_task))?;
    Ok((all.select(&tr), all.select(&va)))
}

/// The row indices [`split_examples`] puts in training and in validation, so that callers can
/// find the validation rows' other fields.
pub fn split_indices(all: &Examples, config: &TrainConfig) -> Result<(Vec<usize>, Vec<usize>)> {
    split_indices_of(all, config, None)
}

/// [`split_indices`], naming the too-small classes by the first task's labels when given.
pub fn split_indices_of(
    all: &Examples,
    config: &TrainConfig,
    first_task: Option<&TaskSpec>,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if all.targets.is_empty() {
        return Err(Error::invalid("no tasks"));
    }
    let strata = all.split_strata();
    if config.head.kind == HeadKind::Linear {
        // Nothing held out: the linear recipe validates by cross-validation on every example.
        return Ok(((0..all.len()).collect(), Vec::new()));
    }
    let (tr, va) = stratified_split(&strata, config.valid_fraction, config.seed);
    if tr.is_empty() || va.is_empty() {
        let by = match &all.strata {
            Some(_) => By::Field,
            None => By::Task(first_task),
        };
        return Err(Error::invalid(too_few_to_hold_out(&strata, all.len(), by)));
    }
    Ok((tr, va))
}

/// What the strata of a split are.
enum By<'a> {
    /// The first task's classes (named by its spec when given).
    Task(Option<&'a TaskSpec>),
    /// Values of the fields `--stratify-by` names.
    Field,
}

/// Why no validation set could be held out: which classes are too small, not just how many
/// examples there are (300 examples of 300 classes is plenty of data but no split).
fn too_few_to_hold_out(strata: &[String], n: usize, by: By<'_>) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in strata {
        *counts.entry(s.as_str()).or_default() += 1;
    }
    let single: Vec<&str> = counts
        .iter()
        .filter(|(_, &c)| c < 2)
        .map(|(s, _)| *s)
        .collect();
    if single.is_empty() {
        return format!(
            "{n} examples are too few to hold out a validation set; add data or pass --valid"
        );
    }
    let task = match by {
        By::Task(t) => t,
        By::Field => {
            return format!(
                "no validation set can be held out of {n} examples stratified by field: a \
                 value needs at least 2 examples for one to be held out, and {} of the {} \
                 values have only one; stratify by another field or pass --valid",
                single.len(),
                counts.len()
            )
        }
    };
    // Class strata are label indices: show the labels where the task is known.
    let name = |s: &str| -> String {
        match (task, s.parse::<usize>()) {
            (Some(t), Ok(i)) if matches!(t.kind, TaskKind::Multiclass | TaskKind::Binary) => {
                t.labels.get(i).cloned().unwrap_or_else(|| s.to_string())
            }
            _ => s.to_string(),
        }
    };
    let shown: Vec<String> = single
        .iter()
        .take(5)
        .map(|s| format!("`{}`", name(s)))
        .collect();
    format!(
        "no validation set can be held out of {n} examples: a class needs at least 2 examples \
         for one to be held out, and {} of the {} classes (of the first task) have only one ({}{}); \
         add examples of those classes or pass --valid",
        single.len(),
        counts.len(),
        shown.join(", "),
        if single.len() > shown.len() { ", ..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(classes: Vec<usize>) -> Examples {
        let n = classes.len();
        Examples {
            emb: Array2::zeros((n, 0)),
            feats: Array2::zeros((n, 0)),
            targets: vec![Targets::Class(classes)],
            tokens: None,
            hidden: None,
            strata: None,
            soft: None,
        }
    }

    #[test]
    fn a_split_that_cannot_hold_out_names_the_classes_too_small() {
        // 300 classes of one example each: plenty of data, no split.
        let all = examples((0..300).collect());
        let spec = TaskSpec {
            name: "y".into(),
            kind: TaskKind::Multiclass,
            labels: (0..300).map(|i| format!("class-{i}")).collect(),
        };
        let e = split_indices_of(&all, &TrainConfig::default(), Some(&spec)).unwrap_err();
        let m = e.message();
        assert!(m.contains("300 of the 300 classes"), "{m}");
        assert!(m.contains("`class-0`") && m.contains("..."), "{m}");
        assert!(!m.contains("too few"), "{m}");
        // Enough of every class: the split works.
        let ok = examples((0..300).map(|i| i % 3).collect());
        let (tr, va) = split_indices(&ok, &TrainConfig::default()).unwrap();
        assert_eq!(tr.len() + va.len(), 300);
        // Two examples of one class are enough: one of them is held out.
        let (tr, va) = split_indices(&examples(vec![0, 0]), &TrainConfig::default()).unwrap();
        assert_eq!((tr.len(), va.len()), (1, 1));
    }

    #[test]
    fn a_split_on_a_field_keeps_its_values_in_proportion_and_carries_them_along() {
        // Labels alternate 0/1; a field is "web" for the first 80 rows and "mail" for the
        // last 20. Split on the field, the validation share holds 16 web and 4 mail rows.
        let all = examples((0..100).map(|i| i % 2).collect());
        let field: Vec<String> = (0..100)
            .map(|i| if i < 80 { "web" } else { "mail" }.to_string())
            .collect();
        let by_field = all.clone().stratified_by(field.clone()).unwrap();
        let (tr, va) = split_indices(&by_field, &TrainConfig::default()).unwrap();
        let web = va.iter().filter(|&&i| i < 80).count();
        assert_eq!((web, va.len() - web, tr.len()), (16, 4, 80));
        let picked = by_field.select(&va);
        assert_eq!(
            picked.split_strata(),
            va.iter().map(|&i| field[i].clone()).collect::<Vec<_>>()
        );
        // Without it the first task's labels are the strata.
        assert_eq!(all.split_strata()[..3], ["0", "1", "0"]);
        assert!(all.clone().stratified_by(vec!["x".into()]).is_err());
        // A field value of one row cannot be split, and the error says it is about the field.
        let lonely: Vec<String> = (0..100).map(|i| format!("row-{i}")).collect();
        let e = split_indices(&all.stratified_by(lonely).unwrap(), &TrainConfig::default())
            .unwrap_err();
        assert!(
            e.message().contains("stratified by field"),
            "{}",
            e.message()
        );
    }
}
