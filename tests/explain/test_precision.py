"""`explain.precision`: the precision of the forward passes is part of every method's config,
set explicitly around the computation and restored after."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explain.precision import PRECISIONS, compute_precision
from explain.registry import list_methods, method_config, method_from_config
from tests.explain.nets import tiny_cnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize("name", list_methods())
def test_every_method_stores_its_precision_and_fp32_is_the_default(name):
    method = method_from_config({"method": name})
    assert method.get_config()["precision"] == "fp32"
    for precision in PRECISIONS:
        stored = method_config(method_from_config({"method": name, "precision": precision}))
        assert stored["precision"] == precision
        rebuilt = method_from_config(json.loads(json.dumps(stored)))
        assert rebuilt.get_config() == {k: v for k, v in stored.items() if k != "method"}


@pytest.mark.parametrize("name", list_methods())
def test_an_unknown_precision_is_refused_by_name(name):
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; valid: \['fp32', 'tf32'"):
        method_from_config({"method": name, "precision": "fp16"})


def switches():
    return (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )


@pytest.mark.parametrize(
    ("precision", "inside"),
    [("fp32", (False, False, "highest")), ("tf32", (True, True, "high"))],
)
def test_the_switches_are_set_for_the_block_and_restored_after(precision, inside):
    before = switches()
    # Whatever the library default or an earlier caller left, the block sees the config's value.
    torch.backends.cudnn.allow_tf32 = not inside[1]
    leftover = switches()
    with compute_precision(precision, "cpu"):
        assert switches() == inside
    assert switches() == leftover
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
    torch.set_float32_matmul_precision(before[2])


def test_the_switches_are_restored_when_the_block_raises():
    before = switches()
    with pytest.raises(RuntimeError), compute_precision("tf32", "cpu"):
        raise RuntimeError("a failing forward pass")
    assert switches() == before


def test_bf16_runs_the_forward_passes_in_bfloat16_and_fp32_does_not():
    model = tiny_cnn(seed=0).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seen = []
    model[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with torch.inference_mode():
        for precision in ("fp32", "bf16"):
            with compute_precision(precision, "cpu"):
                model(images)
    assert seen == [torch.float32, torch.bfloat16]


def test_sbsm_maps_in_bf16_differ_from_fp32_and_fp32_is_the_exact_computation():
    model = tiny_cnn(seed=0).eval()
    generator = torch.Generator().manual_seed(1)
    query, results = (
        torch.rand(3, 32, 32, generator=generator),
        torch.rand(2, 3, 32, 32, generator=generator),
    )
    maps = {
        precision: method_from_config(
            {"method": "sbsm", "block": 8, "stride": 4, "precision": precision}
        ).explain(model, query, results)
        for precision in ("fp32", "bf16")
    }
    with torch.inference_mode():
        reference = method_from_config({"method": "sbsm", "block": 8, "stride": 4}).explain(
            model, query, results
        )
    np.testing.assert_array_equal(maps["fp32"], reference)
    assert not np.array_equal(maps["bf16"], maps["fp32"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_fp32_maps_match_the_cpu_and_tf32_stays_within_its_documented_error():
    model = tiny_cnn(seed=0).eval()
    generator = torch.Generator().manual_seed(2)
    query, results = (
        torch.rand(3, 64, 64, generator=generator),
        torch.rand(2, 3, 64, 64, generator=generator),
    )
    config = {"method": "sbsm", "block": 16, "stride": 4}
    cpu = method_from_config(config).explain(model, query, results)
    gpu_model = tiny_cnn(seed=0).eval().cuda()
    for precision, tolerance in (("fp32", 1e-4), ("tf32", 0.05)):
        maps = method_from_config({**config, "precision": precision}).explain(
            gpu_model, query, results
        )
        error = np.abs(maps - cpu).max() / cpu.max()
        assert error <= tolerance, (precision, error)
