"""Data for the newcomer's tour (scripts/demo.sh), standard library only.

``split DIR``: examples/data/iris.csv (``species,f1,f2,f3,f4``) as the built-in XGBoost wants
it — CSV, label first as a number, no header — shuffled into ``DIR/train/train.csv`` (120
rows) and ``DIR/validation/validation.csv`` (30 rows); the validation features alone (no label)
into ``DIR/batch/iris.csv`` for the batch transform, their species into ``DIR/labels.txt``,
and five of them into ``DIR/predict.csv`` for ``homeport invoke``.

``show LABELS PREDICTIONS``: each prediction of class index next to the true species, and the
accuracy.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SPECIES = ["setosa", "versicolor", "virginica"]
IRIS = Path(__file__).resolve().parent / "data" / "iris.csv"


def split(folder: Path) -> None:
    rows = []
    for line in IRIS.read_text().splitlines():
        species, *features = line.split(",")
        rows.append((species, features))
    random.Random(7).shuffle(rows)
    train, validation = rows[:120], rows[120:]
    for name, part in (("train", train), ("validation", validation)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        lines = [",".join([str(SPECIES.index(s)), *f]) for s, f in part]
        (folder / name / f"{name}.csv").write_text("\n".join(lines) + "\n")
    (folder / "batch").mkdir(exist_ok=True)
    features = [",".join(f) for _, f in validation]
    (folder / "batch" / "iris.csv").write_text("\n".join(features) + "\n")
    (folder / "labels.txt").write_text("\n".join(s for s, _ in validation) + "\n")
    (folder / "predict.csv").write_text("\n".join(features[:5]) + "\n")


def show(labels: Path, predictions: Path) -> None:
    truth = labels.read_text().split()
    predicted = [SPECIES[int(float(p.split(",")[0]))] for p in predictions.read_text().split()]
    right = 0
    for i, (want, got) in enumerate(zip(truth, predicted, strict=True)):
        right += want == got
        if i < 8 or want != got:
            print(f"  {want:<11} → {got:<11} {'ok' if want == got else 'WRONG'}")
    print(f"  ... accuracy {right}/{len(truth)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "split":
        split(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "show":
        show(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: iris_tour.py split DIR | show LABELS PREDICTIONS")
