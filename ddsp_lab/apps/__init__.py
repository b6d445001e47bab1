"""The paper's applications, on any recording of any length (ddsp_lab.load(checkpoint) -> model):

    from ddsp_lab import apps, load
    model = load("runs/violin/checkpoints/best.ckpt")
    audio, sr, _ = apps.read_input("voice.wav")
    result = apps.timbre_transfer(model, audio, sr, auto_adjust=True)   # -> AppResult
    result.save("voice_as_violin.wav")                                  # + voice_as_violin.png
    apps.control(model, notes="A4:0:0.5 C5:0.5:0.5:90 E5:1:1", vibrato_hz=5, vibrato_cents=30)
    apps.dereverb(model, audio, sr)                 # the dry signal (reverb node bypassed)
    ir = apps.impulse_response(model)               # the learned room, [n_taps] at model.sample_rate
    apps.apply_reverb(other, other_sr, ir, model.sample_rate)
    apps.interpolate(z_model, audio_a, sr_a, audio_b, sr_b, alpha=0.5)

The same as commands: `ddsp-lab transfer|control|dereverb|reverb|interpolate checkpoint=... ...`.
"""
from .curves import Note, adjust, edit, hold_f0, notes_to_curves, parse_notes, training_pitch_range
from .io import AppResult, check_recording, read_input, save_figure
from .reverb import apply_reverb, dereverb, impulse_response, model_reverb, reverb_nodes
from .transfer import control, interpolate, predicts_f0, reads_z, timbre_transfer

__all__ = ["AppResult", "Note", "adjust", "apply_reverb", "check_recording", "control", "dereverb", "edit",
           "hold_f0", "impulse_response", "interpolate", "model_reverb", "notes_to_curves", "parse_notes",
           "predicts_f0", "read_input", "reads_z", "reverb_nodes", "save_figure", "timbre_transfer",
           "training_pitch_range"]
