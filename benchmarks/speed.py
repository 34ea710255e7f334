"""Speed: training throughput and prediction speed against the project's targets.

Training throughput
    A 115 -> 256x3 -> 64 MLP (:class:`~profemu.models.network.Network`, kind ``mlp``; inputs: 35
    parameters, log10 mass and 79 P(k) bins; 64 outputs, each with a mean and a
    variance) on synthetic arrays, batch 64, trained through
    :func:`profemu.train.loop.fit` for M = 1 and M = 5 members. The time of an epoch
    is the ``seconds`` entry of fit's history; the first epoch (which compiles) is
    left out and the median of the rest is used. Throughput is counted in
    member-samples per second (M x rows / epoch time): one sample through one
    member's forward and backward pass. The same model in a minimal hand-written
    optax loop (``jit`` + ``lax.scan`` over minibatches, ``vmap`` over members,
    Gaussian NLL, ``clip_by_global_norm`` + ``adamw``) is timed in the same run as
    the reference; the ratio profemu/reference is profemu's own overhead.
    Target: >= 63,000 member-samples/s (within 30 % of 90,000).

Prediction
    A 5-member emulator trained for a couple of epochs on a mock universe (accuracy
    is irrelevant here) with the default architecture (``ModelConfig()`` read at run
    time) and one with a 256x3 MLP; the single model is the first member alone:

    * batched profiles/s through ``jax.jit(emulator.predict_fn)`` on batches of
      10,000 inputs (a profile = every field on the radial grid for one input row);
      targets >= 200,000/s for one model and >= 40,000/s for a 5-member ensemble;
    * single-profile latency through the numpy path: the whole
      :meth:`Emulator.predict` call (input checks, extrapolation check, transforms,
      forward pass, decoding) and the bare numpy
      :meth:`profemu.models.network.Network.apply` call; target <= 100 µs
      for the 5-member ensemble (judged on the full call, median of repeats).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import figure_link, new_figure, save_figure, status, timeit

__all__ = ["TARGETS", "markdown", "run"]

#: The project's speed targets.
TARGETS: dict[str, float] = {
    "train_member_samples_per_s": 63_000.0,
    "predict_single_profiles_per_s": 200_000.0,
    "predict_ensemble_profiles_per_s": 40_000.0,
    "latency_ensemble_us": 100.0,
}

_N_PARAMS, _N_PK, _N_OUT = 35, 79, 64
_HIDDEN_256X3 = (256, 256, 256)


@dataclass(frozen=True)
class _Sizes:
    train_rows: int  # rows of the synthetic training set
    train_epochs: int  # epochs per throughput run (the first one compiles)
    train_members: tuple[int, ...]  # ensemble sizes of the throughput runs
    ensemble_members: int
    both_architectures: bool  # also the 256x3 MLP when the default differs
    mock_rows: int  # rows of the mock universe the prediction emulators train on
    emulator_epochs: int  # 0: untrained (initialised) weights
    batch: int  # rows per batched JAX prediction
    batch_repeats: int
    latency_number: int  # calls per latency repeat
    latency_repeats: int


_SIZES = {
    "full": _Sizes(16_384, 6, (1, 5), 5, True, 2000, 2, 10_000, 7, 300, 7),
    "quick": _Sizes(4_096, 4, (1, 5), 5, True, 2000, 2, 10_000, 3, 100, 5),
    "smoke": _Sizes(512, 2, (1,), 2, False, 240, 0, 256, 2, 5, 2),
}


# ------------------------------------------------------------------ training throughput
def _synthetic_data(n: int, seed: int) -> Any:
    """ArrayData of ``n`` rows: inputs of the reference shape and a smooth target [n, 64]."""
    from profemu.data.transforms import ArrayData

    rng = np.random.default_rng(seed)
    inputs = {
        "params": rng.normal(size=(n, _N_PARAMS)).astype(np.float32),
        "log10_mass": rng.normal(size=(n, 1)).astype(np.float32),
        "pk": rng.normal(size=(n, _N_PK)).astype(np.float32),
    }
    x = np.concatenate([inputs["params"], inputs["log10_mass"], inputs["pk"]], axis=1)
    weights = rng.normal(size=(x.shape[1], _N_OUT)) / np.sqrt(x.shape[1])
    target = np.tanh(x @ weights).astype(np.float32)
    return ArrayData(
        inputs=inputs, target=target, mask=np.ones_like(target), noise_var=np.zeros_like(target)
    )


def _throughput_model() -> tuple[Any, dict[str, np.ndarray]]:
    from profemu.config import ModelConfig
    from profemu.data.layout import FieldSpec, OutputLayout
    from profemu.models.network import Network

    layout = OutputLayout((FieldSpec("profile"),), _N_OUT,
                          (("params", _N_PARAMS), ("log10_mass", 1), ("pk", _N_PK)), _N_OUT)
    arrays = {"target_center": np.zeros(_N_OUT), "target_scale": np.ones(_N_OUT),
              "log10_radius": np.linspace(-2.0, 0.6, _N_OUT), "log10_mass_scale": np.asarray(1.0)}
    return Network(ModelConfig(kind="mlp", hidden=_HIDDEN_256X3), layout), arrays


def _profemu_epochs(model: Any, data: Any, members: int, epochs: int) -> list[float]:
    """Seconds of every epoch of a ``fit`` run (no validation data: training only)."""
    from profemu.config import Config
    from profemu.train.loop import fit
    from profemu.train.setup import TrainingProblem

    network, arrays = model
    cfg = Config().updated(
        {
            "model.hidden": list(_HIDDEN_256X3),
            "train.members": members,
            "train.epochs": epochs,
            "train.batch_size": 64,
            "train.patience": 0,
            "train.log_every": 10**6,
        }
    )
    result = fit(TrainingProblem(network, cfg, arrays, data, None))
    return [float(h["seconds"]) for h in result.history]


def _reference_epochs(
    model: Any, data: Any, members: int, epochs: int, seed: int = 0
) -> list[float]:
    """Seconds per epoch of a minimal optax loop training the same model (first = compile)."""
    import jax
    import jax.numpy as jnp
    import optax

    batch = 64
    n = data.target.shape[0]
    steps = n // batch
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(2e-3, weight_decay=1e-4))
    arrays = jax.device_put({"inputs": dict(data.inputs), "target": data.target})
    network, model_arrays = model

    def init(key: jax.Array) -> Any:
        params = network.init(key, model_arrays)
        return params, optimizer.init(params)

    def loss_fn(params: Any, inputs: Any, target: jax.Array) -> jax.Array:
        mean, var = network.apply(params, model_arrays, inputs, xp=jnp)[:2]
        return 0.5 * jnp.mean(jnp.log(var) + (target - mean) ** 2 / var)

    def member_epoch(params: Any, opt_state: Any, key: jax.Array, arrays: Any) -> Any:
        order = jax.random.permutation(key, n)[: steps * batch].reshape(steps, batch)

        def step(carry: Any, idx: jax.Array) -> Any:
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(
                params, jax.tree.map(lambda a: a[idx], arrays["inputs"]), arrays["target"][idx]
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, losses.mean()

    epoch_fn = jax.jit(jax.vmap(member_epoch, in_axes=(0, 0, 0, None)))
    keys = jax.random.split(jax.random.PRNGKey(seed), members)
    params, opt_state = jax.jit(jax.vmap(init))(keys)
    seconds = []
    for e in range(epochs):
        epoch_keys = jax.vmap(lambda k, e=e: jax.random.fold_in(k, e))(keys)
        start = time.perf_counter()
        params, opt_state, loss = epoch_fn(params, opt_state, epoch_keys, arrays)
        jax.block_until_ready(loss)
        seconds.append(time.perf_counter() - start)
    return seconds


def _training_throughput(sizes: _Sizes) -> list[dict[str, Any]]:
    model = _throughput_model()
    data = _synthetic_data(sizes.train_rows, seed=0)
    n = sizes.train_rows
    rows = []
    for members in sizes.train_members:
        prof = _profemu_epochs(model, data, members, sizes.train_epochs)
        ref = _reference_epochs(model, data, members, sizes.train_epochs)
        prof_epoch = statistics.median(prof[1:])
        ref_epoch = statistics.median(ref[1:])
        prof_rate = members * n / prof_epoch
        ref_rate = members * (n // 64 * 64) / ref_epoch
        rows.append(
            {
                "members": members,
                "rows": n,
                "epochs_timed": len(prof) - 1,
                "profemu_epoch_s": prof_epoch,
                "profemu_first_epoch_s": prof[0],
                "profemu_member_samples_per_s": prof_rate,
                "profemu_rows_per_s": n / prof_epoch,
                "reference_epoch_s": ref_epoch,
                "reference_first_epoch_s": ref[0],
                "reference_member_samples_per_s": ref_rate,
                "ratio_profemu_over_reference": prof_rate / ref_rate,
                "target": TARGETS["train_member_samples_per_s"],
                "status": status(
                    prof_rate, TARGETS["train_member_samples_per_s"], higher_is_better=True
                ),
            }
        )
        print(
            f"[speed] training M={members}: profemu {prof_rate:,.0f} member-samples/s, "
            f"reference {ref_rate:,.0f} ({prof_rate / ref_rate:.2f}x)",
            flush=True,
        )
    return rows


# ------------------------------------------------------------------ prediction
def _architectures(both: bool) -> list[dict[str, Any]]:
    """The plain MLP and the physics core at the default trunk width (and, in full runs, the
    attention variant and a 256x3 MLP), each with the default data settings (P(k) PCA)."""
    from profemu.config import ModelConfig

    hidden = list(ModelConfig().hidden)
    width = "x".join(map(str, hidden))
    archs = [
        {"label": f"MLP {width}", "overrides": {"model.kind": "mlp"}, "kind": "mlp", "hidden": hidden},
        {"label": f"physics core {width} (power law + FM)", "overrides": {"model.kind": "physics"},
         "kind": "physics", "hidden": hidden},
    ]
    if both:
        archs += [
            {"label": f"physics core {width}, attention", "kind": "physics", "hidden": hidden,
             "overrides": {"model.kind": "physics", "model.interaction": "attention"}},
            {"label": "256x3 MLP", "overrides": {"model.kind": "mlp", "model.hidden": list(_HIDDEN_256X3)},
             "kind": "mlp", "hidden": list(_HIDDEN_256X3)},
        ]
    return archs


def _make_emulator(
    dataset: Any, overrides: dict[str, Any], members: int, epochs: int
) -> tuple[Any, Any]:
    """An Emulator trained for ``epochs`` epochs (0: freshly initialised weights) and its training rows."""
    import jax

    from profemu.config import Config
    from profemu.emulator import Emulator
    from profemu.models.network import Network
    from profemu.runs.training import train_emulator
    from profemu.train.setup import prepare

    cfg = Config().updated(
        {
            **overrides,
            "train.members": members,
            "train.epochs": max(epochs, 1),
            "train.patience": 0,
            "train.calibrate": False,
            "train.log_every": 10**6,
        }
    )
    if epochs > 0:
        outcome = train_emulator(dataset, cfg, evaluate_test=False)
        return outcome.emulator, outcome.prepared.train
    prep = prepare(dataset, cfg)
    net, arrays = Network(cfg.model, prep.transforms.layout), prep.transforms.model_arrays()
    params = jax.vmap(lambda k: net.init(k, arrays))(jax.random.split(jax.random.PRNGKey(0), members))
    return Emulator(prep.transforms, cfg.model, params), prep.train


def _first_members(emulator: Any, members: int) -> Any:
    """The Emulator made of the first ``members`` members of ``emulator``."""
    import jax

    from profemu.emulator import Emulator

    params = jax.tree.map(lambda a: np.asarray(a)[:members], emulator.weights)
    return Emulator(
        emulator.transforms,
        emulator.model_config,
        params,
        metadata=emulator.metadata,
        variance_scale=emulator.variance_scale,
        on_extrapolation=emulator.on_extrapolation,
    )


def _prediction_rows(emulator: Any, train_ds: Any, sizes: _Sizes, seed: int = 0) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, train_ds.n, sizes.batch)
    params = jnp.asarray(train_ds.params[rows])
    mass = jnp.asarray(train_ds.log10_mass[rows])
    pk = None if train_ds.pk_ratio is None else jnp.asarray(train_ds.pk_ratio[rows])
    predict = jax.jit(emulator.predict_fn)
    batched = timeit(lambda: predict(params, mass, pk), repeats=sizes.batch_repeats)

    p1, m1 = np.asarray(train_ds.params[0]), float(train_ds.log10_mass[0])
    pk1 = None if train_ds.pk_ratio is None else np.asarray(train_ds.pk_ratio[0])
    full = timeit(
        lambda: emulator.predict(p1, m1, pk1),
        repeats=sizes.latency_repeats,
        number=sizes.latency_number,
    )
    inputs = emulator.transforms.transform_inputs(
        p1[None], np.array([m1]), None if pk1 is None else pk1[None], None, xp=np
    )
    inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
    bare = timeit(
        lambda: emulator.network.apply(emulator.weights, emulator.arrays, inputs),
        repeats=sizes.latency_repeats,
        number=sizes.latency_number,
    )
    jp1, jm1 = jnp.asarray(p1), jnp.asarray(m1)
    jpk1 = None if pk1 is None else jnp.asarray(pk1)
    jax_single = timeit(
        lambda: predict(jp1, jm1, jpk1), repeats=sizes.latency_repeats, number=sizes.latency_number
    )
    return {
        "batch": sizes.batch,
        "jax_batch_s": batched.median,
        "jax_batch_best_s": batched.best,
        "jax_compile_s": batched.warmup_seconds,
        "jax_profiles_per_s": sizes.batch / batched.median,
        "numpy_predict_us": full.median * 1e6,
        "numpy_predict_best_us": full.best * 1e6,
        "numpy_forward_us": bare.median * 1e6,
        "numpy_forward_best_us": bare.best * 1e6,
        "jax_single_us": jax_single.median * 1e6,
        "jax_single_best_us": jax_single.best * 1e6,
    }


def _prediction(sizes: _Sizes) -> list[dict[str, Any]]:
    from profemu.data.mock import make_mock_universe

    dataset = make_mock_universe(sizes.mock_rows, seed=0).dataset
    out = []
    for arch in _architectures(sizes.both_architectures):
        ensemble, train_rows = _make_emulator(
            dataset, arch["overrides"], sizes.ensemble_members, sizes.emulator_epochs
        )
        for members in (1, sizes.ensemble_members):
            emulator = (
                ensemble if members == ensemble.members else _first_members(ensemble, members)
            )
            row = {
                "architecture": arch["label"],
                "kind": arch["kind"],
                "hidden": arch["hidden"],
                "members": members,
                "fields": list(emulator.field_names),
                "n_r": int(emulator.transforms.n_r),
            }
            row.update(_prediction_rows(emulator, train_rows, sizes))
            target = TARGETS[
                "predict_single_profiles_per_s"
                if members == 1
                else "predict_ensemble_profiles_per_s"
            ]
            row["throughput_target"] = target
            row["throughput_status"] = status(
                row["jax_profiles_per_s"], target, higher_is_better=True
            )
            if members > 1:
                row["latency_target_us"] = TARGETS["latency_ensemble_us"]
                row["latency_status"] = status(
                    row["numpy_predict_us"], TARGETS["latency_ensemble_us"], higher_is_better=False
                )
            print(
                f"[speed] predict {arch['label']} M={members}: {row['jax_profiles_per_s']:,.0f} profiles/s "
                f"(JAX), numpy single {row['numpy_predict_us']:.0f} µs "
                f"(forward {row['numpy_forward_us']:.0f} µs)",
                flush=True,
            )
            out.append(row)
    _ratios(out)
    return out


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Same-run ratios: each architecture against the MLP of the same members, and the
    ensemble's throughput against one member's divided by the member count."""
    mlp = {r["members"]: r for r in rows if r["architecture"] == rows[0]["architecture"]}
    single = {r["architecture"]: r for r in rows if r["members"] == 1}
    for r in rows:
        ref = mlp.get(r["members"])
        r["throughput_vs_mlp"] = r["jax_profiles_per_s"] / ref["jax_profiles_per_s"] if ref else None
        one = single.get(r["architecture"])
        r["ensemble_efficiency"] = (r["jax_profiles_per_s"] / (one["jax_profiles_per_s"] / r["members"])
                                    if one and r["members"] > 1 else None)


# ------------------------------------------------------------------ figure
def _figure(results: dict[str, Any], out_dir: Path) -> str:
    labels, ratios = [], []
    for row in results["training"]:
        labels.append(f"train M={row['members']} (samples/s)")
        ratios.append(row["profemu_member_samples_per_s"] / row["target"])
    for row in results["prediction"]:
        short = row["architecture"].split(" = ")[0]
        labels.append(f"predict {short} M={row['members']} (profiles/s)")
        ratios.append(row["jax_profiles_per_s"] / row["throughput_target"])
        if "latency_target_us" in row:
            labels.append(f"latency {short} M={row['members']} (1 input, numpy)")
            ratios.append(row["latency_target_us"] / row["numpy_predict_us"])
    fig, ax = new_figure(8.5, 0.45 * len(labels) + 1.4)
    y = np.arange(len(labels))
    colors = ["tab:green" if r >= 1 else "tab:red" for r in ratios]
    ax.barh(y, ratios, color=colors)
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    lo = min(0.1, 0.8 * min(ratios))
    hi = max(10.0, 1.25 * max(ratios))
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100) if lo <= t <= hi]
    ax.set_xlim(lo, hi)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("measured / target (latency: target / measured); > 1 meets the target")
    ax.set_title("Speed against the targets")
    return save_figure(fig, out_dir, "speed_targets")


# ------------------------------------------------------------------ entry points
def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Run the speed benchmarks.

    Args:
        quick: Smaller training set and fewer repeats.
        out_dir: Folder whose ``figures/`` receives ``speed_targets.png``.
        smoke: Tiny sizes, only to check that everything runs (numbers meaningless).

    Returns:
        JSON-safe results: ``sizes``, ``targets``, ``training`` (one row per M) and
        ``prediction`` (one row per architecture and M), ``figures``.
    """
    sizes = _SIZES["smoke" if smoke else "quick" if quick else "full"]
    results: dict[str, Any] = {
        "sizes": dataclasses.asdict(sizes),
        "targets": dict(TARGETS),
        "training": _training_throughput(sizes),
        "prediction": _prediction(sizes),
    }
    results["figures"] = {"targets": _figure(results, Path(out_dir))}
    return results


def markdown(results: dict[str, Any]) -> str:
    """The Speed section of BENCHMARKS.md."""
    from benchmarks.markdown import fmt, table

    s = results["sizes"]
    parts = ["## Speed", ""]
    parts.append(
        f"**Training throughput.** 115 → 256x3 → 64 MLP (mean and variance heads), batch 64, "
        f"{s['train_rows']:,} synthetic rows, median of {s['train_epochs'] - 1} epochs after the "
        "compiling first one; no validation. Throughput counts member-samples per second "
        "(members × rows / epoch time). The reference is the same model in a minimal `jit` + "
        "`lax.scan` optax loop, timed in the same run."
    )
    parts.append("")
    rows = [
        [
            r["members"],
            fmt(r["profemu_epoch_s"]),
            fmt(r["profemu_member_samples_per_s"]),
            fmt(r["reference_member_samples_per_s"]),
            f"{r['ratio_profemu_over_reference']:.2f}",
            fmt(r["target"]),
            f"**{r['status']}**",
        ]
        for r in results["training"]
    ]
    parts.append(
        table(
            [
                "members",
                "epoch [s]",
                "profemu [samples/s]",
                "reference [samples/s]",
                "profemu / reference",
                "target",
                "status",
            ],
            rows,
        )
    )
    parts.append("")
    parts.append(
        f"**Prediction.** Emulators trained for {s['emulator_epochs']} epoch(s) on a mock universe "
        f"({s['mock_rows']:,} rows; accuracy irrelevant here). Batched: `jax.jit(emulator.predict_fn)` "
        f"on {s['batch']:,} inputs, median of {s['batch_repeats']} calls after a compiling one; a profile "
        "is every field on the radial grid for one input. Latency: one input, median (best) over "
        f"{s['latency_repeats']} repeats of {s['latency_number']} calls; `Emulator.predict` is the "
        "whole numpy call, `Network.apply` the bare numpy network. Inputs: the mock universe's 35 "
        "parameters, log10 mass and 79 P(k) bins (through their PCA basis, the default)."
    )
    parts.append("")
    rows = []
    for r in results["prediction"]:
        lat = (
            f"**{r['latency_status']}** (≤ {fmt(r['latency_target_us'])} µs)"
            if "latency_status" in r
            else "–"
        )
        vs_mlp = r.get("throughput_vs_mlp")
        eff = r.get("ensemble_efficiency")
        rows.append(
            [
                r["architecture"],
                r["members"],
                fmt(r["jax_profiles_per_s"]),
                "–" if vs_mlp is None else f"{vs_mlp:.2f}" + (
                    "" if r["kind"] == "mlp" else f" **{'PASS' if vs_mlp >= 0.7 else 'MISS'}** (≥ 0.7)"),
                "–" if eff is None else f"{eff:.2f} **{'PASS' if eff >= 0.6 else 'MISS'}** (≥ 0.6)",
                f"**{r['throughput_status']}** (≥ {fmt(r['throughput_target'])})",
                f"{fmt(r['numpy_predict_us'])} ({fmt(r['numpy_predict_best_us'])})",
                f"{fmt(r['numpy_forward_us'])} ({fmt(r['numpy_forward_best_us'])})",
                f"{fmt(r['jax_single_us'])} ({fmt(r['jax_single_best_us'])})",
                lat,
            ]
        )
    parts.append(
        table(
            [
                "architecture",
                "members",
                "JAX batched [profiles/s]",
                "/ MLP (same members)",
                "M-member / (1-member / M)",
                "throughput",
                "`Emulator.predict` 1 input [µs]",
                "`Network.apply` [µs]",
                "jitted `predict_fn` 1 input [µs]",
                "latency",
            ],
            rows,
        )
    )
    fig = results.get("figures", {}).get("targets")
    if fig:
        parts += ["", figure_link(results, fig, "measured / target for every speed target")]
    return "\n".join(parts) + "\n"
