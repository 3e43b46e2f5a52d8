"""Scoring a scikit-learn pipeline's preprocessing straight from the checked records.

Why this exists: the usual tabular model is ``make_pipeline(make_column_transformer(
(StandardScaler(), numeric), (OneHotEncoder(), categorical)), SomeClassifier())``. For
one row, ``ColumnTransformer.transform`` costs about 7 ms of CPU here, nearly all of it
per-call overhead (building a DataFrame, selecting its columns by label, dataframe
protocol checks, joblib, validation of every block), while the arithmetic it performs
is a subtraction and a division per numeric value and a lookup per category. On a
one-request-at-a-time server that overhead *is* the latency. Neither MLflow nor
scikit-learn offer a cheaper way to call a fitted transformer on a record, and
converters to other runtimes (ONNX) compute in float32, so their answers would differ
from ``pyfunc.predict``.

So, for the fitted transformers it knows, :func:`compile_pipeline` reads their fitted
state and builds the matrix ``ColumnTransformer.transform`` would build, with the same
floating-point operations in the same order (IEEE subtraction and division are
correctly rounded in Python as in NumPy), the same layout (CSR or dense, the same
column order, no stored zeros) and the same dtype. The pipeline's final estimator then
scores that matrix with its own ``predict`` / ``predict_proba``, unchanged; a binary
``LogisticRegression`` with one ``decision_function`` call, whose sign and logistic
give both answers as its ``predict`` and ``predict_proba`` compute them (each of those
validates the matrix and computes the decision function again).

It is used only when it is safe, and checked before use: any other step, transformer,
option or column type (``drop=``, infrequent categories, ``set_output``, passthrough
columns, non-float64 outputs, float32 inputs, ...) means no compiled form, and the
pipeline scores as usual. At load, the compiled matrix for the model's input example
(and for that example with its optional values missing) must equal scikit-learn's own
output exactly — format, dtype, indices and values — or it is not used; the logistic
shortcut must give the very answers of ``predict`` and ``predict_proba`` there too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bastion.serving.payloads import Column

_NUMERIC_TYPES = ("long", "integer", "double")


class _Unsupported(Exception):
    pass


@dataclass(frozen=True)
class _Scaled:
    """A fitted ``StandardScaler`` on float64 columns."""

    columns: tuple[str, ...]
    mean: tuple[float, ...] | None
    scale: tuple[float, ...] | None

    @property
    def width(self) -> int:
        return len(self.columns)

    def values(self, row: dict[str, Any]) -> list[tuple[int, float]]:
        out = []
        mean, scale = self.mean, self.scale
        for j, name in enumerate(self.columns):
            raw = row.get(name)
            v = math.nan if raw is None else float(raw)
            if mean is not None:
                v -= mean[j]
            if scale is not None:
                v /= scale[j]
            out.append((j, v))
        return out


@dataclass(frozen=True)
class _OneHot:
    """A fitted ``OneHotEncoder`` without ``drop`` or infrequent categories."""

    columns: tuple[str, ...]
    index: tuple[dict[Any, int], ...]  # category -> column within the block
    offsets: tuple[int, ...]
    missing: tuple[int | None, ...]  # the column of a missing value (NaN was seen in fit)
    width: int
    strict: bool  # handle_unknown="error"

    def values(self, row: dict[str, Any]) -> list[tuple[int, float]]:
        out = []
        for j, name in enumerate(self.columns):
            raw = row.get(name)
            at = self.missing[j] if raw is None else self.index[j].get(raw)
            if at is None:
                if self.strict:
                    raise ValueError(
                        f"Found unknown categories [{raw!r}] in column {j} during transform"
                    )
                continue
            out.append((self.offsets[j] + at, 1.0))
        return out


Block = _Scaled | _OneHot


@dataclass(frozen=True)
class CompiledPipeline:
    """``Pipeline([ColumnTransformer, final])`` with the first step compiled."""

    blocks: tuple[Block, ...]
    width: int
    sparse: bool
    final: Any
    #: The final step is a binary ``LogisticRegression``: one ``decision_function``
    #: call gives both answers, by the rules its ``predict`` and ``predict_proba`` apply.
    logistic: bool = False

    def predict(self, rows: Sequence[dict[str, Any]]) -> tuple[list[Any], list[float] | None]:
        """Predictions and, for a binary classifier, the positive class's probability,
        as the pipeline's ``predict`` and ``predict_proba`` give them."""
        import numpy as np

        X = self.transform(rows)
        if self.logistic:
            from scipy.special import expit

            decision = self.final.decision_function(X)  # validates X: NaN is refused
            predictions = self.final.classes_.take((decision > 0).astype(np.intp))
            return predictions.tolist(), [float(p) for p in expit(decision)]
        predictions = np.asarray(self.final.predict(X)).tolist()
        proba = getattr(self.final, "predict_proba", None)
        if proba is None or len(getattr(self.final, "classes_", ())) != 2:
            return predictions, None
        return predictions, [float(p) for p in np.asarray(proba(X))[:, 1]]

    def transform(self, rows: Sequence[dict[str, Any]]) -> Any:
        """The matrix ``ColumnTransformer.transform`` gives for these (checked) rows."""
        import numpy as np

        if self.sparse:
            import scipy.sparse as sp

            data: list[float] = []
            indices: list[int] = []
            indptr = [0]
            for row in rows:
                start = 0
                for block in self.blocks:
                    for j, v in block.values(row):
                        if v != 0.0:  # NaN included, as SciPy keeps it
                            indices.append(start + j)
                            data.append(v)
                    start += block.width
                indptr.append(len(data))
            return sp.csr_matrix(
                (
                    np.asarray(data, dtype=np.float64),
                    np.asarray(indices, dtype=np.int32),
                    np.asarray(indptr, dtype=np.int32),
                ),
                shape=(len(rows), self.width),
            )
        dense = np.zeros((len(rows), self.width), dtype=np.float64)
        for i, row in enumerate(rows):
            start = 0
            for block in self.blocks:
                for j, v in block.values(row):
                    dense[i, start + j] = v
                start += block.width
        return dense


def compile_pipeline(
    model: Any, schema: Sequence[Column] | None, example: Any = None
) -> CompiledPipeline | None:
    """The compiled form of ``model``, or None when it has none (or fails its check
    against scikit-learn on ``example``, a DataFrame in the signature's columns)."""
    if schema is None or example is None or len(example) == 0:
        return None
    try:
        compiled = _compile(model, {c.name: c for c in schema})
        variants = _verify(compiled, model, schema, example)
    except _Unsupported:
        return None
    if _binary_logistic(compiled.final, compiled.width):
        shortcut = replace(compiled, logistic=True)
        if all(_same_answers(shortcut, compiled, rows) for rows in variants):
            return shortcut
    return compiled


def _same_answers(a: CompiledPipeline, b: CompiledPipeline, rows: list[dict[str, Any]]) -> bool:
    try:
        return a.predict(rows) == b.predict(rows)
    except Exception:
        return False


def _compile(model: Any, columns: dict[str, Column]) -> CompiledPipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if type(model) is not Pipeline or len(model.steps) != 2:
        raise _Unsupported
    ct = model.steps[0][1]
    if type(ct) is not ColumnTransformer or not hasattr(ct, "transformers_"):
        raise _Unsupported
    if _has_output_config(ct) or _has_output_config(model):
        raise _Unsupported
    blocks: list[Block] = []
    for _, transformer, names in ct.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            raise _Unsupported  # passthrough
        names = _column_names(names, columns)
        if not names:
            continue
        if type(transformer) is StandardScaler:
            blocks.append(_scaler(transformer, names, columns))
        elif type(transformer) is OneHotEncoder:
            blocks.append(_one_hot(transformer, names))
        else:
            raise _Unsupported
    if not blocks:
        raise _Unsupported
    final = model.steps[1][1]
    if final is None or isinstance(final, str):
        raise _Unsupported
    width = sum(b.width for b in blocks)
    return CompiledPipeline(tuple(blocks), width, bool(ct.sparse_output_), final)


def _binary_logistic(final: Any, width: int) -> bool:
    from sklearn.linear_model import LogisticRegression

    return (
        type(final) is LogisticRegression
        and len(final.classes_) == 2
        and getattr(final, "coef_", None) is not None
        and final.coef_.shape == (1, width)
    )


def _has_output_config(obj: Any) -> bool:
    config = getattr(obj, "_sklearn_output_config", None) or {}
    return bool(config.get("transform", "default") != "default")


def _column_names(names: Any, columns: dict[str, Column]) -> tuple[str, ...]:
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not all(isinstance(n, str) and n in columns for n in names):
        raise _Unsupported  # positions, masks, callables or columns the signature lacks
    return tuple(names)


def _floats(values: Any, width: int) -> tuple[float, ...]:
    import numpy as np

    array = np.asarray(values)
    if array.dtype != np.float64 or array.shape != (width,):
        raise _Unsupported
    return tuple(float(v) for v in array)


def _scaler(scaler: Any, names: tuple[str, ...], columns: dict[str, Column]) -> _Scaled:
    if not all(columns[n].type in _NUMERIC_TYPES for n in names):
        raise _Unsupported  # float32 blocks stay float32 in scikit-learn
    if getattr(scaler, "n_features_in_", None) != len(names):
        raise _Unsupported
    mean = _floats(scaler.mean_, len(names)) if scaler.with_mean else None
    scale = _floats(scaler.scale_, len(names)) if scaler.with_std else None
    return _Scaled(names, mean, scale)


def _one_hot(encoder: Any, names: tuple[str, ...]) -> _OneHot:
    import numpy as np

    if (
        encoder.drop is not None
        or getattr(encoder, "_infrequent_enabled", False)
        or encoder.handle_unknown not in ("ignore", "error")
        or np.dtype(encoder.dtype) != np.float64
        or len(encoder.categories_) != len(names)
    ):
        raise _Unsupported
    index: list[dict[Any, int]] = []
    missing: list[int | None] = []
    offsets: list[int] = []
    width = 0
    for categories in encoder.categories_:
        lookup: dict[Any, int] = {}
        nan_at: int | None = None
        for i, value in enumerate(categories.tolist()):
            if isinstance(value, float) and math.isnan(value):
                nan_at = i
            elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                lookup[value] = i
            else:
                raise _Unsupported  # None, floats, booleans: matching rules differ
        index.append(lookup)
        missing.append(nan_at)
        offsets.append(width)
        width += len(categories)
    strict = encoder.handle_unknown == "error"
    return _OneHot(names, tuple(index), tuple(offsets), tuple(missing), width, strict)


def _verify(
    compiled: CompiledPipeline, model: Any, schema: Sequence[Column], example: Any
) -> list[list[dict[str, Any]]]:
    """Raise :class:`_Unsupported` unless the compiled matrix equals scikit-learn's on
    the example, as given and with its optional values missing (the rows returned)."""
    import numpy as np
    import scipy.sparse as sp

    from bastion.serving import payloads

    names = {c.name for c in schema}
    rows = [
        {k: (None if _missing(v) else _plain(v)) for k, v in r.items() if k in names}
        for r in example.to_dict(orient="records")
    ]
    optional = [c.name for c in schema if not c.required]
    variants = [rows]
    if optional:
        variants.append([{**r, **{n: None for n in optional}} for r in rows])
    for variant in variants:
        try:
            payloads.check(variant, schema)
            expected = model.steps[0][1].transform(payloads.frame(variant, schema))
        except Exception as exc:
            raise _Unsupported from exc
        got = compiled.transform(variant)
        if sp.issparse(expected) != sp.issparse(got):
            raise _Unsupported
        if sp.issparse(expected):
            expected = expected.tocsr()
            same = (
                expected.shape == got.shape
                and expected.dtype == got.dtype
                and np.array_equal(expected.indptr, got.indptr)
                and np.array_equal(expected.indices, got.indices)
                and np.array_equal(expected.data, got.data, equal_nan=True)
            )
        else:
            same = (
                isinstance(expected, np.ndarray)
                and expected.shape == got.shape
                and expected.dtype == got.dtype
                and np.array_equal(expected, got, equal_nan=True)
            )
        if not same:
            raise _Unsupported
    return variants


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
