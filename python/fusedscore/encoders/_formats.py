"""Directory formats: sentence-transformers ``modules.json`` parsing, Dense projection layers, and
``detect_format`` (``encoders.load`` maps its answer to an encoder class: the classes import this module).

Format detection (``detect_format``), first match wins:

1. ``colbert_linear.pt`` or ``sparse_linear.pt`` present              -> "bgem3" (FlagEmbedding)
2. ``modules.json`` with a pylate module, or a ``config_sentence_transformers.json`` carrying PyLate's
   keys (``query_prefix``/``query_length``/``document_length``) or ``model_type`` "ColBERT"  -> "colbert"
3. ``modules.json`` with a SpladePooling / MLMTransformer module, or ``model_type`` "SparseEncoder" -> "splade"
4. ``modules.json`` with a Pooling module                               -> "dense"
5. ``config.json`` architectures ``*ForMaskedLM``                        -> "splade"
6. ``config.json`` architectures ``*ForSequenceClassification``          -> "cross"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ._base import check_model_dir, describe_error, read_json, unreadable

__all__ = ["detect_format", "st_modules", "transformer_dir", "DenseLayer", "load_dense_layers",
           "check_dense_chain", "activation_module"]


def st_modules(path: Path) -> list[dict[str, Any]]:
    """The ``modules.json`` entries (idx, name, path, type), or [] when absent."""
    mods = read_json(path / "modules.json", [])
    if not isinstance(mods, list):
        raise ValueError(f"encoders: {str(path / 'modules.json')!r} must hold a list of modules, got {type(mods).__name__}")
    return mods


def _kind(module_type: str) -> str:
    return module_type.rsplit(".", 1)[-1]


def transformer_dir(path: Path, mods: list[dict[str, Any]], where: str) -> Path:
    """Directory of the Transformer (or MLMTransformer) module: the root ("") or e.g. ``0_Transformer``."""
    for m in mods:
        if _kind(m.get("type", "")) in ("Transformer", "MLMTransformer"):
            d = path / m.get("path", "")
            if not (d / "config.json").is_file():
                raise ValueError(f"{where}: the Transformer module directory {str(d)!r} has no config.json")
            return d
    raise ValueError(f"{where}: {str(path / 'modules.json')!r} must list a Transformer module, got types "
                     f"{[m.get('type') for m in mods]}")


def st_transformer_config(tdir: Path) -> dict[str, Any]:
    """sentence_bert_config.json (max_seq_length, do_lower_case, ...) of a Transformer module, or {}."""
    for name in ("sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
                 "sentence_xlm-roberta_config.json"):
        cfg = read_json(tdir / name)
        if cfg is not None:
            return cfg
    return {}


# Parameter-free activations that sentence-transformers / PyLate checkpoints name (Dense modules'
# activation_function, a CrossEncoder's activation_fn). A config file names a dotted path that the peers
# import and call; any other path is refused: "torch.utils.collect_env.main" would run at load.
_ACTIVATIONS = ("Identity", "Sigmoid", "Tanh", "ReLU", "ReLU6", "GELU", "SiLU", "Mish", "ELU", "SELU", "CELU",
                "LeakyReLU", "Softplus", "Softsign", "Softmax", "LogSoftmax", "LogSigmoid", "Hardtanh", "Hardsigmoid",
                "Hardswish", "Tanhshrink")


def _known_activations() -> dict[str, type]:
    """Each allowed class under the paths checkpoints use: ``torch.nn.Tanh`` and where it is defined,
    ``torch.nn.modules.activation.Tanh`` (``torch.nn.modules.linear.Identity``), as ``fullname`` writes it."""
    out = {}
    for name in _ACTIVATIONS:
        cls = getattr(torch.nn, name)
        out[f"torch.nn.{name}"] = cls
        out[f"{cls.__module__}.{name}"] = cls
    return out


def activation_module(path: Any, where: str, file: Path, key: str) -> torch.nn.Module:
    """The activation a config file names at ``key``, from a fixed list of torch classes (None/"": Identity).

    Raises:
        ValueError: any other value, naming ``file`` and the value; nothing it names is imported or called.
    """
    if path is None or path == "":
        return torch.nn.Identity()
    cls = _known_activations().get(path) if isinstance(path, str) else None
    if cls is None:
        names = ", ".join(_ACTIVATIONS)
        raise ValueError(f"{where}: {key} in {str(file)!r} must be a known activation class (torch.nn.<Name> or "
                         f"torch.nn.modules.<module>.<Name> with Name one of {names}), got {path!r}; other values "
                         "are refused because loading would import and call them")
    return cls()


class DenseLayer(torch.nn.Module):
    """sentence-transformers / PyLate ``Dense``: ``act(x W^T + b)`` (+ an optional residual projection)."""

    def __init__(self, cfg: dict[str, Any], state: dict[str, torch.Tensor], where: str, file: Path):
        super().__init__()
        fin, fout = int(cfg["in_features"]), int(cfg["out_features"])
        self.linear = torch.nn.Linear(fin, fout, bias=bool(cfg.get("bias", True)))
        self.activation = activation_module(cfg.get("activation_function"), where, file, "activation_function")
        self.use_residual = bool(cfg.get("use_residual", False))
        self.residual = torch.nn.Linear(fin, fout, bias=False) if self.use_residual and fin != fout else None
        mine = {k: v for k, v in state.items() if k.startswith(("linear.", "residual."))}
        for k, want in self.state_dict().items():
            got = mine.get(k)
            if got is not None and tuple(got.shape) != tuple(want.shape):
                raise ValueError(f"{where}: Dense weight {k} must have shape {tuple(want.shape)} to match its config.json "
                                 f"(in_features={fin}, out_features={fout}), got {tuple(got.shape)}")
        missing, unexpected = self.load_state_dict(mine, strict=False)
        if missing:
            raise ValueError(f"{where}: Dense weights are missing {missing}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if self.use_residual:
            y = y + (self.residual(x) if self.residual is not None else x)
        return y


def _load_state(d: Path, where: str, layout: str) -> dict[str, torch.Tensor]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = d / name
        if not f.is_file():
            continue
        try:
            if name == "model.safetensors":
                from safetensors.torch import load_file

                return load_file(str(f))
            return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:
            if not unreadable(e):
                raise
            raise ValueError(f"{where}: {str(f)!r} must hold the Dense module's weights ({layout}), got an unreadable "
                             f"file ({describe_error(e)})") from e
    raise FileNotFoundError(f"{where}: Dense module {str(d)!r} must contain model.safetensors or pytorch_model.bin "
                            f"({layout}), found neither")


def load_dense_layers(path: Path, mods: list[dict[str, Any]], where: str,
                      layout: str = "sentence-transformers layout") -> list[DenseLayer]:
    """Every ``Dense`` module listed in modules.json, in order. ``layout`` names the format in errors."""
    layers = []
    for m in mods:
        if _kind(m.get("type", "")) == "Dense":
            d = path / m.get("path", "")
            if not d.is_dir():
                raise FileNotFoundError(f"{where}: modules.json lists a Dense module at {m.get('path', '')!r}, so "
                                        f"{str(d)!r} must be a directory with config.json and model.safetensors "
                                        f"({layout}), but it is missing")
            cfg = read_json(d / "config.json")
            if cfg is None:
                raise FileNotFoundError(f"{where}: Dense module {str(d)!r} must contain config.json ({layout}), "
                                        "which is missing")
            if not isinstance(cfg, dict) or not {"in_features", "out_features"} <= set(cfg):
                raise ValueError(f"{where}: {str(d / 'config.json')!r} must give in_features and out_features "
                                 f"({layout}), got {sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__}")
            layers.append(DenseLayer(cfg, _load_state(d, where, layout), where, d / "config.json").float().eval())
    return layers


def check_dense_chain(layers: list[DenseLayer], width: int, where: str) -> None:
    """Each Dense layer must take the previous output's width (the first: ``width``), else encode would fail
    on the first batch with a bare matmul shape error."""
    for i, layer in enumerate(layers):
        if layer.linear.in_features != width:
            raise ValueError(f"{where}: Dense module {i} must take {width} input features (the previous module's "
                             f"output), got in_features={layer.linear.in_features}")
        width = layer.linear.out_features


def detect_format(path: Any) -> str:
    """'bgem3' | 'colbert' | 'splade' | 'dense' | 'cross' for a local model directory (rules in the module doc).

    Raises:
        FileNotFoundError: path missing.  ValueError: not a model directory, or no rule matches.
    """
    where = "encoders.detect_format"
    p = Path(path).expanduser()
    if (p / "colbert_linear.pt").is_file() or (p / "sparse_linear.pt").is_file():
        return "bgem3"
    mods = st_modules(p) if p.is_dir() else []
    st_cfg = read_json(p / "config_sentence_transformers.json", {}) if p.is_dir() else {}
    kinds = {_kind(m.get("type", "")) for m in mods}
    types = " ".join(m.get("type", "") for m in mods)
    model_type = st_cfg.get("model_type", "")
    if mods and ("pylate" in types or model_type == "ColBERT"
                 or any(k in st_cfg for k in ("query_prefix", "query_length", "document_length"))):
        return "colbert"
    if mods and ({"SpladePooling", "MLMTransformer"} & kinds or model_type == "SparseEncoder"):
        return "splade"
    if mods and "Pooling" in kinds:
        return "dense"
    check_model_dir(p, where)
    cfg = read_json(p / "config.json", {})
    archs = cfg.get("architectures") or []
    if any(a.endswith("ForMaskedLM") for a in archs):
        return "splade"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "cross"
    raise ValueError(f"{where}: cannot tell the format of {str(p)!r}: no colbert_linear.pt/sparse_linear.pt, no "
                     f"modules.json with Pooling/Dense/SpladePooling modules, and architectures {archs} is neither "
                     "*ForMaskedLM nor *ForSequenceClassification")

