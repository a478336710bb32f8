"""Model directories from untrusted sources: loading one must never run code it names.

Two ways a directory can carry code: a config file naming a Python callable that the loader imports and
calls (a cross-encoder's activation, a Dense module's activation_function), and a pickled weights file
whose unpickling calls something. Both must be refused with a ValueError naming the file, before the
payload runs.
"""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

from fusedscore import encoders
from fusedscore.testing import tiny_models as T

pytestmark = pytest.mark.encoders



@pytest.fixture
def payload(monkeypatch):
    """A zero-argument torch function that a config file can name; records whether it was called."""
    import torch.utils.collect_env as ce

    calls = []
    monkeypatch.setattr(ce, "main", lambda: calls.append("ran"))
    return calls


def _edit_json(path: pathlib.Path, change) -> None:
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("key", ["activation_fn", "sbert_ce_default_activation_function"])
def test_cross_encoder_activation_naming_any_torch_function_is_refused(tmp_path, payload, key):
    """Issue 11: ``torch.utils.collect_env.main`` named as the activation ran at load (it spawns processes)."""
    d = T.build_cross_encoder(tmp_path / "cross")
    bad = "torch.utils.collect_env.main"
    if key == "activation_fn":
        _edit_json(d / "config.json", lambda c: c.update(sentence_transformers={"activation_fn": bad}))
    else:
        _edit_json(d / "config.json", lambda c: c.update(sbert_ce_default_activation_function=bad))
    with pytest.raises(ValueError, match=r"CrossEncoder.from_pretrained: .*activation.* in '.*config\.json' must be "
                                         r"a known activation class .*got 'torch\.utils\.collect_env\.main'"):
        encoders.CrossEncoder.from_pretrained(d, device="cpu")
    assert payload == []


@pytest.mark.parametrize("value", ["torch.utils.collect_env.main", "os.system", "torch.nn.Linear", "Sigmoid", 3])
def test_dense_module_activation_outside_the_known_list_is_refused(tmp_path, payload, value):
    d = T.build_colbert(tmp_path / "colbert")
    _edit_json(d / "1_Dense" / "config.json", lambda c: c.update(activation_function=value))
    with pytest.raises(ValueError, match=r"activation_function in '.*1_Dense/config\.json' must be a known "
                                         r"activation class .*got " + repr(value).replace(".", r"\.")):
        encoders.ColBERT.from_pretrained(d, device="cpu")
    assert payload == []


@pytest.mark.parametrize("value, cls", [
    ("torch.nn.modules.activation.Sigmoid", torch.nn.Sigmoid),  # how sentence-transformers writes them
    ("torch.nn.modules.linear.Identity", torch.nn.Identity),
    ("torch.nn.modules.activation.Tanh", torch.nn.Tanh),
    ("torch.nn.ReLU", torch.nn.ReLU),  # the public alias
])
def test_known_activations_still_load(tmp_path, value, cls):
    ce = encoders.CrossEncoder.from_pretrained(T.build_cross_encoder(tmp_path / "ce", activation=value), device="cpu")
    assert type(ce.activation) is cls
    d = T.build_colbert(tmp_path / "colbert")
    _edit_json(d / "1_Dense" / "config.json", lambda c: c.update(activation_function=value))
    assert type(encoders.ColBERT.from_pretrained(d, device="cpu").dense_layers[0].activation) is cls


class _Payload:
    """Unpickling this creates ``marker``: the proof that a weights file ran code."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _pickle_bomb(path: pathlib.Path, marker: pathlib.Path) -> None:
    torch.save({"weight": _Payload(marker)}, path)


@pytest.mark.parametrize("where", ["bgem3_head", "dense_module", "transformer"])
def test_pickled_weights_that_run_code_are_refused(tmp_path, where):
    marker = tmp_path / "payload_ran"
    if where == "bgem3_head":
        d = T.build_bgem3(tmp_path / "m")
        _pickle_bomb(d / "colbert_linear.pt", marker)
        load, file = encoders.BGEM3.from_pretrained, "colbert_linear.pt"
    elif where == "dense_module":
        d = T.build_colbert(tmp_path / "m")
        (d / "1_Dense" / "model.safetensors").unlink()
        _pickle_bomb(d / "1_Dense" / "pytorch_model.bin", marker)
        load, file = encoders.ColBERT.from_pretrained, "pytorch_model.bin"
    else:
        d = T.build_cross_encoder(tmp_path / "m")
        (d / "model.safetensors").unlink()
        _pickle_bomb(d / "pytorch_model.bin", marker)
        load, file = encoders.CrossEncoder.from_pretrained, "pytorch_model.bin"
    with pytest.raises(ValueError, match=rf"{file}' must .*unreadable file \(.*not a torch.save file of tensors"):
        load(d, device="cpu")
    assert not marker.exists()
