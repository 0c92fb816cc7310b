"""kslab: Kubernetes Service networking, rendered and traced the way kube-proxy does it."""

from .errors import AdmissionError, EnvironmentProblem, InputError, KslabError

__all__ = ["KslabError", "InputError", "AdmissionError", "EnvironmentProblem"]
__version__ = "0.1.0"
