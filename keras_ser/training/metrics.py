"""Metrics as pure NumPy functions: WA, UA, macro-F1, confusion matrix; MAE, LCC, SRCC, CCC.

WA (weighted accuracy) is plain accuracy; UA (unweighted accuracy) is the mean per-class recall
over the classes present in `y_true`. Each is tested against scikit-learn / SciPy.
"""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):
    """`(num_classes, num_classes)` counts; rows are true classes, columns predictions."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def weighted_accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def unweighted_accuracy(y_true, y_pred, num_classes=None):
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes])) if len(classes) else float("nan")


def macro_f1(y_true, y_pred, num_classes):
    """Macro-averaged F1 over the classes present in `y_true` or `y_pred`."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(float)
    prec = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    present = (cm.sum(0) + cm.sum(1)) > 0
    return float(f1[present].mean()) if present.any() else float("nan")


def classification_metrics(y_true, y_pred, label_names):
    k = len(label_names)
    return {
        "wa": weighted_accuracy(y_true, y_pred), "ua": unweighted_accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, k), "n": int(len(y_true)),
        "confusion": confusion_matrix(y_true, y_pred, k).tolist(), "labels": list(label_names),
    }


def pooled_metrics(confusion):
    """WA, UA and the count of a summed confusion matrix (the test parts of all folds pooled, as
    scikit-learn's cross_val_predict scores them): `{"wa", "ua", "n"}`."""
    cm = np.asarray(confusion, float)
    present = cm.sum(1) > 0
    recall = np.diag(cm)[present] / cm.sum(1)[present]
    n = int(cm.sum())
    return {"wa": float(np.trace(cm) / n) if n else float("nan"),
            "ua": float(recall.mean()) if present.any() else float("nan"), "n": n}


def mae(y_true, y_pred):
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def pearson(x, y):
    """Linear correlation coefficient (LCC)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xm, ym = x - x.mean(), y - y.mean()
    den = np.sqrt((xm ** 2).sum() * (ym ** 2).sum())
    return float((xm * ym).sum() / den) if den > 0 else float("nan")


def _rank(a):
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    a = np.asarray(a, float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sa = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sa[j + 1] == sa[i]:
            j += 1
        ranks[order[i: j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return ranks


def spearman(x, y):
    """Spearman rank correlation (SRCC)."""
    return pearson(_rank(x), _rank(y))


def ccc(x, y):
    """Lin's concordance correlation coefficient (population variances)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    den = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    return float(2 * cov / den) if den > 0 else float("nan")


def regression_metrics(y_true, y_pred):
    """MAE, LCC, SRCC, CCC and n; `mae_constant` is the MAE of the best constant prediction (the
    targets' median): an oracle floor that a model must beat before its MAE means anything, since
    strength labels can be concentrated in a narrow range."""
    y_true = np.asarray(y_true, float)
    floor = mae(y_true, np.full(len(y_true), np.median(y_true))) if len(y_true) else float("nan")
    return {"mae": mae(y_true, y_pred), "mae_constant": floor, "lcc": pearson(y_true, y_pred),
            "srcc": spearman(y_true, y_pred), "ccc": ccc(y_true, y_pred), "n": int(len(y_true))}


def mean_sd(values):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    return {"mean": float(v.mean()) if len(v) else float("nan"),
            "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
