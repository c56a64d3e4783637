"""Known-answer tests of the attacks' maths: RTN quantization and the unbiased leak@k estimator."""

import math

import pytest
import torch

from unlearn.attacks.leak_at_k import leak_at_k, leak_at_k_one, leak_curve
from unlearn.attacks.quantize import quantization_error, quantize_rtn
from unlearn.errors import ConfigError


def test_asymmetric_rtn_by_hand():
    # 2 bits over [0, 3]: step 1, zero point 0; 0.4 -> 0, 1.6 -> 2
    w = torch.tensor([[0.0, 0.4, 1.6, 3.0]])
    assert quantize_rtn(w, bits=2).tolist() == [[0.0, 0.0, 2.0, 3.0]]
    # range [-1, 2], 2 bits: step 1, zero point 1; -0.6 -> -1, 0.7 -> 1
    w = torch.tensor([[-1.0, -0.6, 0.7, 2.0]])
    assert quantize_rtn(w, bits=2).tolist() == [[-1.0, -1.0, 1.0, 2.0]]


def test_symmetric_rtn_by_hand():
    # 3 bits: 3 positive levels, absmax 3 -> step 1; levels -4..3
    w = torch.tensor([[-3.0, -1.2, 0.49, 3.0]])
    assert quantize_rtn(w, bits=3, symmetric=True).tolist() == [[-3.0, -1.0, 0.0, 3.0]]


def test_groups_quantize_separately():
    w = torch.tensor([[0.0, 1.0, 100.0, 103.0]])
    per_channel = quantize_rtn(w, bits=2)  # one step of 103/3 swallows the small weights' difference
    grouped = quantize_rtn(w, bits=2, group_size=2)
    assert per_channel[0, 0] == per_channel[0, 1]
    assert grouped.tolist() == [[0.0, 1.0, 100.0, 103.0]]


def test_a_ragged_last_group_is_quantized_on_its_own_range():
    w = torch.tensor([[0.0, 3.0, 10.0, 10.5, 11.0]])
    out = quantize_rtn(w, bits=2, group_size=2)  # groups [0, 3], [10, 10.5], [11]
    assert out.tolist() == [[0.0, 3.0, 10.0, 10.5, 11.0]]
    out = quantize_rtn(torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 9.0]]), bits=2, group_size=4)  # [0..3], [4, 9]
    alone = quantize_rtn(torch.tensor([[4.0, 9.0]]), bits=2)
    # [4, 9]: step 5/3, zero point round(-2.4) = -2, so 4 -> 0 -> 10/3 and 9 -> 3 -> 25/3
    assert out[0, :4].tolist() == [0.0, 1.0, 2.0, 3.0] and torch.allclose(out[:, 4:], alone)
    assert torch.allclose(alone, torch.tensor([[10 / 3, 25 / 3]]))


def test_rtn_error_is_at_most_half_a_step_and_flat_groups_are_exact():
    torch.manual_seed(0)
    w = torch.randn(8, 64)
    for bits in (4, 8):
        step = ((w.amax(dim=1) - w.amin(dim=1)) / (2**bits - 1)).max()
        assert quantization_error(w, bits) <= step / 2 + 1e-6
    assert quantization_error(w, 8) < quantization_error(w, 4)
    flat = torch.full((2, 4), 0.3)
    assert torch.equal(quantize_rtn(flat, 4), flat) and torch.equal(quantize_rtn(flat, 4, symmetric=True), flat)


def test_rtn_leaves_the_input_alone_and_keeps_dtype():
    w = torch.randn(4, 8, dtype=torch.float64)
    before = w.clone()
    out = quantize_rtn(w, 4)
    assert torch.equal(w, before) and out.dtype == torch.float64


def test_rtn_rejects_bad_settings():
    with pytest.raises(ConfigError, match="group_size"):
        quantize_rtn(torch.zeros(2, 6), 4, group_size=-1)
    with pytest.raises(ConfigError, match="2-D"):
        quantize_rtn(torch.zeros(3), 4)
    with pytest.raises(ConfigError, match="between 2 and 16"):
        quantize_rtn(torch.zeros(2, 2), 1)


def test_leak_at_k_by_hand():
    assert leak_at_k_one(4, 1, 1) == pytest.approx(0.25)
    assert leak_at_k_one(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 0.5
    assert leak_at_k_one(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert leak_at_k_one(4, 0, 4) == 0.0
    assert leak_at_k_one(4, 3, 2) == 1.0  # every pair of 4 holds a leak when only one sample is clean
    assert leak_at_k([0, 4], 4, 1) == pytest.approx(0.5)


def test_leak_curve_grows_with_k_and_ends_at_n():
    curve = leak_curve([1, 2, 0], 6)
    assert list(curve) == [1, 2, 4, 6]
    values = list(curve.values())
    assert values == sorted(values)
    assert curve[6] == pytest.approx(2 / 3)  # with all 6 samples, a probe leaks iff any sample did


def test_leak_at_k_rejects_bad_counts():
    with pytest.raises(ConfigError, match="between 1 and the number of samples"):
        leak_at_k_one(4, 1, 5)
    with pytest.raises(ConfigError, match="between 0 and"):
        leak_at_k_one(4, 5, 1)
    with pytest.raises(ConfigError, match="at least one probe"):
        leak_at_k([], 4, 1)


def test_quantized_copy_leaves_the_model_and_its_output_layer_alone(tiny_model):
    from unlearn.attacks.quantize import quantized_copy

    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    four, eight = quantized_copy(tiny_model, 4, group_size=8), quantized_copy(tiny_model, 8)
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())
    name = next(n for n, m in tiny_model.named_modules() if isinstance(m, torch.nn.Linear) and "proj" in n)
    original = tiny_model.get_submodule(name).weight
    error4 = (four.get_submodule(name).weight - original).abs().max()
    error8 = (eight.get_submodule(name).weight - original).abs().max()
    assert 0 < error8 < error4
    assert torch.equal(four.get_output_embeddings().weight, tiny_model.get_output_embeddings().weight)
