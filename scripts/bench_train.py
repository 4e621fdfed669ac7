"""Training throughput of ganlab against a reference-style loop, measured side by side in one process.

    python scripts/bench_train.py                     # the CPU cases (WGAN-GP, precision=auto); on a GPU machine also the CUDA grid
    python scripts/bench_train.py --cases dcgan32-digits --objectives js,wgan_gp,spectral_norm
    python scripts/bench_train.py --cases resnet32 --precisions fp32,bf16 --seconds 20
    python scripts/bench_train.py --compile           # ganlab with compile=true as well
    python scripts/bench_train.py --set objective.constraints.gp.every=4   # any config override, here the lazy penalty

Each case builds G, D and the data from ganlab's own config (as ``ganlab train`` does), then times

* **ganlab**: :func:`ganlab.train.loop.train`, the loop ``ganlab train`` runs, with its in-device
  data, fused optimizers, one critic pass over real+fake, no host sync inside a step, channels_last
  and cuDNN autotuning on CUDA, at the case's precision;
* **reference**: a loop written the way the popular reference implementations are (the PyTorch
  DCGAN example, caogang/wgan-gp, christiancosgrove/pytorch-spectral-normalization-gan): a
  DataLoader over a TensorDataset, ``.item()`` on every step, separate critic passes on real and
  fake, the WGAN-GP reference penalty, default Adam, fp32. It starts from the same architecture
  and weights, with torch's own ``nn.ReLU``/``nn.LeakyReLU`` in the critic and, for SN-GAN,
  ``torch.nn.utils.spectral_norm``, as reference code writes them.

One line per case, ending in ``speedup=<ganlab/reference>`` (generator steps per second):
steps/s, images/s (real images through the critic: steps/s x n_critic x batch), peak memory (CUDA:
``max_memory_allocated``; CPU: how far the process's peak RSS rose above its RSS when the loop
started, so memory that the loop reuses from earlier work does not show), and the split of one
critic step of ganlab into forward (critic pass and loss), penalty (the gradient penalty's
forward and double backward) and backward (backward and optimizer step), timed with a device sync
between the parts. After a warm-up, each loop runs ``--rounds`` timed rounds (at least 5 steps
each) that alternate with the other loop's rounds, so a slow spell of the machine hits both; the
rates are medians over rounds, and the speedup is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from, plain
from ganlab.config import register_configs
from ganlab.data.images import to_unit_range
from ganlab.logger.stats import Stats
from ganlab.models.activations import use_torch_activations
from ganlab.precision import Precision, resolve_precision
from ganlab.train import fast
from ganlab.train.loop import train


@dataclass(frozen=True)
class Case:
    overrides: tuple[str, ...]  # ganlab config overrides: dataset and model
    batch_size: int
    device: str  # cpu | cuda


CASES = {
    "mlp-gaussians25": Case(("dataset=gaussians25", "model=mlp"), 256, "cpu"),  # the embedded default
    "dcgan32-digits": Case(("experiment=digits_dcgan",), 64, "cpu"),  # the CPU image demo's DCGAN (width 32)
    "dcgan64": Case(("dataset=digits", "dataset.resolution=64", "model=dcgan"), 64, "cuda"),  # width 64
    "resnet32": Case(("dataset=digits", "dataset.resolution=32", "model=resnet"), 64, "cuda"),  # width 128
}
CPU_DEFAULT = {"cases": ["mlp-gaussians25", "dcgan32-digits"], "objectives": ["wgan_gp"], "precisions": ["auto"]}  # auto: what `ganlab train` picks
CUDA_DEFAULT = {"cases": ["dcgan64", "resnet32"], "objectives": ["js", "wgan_gp", "spectral_norm"], "precisions": ["fp32", "bf16", "fp16"]}
TOY_POINTS = 100_000  # the reference's TensorDataset of toy points
MIN_ROUND_STEPS = 5  # ganlab's loop ends each call with a log step (one sync, diagnostics): amortise it


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of the code inside ``with``: CUDA's allocator peak, or the process's peak RSS on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mib: float | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.rss_at_entry = self._status("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS (Linux >= 4.0)
            except OSError:
                self.rss_at_entry = None
        return self

    @staticmethod
    def _status(field: str) -> float | None:
        """A memory figure of this process from /proc/self/status, in MiB (None off Linux)."""
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        peak = self._status("VmHWM")
        if peak is not None and self.rss_at_entry is not None:
            self.mib = peak - self.rss_at_entry


class NullRun:
    """The loop's ``Run`` with nothing to record: the benchmark times training alone."""

    def progress(self, step): pass
    def log(self, step, scalars): self.scalars = scalars
    def histograms(self, step, values): pass
    def sample(self, step, G, D): pass
    def evaluate(self, step, G, D): return {}
    def save(self, step, state): pass
    def last_good_state(self): return None
    def last_good_description(self): return "no checkpoint (benchmark)"
    def rolled_back(self, *args): pass


# ------------------------------------------------------------------------------------------- ganlab


class Ganlab:
    """ganlab's loop on its own copies of G and D, continued in slices of steps."""

    def __init__(self, cfg, G, D, data, device, precision: str, compile: bool):
        self.G, self.D, self.data, self.device = G, D, data, device
        fast.configure(device)
        fast.prepare_networks(G, D, device)
        self.objective = build_objective_from(cfg.objective)
        self.objective.attach(D)
        self.opt_G, self.opt_D = build_optimizers_from(cfg.objective, G, D)
        self.precision = Precision(precision, device)
        self.batch_size, self.compile = cfg.batch_size, compile
        self.stats, self.step = Stats(), 0

    def run(self, steps: int) -> None:
        end = self.step + steps
        train(
            self.G, self.D, self.objective, self.opt_G, self.opt_D, self.data, self.precision, NullRun(),
            steps=end, batch_size=self.batch_size, log_every=end, sample_every=end, eval_every=end,
            stats=self.stats, start_step=self.step, compile=self.compile,
        )
        self.step = end

    def critic_split(self, repeats: int) -> dict[str, float]:
        """Milliseconds per critic step in forward / penalty / backward, with a sync between them."""
        G, D, objective, precision, B = self.G, self.D, self.objective, self.precision, self.batch_size
        totals = {"fwd": 0.0, "gp": 0.0, "bwd": 0.0}
        for i in range(repeats + 1):  # the first is a warm-up
            real = self.data.sample(B)
            with torch.no_grad(), precision.autocast():
                fake = G(torch.randn(B, G.z_dim, device=self.device)).to(real.dtype)
            sync(self.device)
            t0 = time.perf_counter()
            with precision.autocast():
                scores = D(torch.cat([real, fake])).float()
            loss_D = objective.loss.critic(*scores.split([B, B]))
            sync(self.device)
            t1 = time.perf_counter()
            penalty = objective.penalty(D, real, fake, precision, Stats())
            if penalty is not None:
                loss_D = loss_D + penalty
            sync(self.device)
            t2 = time.perf_counter() if penalty is not None else t1  # no penalty: 0 ms, not the call's overhead
            self.opt_D.zero_grad(set_to_none=True)
            precision.backward(loss_D)
            precision.unscale_(self.opt_D)
            precision.step(self.opt_D)
            objective.after_critic_step(D)
            sync(self.device)
            t3 = time.perf_counter()
            if i:
                for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2)):
                    totals[key] += dt * 1000 / repeats
        return totals


# ---------------------------------------------------------------------------------------- reference


def reference_penalty(netD, real_data, fake_data, LAMBDA, device):
    """calc_gradient_penalty from caogang/wgan-gp (gan_mnist.py / gan_toy.py), device-agnostic."""
    alpha = torch.rand(real_data.size(0), 1, device=device)
    alpha = alpha.expand(real_data.size(0), real_data.nelement() // real_data.size(0)).contiguous().view(real_data.size())
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = interpolates.detach().requires_grad_(True)
    disc_interpolates = netD(interpolates)
    gradients = torch.autograd.grad(
        outputs=disc_interpolates, inputs=interpolates, grad_outputs=torch.ones(disc_interpolates.size(), device=device),
        create_graph=True, retain_graph=True, only_inputs=True,
    )[0]
    gradients = gradients.view(gradients.size(0), -1)
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean() * LAMBDA


def add_torch_spectral_norm(D: nn.Module) -> None:
    """SN-GAN reference code wraps every layer with torch.nn.utils.spectral_norm."""
    for module in list(D.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                setattr(module, child_name, nn.utils.spectral_norm(child))


class Reference:
    """A reference-style loop on its own copies of G and D (fp32, DataLoader, .item() every step)."""

    def __init__(self, cfg, G, D, data, device):
        o = plain(cfg.objective)
        # The reference loop that matches the objective's constraint: WGAN-GP's, SN-GAN's, or DCGAN's (none).
        self.kind = "wgan_gp" if "gp" in o["constraints"] else "sngan" if "sn" in o["constraints"] else "dcgan"
        use_torch_activations(D)  # nn.ReLU / nn.LeakyReLU, as reference code has them
        if self.kind == "sngan":
            add_torch_spectral_norm(D)
        self.G, self.D, self.device, self.o = G, D, device, o
        self.z_dim, self.B, self.n_critic = G.z_dim, cfg.batch_size, o["n_critic"]
        betas = tuple(o["optimizer"]["betas"])
        self.optimizerG = torch.optim.Adam(G.parameters(), lr=o["optimizer"]["lr_G"], betas=betas)
        self.optimizerD = torch.optim.Adam(D.parameters(), lr=o["optimizer"]["lr_D"], betas=betas)
        if hasattr(data, "images"):  # an image set: all of it, normalised, on the CPU
            dataset = TensorDataset(to_unit_range(data.images).cpu())
        else:  # toy points: a fixed sample from the same distribution
            dataset = TensorDataset(data.sample(TOY_POINTS, torch.Generator(data.device).manual_seed(1)).cpu())
        self.loader = DataLoader(dataset, batch_size=self.B, shuffle=True, drop_last=True)
        self.batches = self.inf_train_gen()
        self.criterion = nn.BCEWithLogitsLoss()
        self.iteration = {"wgan_gp": self.wgan_gp_iteration, "sngan": self.sngan_iteration, "dcgan": self.dcgan_iteration}[self.kind]

    def inf_train_gen(self):
        while True:
            for (batch,) in self.loader:
                yield batch

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.iteration()

    def wgan_gp_iteration(self) -> None:  # caogang/wgan-gp gan_mnist.py
        netG, netD, device = self.G, self.D, self.device
        for p in netD.parameters():
            p.requires_grad = True
        for iter_d in range(self.n_critic):
            real_data_v = next(self.batches).to(device)
            netD.zero_grad()
            D_real = netD(real_data_v).mean()
            D_real.backward(torch.tensor(-1.0, device=device))
            noisev = torch.randn(self.B, self.z_dim, device=device)
            with torch.no_grad():
                fake = netG(noisev)
            D_fake = netD(fake).mean()
            D_fake.backward(torch.tensor(1.0, device=device))
            gradient_penalty = reference_penalty(netD, real_data_v, fake, self.o["constraints"]["gp"]["weight"], device)
            gradient_penalty.backward()
            D_cost = D_fake - D_real + gradient_penalty
            Wasserstein_D = D_real - D_fake
            self.optimizerD.step()
            D_cost.item(), Wasserstein_D.item()  # logged every iteration in the reference
        for p in netD.parameters():
            p.requires_grad = False
        netG.zero_grad()
        noisev = torch.randn(self.B, self.z_dim, device=device)
        G = netD(netG(noisev)).mean()
        G.backward(torch.tensor(-1.0, device=device))
        G_cost = -G
        self.optimizerG.step()
        G_cost.item()

    def sngan_iteration(self) -> None:  # christiancosgrove/pytorch-spectral-normalization-gan main.py
        G, D, device = self.G, self.D, self.device
        for _ in range(self.n_critic):
            data = next(self.batches).to(device)
            z = torch.randn(self.B, self.z_dim, device=device)
            self.optimizerD.zero_grad()
            self.optimizerG.zero_grad()
            disc_loss = nn.ReLU()(1.0 - D(data)).mean() + nn.ReLU()(1.0 + D(G(z))).mean()
            disc_loss.backward()
            self.optimizerD.step()
        z = torch.randn(self.B, self.z_dim, device=device)
        self.optimizerD.zero_grad()
        self.optimizerG.zero_grad()
        gen_loss = -D(G(z)).mean()
        gen_loss.backward()
        self.optimizerG.step()
        disc_loss.item(), gen_loss.item()

    def dcgan_iteration(self) -> None:  # pytorch/examples dcgan/main.py (logits + BCEWithLogitsLoss)
        netG, netD, device, criterion = self.G, self.D, self.device, self.criterion
        for _ in range(self.n_critic):
            netD.zero_grad()
            real_cpu = next(self.batches).to(device)
            label = torch.full((self.B,), 1.0, device=device)
            output = netD(real_cpu)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(self.B, self.z_dim, device=device)
            fake = netG(noise)
            label.fill_(0.0)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            self.optimizerD.step()
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        errD.item(), errG.item()


# ------------------------------------------------------------------------------------------ timing


class Timer:
    """Times a loop's ``run`` in rounds; rounds of several loops interleave, so drift hits them alike."""

    def __init__(self, loop, device: torch.device, seconds: float, warmup: int):
        self.loop, self.device, self.rates, self.peak = loop, device, [], None
        loop.run(warmup)
        sync(device)
        start = time.perf_counter()
        loop.run(2)
        sync(device)
        per_step = (time.perf_counter() - start) / 2
        self.steps = max(MIN_ROUND_STEPS, min(5000, round(seconds / max(per_step, 1e-6))))

    def round(self) -> None:
        with PeakMemory(self.device) as memory:
            sync(self.device)
            start = time.perf_counter()
            self.loop.run(self.steps)
            sync(self.device)
            self.rates.append(self.steps / (time.perf_counter() - start))
        if memory.mib is not None:
            self.peak = max(self.peak or 0.0, memory.mib)

    @property
    def steps_per_s(self) -> float:
        return statistics.median(self.rates)


def compose_case(case: Case, objective: str, extra: list[str] = ()) -> object:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = [*case.overrides, f"objective={objective}", f"batch_size={case.batch_size}", *extra]
        return compose(config_name="train", overrides=overrides)


def bench_case(name: str, objective: str, precision: str, args) -> dict[str, float]:
    case = CASES[name]
    device = torch.device(args.device or case.device)
    cfg = compose_case(case, objective, args.set)
    torch.manual_seed(0)
    data = build_data(cfg.dataset, device, seed=0)
    G, D = build_networks(cfg.model, data.shape, device)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)  # the same starting weights for both loops
    precision = resolve_precision(precision, device, fast.has_convolutions(D))
    n_critic = cfg.objective.n_critic
    label = f"case={name} objective={objective}{''.join(' ' + o for o in args.set)} precision={precision} device={device.type} batch={case.batch_size} n_critic={n_critic}"
    loops = {"ganlab": Ganlab(cfg, copy.deepcopy(G), copy.deepcopy(D), data, device, precision, compile=False)}
    if args.compile:
        loops["ganlab_compiled"] = Ganlab(cfg, copy.deepcopy(G), copy.deepcopy(D), data, device, precision, compile=True)
    loops["reference"] = Reference(cfg, G_ref, D_ref, data, device)
    seconds = args.seconds / args.rounds
    timers = {key: Timer(loop, device, seconds, args.warmup + (3 if key == "ganlab_compiled" else 0)) for key, loop in loops.items()}
    for _ in range(args.rounds):
        for timer in timers.values():
            timer.round()
    split = loops["ganlab"].critic_split(args.split_repeats)
    parts = []
    for key, timer in timers.items():
        rate = timer.steps_per_s
        parts += [f"{key}_steps_per_s={rate:.2f}", f"{key}_images_per_s={rate * n_critic * case.batch_size:.0f}",
                  f"{key}_peak_mib={timer.peak:.0f}" if timer.peak is not None else f"{key}_peak_mib=n/a"]
        if key == "ganlab":
            parts.append("critic_ms(fwd/gp/bwd)=" + "/".join(f"{split[k]:.2f}" for k in ("fwd", "gp", "bwd")))
    results = {key: timer.steps_per_s for key, timer in timers.items()}
    # The speedup is the median over rounds of ganlab's rate over the reference's in the same round:
    # neighbouring rounds share the machine's state (this 2-core VM's speed drifts by up to 40%).
    speedups = {key: statistics.median(a / b for a, b in zip(timers[key].rates, timers["reference"].rates)) for key in timers}
    if args.compile:
        parts.append(f"compiled_speedup={speedups['ganlab_compiled']:.2f}")
    print(f"{label} {' '.join(parts)} speedup={speedups['ganlab']:.2f}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", help=f"comma-separated, from {', '.join(CASES)} (default: the CPU cases, and the CUDA ones on a GPU)")
    parser.add_argument("--objectives", help="comma-separated ganlab presets (default: wgan_gp on CPU; js,wgan_gp,spectral_norm on CUDA)")
    parser.add_argument("--precisions", help="comma-separated, from auto, fp32, bf16, fp16 (default: auto, ganlab's default, on CPU; fp32,bf16,fp16 on CUDA)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per loop and case (default 10)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds; medians count (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning, allocator)")
    parser.add_argument("--split-repeats", type=int, default=10, help="critic steps timed part by part")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="also time ganlab with compile=true")
    parser.add_argument("--device", help="run every case on this device instead of its own (e.g. the CUDA cases on the CPU, as a smoke test)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a ganlab config override for every case, e.g. --set objective.constraints.gp.every=4 (repeatable)")
    args = parser.parse_args(argv)
    register_configs()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {machine}", flush=True)

    names = [*CPU_DEFAULT["cases"], *(CUDA_DEFAULT["cases"] if torch.cuda.is_available() else [])]
    if args.cases:
        names = args.cases.split(",")
        unknown = [n for n in names if n not in CASES]
        if unknown:
            parser.error(f"unknown case {', '.join(unknown)}: choose from {', '.join(CASES)}")
    results = {}
    for name in names:
        if (args.device or CASES[name].device).startswith("cuda") and not torch.cuda.is_available():
            print(f"case={name} skipped: needs a CUDA device", flush=True)
            continue
        default = CUDA_DEFAULT if CASES[name].device == "cuda" else CPU_DEFAULT
        for objective in args.objectives.split(",") if args.objectives else default["objectives"]:
            for precision in args.precisions.split(",") if args.precisions else default["precisions"]:
                results[name, objective, precision] = bench_case(name, objective, precision, args)
    for name in CASES:  # the mixed-precision target: bf16 against fp32, both ganlab
        fp32, bf16 = results.get((name, "wgan_gp", "fp32")), results.get((name, "wgan_gp", "bf16"))
        if fp32 and bf16:
            print(f"bf16_over_fp32 case={name} objective=wgan_gp ratio={bf16['ganlab'] / fp32['ganlab']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
