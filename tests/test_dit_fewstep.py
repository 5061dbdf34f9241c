"""Few-step DiT: the time shift and x-prediction by hand, the distillation's segment targets and
rollouts, a distilled sampler that lands on its teacher's endpoint on a toy field, and
``genvision train dit-distill`` end to end (exact resume, folded guidance, the one-line errors)."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from genvision import checkpoints as ckpt
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.models.dit import MIN_NOISE_LEVEL, DiT, DiTConfig
from genvision.processes.flow import (
    integrate,
    sample_times,
    segment_targets,
    shift_times,
    student_points,
)
from genvision.registry import create_model
from genvision.sampling import generate
from genvision.workflows.train import train

TINY_TEACHER = ["data.name=mnist-mini", "data.limit=64", "model.dim=16", "model.depth=1", "model.heads=2",
                "model.patch_size=7", "train.batch_size=8", "train.log_every=2", "train.tensorboard=false",
                "train.sample_every=0", "train.ckpt_every=2", "objective.warmup_steps=2", "train.steps=2"]
TINY_STUDENT = ["--data", "mnist-mini", "data.limit=64", "train.batch_size=8", "train.log_every=2",
                "train.tensorboard=false", "train.sample_every=0", "train.ckpt_every=2", "objective.warmup_steps=2",
                "objective.student_steps=2", "objective.teacher_substeps=2"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- training-time options ------------------------------------------------------------------


def test_time_shift_by_hand():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(shift_times(t, 1.0), t)
    # noise level s = 1 - t -> 3 s / (1 + 2 s): 1 -> 1, 0.75 -> 0.9, 0.5 -> 0.75, 0 -> 0
    assert torch.allclose(shift_times(t, 3.0), torch.tensor([0.0, 0.1, 0.25, 1.0]))
    torch.manual_seed(0)
    shifted = sample_times(20_000, "logit-normal", "cpu", shift=3.0)
    assert 0 <= shifted.min() and shifted.max() <= 1
    assert abs(float(shifted.median()) - 0.25) < 0.02  # the logit-normal's median 0.5 moves to 0.25


def test_data_prediction_returns_the_velocity_of_its_estimate():
    torch.manual_seed(0)
    model = DiT(DiTConfig(image_size=8, num_classes=0, patch_size=4, dim=8, depth=1, heads=2, prediction="data"))
    x = torch.randn(3, 1, 8, 8)
    # adaLN-Zero starts with a zero head: x1_hat = 0, so v = (0 - x) / (1 - t), the noise level clipped
    v = model(x, torch.tensor([0.0, 0.5, 1.0]))
    expected = -x / torch.tensor([1.0, 0.5, MIN_NOISE_LEVEL]).view(3, 1, 1, 1)
    assert torch.allclose(v, expected)
    with pytest.raises(ConfigError, match="dit prediction must be one of velocity, data"):
        DiTConfig(prediction="eps").validate()


def test_the_flow_objective_takes_the_new_keys(tmp_path):
    result = train("dit", overrides=[*TINY_TEACHER, f"train.out_dir={tmp_path}", "train.name=x",
                                     "objective.time_sampling=logit-normal", "objective.time_shift=2",
                                     "model.prediction=data"], progress=False)
    model = ckpt.load_pretrained(result.run_dir, kind="diffusion")
    assert model.config.prediction == "data" and result.step == 2
    with pytest.raises(ConfigError, match="objective.time_shift must be in"):
        train("dit", overrides=[*TINY_TEACHER, f"train.out_dir={tmp_path}", "train.name=y", "objective.time_shift=0"],
              progress=False)


# --- the distillation process ---------------------------------------------------------------


def _rotation_field(x, t):
    """A toy teacher with curved paths: dx/dt = A x, A a damped rotation (x is (B, 2, 1, 1))."""
    a = torch.tensor([[-0.3, -2.0], [2.0, -0.3]])
    return torch.einsum("ij,bjhw->bihw", a, x)


def test_segment_targets_are_the_teachers_average_velocity():
    x = torch.randn(5, 2, 1, 1)
    segment = torch.tensor([0, 1, 2, 3, 1])
    target = segment_targets(_rotation_field, x, segment, 4, substeps=200, sampler="heun")
    # exact: x(t + 1/4) = expm(A / 4) x for a linear field, whatever the start time
    a = torch.tensor([[-0.3, -2.0], [2.0, -0.3]])
    exact = (torch.einsum("ij,bjhw->bihw", torch.linalg.matrix_exp(a / 4), x) - x) * 4
    assert torch.allclose(target, exact, atol=1e-3)  # float32 rounding, divided by dt = 1/4


def test_student_points_walk_each_row_to_its_own_segment():
    x0 = torch.randn(4, 2, 1, 1)
    calls = []

    def unit_field(x, t):
        calls.append(float(t))
        return torch.ones_like(x)

    points = student_points(unit_field, x0, torch.tensor([0, 1, 3, 2]), 4)
    assert calls == [0.0, 0.25, 0.5]  # max(segment) batched steps at the grid's times
    assert torch.allclose(points - x0, torch.tensor([0.0, 0.25, 0.75, 0.5]).view(4, 1, 1, 1).expand_as(x0))


def test_a_distilled_sampler_lands_on_the_teachers_endpoint():
    """Students with one matrix per segment, trained on segment_targets at their own points: K Euler
    steps reproduce the teacher's 400-step Heun endpoint, where K plain Euler steps of the teacher miss it."""
    torch.manual_seed(0)
    K = 4
    weights = torch.nn.Parameter(torch.zeros(K, 2, 2))

    def student(x, t):
        k = (t * K).round().long().clamp(max=K - 1).expand(x.shape[0])  # (B,) segment of each row
        return torch.einsum("bij,bjhw->bihw", weights[k], x)

    optimizer = torch.optim.Adam([weights], lr=0.05)
    for _ in range(300):
        x0 = torch.randn(64, 2, 1, 1)
        segment = torch.randint(K, (64,))
        with torch.no_grad():
            x = student_points(student, x0, segment, K)
            target = segment_targets(_rotation_field, x, segment, K, substeps=16, sampler="heun")
        loss = ((student(x, segment / K) - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x0 = torch.randn(256, 2, 1, 1)
    with torch.no_grad():
        teacher_end = integrate(_rotation_field, x0, steps=400, sampler="heun", progress=False)
        student_end = integrate(student, x0, steps=K, sampler="euler", progress=False)
        naive_end = integrate(_rotation_field, x0, steps=K, sampler="euler", progress=False)
    scale = teacher_end.abs().mean()
    assert (student_end - teacher_end).abs().mean() < 0.005 * scale  # measured 0.0003
    assert (naive_end - teacher_end).abs().mean() > 0.3 * scale  # measured 0.65: 4 Euler steps of the teacher


# --- genvision train dit-distill --------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    return train("dit", overrides=[*TINY_TEACHER, f"train.out_dir={out}", "train.name=teacher"],
                 progress=False).run_dir


@pytest.fixture(scope="module")
def students(teacher, tmp_path_factory):
    """One student trained 4 steps straight, one trained 2 steps then resumed to 4."""
    out = tmp_path_factory.mktemp("students")
    common = [*TINY_STUDENT, "--init", teacher, f"train.out_dir={out}"]
    assert main(["train", "dit-distill", *common, "train.name=straight", "train.steps=4"]) == 0
    assert main(["train", "dit-distill", *common, "train.name=split", "train.steps=2"]) == 0
    resumed = train("dit-distill", resume=out / "split", overrides=["train.steps=4"], progress=False)
    assert resumed.step == 4
    return out


def test_distillation_resume_is_exact(students):
    for name in (ckpt.WEIGHTS_FILE, ckpt.EMA_FILE):
        a = load_file(str(ckpt.latest_checkpoint(students / "straight" / "checkpoints") / name))
        b = load_file(str(ckpt.latest_checkpoint(students / "split" / "checkpoints") / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_a_student_is_a_dit_with_guidance_folded_in(students, teacher, tmp_path, capsys):
    model = ckpt.load_pretrained(students / "straight", kind="diffusion")
    config = model.config
    assert model.registry_name == "dit" and config.num_classes == 10
    assert (config.sample_steps, config.sampler, config.cfg_scale, config.guidance_folded) == (2, "euler", 1.0, 3.0)
    original = ckpt.load_pretrained(teacher, kind="diffusion")
    changed = [k for k, v in original.state_dict().items() if not torch.equal(v, model.state_dict()[k])]
    assert changed  # the student moved away from its teacher
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    images = generate(model, 3, seed=0, class_label=7)
    assert images.shape == (3, 1, 28, 28) and len(calls) == 2  # two steps, one call each: no guidance pair
    code, _, err = run_cli(capsys, "generate", "--model", students / "straight", "-n", 2, "--cfg", 2,
                           "-o", tmp_path / "g.png")
    assert code == 1 and "distilled with guidance 3 folded in" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, "generate", "--model", students / "straight", "-n", 2, "-o", tmp_path / "g.png")
    assert code == 0 and (tmp_path / "g.png").is_file(), out


def test_the_distillation_loss_falls(teacher):
    from genvision.apps.dit.distill import DistillObjective, DistillObjectiveConfig
    from genvision.training.objective import DataInfo, StepContext

    original = ckpt.load_pretrained(teacher, kind="diffusion")
    with torch.no_grad():  # a teacher with some structure: the 2-step tiny run is still close to zero
        for p in original.parameters():
            p.add_(0.1 * torch.randn_like(p, generator=torch.Generator().manual_seed(p.numel())))
    student = create_model("dit", original.config)
    student.load_state_dict(original.state_dict())
    config = DistillObjectiveConfig(lr=3e-3, warmup_steps=0, student_steps=2, teacher_substeps=4)
    objective = DistillObjective(student, original, config, DataInfo(1, 28, 10))
    images, labels = torch.zeros(32, 1, 28, 28), torch.arange(32) % 10
    torch.manual_seed(0)
    losses = []
    for step in range(30):
        ctx = StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=1.0,
                          optimizers=objective.optimizers())
        losses.append(float(objective.train_step((images, labels), ctx)["loss"]))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


@pytest.mark.parametrize("init, extra, message", [
    (None, [], "dit-distill needs init=TEACHER"),
    ("gan", [], "init: .* holds a gan model \\(dcgan\\), not a DiT"),
    ("nowhere", [], "init: model not found"),
    ("teacher", ["data.image_size=32"], "init's DiT takes 1-channel 28 px images"),
    ("teacher", ["objective.teacher_sampler=rk4"], "objective.teacher_sampler must be one of euler"),
    ("teacher", ["objective.student_steps=0"], "objective.student_steps must be in"),
    ("teacher", ["model.dim=32"], "model.dim=32 contradicts init's DiT, whose student has 16"),
])
def test_distillation_errors_are_one_line(teacher, tmp_path, capsys, init, extra, message):
    args = [*TINY_STUDENT, f"train.out_dir={tmp_path}", "train.name=x", "train.steps=2", *extra]
    if init == "gan":
        ckpt.save_pretrained(create_model("dcgan", {"image_size": 28, "width": 8}), tmp_path / "gan")
    if init is not None:
        args += ["--init", teacher if init == "teacher" else tmp_path / init]
    code, _, err = run_cli(capsys, "train", "dit-distill", *args)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "x").exists()  # refused before the run directory is written


def test_a_distilled_teacher_needs_teacher_cfg_one(students, tmp_path):
    with pytest.raises(ConfigError, match="folded in: set objective.teacher_cfg=1"):
        train("dit-distill", overrides=["data.name=mnist-mini", "data.limit=64", f"init={students / 'straight'}",
                                        f"train.out_dir={tmp_path}", "train.name=x"], progress=False)


# --- latent DiT over a frozen VQ-VAE ----------------------------------------------------------

TINY_LATENT = [o for o in TINY_TEACHER if not o.startswith("model.patch_size")] + ["model.patch_size=1",
                                                                                   "vqvae=zoo:vqvae-mnist"]


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("latent")
    return train("dit", overrides=[*TINY_LATENT, f"train.out_dir={out}", "train.name=latent"], progress=False).run_dir


def test_a_latent_dit_flows_in_the_vqvae_latents_and_decodes_nearest_codes(latent_run):
    model = ckpt.load_pretrained(latent_run, kind="diffusion")
    vqvae = ckpt.load_pretrained("zoo:vqvae-mnist")
    c = model.config
    assert model.latent_space and (c.channels, c.image_size) == (1, 28)  # the image's, for generate and evaluate
    assert c.field_shape() == (16, 7) and model.grid == 7  # zoo:vqvae-mnist: 16-dim codes on a 7x7 grid
    assert c.latent_scale == pytest.approx(1 / float(vqvae.quantizer.codebook.std()))
    assert all(torch.equal(v, model.vqvae.state_dict()[k]) for k, v in vqvae.state_dict().items())  # frozen
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.allclose(model.to_field(images), vqvae.encode_continuous(images) * c.latent_scale)
    x = model.sample_latent(3, generator=torch.Generator().manual_seed(0))  # (3, 16, 7, 7) noise
    codes = vqvae.quantizer.nearest((x / c.latent_scale).permute(0, 2, 3, 1).reshape(-1, 16)).view(3, 7, 7)
    assert torch.equal(model.to_images(x), vqvae.decode(codes))
    out = generate(model, 3, seed=0, class_label=4, steps=2, cfg=2.0)
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
    model.train()
    assert not model.vqvae.training  # the frozen VQ-VAE never trains (its codebook EMA would move)


def test_a_latent_dit_is_refused_where_pixels_are_needed(latent_run, tmp_path, capsys):
    for argv, message in [
        (["export", "--model", latent_run, "-o", tmp_path / "m.onnx"], "is a latent DiT"),
        (["inpaint", tmp_path / "x.png", "--method", "dit", "--model", latent_run, "--box", "0,0,4,4",
          "-o", tmp_path / "y.png"], "needs a pixel-space DiT"),
    ]:
        Image.new("L", (28, 28)).save(tmp_path / "x.png")
        code, _, err = run_cli(capsys, *argv)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("extra, message", [
    (["vqvae=zoo:dcgan-mnist"], "vqvae: .* holds a gan model \\(dcgan\\), not a VQ-VAE"),
    (["vqvae=zoo:vqvae-mnist", "model.patch_size=2"], "patch_size"),
])
def test_latent_recipe_errors_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        train("dit", overrides=[*TINY_TEACHER, f"train.out_dir={tmp_path}", "train.name=x", *extra], progress=False)


def test_a_latent_teacher_distills_into_a_latent_student(latent_run, tmp_path):
    result = train("dit-distill", overrides=[
        "data.name=mnist-mini", "data.limit=64", f"init={latent_run}", "train.batch_size=8", "train.steps=2",
        "train.sample_every=0", "train.ckpt_every=2", "train.tensorboard=false", "objective.student_steps=2",
        f"train.out_dir={tmp_path}", "train.name=student"], progress=False)
    student = ckpt.load_pretrained(result.run_dir, kind="diffusion")
    assert student.latent_space and student.config.field_shape() == (16, 7)
    assert student.config.guidance_folded == 3.0 and student.config.sample_steps == 2
    assert generate(student, 2, seed=0, class_label=1).shape == (2, 1, 28, 28)
