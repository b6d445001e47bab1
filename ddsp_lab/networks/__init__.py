"""Networks: preprocessors, encoders and decoders (the training issue builds the model from them)."""
from .decoders import MlpDecoder, RnnFcDecoder
from .encoders import EncoderChain, F0ResNetEncoder, ZEncoder
from .layers import FcStack, load_keras_dense, load_keras_gru
from .preprocessors import F0LoudnessPreprocessor
