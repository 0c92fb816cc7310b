"""kslab: Kubernetes Service networking, rendered and traced the way kube-proxy does it."""

from .errors import AdmissionError, EnvironmentProblem, InputError, KslabError

__all__ = ["Lab", "KslabError", "InputError", "AdmissionError", "EnvironmentProblem"]


def __getattr__(name: str):
    if name == "Lab":  # imported lazily: the CLI's render path does not need the dataplane
        from .lab import Lab

        return Lab
    if name == "check":
        import importlib

        return importlib.import_module(".check", __name__)
    raise AttributeError(name)
__version__ = "0.1.0"
