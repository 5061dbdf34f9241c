"""MaskGIT priors over VQ-VAE tokens: the masking and decoding schedules by hand, top-k and guidance,
seeds per image, training through the CLI, exact resume, generate, and the one-line errors."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import pytest
import torch
from safetensors.torch import load_file

from genvision import apps
from genvision import checkpoints as ckpt
from genvision.apps.generation.evaluate import evaluate_generator_model
from genvision.cli import main
from genvision.errors import ConfigError, InputShapeError
from genvision.models import maskgit as maskgit_module
from genvision.models.maskgit import MaskGIT, MaskGITConfig
from genvision.processes.masked_tokens import (
    decoding_schedule,
    filter_top_k,
    guided_logits,
    iterative_decode,
    masked_counts,
    masked_token_loss,
    random_mask,
    sample_with_uniforms,
)
from genvision.runtime import derive_seed
from genvision.sampling import generate, interpolate
from genvision.workflows.train import train

TINY_VQVAE = {"width": 4, "blocks": 0, "codebook_size": 8, "code_dim": 4}  # 28 px -> 7x7 tokens of 8 codes
TINY = ["--data", "mnist-mini", "data.limit=64", "model.dim=16", "model.depth=1", "model.heads=2",
        "model.sample_steps=3", "train.batch_size=8", "train.log_every=2", "train.tensorboard=false",
        "train.sample_every=0", "train.ckpt_every=2", "objective.warmup_steps=2"]


def tiny_maskgit(num_classes: int = 3, seed: int = 0) -> MaskGIT:
    torch.manual_seed(seed)
    model = MaskGIT(MaskGITConfig(vqvae=TINY_VQVAE, num_classes=num_classes, dim=16, depth=1, heads=2,
                                  sample_steps=4))
    with torch.no_grad():  # the 0.02-std start predicts near-uniform codes: give classes and positions some weight
        for name, p in model.named_parameters():
            if not name.startswith("vqvae."):
                p.add_(0.5 * torch.randn_like(p))
    return model.eval()


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the schedules ---------------------------------------------------------------------------


def test_training_mask_counts_by_hand():
    r = torch.tensor([0.0, 1 / 3, 0.5, 0.999999, 1.0])
    # ceil(49 cos(pi/2 r)): 49; ceil(49 * 0.8660) = ceil(42.44) = 43; ceil(49 * 0.7071) = ceil(34.65) = 35;
    # ~0.00008 -> 1; cos(pi/2) ~ 6e-17 -> still at least 1
    assert masked_counts(r, 49).tolist() == [49, 43, 35, 1, 1]
    scores = torch.rand(5, 49, generator=torch.Generator().manual_seed(0))
    mask = random_mask(masked_counts(r, 49), scores)
    assert mask.sum(dim=1).tolist() == [49, 43, 35, 1, 1]
    # the masked positions are those with the smallest scores
    assert torch.equal(mask[2], scores[2] <= scores[2].sort().values[34])


def test_decoding_schedule_by_hand():
    # floor(49 cos(pi/2 k/8)), k = 1..8: 49 * [0.9808, 0.9239, 0.8315, 0.7071, 0.5556, 0.3827, 0.1951, 0]
    assert decoding_schedule(49, 8) == [48, 45, 40, 34, 27, 18, 9, 0]  # reveals 1, 3, 5, 6, 7, 9, 9, 9
    assert decoding_schedule(49, 1) == [0]
    # floor(10 cos(pi/20)) = 9 and floor(10 cos(pi/10)) = 9: the second step must still reveal one
    counts = decoding_schedule(10, 10)
    assert counts[:2] == [9, 8] and counts[-1] == 0
    assert all(a > b for a, b in itertools.pairwise([10, *counts]))  # at least one revealed per step
    for steps in (0, 50):
        with pytest.raises(ConfigError, match=r"--steps must be an integer in 1\.\.49"):
            decoding_schedule(49, steps)


def test_decoding_follows_the_schedule_and_never_changes_a_revealed_token():
    B, L, K, S = 3, 49, 5, 8
    seen = []
    logits_gen = torch.Generator().manual_seed(1)

    def logits_fn(tokens):
        seen.append(tokens.clone())
        return torch.randn(B, L, K, generator=logits_gen) * 3  # new predictions every step

    uniforms = torch.rand(B, 2, S, L, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    final = iterative_decode(logits_fn, uniforms, mask_id=K)
    states = [*seen, final]  # the input of each step, then the result
    assert len(seen) == S and (seen[0] == K).all()  # all masked at the start
    masked_after = [int((state == K).sum(dim=1).unique().item()) for state in states[1:]]
    assert masked_after == decoding_schedule(L, S)
    for before, after in itertools.pairwise(states):
        revealed = before != K
        assert torch.equal(after[revealed], before[revealed])  # never re-masked, never changed
    assert final.min() >= 0 and final.max() < K  # every position holds a code at the end


def test_top_k_samples_only_the_k_most_likely_codes():
    logits = torch.tensor([0.0, 5.0, 1.0, 4.0, 2.0, 3.0]).expand(2000, 6)  # the two most likely: codes 1 and 3
    assert torch.isinf(filter_top_k(logits, 2)[0]).tolist() == [True, False, True, False, True, True]
    u = torch.rand(2000, generator=torch.Generator().manual_seed(0))
    codes = sample_with_uniforms(filter_top_k(logits, 2).softmax(dim=-1), u)
    assert set(codes.tolist()) == {1, 3}
    assert set(sample_with_uniforms(filter_top_k(logits, 0).softmax(dim=-1), u).tolist()) == set(range(6))
    # inverse CDF: u below p(code 0) + ... picks the first code whose cumulative probability exceeds u
    probs = torch.tensor([[0.5, 0.0, 0.5]])
    assert sample_with_uniforms(probs.expand(3, 3), torch.tensor([0.0, 0.49, 0.5])).tolist() == [0, 0, 2]


def test_guidance_formula_on_hand_made_logits(monkeypatch):
    cond, uncond = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 1.0, 1.0])
    assert guided_logits(cond, uncond, 3.0).tolist() == [4.0, -2.0, -5.0]  # 1 + 3 * (cond - uncond)
    assert torch.equal(guided_logits(cond, uncond, 1.0), cond) and torch.equal(guided_logits(cond, uncond, 0.0), uncond)
    # the model guides with that formula: capture the logits function generate() hands the decoder
    model = tiny_maskgit()
    captured = {}

    def fake_decode(logits_fn, uniforms, **options):
        captured["fn"] = logits_fn
        return torch.zeros(uniforms.shape[0], uniforms.shape[-1], dtype=torch.long)

    monkeypatch.setattr(maskgit_module, "iterative_decode", fake_decode)
    labels = torch.tensor([0, 2])
    model.generate(model.sample_latent(2), labels, cfg=2.5)
    tokens = torch.randint(0, 9, (2, 49), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        c = model(tokens.view(2, 7, 7), labels)
        u = model(tokens.view(2, 7, 7), torch.full_like(labels, model.null_class))
        torch.testing.assert_close(captured["fn"](tokens), u + 2.5 * (c - u))
        assert not torch.allclose(c, u)


def test_loss_counts_only_masked_positions():
    targets = torch.tensor([[0, 1, 2]])
    logits = torch.full((1, 3, 3), -50.0)
    logits[0, 0, 0] = 50.0  # position 0: right, confident
    logits[0, 1] = torch.tensor([0.0, 0.0, 0.0])  # position 1: uniform, loss log 3
    logits[0, 2, 0] = 50.0  # position 2: confidently wrong, but not masked
    mask = torch.tensor([[True, True, False]])
    assert float(masked_token_loss(logits, targets, mask)) == pytest.approx(math.log(3) / 2, abs=1e-6)


# --- seeds --------------------------------------------------------------------------------


def test_same_seed_same_images_and_each_image_depends_only_on_its_seed():
    model = tiny_maskgit()
    a = generate(model, 5, seed=7, class_label=1, batch_size=2)
    b = generate(model, 5, seed=7, class_label=1, batch_size=5)
    assert a.shape == (5, 1, 28, 28) and a.abs().max() <= 1
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)  # the same images, whatever the batches
    for i in range(5):
        alone = generate(model, 1, seed=derive_seed(7, i), class_label=1)
        torch.testing.assert_close(alone[0], a[i], atol=1e-6, rtol=0)
    assert not torch.allclose(a, generate(model, 5, seed=8, class_label=1))
    z = model.sample_latent(3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (3,) and z.dtype == torch.int64


def test_sampling_options():
    model = tiny_maskgit()
    z, labels = model.sample_latent(4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    conditional = model.generate(z, labels, cfg=1.0)
    torch.testing.assert_close(model.generate(z, labels), conditional)  # the default guidance is 1
    torch.testing.assert_close(model.generate(z, labels, cfg=0.0), model.generate(z, None))  # 0 = unconditional
    assert not torch.allclose(model.generate(z, labels, cfg=4.0), conditional)
    for options, message in [({"steps": 0}, "--steps"), ({"steps": 50}, "--steps"), ({"cfg": -1.0}, "--cfg"),
                             ({"temperature": 0.0}, "--temperature"), ({"top_k": 9}, "top_k"),
                             ({"choice_temperature": math.nan}, "choice_temperature")]:
        with pytest.raises(ConfigError, match=message):
            model.generate(z, labels, **options)
    with pytest.raises(ConfigError, match="z must be a"):
        model.generate(torch.randn(2, 1, 28, 28))
    with pytest.raises(ConfigError, match="labels must be"):
        model.generate(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(InputShapeError, match=r"maskgit takes token grids of shape \(B, 7, 7\); got \(2, 8\)"):
        model(torch.zeros(2, 8, dtype=torch.long))


def test_interpolation_between_seeds_is_refused():
    with pytest.raises(ConfigError, match="latents are per-image seeds") as info:
        interpolate(tiny_maskgit(), (1, 2))
    assert "\n" not in str(info.value)


# --- training, resume, the commands -----------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run trained 4 steps straight, one trained 2 steps then resumed to 4."""
    out = tmp_path_factory.mktemp("runs")
    common = [*TINY, "--init", "zoo:vqvae-mnist", f"train.out_dir={out}"]
    assert main(["train", "maskgit", *common, "train.name=straight", "train.steps=4"]) == 0
    assert main(["train", "maskgit", *common, "train.name=split", "train.steps=2"]) == 0
    resumed = train("maskgit", resume=out / "split", overrides=["train.steps=4"], progress=False)
    assert resumed.step == 4
    return out


def test_resume_is_exact(runs):
    for name in (ckpt.WEIGHTS_FILE, ckpt.EMA_FILE):
        a = load_file(str(ckpt.latest_checkpoint(runs / "straight" / "checkpoints") / name))
        b = load_file(str(ckpt.latest_checkpoint(runs / "split" / "checkpoints") / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_a_trained_run_is_one_self_contained_generator(runs, tmp_path, capsys):
    model = ckpt.load_pretrained(runs / "straight", kind="token-prior")
    assert model.registry_name == "maskgit" and model.config.num_classes == 10
    assert model.config.vqvae["codebook_size"] == 128 and not model.vqvae.training
    assert not any(p.requires_grad for p in model.vqvae.parameters())
    zoo = ckpt.load_pretrained("zoo:vqvae-mnist")  # the frozen VQ-VAE is init's, unchanged by training
    assert all(torch.equal(v, model.vqvae.state_dict()[k]) for k, v in zoo.state_dict().items())
    code, out, _ = run_cli(capsys, "generate", "--model", runs / "straight", "-n", 4, "--steps", 2, "--cfg", 2,
                           "-o", tmp_path / "grid.png")
    assert code == 0 and (tmp_path / "grid.png").is_file(), out
    code, _, err = run_cli(capsys, "interpolate", "--model", runs / "straight", "-o", tmp_path / "walk.png")
    assert code == 1 and "per-image seeds" in err and len(err.strip().splitlines()) == 1
    assert apps.evaluator("token-prior") is evaluate_generator_model  # genvision evaluate: FID & co, as for the DiT


def test_the_training_loss_falls():
    from genvision.apps.tokenprior.objective import MaskedTokenObjective, MaskedTokenObjectiveConfig
    from genvision.data import load_dataset
    from genvision.training.objective import DataInfo, StepContext

    torch.manual_seed(0)
    images, labels = load_dataset("mnist-mini", limit=32).get_batch(torch.arange(32))
    vqvae = ckpt.load_pretrained("zoo:vqvae-mnist")
    model = MaskGIT(MaskGITConfig(vqvae=dataclasses.asdict(vqvae.config), dim=32, depth=1, heads=2, dropout=0.0))
    model.vqvae.load_state_dict(vqvae.state_dict())
    objective = MaskedTokenObjective(model, MaskedTokenObjectiveConfig(lr=3e-3, warmup_steps=0), DataInfo(1, 28, 10))
    losses = []
    for step in range(40):
        ctx = StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=1.0,
                          optimizers=objective.optimizers())
        losses.append(float(objective.train_step((images, labels), ctx)["loss"]))
    assert sum(losses[-10:]) / 10 < 0.85 * losses[0], losses  # from ~log(128) = 4.85; measured ~3.8 at the end


@pytest.mark.parametrize("init, message", [
    (None, "maskgit needs init=VQVAE"),
    ("gan", "init: .* holds a gan model \\(dcgan\\), not a VQ-VAE"),
    ("nowhere", "init: model not found"),
])
def test_init_errors_are_one_line(tmp_path, capsys, init, message):
    from genvision.registry import create_model

    args = [*TINY, f"train.out_dir={tmp_path}", "train.name=x", "train.steps=2"]
    if init == "gan":
        ckpt.save_pretrained(create_model("dcgan", {"image_size": 28, "width": 8}), tmp_path / "gan")
    if init is not None:
        args += ["--init", tmp_path / init]
    code, _, err = run_cli(capsys, "train", "maskgit", *args)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "x").exists()  # refused before the run directory is written


@pytest.mark.parametrize("override, message", [
    ("data.image_size=32", "takes 1-channel 28 px images"),
    ("model.vqvae={codebook_size: 64}", "model.vqvae contradicts init"),
    ("objective.mask_schedule=linear", "objective.mask_schedule must be one of cosine"),
    ("model.top_k=200", "maskgit top_k must be in"),
])
def test_recipe_errors_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train("maskgit", overrides=["data.name=mnist-mini", "data.limit=64", "init=zoo:vqvae-mnist",
                                    f"train.out_dir={tmp_path}", "train.name=x", override], progress=False)
