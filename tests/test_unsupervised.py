"""The unsupervised-f0 parts: the ResNet f0 encoder, the CREPE perceptual loss, the encoder chain
and the MLP-only decoder."""
import pytest
import torch

from ddsp_lab import dsp
from ddsp_lab.features import import_torchcrepe
from ddsp_lab.losses import CrepeEmbeddingLoss
from ddsp_lab.training.module import _cents_l1
from ddsp_lab.networks import EncoderChain, F0ResNetEncoder, MlpDecoder, RnnFcDecoder, ZEncoder

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
SR = 16000


def _tone(f0_hz, n: int, n_harmonics: int = 1) -> torch.Tensor:
    """Harmonic tones [len(f0_hz), n] with 1/k amplitudes."""
    t = torch.arange(n) / SR
    f0 = torch.as_tensor(f0_hz, dtype=torch.float32).reshape(-1, 1, 1)
    k = torch.arange(1, n_harmonics + 1).reshape(1, -1, 1)
    return 0.3 * (torch.sin(2 * torch.pi * f0 * k * t) / k).sum(1)


@pytest.fixture(scope="module")
def crepe_loss():
    return CrepeEmbeddingLoss(SR, model="tiny", layer="conv5", hop_length=256)


def test_crepe_embedding_equals_torchcrepe_embed(crepe_loss):
    audio = _tone([330.0], 8000)
    expected = import_torchcrepe().embed(audio.clone(), SR, hop_length=256, model="tiny", device="cpu")
    ours = crepe_loss.embed(audio)
    assert ours.shape[:2] == expected.shape[:2]
    torch.testing.assert_close(ours.reshape(expected.shape), expected, atol=2e-5, rtol=1e-4)


def test_crepe_loss_is_zero_for_the_target_and_keeps_no_weights_in_the_state_dict(crepe_loss):
    audio = _tone([440.0, 220.0], 4096)
    assert float(crepe_loss(audio, audio)) == 0.0
    assert float(crepe_loss(audio, _tone([466.2, 233.1], 4096))) > 0.1  # a semitone off
    assert crepe_loss.state_dict() == {} and not list(crepe_loss.parameters())


@pytest.mark.parametrize("start_hz", [425.0, 455.0])
def test_crepe_loss_gradient_pulls_a_detuned_tone_to_the_target_pitch(crepe_loss, start_hz):
    """The reason for the perceptual loss: from half a semitone away, descending the CREPE loss
    moves a sinusoid's frequency to the target's."""
    target = _tone([440.0], 2048)
    f0 = torch.tensor(start_hz, requires_grad=True)
    opt = torch.optim.Adam([f0], lr=2.0)
    t = torch.arange(2048) / SR
    for _ in range(20):
        loss = crepe_loss(target, 0.3 * torch.sin(2 * torch.pi * f0 * t)[None])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(f0.item() - 440.0) < 0.4 * abs(start_hz - 440.0), f0.item()


def test_crepe_loss_rejects_mismatched_shapes_and_unknown_layers(crepe_loss):
    with pytest.raises(ValueError, match="target_audio and audio"):
        crepe_loss(torch.zeros(1, 2048), torch.zeros(1, 1024))
    with pytest.raises(ValueError, match="layer must be one of"):
        CrepeEmbeddingLoss(layer="conv9")


@pytest.mark.parametrize("spectrum", ["logmel", "cqt"])
def test_f0_resnet_learns_the_pitch_of_harmonic_tones(spectrum):
    """Shapes and range, then the architecture can resolve pitch: trained on 12 tones from MIDI 50 to
    75 (regressing its expected MIDI), its error falls from semitones to a fraction of one."""
    torch.manual_seed(0)
    enc = F0ResNetEncoder(time_steps=16, spectrum=spectrum, channels=(8, 16), blocks=(1, 1),
                          mel_bins=128, fft_size=1024, cqt_fmin=110.0, cqt_bins=60, cqt_bins_per_octave=12)
    midi = torch.linspace(50, 75, 12)
    audio = _tone(dsp.midi_to_hz(midi), 4096, n_harmonics=5)
    with torch.no_grad():
        out = enc({"audio": audio})
    assert out["f0_hz"].shape == (12, 16, 1) and out["f0_probs"].shape == (12, 16, 256)
    torch.testing.assert_close(out["f0_probs"].sum(-1), torch.ones(12, 16))
    torch.testing.assert_close(out["f0_scaled"], dsp.hz_to_midi(out["f0_hz"]) / 127.0)
    assert float(out["f0_hz"].min()) >= dsp.midi_to_hz(torch.tensor(12.0)) - 1e-3
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    errors = []
    for _ in range(80):
        err = (dsp.hz_to_midi(enc({"audio": audio})["f0_hz"])[..., 0] - midi[:, None]).abs().mean()
        opt.zero_grad()
        err.backward()
        opt.step()
        errors.append(float(err))
    assert errors[0] > 3.0 and min(errors[-10:]) < 0.5, (errors[0], errors[-10:])


def test_encoder_chain_runs_f0_then_z_and_reports_f0_prediction():
    chain = EncoderChain({"f0": F0ResNetEncoder(time_steps=10, channels=(4,), blocks=(1,), mel_bins=64,
                                                fft_size=512),
                          "z": ZEncoder(time_steps=10, z_dims=3, rnn_channels=8)})
    out = chain({"audio": _tone([220.0], 4000), "f0_hz": torch.full((1, 10, 1), 100.0)})
    assert chain.predicts_f0 and out["z"].shape == (1, 10, 3)
    assert not torch.allclose(out["f0_hz"], torch.full((1, 10, 1), 100.0))  # replaced by the encoder's


def test_cents_metric_counts_only_masked_frames():
    f0 = torch.full((1, 4, 1), 220.0)
    ref = torch.tensor([[[110.0], [220.0], [440.0], [1.0]]])
    mask = torch.tensor([[[True], [True], [True], [False]]])
    torch.testing.assert_close(_cents_l1(f0, ref, mask), torch.tensor(800.0))


def test_mlp_decoder_decodes_each_frame_independently_unlike_the_rnn():
    """Changing the input at one frame changes the MLP decoder's output only at that frame; the
    RNN-FC decoder's outputs after it change too."""
    torch.manual_seed(0)
    splits = (("amps", 1), ("harmonic_distribution", 4))
    x = {"ld_scaled": torch.rand(1, 6, 1), "f0_scaled": torch.rand(1, 6, 1)}
    y = {k: v.clone() for k, v in x.items()}
    y["ld_scaled"][0, 2] += 0.5
    mlp = MlpDecoder(ch=16, layers_per_stack=2, output_splits=splits)
    rnn = RnnFcDecoder(rnn_channels=8, ch=16, layers_per_stack=2, output_splits=splits)
    changed = lambda dec: (dec(x)["harmonic_distribution"] - dec(y)["harmonic_distribution"]).abs().amax(-1)[0]  # noqa: E731
    mlp_changed, rnn_changed = changed(mlp), changed(rnn)
    assert mlp_changed[2] > 1e-4 and float(mlp_changed[[0, 1, 3, 4, 5]].max()) == 0.0
    assert float(rnn_changed[3:].min()) > 1e-6
    assert mlp(x)["amps"].shape == (1, 6, 1)


def test_crepe_loss_cpu_backward_path_equals_plain_autograd(monkeypatch):
    """The CPU path (oneDNN forward, native backward) gives the plain autograd gradient, and passes
    gradcheck in float64."""
    from ddsp_lab import perceptual

    loss = CrepeEmbeddingLoss(SR, layer="conv3", hop_length=512)
    target, start = _tone([440.0], 3000), _tone([466.2], 3000)
    grads = []
    for plain in (False, True):
        if plain:
            monkeypatch.setattr(perceptual._CpuConvBackward, "apply", staticmethod(lambda frames, fn: fn(frames)))
        x = start.clone().requires_grad_()
        loss(target, x).backward()
        grads.append(x.grad)
    assert grads[1].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-9)
    monkeypatch.undo()
    x64 = torch.randn(1, 1200, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    small = CrepeEmbeddingLoss(SR, layer="conv2", hop_length=512)
    assert torch.autograd.gradcheck(lambda y: small.embed(y).sum(), (x64,), eps=1e-6, atol=1e-4, fast_mode=True)
