"""The DDSP autoencoder's training: a LightningModule that wraps a `ddsp_lab.models.DDSP` and owns
only what training needs: losses, the optimiser, the non-finite-step guard, metrics and logging."""
from __future__ import annotations

import functools
import random
from typing import Callable, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from .. import dsp
from ..models.ddsp import DDSP
from ..models.loading import upgrade_state_dict
from ..processors import ProcessorGroup

class DDSPAutoencoder(pl.LightningModule):
    """Args:
        preprocessor, decoder, synth, encoder, sample_rate, frame_rate: the model's parts and
            rates (see DDSP; `self.model` is the DDSP they make).
        losses: {name: loss module called loss(target_audio, audio)}.
        loss_weights: {name: weight} (default 1 each); the training loss is the weighted sum.
        optimizer: a partial optimizer (Hydra `_partial_: true`), given the parameters.
        scheduler: optional partial LR scheduler, stepped every optimisation step.
        max_consecutive_skips: a step whose gradients are not finite (NaN/inf loss or gradient) is
            skipped and counted; this many in a row stops the run with a clear message.
        f0_metric: validation also reports f0 L1 (cents) from CREPE on target and resynthesis.
        noise_seed: seed of the training steps' noise generator (the synth's random processors),
            plus the rank under DDP; None: torch.initial_seed() (which seed_everything sets).

    Skipping (see `skip_mode`) decides on the device and copies nothing where it can: a fused
    optimizer (Adam/AdamW/SGD with fused=True, the shipped default) takes the verdict as
    `found_inf`, the flag GradScaler hands it, and its kernel leaves parameters, state and step
    count as they were (no host sync, no copy); on CPU, where reading the flag costs nothing, a
    bad step's gradients are dropped so that any optimizer skips every parameter; elsewhere
    (another optimizer on an accelerator, or fp16's GradScaler) parameters and state are kept
    and restored with torch.where, on the device. The counters are read only at logging
    intervals. Under DDP the decision is all-reduced (a step is skipped on every rank if it is
    bad on any), so replicas and counters stay identical and a stop ends every rank at the same step.

    Training noise comes from its own torch.Generator (saved per rank in checkpoints): validation
    and media rendering draw from the global RNG, so how often they run does not change training.
    """

    def __init__(self, preprocessor: nn.Module, decoder: nn.Module, synth: ProcessorGroup,
                 losses: Mapping[str, nn.Module], loss_weights: Mapping[str, float] | None = None,
                 encoder: nn.Module | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, max_consecutive_skips: int = 20,
                 f0_metric: bool = False, sample_rate: int = 16000, frame_rate: int = 250,
                 noise_seed: int | None = None):
        super().__init__()
        self.model = DDSP(preprocessor, decoder, synth, encoder=encoder, sample_rate=sample_rate,
                          frame_rate=frame_rate)
        self.losses = nn.ModuleDict(dict(losses))
        if not self.losses:
            raise ValueError("DDSPAutoencoder needs at least one loss")
        self.loss_weights = {k: float((loss_weights or {}).get(k, 1.0)) for k in self.losses}
        self.optimizer_fn, self.scheduler_fn = optimizer, scheduler
        self.max_consecutive_skips, self.noise_seed = max_consecutive_skips, noise_seed
        self.f0_metric = f0_metric
        self._crepe = None
        # f0 errors averaged over the validation's confident frames: (sum, frames) per key
        self._frame_sums: dict[str, tuple] = {}
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("consecutive_skips", torch.zeros((), dtype=torch.long))
        self.register_buffer("max_consecutive_seen", torch.zeros((), dtype=torch.long))
        self._loss_finite: Tensor | None = None  # this rank's, ANDed over accumulated micro-batches
        self._step_ok: Tensor | None = None  # the step's verdict, the same on every rank
        self._stopped_for_skips = False
        self._train_noise: torch.Generator | None = None
        self._noise_to_restore: Tensor | None = None

    # the model's parts and record, as attributes of the module (callbacks, older code)
    preprocessor = property(lambda self: self.model.preprocessor)
    encoder = property(lambda self: self.model.encoder)
    decoder = property(lambda self: self.model.decoder)
    synth = property(lambda self: self.model.synth)
    sample_rate = property(lambda self: self.model.sample_rate)
    frame_rate = property(lambda self: self.model.frame_rate)
    hop_size = property(lambda self: self.model.hop_size)
    dataset_info = property(lambda self: self.model.dataset_info)
    dataset_statistics = property(lambda self: self.model.dataset_statistics)
    feature_settings = property(lambda self: self.model.feature_settings)

    @property
    def config(self) -> dict | None:
        """The resolved Hydra config of the parts, saved in checkpoints (the model's)."""
        return self.model.config

    @config.setter
    def config(self, value: dict | None) -> None:
        self.model.config = value

    def set_dataset(self, info: dict | None) -> None:
        self.model.set_dataset(info)

    def forward(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The model's pass over a batch; generator: where the synth's random processors draw noise."""
        return self.model(batch, generator=generator)

    def n_samples_for(self, features: Mapping[str, Tensor]) -> int:
        return self.model.n_samples_for(features)

    def synthesize(self, f0_hz: Tensor, loudness_db: Tensor, **features: Tensor) -> Tensor:
        return self.model.synthesize(f0_hz, loudness_db, **features)

    def compute_losses(self, batch: Mapping[str, Tensor], outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        audio = outputs[self.synth.output].float()
        target = batch["audio"][..., : audio.shape[-1]].float()
        with torch.autocast(device_type=self.device.type, enabled=False):
            terms = {name: loss(target, audio) for name, loss in self.losses.items()}
        terms["total"] = sum(self.loss_weights[k] * v for k, v in terms.items())
        return terms

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        terms = self.compute_losses(batch, self(batch, generator=self.training_noise()))
        finite = torch.isfinite(terms["total"].detach())  # stays on the device
        self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=batch["audio"].shape[0])
        if self._trainer is not None and self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            self._check_skips()  # the only host read of the counters: at logging intervals
        return terms["total"]

    def _check_skips(self) -> None:
        """Stops the run (every rank: the counters agree, see optimizer_step) after too many skips
        in a row. Through trainer.should_stop, so that every rank leaves the loop at the same step
        with no collective left waiting; on_train_end then raises the error on every rank."""
        self.log("train/skipped_steps", self.skipped_steps.float(), prog_bar=False)
        if int(self.max_consecutive_seen) >= self.max_consecutive_skips:
            self._stopped_for_skips = True
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        stopped, self._stopped_for_skips = self._stopped_for_skips, False
        if stopped:
            self.trainer.strategy.barrier("ddsp_lab_nonfinite_stop")  # every rank raises, none is left behind
            raise RuntimeError(
                f"training stopped at step {self.global_step}: {int(self.max_consecutive_seen)} consecutive steps had "
                f"a non-finite loss or gradient on some rank ({int(self.skipped_steps)} skipped in all); check the "
                f"data for NaN/silence and the learning rate")

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        finite = (torch.stack([torch.isfinite(g).all() for g in grads]).all() if grads
                  else torch.ones((), dtype=torch.bool, device=self.device))
        loss_finite, self._loss_finite = self._loss_finite, None
        # After DDP's all-reduce the gradients agree on every rank, the loss flags do not: the verdict
        # is the MIN over ranks, so every replica skips (or takes) the same steps.
        self._step_ok = ok = _on_every_rank(finite & loss_finite if loss_finite is not None else finite)
        mode = self.skip_mode(optimizer)
        if mode == "found_inf":  # read by the fused kernel after this hook (and the clip): 1 = skip
            optimizer.found_inf = (~ok).to(torch.float32)
        elif mode == "host" and not bool(ok):  # CPU: no device to wait for; no gradient, no update
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None

    def skip_mode(self, optimizer) -> str:
        """How a non-finite step is skipped with this optimizer: 'found_inf' (a fused optimizer
        without a GradScaler: its kernel skips on the device), 'host' (on CPU: the gradients
        are dropped), 'copy' (otherwise: kept copies restored with torch.where)."""
        scaler = getattr(getattr(self._trainer, "precision_plugin", None), "scaler", None)
        if getattr(optimizer, "_step_supports_amp_scaling", False) and scaler is None:
            return "found_inf"
        return "host" if self.device.type == "cpu" else "copy"

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer, optimizer_closure=None) -> None:
        raw = getattr(optimizer, "optimizer", optimizer)  # Lightning's wrapper around the torch optimizer
        if self.skip_mode(raw) == "copy":
            self._step_restoring(raw, optimizer, optimizer_closure)
        else:
            try:
                optimizer.step(closure=optimizer_closure)
            finally:
                raw.__dict__.pop("found_inf", None)
        ok, self._step_ok = self._step_ok, None
        ok = ok if ok is not None else torch.ones((), dtype=torch.bool, device=self.device)
        with torch.no_grad():
            bad = (~ok).long()
            self.skipped_steps += bad
            self.consecutive_skips.copy_((self.consecutive_skips + 1) * bad)
            self.max_consecutive_seen.copy_(torch.maximum(self.max_consecutive_seen, self.consecutive_skips))

    def _step_restoring(self, raw, optimizer, optimizer_closure) -> None:
        """The step with parameters and optimizer state kept and put back where the verdict is
        bad (torch.where, on the device): for optimizers that take no found_inf on accelerators."""
        params = [p for group in raw.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        state = [{k: v.clone() for k, v in raw.state[p].items() if torch.is_tensor(v)} for p in params]
        optimizer.step(closure=optimizer_closure)
        ok = self._step_ok if self._step_ok is not None else torch.ones((), dtype=torch.bool, device=self.device)
        ok_on = {ok.device: ok}  # Adam keeps `step` on the CPU: one copy per step there (a host sync on GPU)
        with torch.no_grad():
            for p, old, old_state in zip(params, before, state):
                p.copy_(torch.where(ok, p, old))
                for k, new in raw.state[p].items():
                    if not torch.is_tensor(new):
                        continue
                    # State this step created (Adam's on the first step) goes back to zeros: for Adam and
                    # AdamW (moments 0, step 0), SGD's momentum and RMSprop that is the fresh state.
                    old_v = old_state[k] if k in old_state else torch.zeros((), dtype=new.dtype, device=new.device)
                    if new.device not in ok_on:
                        ok_on[new.device] = ok.to(new.device)
                    new.copy_(torch.where(ok_on[new.device], new, old_v))

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        outputs = self(batch)
        terms = self.compute_losses(batch, outputs)
        metrics = self.resynthesis_metrics(batch, outputs)
        for key in FRAME_MEANS:  # accumulated out of place: validation may run in inference mode
            if key in metrics:
                mean, frames = metrics.pop(key), metrics.pop(f"{key}_frames").to(torch.float64)
                total, count = self._frame_sums.get(key, (0.0, 0.0))
                self._frame_sums[key] = (total + mean.double() * frames, count + frames)
        terms.update(metrics)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=batch["audio"].shape[0],
                      sync_dist=True)

    @torch.no_grad()
    def resynthesis_metrics(self, batch: Mapping[str, Tensor], outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Loudness L1 (dB) between target and resynthesis (the training data's loudness settings);
        with f0_metric, f0 L1 in cents between
        CREPE (tiny) on both, over frames where CREPE is confident (features.is_confident) on both; with an encoder
        that predicts f0, its f0 L1 in cents against the dataset's f0 where that is confident. Each
        f0 metric comes with `<name>_frames`, the frames it averages (0: the mean is 0 and means
        nothing; validation weighs batches by it)."""
        from ..features import LOUDNESS_N_FFT, CrepeF0, compute_loudness_frames, is_confident

        audio = outputs[self.synth.output].float()
        target = batch["audio"][..., : audio.shape[-1]].float()
        n_fft = self.feature_settings.loudness_n_fft if self.feature_settings is not None else LOUDNESS_N_FFT
        metrics = {"loudness_l1_db": torch.mean(torch.abs(
            compute_loudness_frames(target, self.sample_rate, self.frame_rate, n_fft)
            - compute_loudness_frames(audio, self.sample_rate, self.frame_rate, n_fft)))}
        if self.f0_metric:
            if self._crepe is None:
                self._crepe = CrepeF0("tiny", viterbi=False, device=str(self.device))
            f0_t, c_t = self._crepe(target, self.sample_rate, self.frame_rate)
            f0_x, c_x = self._crepe(audio, self.sample_rate, self.frame_rate)
            mask = is_confident(c_t) & is_confident(c_x)
            metrics["f0_l1_cents"] = _cents_l1(f0_x, f0_t, mask).to(self.device)
            metrics["f0_l1_cents_frames"] = mask.sum().to(self.device)
        if getattr(self.encoder, "predicts_f0", False) and "f0_hz" in batch:
            f0_data = batch["f0_hz"].float()
            f0_data = f0_data if f0_data.dim() == 3 else f0_data[..., None]
            confident = batch.get("f0_confidence", torch.ones_like(f0_data))
            confident = is_confident(confident if confident.dim() == 3 else confident[..., None])
            f0_pred = dsp.resample(outputs["f0_hz"].float(), f0_data.shape[1])
            metrics["f0_encoder_l1_cents"] = _cents_l1(f0_pred, f0_data, confident)
            metrics["f0_encoder_l1_cents_frames"] = confident.sum()
        return metrics

    def on_validation_epoch_start(self) -> None:
        self._frame_sums = {}

    def on_validation_epoch_end(self) -> None:
        """The f0 errors over every confident frame of the validation (all ranks): a batch
        without any adds nothing (it used to add a 0 weighted like any batch); a validation
        without any reports NaN, not 0."""
        for key, (total, count) in sorted(self._frame_sums.items()):
            total, count = (self.trainer.strategy.reduce(torch.as_tensor(v, dtype=torch.float64, device=self.device),
                                                         reduce_op="sum") for v in (total, count))
            self.log(f"val/{key}", (total / count).float(), prog_bar=True)
        self._frame_sums = {}

    def on_fit_start(self) -> None:
        card = getattr(getattr(self._trainer, "datamodule", None), "dataset_card", None)
        if callable(card):  # validation metrics use the training data's feature settings
            self.set_dataset(card())

    def _dataset_card(self) -> dict | None:
        """The training data's record: from the trainer's datamodule when it has one, else the
        attached one (a run resumed or fitted without a prepared-data datamodule)."""
        card = getattr(getattr(self._trainer, "datamodule", None), "dataset_card", None)
        return card() if callable(card) else self.dataset_info

    def training_noise(self) -> torch.Generator:
        """The generator the synth draws from in training steps, on the model's device, seeded
        with noise_seed (None: torch.initial_seed()) + the rank."""
        if self._train_noise is None or self._train_noise.device != self.device:
            seed = torch.initial_seed() if self.noise_seed is None else int(self.noise_seed)
            self._train_noise = torch.Generator(device=self.device).manual_seed((seed + self.global_rank) % 2**63)
        return self._train_noise

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.config is not None:
            checkpoint["ddsp_lab_config"] = self.config
        dataset = self._dataset_card()
        if dataset is not None:  # plain values: weights_only loads
            checkpoint["ddsp_lab_dataset"] = dataset
        # every rank's (Lightning builds the checkpoint on all ranks; rank 0 writes it)
        states = _rng_states()
        if self._train_noise is not None:  # a ByteTensor: weights_only loads
            states["training_noise"] = self._train_noise.get_state()
        checkpoint["rng_states"] = _gather_from_ranks(states)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # checkpoints written before the DDSP module held the parts: preprocessor.* -> model.preprocessor.*
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint.get("state_dict", {}))
        self.set_dataset(checkpoint.get("ddsp_lab_dataset"))
        per_rank = checkpoint.get("rng_states")
        if isinstance(per_rank, list) and per_rank:  # this rank's (a run resumed on fewer/more ranks wraps)
            self._rng_to_restore = per_rank[self.global_rank % len(per_rank)]

    def on_train_start(self) -> None:
        # Restored here, not at load: the sanity-check validation in between draws noise too.
        self._stopped_for_skips, self._loss_finite = False, None
        states, self._rng_to_restore = getattr(self, "_rng_to_restore", None), None
        if states is not None:
            _set_rng_states(states)
        noise, state = self.training_noise(), (states or {}).get("training_noise")
        if state is not None and state.numel() == noise.get_state().numel():  # not if saved on another device type
            noise.set_state(state)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping, except for a fused optimizer without a GradScaler (32-bit, bf16):
        Lightning's mixed-precision plugin refuses to clip for any fused optimizer, for fear of a
        scaler that unscales inside the step; without one the gradients are the true ones and
        are clipped here, as Lightning clips them in 32-bit."""
        scaler = getattr(getattr(self._trainer, "precision_plugin", None), "scaler", None)
        if gradient_clip_val and scaler is None and getattr(optimizer, "_step_supports_amp_scaling", False):
            if gradient_clip_algorithm == "value":  # a str enum: equal to its value
                torch.nn.utils.clip_grad_value_(self.parameters(), float(gradient_clip_val))
            else:
                torch.nn.utils.clip_grad_norm_(self.parameters(), float(gradient_clip_val))
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)

    def configure_optimizers(self):
        make = self.optimizer_fn or (lambda p: torch.optim.Adam(p, lr=3e-4))
        scaler = getattr(getattr(self._trainer, "precision_plugin", None), "scaler", None)
        if scaler is not None and getattr(make, "keywords", {}).get("fused"):
            # fp16's GradScaler with a fused optimizer unscales inside the step, after Lightning's
            # gradient clipping would have run: Lightning refuses the pair, so fp16 takes the foreach kernel
            make = functools.partial(make, fused=False)
        opt = make(self.parameters())
        if self.scheduler_fn is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_fn(opt), "interval": "step"}}


FRAME_MEANS = ("f0_l1_cents", "f0_encoder_l1_cents")  # validation metrics averaged over frames, not batches


def _cents_l1(f0_hz: Tensor, f0_ref_hz: Tensor, mask: Tensor) -> Tensor:
    """Mean |cents| between two f0 curves over the frames where mask is true (0 where none)."""
    cents = 1200.0 * torch.abs(torch.log2(f0_hz.clamp(min=1e-3) / f0_ref_hz.clamp(min=1e-3)))
    mask = mask.to(cents.dtype)
    return (cents * mask).sum() / mask.sum().clamp(min=1.0)


def _rng_states() -> dict:
    """The global random states a training step draws from (the noise synth, dropout...)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),  # tensors and ints: weights_only loads
              "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _on_every_rank(flag: Tensor) -> Tensor:
    """True where `flag` (bool, on the device) is true on every rank: a MIN all-reduce under
    torch.distributed, queued on the device like DDP's own (no host sync); else flag."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    flag = flag.to(torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag.bool()


def _gather_from_ranks(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] under torch.distributed, else [obj]."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])

