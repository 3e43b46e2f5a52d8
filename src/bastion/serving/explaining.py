"""SHAP for a served model whose inputs include text categories.

:class:`bastion.monitoring.explain.Explainer` perturbs features numerically (its
permutation masker draws from a background array); a pipeline that one-hot encodes
text columns inside itself cannot be fed such arrays. :class:`CodedModel` presents
the model to SHAP with each text column replaced by an integer code, and decodes the
codes back to the categories before the model sees them, so every perturbed row is a
row the model could have been sent.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from bastion.monitoring.explain import Explainer


class CodedModel:
    def __init__(self, model: Any, text_columns: list[str]) -> None:
        self.model = model
        self.text_columns = text_columns
        self.categories: dict[str, list[Any]] = {c: [] for c in text_columns}
        self._index: dict[str, dict[Any, int]] = {c: {} for c in text_columns}
        self._lock = threading.Lock()
        self.classes_ = getattr(model, "classes_", None)
        if not hasattr(model, "predict_proba"):
            del self.predict_proba

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        out = frame.copy()
        with self._lock:
            for column in self.text_columns:
                index, values = self._index[column], self.categories[column]
                codes = []
                for value in frame[column].tolist():
                    if value is None or (isinstance(value, float) and value != value):
                        codes.append(-1)
                        continue
                    if value not in index:
                        index[value] = len(values)
                        values.append(value)
                    codes.append(index[value])
                out[column] = pd.Series(codes, index=frame.index, dtype="int64")
        return out

    def decode(self, frame: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        out = frame.copy()
        for column in self.text_columns:
            values = self.categories[column]
            out[column] = [
                values[int(code)] if 0 <= int(code) < len(values) else np.nan
                for code in frame[column].tolist()
            ]
        return out

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.model.predict(self.decode(frame))

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self.model.predict_proba(self.decode(frame))


def build_explainer(
    model: Any, background: pd.DataFrame, coded: CodedModel | None = None
) -> tuple[Explainer, CodedModel | None]:
    """An explainer over ``background``; text columns coded as above (with ``coded``'s
    codes when given, so a category keeps its code from one call to the next)."""
    import pandas as pd

    from bastion.monitoring.explain import Explainer

    text = [
        str(c)
        for c in background.columns
        if not pd.api.types.is_numeric_dtype(background[c])
        and not pd.api.types.is_bool_dtype(background[c])
    ]
    if not text:
        return Explainer(model, background), None
    coded = coded or CodedModel(model, text)
    numeric = coded.encode(background).astype("float64")
    return Explainer(coded, numeric), coded
