"""What runs outside the prediction server: how to start it and how to ask it.

  launch         the `bentoml serve` command line of the registry service or a bento (`server_launch`)
  predict        the HTTP client of `miniautoml predict` and the lab (`request_prediction`)
"""

from miniautoml.serving.client.launch import exposure_warning, server_launch
from miniautoml.serving.client.predict import ServerUnavailableError, request_prediction

__all__ = ["ServerUnavailableError", "exposure_warning", "request_prediction", "server_launch"]
