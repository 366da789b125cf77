"""Evaluation protocols: splits into folds of (train, dev, test) utterance ids.

Speaker-independent protocols split by groups (speaker or session): no group is in two parts of
one fold. Model selection uses `dev` only; `test` is for the final numbers. `check_fold` asserts
disjointness (used by the tests and by `data.fold_list` before every run). A fold whose development
set was drawn from the training groups' utterances (`Fold.dev_from_train`: leave-one-group-out
with a dev fraction, or group k-fold with too few groups) shares groups between train and dev by
design; its test group still shares nothing.

    seeded_split        random 8:1:1 (StrengthNet; `group=` makes it speaker-independent)
    leave_one_group_out one group tested per fold, another group for dev (MLEE: speakers;
                        leave-one-session-out on IEMOCAP with group="session")
    kfold               k folds (EPR 10, FG_CME 5); stratified by emotion, or by groups
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class Fold:
    name: str
    train: list
    dev: list
    test: list
    dev_from_train: bool = False  # dev drawn from the training groups' utterances

    def to_dict(self):
        d = {"name": self.name, "train": len(self.train), "dev": len(self.dev), "test": len(self.test)}
        if self.dev_from_train:
            d["dev_from_train"] = True
        return d


def check_fold(fold, manifest=None, group=None):
    """Raise ValueError unless train/dev/test are disjoint (and their groups, if `group`; train and
    dev may share groups when `fold.dev_from_train`)."""
    sets = [set(fold.train), set(fold.dev), set(fold.test)]
    for a, b, name in ((0, 1, "train/dev"), (0, 2, "train/test"), (1, 2, "dev/test")):
        if sets[a] & sets[b]:
            raise ValueError(f"fold {fold.name}: {name} share utterances")
    if group is not None and manifest is not None:
        g = dict(zip(manifest["utterance_id"], manifest[group]))
        gs = [{g[u] for u in s} for s in sets]
        for a, b, name in ((0, 1, "train/dev"), (0, 2, "train/test"), (1, 2, "dev/test")):
            if name == "train/dev" and fold.dev_from_train:
                continue
            if gs[a] & gs[b]:
                raise ValueError(f"fold {fold.name}: {name} share {group}s {sorted(gs[a] & gs[b])[:3]}")
    if not fold.train or not fold.test:
        raise ValueError(f"fold {fold.name}: empty train or test set")
    return fold


def _split_ids(ids, fractions, rng):
    """Shuffle and cut by fractions; every part with a non-zero fraction gets at least one item."""
    ids = list(ids)
    rng.shuffle(ids)
    n = len(ids)
    n_dev = max(int(fractions[1] > 0), int(round(fractions[1] * n)))
    n_test = max(int(len(fractions) > 2 and fractions[2] > 0), int(round((1 - fractions[0] - fractions[1]) * n)))
    a = n - n_dev - n_test
    if a < 1:
        raise ValueError(f"cannot split {n} items into train/dev/test by {fractions}")
    return ids[:a], ids[a:a + n_dev], ids[a + n_dev:]


def seeded_split(manifest, fractions=(0.8, 0.1, 0.1), seed=0, group=None):
    """One fold: a seeded random train/dev/test split (by utterance, or by `group`)."""
    rng = np.random.default_rng(seed)
    if group is None:
        tr, dv, te = _split_ids(sorted(manifest["utterance_id"]), fractions, rng)
    else:
        groups = sorted(manifest[group].unique())
        gtr, gdv, gte = _split_ids(groups, fractions, rng)
        by = manifest.groupby(group)["utterance_id"].apply(list).to_dict()
        tr, dv, te = ([u for g in gs for u in by[g]] for gs in (gtr, gdv, gte))
    return [Fold(f"split-seed{seed}", tr, dv, te)]


def leave_one_group_out(manifest, group="speaker", dev="next"):
    """One fold per group: it is the test set; `dev` picks the development group.

    dev: "next" (the next group in sorted order, MLEE's 8/1/1 speakers on IEMOCAP-style corpora)
    or a float fraction of the training utterances (not speaker-independent for dev).
    """
    groups = sorted(manifest[group].unique())
    if len(groups) < 3 and dev == "next":
        raise ValueError(f"leave-one-{group}-out with a dev {group} needs >= 3 {group}s, got {len(groups)}")
    by = manifest.groupby(group)["utterance_id"].apply(list).to_dict()
    folds = []
    for i, g in enumerate(groups):
        if dev == "next":
            d = groups[(i + 1) % len(groups)]
            train = [u for h in groups if h not in (g, d) for u in by[h]]
            folds.append(Fold(f"test-{g}", train, list(by[d]), list(by[g])))
        else:
            rest = [u for h in groups if h != g for u in by[h]]
            rng = np.random.default_rng(i)
            tr, dv, _ = _split_ids(rest, (1 - float(dev), float(dev)), rng)
            folds.append(Fold(f"test-{g}", tr, dv, list(by[g]), dev_from_train=True))
    return folds


def stratified_assignment(labels, k, rng):
    """Fold index 0..k-1 of each item: every label's items shuffled and dealt round-robin."""
    labels = np.asarray(labels)
    assign = np.empty(len(labels), int)
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        rng.shuffle(idx)
        assign[idx] = np.arange(len(idx)) % k
    return assign


def kfold(manifest, k=10, seed=0, group=None, stratify="emotion", dev_fraction=0.1):
    """k folds. With `group`, folds are group-disjoint (and dev is a held-out group of the
    training folds when there are enough groups); otherwise stratified by `stratify`."""
    rng = np.random.default_rng(seed)
    ids = manifest["utterance_id"].to_numpy()
    if group is not None:
        groups = np.array(sorted(manifest[group].unique()))
        if len(groups) < k:
            raise ValueError(f"{k}-fold by {group} needs >= {k} {group}s, got {len(groups)}")
        rng.shuffle(groups)
        parts = np.array_split(groups, k)
        gid = manifest[group].to_numpy()
        folds = []
        for i in range(k):
            test = ids[np.isin(gid, parts[i])].tolist()
            rest_groups = np.concatenate([parts[j] for j in range(k) if j != i])
            if len(rest_groups) >= 3:
                dev_groups = rest_groups[: max(1, int(round(dev_fraction * len(rest_groups))))]
            else:
                dev_groups = rest_groups[:0]
            dev = ids[np.isin(gid, dev_groups)].tolist()
            train = ids[np.isin(gid, rest_groups) & ~np.isin(gid, dev_groups)].tolist()
            if not dev:  # too few groups: dev from training utterances
                train, dev, _ = _split_ids(train, (1 - dev_fraction, dev_fraction), rng)
            folds.append(Fold(f"fold{i + 1}of{k}", train, dev, test, dev_from_train=not len(dev_groups)))
        return folds
    labels = manifest[stratify].astype(str).to_numpy() if stratify else np.zeros(len(ids), str)
    assign = stratified_assignment(labels, k, rng)
    folds = []
    for i in range(k):
        test = ids[assign == i].tolist()
        rest = ids[assign != i]
        dv_mask = np.zeros(len(rest), bool)
        rest_labels = labels[assign != i]
        for lab in np.unique(rest_labels):
            idx = np.flatnonzero(rest_labels == lab)
            rng.shuffle(idx)
            dv_mask[idx[: max(1, int(round(dev_fraction * len(idx))))]] = True
        folds.append(Fold(f"fold{i + 1}of{k}", rest[~dv_mask].tolist(), rest[dv_mask].tolist(), test))
    return folds


def make_folds(manifest, name, **kwargs):
    """Folds for a protocol name: "split", "loso", "loso_session", "kfold"."""
    if name == "split":
        return seeded_split(manifest, **kwargs)
    if name == "loso":
        return leave_one_group_out(manifest, group="speaker", **kwargs)
    if name == "loso_session":
        return leave_one_group_out(manifest, group="session", **kwargs)
    if name == "kfold":
        return kfold(manifest, **kwargs)
    raise ValueError(f"unknown protocol {name!r}; known: split, loso, loso_session, kfold")
