"""DGPO agent files: a zip of plain data that loads without unpickling anything.

Stable-Baselines3's own ``save`` stores the agent's attributes as JSON in which every object JSON cannot
hold (policy keyword arguments, schedules, ...) is a ``:serialized:`` cloudpickle blob, and its ``load``
unpickles them: loading such a file runs whatever code the file carries. A DGPO agent file
(:meth:`agents.dgpo.dgpo.DGPO.save`) holds instead (README.md, "Files and trust"):

* :data:`META` — JSON: the format tag, the class, the settings, the constructor arguments, the spaces, the
  environment task, the bookkeeping (query count, best cell, reward normaliser, elite archive);
* :data:`MODEL` — the fine-tuned diffusion model's checkpoint (:meth:`DiffusionModel.checkpoint`);
* :data:`STATE` — tensors only: the policy's other weights, the optimizer state, the generator state.

Both torch members are read with ``torch.load(..., weights_only=True)``, which refuses pickled objects
other than tensors and plain containers. A file that carries pickled objects — SB3's ``:serialized:``
entries, or a torch member whose pickle asks for anything else — is refused with
:class:`UnsafeAgentFileError` before anything in it runs.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from dgpo_env.io import atomic_write_bytes

AGENT_FORMAT = "dgpo-env/dgpo-agent"
"""Tag stored in every agent file; files without it are refused."""

AGENT_FORMAT_VERSION = 1
"""Layout version of the agent file."""

META = "dgpo-agent.json"
"""Zip member holding the JSON settings and state."""

MODEL = "model.pt"
"""Zip member holding the diffusion model's checkpoint."""

STATE = "state.pth"
"""Zip member holding the remaining tensors (policy weights besides the model, optimizer, generator)."""

SERIALIZED = ":serialized:"
"""The key under which Stable-Baselines3's ``data`` member stores a cloudpickled object."""

_TRUST = (
    "unpickling may run arbitrary code, so DGPO.load refuses it. DGPO.save writes only plain data; "
    "only Stable-Baselines3's own loaders (PPO.load, A2C.load, ...) unpickle, and only files from a "
    "trusted source may be given to them"
)

_CLASS_MODULES = ("torch.nn", "torch.optim")
"""Modules whose classes may appear in policy keyword arguments (``activation_fn``, ``optimizer_class``)."""


class AgentFileError(ValueError):
    """An agent file cannot be used: missing, damaged, not a DGPO agent file or of another version."""


class UnsafeAgentFileError(AgentFileError):
    """An agent file carries pickled Python objects, which could run code when loaded."""


# ---------------------------------------------------------------------------------------------- writing
def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive of ``members`` (name -> contents), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` of ``obj`` (tensors and plain containers) into bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def agent_path(path: str | Path) -> Path:
    """The file an agent is saved to: ``path``, with ``.zip`` appended when it has no suffix (as SB3 does)."""
    path = Path(path)
    return path if path.suffix else path.with_suffix(".zip")


def write_agent_file(path: str | Path | io.BufferedIOBase, members: dict[str, bytes]) -> None:
    """Write the zip to ``path`` atomically (:func:`dgpo_env.io.atomic_write_bytes`), or into an open file."""
    data = zip_bytes(members)
    if isinstance(path, io.BufferedIOBase):
        path.write(data)
        return
    target = agent_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)


def plain_json(obj: Any, what: str) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists.

    Raises:
        ValueError: If something in ``obj`` is not plain data (named by ``what``).
    """
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): plain_json(v, f"{what}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain_json(v, f"{what}[{i}]") for i, v in enumerate(obj)]
    raise ValueError(
        f"{what} is a {type(obj).__name__}, which an agent file cannot hold (only plain data is saved, so "
        "that loading runs no code)"
    )


def encode_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Policy keyword arguments as JSON: plain values, and torch layer/optimizer classes by name."""
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if isinstance(value, type) and value.__module__.startswith(_CLASS_MODULES):
            out[name] = {"torch_class": f"{value.__module__}:{value.__qualname__}"}
        else:
            out[name] = plain_json(value, f"policy_kwargs[{name!r}]")
    return out


def decode_kwargs(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Inverse of :func:`encode_kwargs`; only ``torch.nn`` module and ``torch.optim`` optimizer classes resolve."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict) and set(value) == {"torch_class"}:
            module, _, qualname = str(value["torch_class"]).partition(":")
            cls = None
            if module.startswith(_CLASS_MODULES) and qualname.isidentifier():
                cls = getattr(importlib.import_module(module), qualname, None)
            if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module | torch.optim.Optimizer)):
                raise AgentFileError(
                    f"{source}: policy_kwargs[{name!r}] names an unknown class {value['torch_class']!r}"
                )
            out[name] = cls
        else:
            out[name] = value
    return out


def encode_space(space: spaces.Space) -> dict[str, Any]:
    """A ``Dict`` / ``Box`` / ``MultiDiscrete`` / ``Discrete`` space as JSON."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: encode_space(v) for k, v in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise ValueError(f"an agent file cannot hold a {type(space).__name__} space")


def decode_space(data: Any, source: str) -> spaces.Space:
    """Inverse of :func:`encode_space`.

    Raises:
        AgentFileError: For a malformed description.
    """
    try:
        kind = data["type"]
        if kind == "Dict":
            return spaces.Dict({k: decode_space(v, source) for k, v in data["spaces"].items()})
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            if dtype.kind not in "biuf":
                raise ValueError(f"dtype {dtype}")
            low, high = np.asarray(data["low"], dtype=dtype), np.asarray(data["high"], dtype=dtype)
            return spaces.Box(low, high, shape=tuple(data["shape"]), dtype=dtype)  # type: ignore[arg-type]
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise AgentFileError(f"{source}: damaged space description ({err})") from err
    raise AgentFileError(f"{source}: unknown space type {kind!r}")


# ---------------------------------------------------------------------------------------------- reading
def find_serialized(obj: Any) -> str | None:
    """The path of the first ``:serialized:`` (cloudpickle) entry in parsed JSON, or ``None``."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == SERIALIZED:
                return "(top level)"
            found = find_serialized(value)
            if found is not None:
                return str(key) if found == "(top level)" else f"{key}.{found}"
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found = find_serialized(value)
            if found is not None:
                return f"{i}" if found == "(top level)" else f"{i}.{found}"
    return None


def _json_member(archive: zipfile.ZipFile, name: str, source: str) -> Any:
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise AgentFileError(f"{source}: member {name!r} is not valid JSON ({err})") from err


def _torch_member(archive: zipfile.ZipFile, name: str, source: str) -> Any:
    raw = archive.read(name)
    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refused a global: the pickle asks for code
        raise UnsafeAgentFileError(
            f"{source}: member {name!r} carries pickled Python objects beyond tensors and plain data; {_TRUST}"
        ) from err
    except Exception as err:  # torch raises many types for a damaged member
        raise AgentFileError(f"{source}: member {name!r} is damaged ({type(err).__name__}: {err})") from err


def read_agent_file(path: str | Path | io.BufferedIOBase) -> tuple[dict[str, Any], Any, dict[str, Any], str]:
    """Read and check an agent file without unpickling anything.

    Args:
        path: The file (``.zip`` is appended when ``path`` does not exist and has no suffix), or an
            open binary file.

    Returns:
        ``(meta, model checkpoint, tensors, source)`` where ``source`` names the file in messages.

    Raises:
        UnsafeAgentFileError: If the file carries pickled objects (a Stable-Baselines3 ``data`` member with
            ``:serialized:`` entries, or a torch member that is not plain tensors); nothing in it is run.
        AgentFileError: If the file is missing, not a zip, not a DGPO agent file, damaged or of another
            layout version.
    """
    if isinstance(path, io.BufferedIOBase):
        source, raw = "agent file", path.read()
    else:
        target = Path(path)
        if not target.is_file() and not target.suffix and agent_path(target).is_file():
            target = agent_path(target)
        source = str(target)
        if not target.is_file():
            raise AgentFileError(f"no agent file at {target}")
        raw = target.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as err:
        raise AgentFileError(f"{source} is not an agent file (not a zip archive: {err})") from err
    with archive:
        names = set(archive.namelist())
        if "data" in names:
            entry = find_serialized(_json_member(archive, "data", source))
            if entry is not None:
                raise UnsafeAgentFileError(
                    f"{source} carries pickled Python objects (Stable-Baselines3 ':serialized:' entry at "
                    f"{entry!r} of its 'data'): {_TRUST}"
                )
        if META not in names:
            kind = "a Stable-Baselines3 agent file" if "data" in names else "not a DGPO agent file"
            raise AgentFileError(f"{source} is {kind} (no {META!r}); save the agent with DGPO.save")
        meta = _json_member(archive, META, source)
        entry = find_serialized(meta)
        if entry is not None:
            raise UnsafeAgentFileError(
                f"{source} carries pickled Python objects (':serialized:' at {entry!r}): {_TRUST}"
            )
        if not isinstance(meta, dict) or meta.get("format") != AGENT_FORMAT:
            raise AgentFileError(f"{source} is not a DGPO agent file (format tag missing)")
        if meta.get("format_version") != AGENT_FORMAT_VERSION:
            raise AgentFileError(
                f"{source} has agent-file layout {meta.get('format_version')}, this version reads "
                f"{AGENT_FORMAT_VERSION}"
            )
        for name in (MODEL, STATE):
            if name not in names:
                raise AgentFileError(f"{source} is incomplete: member {name!r} is missing")
        model = _torch_member(archive, MODEL, source)
        state = _torch_member(archive, STATE, source)
    if not isinstance(state, dict):
        raise AgentFileError(f"{source}: member {STATE!r} is damaged (not a dictionary)")
    return meta, model, state, source


__all__ = [
    "AGENT_FORMAT",
    "AGENT_FORMAT_VERSION",
    "AgentFileError",
    "UnsafeAgentFileError",
    "decode_kwargs",
    "decode_space",
    "encode_kwargs",
    "encode_space",
    "plain_json",
    "read_agent_file",
    "write_agent_file",
]
