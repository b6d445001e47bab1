"""Media callback: every N training steps (and after each validation), resynthesize a validation
batch and log target vs resynthesis audio, side-by-side spectrograms, f0 / loudness / control
plots and the learned reverb impulse response: to W&B (WandbLogger), TensorBoard, and always to
<run_dir>/media/step-XXXXXXX/ so that users without W&B see the same."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from .files import save_wav


def _figure(target: np.ndarray, synth: np.ndarray, outputs: dict, sample_rate: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import show_spectrogram

    fig, axes = plt.subplots(2, 3, figsize=(15, 6))
    for ax, audio, title in ((axes[0, 0], target, "target"), (axes[0, 1], synth, "resynthesis")):
        show_spectrogram(ax, audio, sample_rate)
        ax.set_title(title)
    for ax, key in ((axes[0, 2], "f0_hz"), (axes[1, 0], "loudness_db")):
        if key in outputs:
            ax.plot(outputs[key][0, :, 0].detach().float().cpu().numpy(), label="model")
            ax.set_title(key)
    if "f0_hz_data" in outputs:  # an f0 encoder's prediction against the dataset's (CREPE) f0
        axes[0, 2].plot(outputs["f0_hz_data"][0, :, 0].detach().float().cpu().numpy(), "--", label="data (CREPE)")
        axes[0, 2].legend()
    for ax, key in ((axes[1, 1], "harmonic/harmonic_distribution"), (axes[1, 2], "noise/magnitudes")):
        if key in outputs:
            ax.imshow(outputs[key][0].detach().float().cpu().numpy().T, origin="lower", aspect="auto")
            ax.set_title(key)
    fig.tight_layout()
    return fig


class MediaLogger(pl.Callback):
    """Args: every_n_steps: logging interval (also after each validation); n_examples: how many."""

    def __init__(self, every_n_steps: int = 1000, n_examples: int = 2):
        self.every_n_steps, self.n_examples = every_n_steps, n_examples
        self._batch = None
        self._last_step = -1

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._batch is None and batch_idx == 0:
            self._batch = {k: v[: self.n_examples].detach() for k, v in batch.items()}

    def on_validation_end(self, trainer, pl_module):
        self.log_media(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            self.log_media(trainer, pl_module)

    @torch.no_grad()
    def log_media(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if self._batch is None or step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        import matplotlib.pyplot as plt

        was_training = pl_module.training
        pl_module.eval()
        batch = {k: v.to(pl_module.device) for k, v in self._batch.items()}
        outputs = pl_module(batch)
        pl_module.train(was_training)
        if getattr(pl_module.encoder, "predicts_f0", False) and "f0_hz" in batch:
            outputs = {**outputs, "f0_hz_data": batch["f0_hz"]}
        synth = outputs[pl_module.synth.output].float().cpu().numpy()
        sample_rate = int(pl_module.sample_rate)  # the model's (its first processor need not have one)
        out_dir = Path(trainer.default_root_dir) / "media" / f"step-{step:07d}"
        media = {}
        for i in range(synth.shape[0]):
            target = batch["audio"][i, : synth.shape[1]].float().cpu().numpy()
            save_wav(out_dir / f"example{i}_target.wav", target, sample_rate)
            save_wav(out_dir / f"example{i}_resynthesis.wav", synth[i], sample_rate)
            fig = _figure(target, synth[i], {k: v[i:i + 1] for k, v in outputs.items() if torch.is_tensor(v)},
                          sample_rate)
            fig.savefig(out_dir / f"example{i}.png")
            media[i] = (target, synth[i], fig)
        ir = self._reverb_ir(pl_module)
        if ir is not None:
            fig_ir = plt.figure(figsize=(8, 2.5))
            plt.plot(np.arange(len(ir)) / sample_rate, ir)
            plt.title("learned reverb impulse response")
            fig_ir.savefig(out_dir / "reverb_ir.png")
        self._send(trainer, media, ir, sample_rate, step)
        for _, _, fig in media.values():
            plt.close(fig)
        plt.close("all")

    @staticmethod
    def _reverb_ir(pl_module):
        for proc in pl_module.synth.processors:
            if getattr(proc, "trainable", False) and getattr(proc, "ir", None) is not None:
                return proc.ir.detach().float().cpu().numpy()
        return None

    @staticmethod
    def _send(trainer, media, ir, sample_rate, step) -> None:
        for logger in trainer.loggers:
            name = type(logger).__name__
            if name == "WandbLogger":
                import wandb

                payload = {}
                for i, (target, synth, fig) in media.items():
                    payload[f"media/example{i}_target"] = wandb.Audio(target, sample_rate=sample_rate)
                    payload[f"media/example{i}_resynthesis"] = wandb.Audio(synth, sample_rate=sample_rate)
                    payload[f"media/example{i}"] = wandb.Image(fig)
                if ir is not None:
                    payload["media/reverb_ir"] = wandb.Histogram(ir)
                # on Lightning's x-axis (trainer/global_step), not W&B's own step: a step older than
                # W&B's (the validation before training, at step 0) would be dropped with a warning
                logger.experiment.log({**payload, "trainer/global_step": step})
            elif name == "TensorBoardLogger":
                for i, (target, synth, fig) in media.items():
                    logger.experiment.add_audio(f"example{i}/target", torch.as_tensor(target)[None], step, sample_rate)
                    logger.experiment.add_audio(f"example{i}/resynthesis", torch.as_tensor(synth)[None], step, sample_rate)
                    logger.experiment.add_figure(f"example{i}", fig, step, close=False)
