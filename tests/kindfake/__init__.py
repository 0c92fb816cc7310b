"""A local fake Kubernetes API server for the real ``kubernetes`` client, and the recorded kind
clusters it serves (tests only; README.md beside this file)."""

from .fixtures import DATA, FIXTURES, load_exec, load_objects, server_for, sim_exec_handler
from .server import (
    TOKEN,
    USER,
    ExecAnswer,
    ExecRecordings,
    ExecRequest,
    FakeApiServer,
    Rule,
    forbidden,
    free_port,
    not_found,
    status_object,
)

__all__ = [
    "DATA", "FIXTURES", "TOKEN", "USER", "ExecAnswer", "ExecRecordings", "ExecRequest", "FakeApiServer", "Rule",
    "forbidden", "free_port", "load_exec", "load_objects", "not_found", "server_for", "sim_exec_handler",
    "status_object",
]
