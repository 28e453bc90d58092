//! Metrics: accuracy, per-class and macro/micro precision, recall and F1, confusion matrix,
//! ROC AUC, and MAE / RMSE / Pearson / R² for regression. Undefined ratios (0/0) are 0.

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class or label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class or label name.
    pub label: String,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Number of true members.
    pub support: usize,
}

/// Metrics of a single-label (multiclass or binary) task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Fraction of rows predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1.
    pub macro_f1: f64,
    /// Unweighted mean of per-class precision.
    pub macro_precision: f64,
    /// Unweighted mean of per-class recall.
    pub macro_recall: f64,
    /// F1 from pooled counts; equals accuracy for single-label tasks.
    pub micro_f1: f64,
    /// Per-class details.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// ROC AUC of the positive class's score (binary tasks with both classes present).
    pub roc_auc: Option<f64>,
    /// Number of rows.
    pub n: usize,
}

/// Metrics of a multi-label task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultilabelMetrics {
    /// Fraction of rows whose whole label set is right.
    pub subset_accuracy: f64,
    /// Fraction of individual label decisions that are right.
    pub accuracy: f64,
    /// Unweighted mean of per-label F1.
    pub macro_f1: f64,
    /// F1 from counts pooled over all labels.
    pub micro_f1: f64,
    /// Per-label details.
    pub per_label: Vec<ClassMetrics>,
    /// Per-label ROC AUC (None where a label has only one class in the data).
    pub roc_auc: Vec<Option<f64>>,
    /// Number of rows.
    pub n: usize,
}

/// Metrics of a regression task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Pearson correlation (0 when either side is constant).
    pub pearson: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// Number of rows.
    pub n: usize,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn prf(tp: usize, fp: usize, fn_: usize) -> (f64, f64, f64) {
    let p = ratio(tp as f64, (tp + fp) as f64);
    let r = ratio(tp as f64, (tp + fn_) as f64);
    (p, r, f1(tp, fp, fn_))
}

/// F1 from true positives, false positives and false negatives: 2tp / (2tp + fp + fn), the
/// harmonic mean of precision and recall in one division; 0 when all three are 0.
pub fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64)
}

/// Mean [`f1`] over classes (or labels) from their (tp, fp, fn) counts; 0 with none.
pub fn macro_f1(counts: &[(usize, usize, usize)]) -> f64 {
    ratio(
        counts.iter().map(|&(tp, fp, fn_)| f1(tp, fp, fn_)).sum(),
        counts.len() as f64,
    )
}

/// Metrics from true and predicted class indices; `positive_scores` (binary only) adds ROC AUC.
pub fn classification_metrics(
    labels: &[String],
    truth: &[usize],
    pred: &[usize],
    positive_scores: Option<&[f32]>,
) -> ClassificationMetrics {
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        if t < k && p < k {
            confusion[t][p] += 1;
        }
    }
    let n = truth.len();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let fp: usize = (0..k).filter(|&t| t != c).map(|t| confusion[t][c]).sum();
            let fn_: usize = (0..k).filter(|&p| p != c).map(|p| confusion[c][p]).sum();
            let (precision, recall, f1) = prf(tp, fp, fn_);
            ClassMetrics {
                label: labels[c].clone(),
                precision,
                recall,
                f1,
                support: tp + fn_,
            }
        })
        .collect();
    let mean = |f: fn(&ClassMetrics) -> f64| ratio(per_class.iter().map(f).sum(), k as f64);
    let roc = positive_scores.and_then(|s| {
        let pos: Vec<bool> = truth.iter().map(|&t| t == 1).collect();
        roc_auc(s, &pos)
    });
    ClassificationMetrics {
        accuracy: ratio(correct as f64, n as f64),
        macro_f1: mean(|m| m.f1),
        macro_precision: mean(|m| m.precision),
        macro_recall: mean(|m| m.recall),
        micro_f1: ratio(correct as f64, n as f64),
        per_class,
        confusion,
        roc_auc: if k == 2 { roc } else { None },
        n,
    }
}

/// Multi-label metrics from 0/1 truth, 0/1 predictions and per-label scores (row-major).
pub fn multilabel_metrics(
    labels: &[String],
    truth: &[Vec<f32>],
    pred: &[Vec<f32>],
    scores: &[Vec<f32>],
) -> MultilabelMetrics {
    let k = labels.len();
    let n = truth.len();
    let (mut tp, mut fp, mut fn_) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    let (mut exact, mut right) = (0usize, 0usize);
    for (t, p) in truth.iter().zip(pred) {
        let mut all = true;
        for j in 0..k {
            let (tj, pj) = (t[j] > 0.5, p[j] > 0.5);
            match (tj, pj) {
                (true, true) => tp[j] += 1,
                (false, true) => fp[j] += 1,
                (true, false) => fn_[j] += 1,
                _ => {}
            }
            if tj == pj {
                right += 1;
            } else {
                all = false;
            }
        }
        exact += all as usize;
    }
    let per_label: Vec<ClassMetrics> = (0..k)
        .map(|j| {
            let (precision, recall, f1) = prf(tp[j], fp[j], fn_[j]);
            ClassMetrics {
                label: labels[j].clone(),
                precision,
                recall,
                f1,
                support: tp[j] + fn_[j],
            }
        })
        .collect();
    let (_, _, micro_f1) = prf(tp.iter().sum(), fp.iter().sum(), fn_.iter().sum());
    let roc_auc = (0..k)
        .map(|j| {
            let s: Vec<f32> = scores.iter().map(|r| r[j]).collect();
            let t: Vec<bool> = truth.iter().map(|r| r[j] > 0.5).collect();
            roc_auc(&s, &t)
        })
        .collect();
    MultilabelMetrics {
        subset_accuracy: ratio(exact as f64, n as f64),
        accuracy: ratio(right as f64, (n * k) as f64),
        macro_f1: ratio(per_label.iter().map(|m| m.f1).sum(), k as f64),
        micro_f1,
        per_label,
        roc_auc,
        n,
    }
}

/// ROC AUC: the probability that a random positive scores above a random negative (ties count
/// half), computed from ranks. None when either class is absent.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties, then the Mann-Whitney U statistic.
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if positive[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// Regression metrics of predictions against truth.
pub fn regression_metrics(truth: &[f32], pred: &[f32]) -> RegressionMetrics {
    let n = truth.len();
    let nf = n.max(1) as f64;
    let (mut abs, mut sq) = (0.0f64, 0.0f64);
    for (&t, &p) in truth.iter().zip(pred) {
        let d = (p - t) as f64;
        abs += d.abs();
        sq += d * d;
    }
    let mt = truth.iter().map(|&x| x as f64).sum::<f64>() / nf;
    let mp = pred.iter().map(|&x| x as f64).sum::<f64>() / nf;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&t, &p) in truth.iter().zip(pred) {
        let (dt, dp) = (t as f64 - mt, p as f64 - mp);
        sxy += dt * dp;
        sxx += dt * dt;
        syy += dp * dp;
    }
    RegressionMetrics {
        mae: abs / nf,
        rmse: (sq / nf).sqrt(),
        pearson: ratio(sxy, (sxx * syy).sqrt()),
        r2: if sxx > 0.0 { 1.0 - sq / sxx } else { 0.0 },
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn classification_by_hand() {
        // truth 0,0,1,1,2 ; pred 0,1,1,1,0
        // class0: tp1 fp1 fn1 -> p .5 r .5 f1 .5 ; class1: tp2 fp1 fn0 -> p 2/3 r 1 f1 .8 ;
        // class2: tp0 fp0 fn1 -> 0. macro f1 = (.5+.8+0)/3 = .4333 ; accuracy 3/5
        let m = classification_metrics(&names(3), &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], None);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.per_class[1].f1 - 0.8).abs() < 1e-12);
        assert!((m.macro_f1 - 1.3 / 3.0).abs() < 1e-12);
        assert_eq!(
            m.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        assert_eq!(m.per_class[2].support, 1);
    }

    #[test]
    fn auc_by_hand_with_ties() {
        // pos scores .9 .5, neg .5 .1: pairs (.9>.5)=1 (.9>.1)=1 (.5=.5)=.5 (.5>.1)=1 -> 3.5/4
        let auc = roc_auc(&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false]).unwrap();
        assert!((auc - 0.875).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn regression_by_hand() {
        let m = regression_metrics(&[1.0, 2.0, 3.0], &[2.0, 2.0, 4.0]);
        assert!((m.mae - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.rmse - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        // pred deviations -2/3,-2/3,4/3 ; truth -1,0,1 -> sxy 2, sxx 2, syy 8/3
        assert!((m.pearson - 2.0 / (2.0f64 * 8.0 / 3.0).sqrt()).abs() < 1e-6);
        let c = regression_metrics(&[1.0, 1.0], &[1.0, 2.0]);
        assert_eq!(c.pearson, 0.0);
    }

    #[test]
    fn multilabel_by_hand() {
        let truth = vec![vec![1., 0.], vec![1., 1.]];
        let pred = vec![vec![1., 0.], vec![0., 1.]];
        let m = multilabel_metrics(&names(2), &truth, &pred, &truth);
        assert!((m.subset_accuracy - 0.5).abs() < 1e-12);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        // pooled tp 2, fp 0, fn 1 -> p 1, r 2/3, f1 .8
        assert!((m.micro_f1 - 0.8).abs() < 1e-12);
        assert_eq!(m.roc_auc[0], None);
    }
}
