"""The user's own code an export names: imported before unpickling, so the notebook's functions resolve.

fastai stores the functions a learner uses (``get_y=label_func``) in the export. fastai 2.8 exports with
cloudpickle: a function defined in the notebook itself is stored by value, but one imported from the
user's own file (``from my_labels import label_func``) by reference, and a server without that file
fails with "No module named 'my_labels'"; an export made with plain pickle stores even the notebook's
own functions as ``__main__.label_func`` ("Can't get attribute 'label_func' on <module '__main__'>").
``use_code`` imports the modules (names) or ``.py`` files the ``SNAKES_MODEL_CODE`` setting (or
``--code``) names, a ``.py`` file under its file name (so ``my_labels.py`` answers for
``my_labels.label_func``), and ``pickle_module`` gives ``torch.load`` an unpickler that looks a
``__main__`` name up in them.
"""
from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from snakes_web.exceptions import ModelLoadError

CODE_SETTING = "SNAKES_MODEL_CODE"


def naming(file: str) -> str:
    """Say how to name a user's ``file`` of code: the setting, and the commands' ``--code``."""
    return f"{CODE_SETTING}={file} (`snakes-web predict|export-onnx|serve --code {file}`)"


#: What to tell a user whose export names code this process does not have.
HOW = f"put the definition in a .py file and name it in {naming('path/to/file.py')}"

_modules: dict[str, types.ModuleType] = {}  # source as given -> module, in the order given


class MissingCode(AttributeError):
    """The export names ``__main__.<name>`` and none of the user's modules defines it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Can't get attribute {name!r} on <module '__main__'>")
        self.missing = name


def split_sources(raw: str) -> list[str]:
    """Split the setting's comma-separated module names and file paths."""
    return [part.strip() for part in raw.split(",") if part.strip()]


def use_code(sources: Iterable[str]) -> list[types.ModuleType]:
    """Import each source (a module name or a ``.py`` path), once per process; return them all, in order."""
    for source in sources:
        if source not in _modules:
            _modules[source] = _import(source)
    return list(_modules.values())


def in_use() -> list[str]:
    """Return the sources imported so far (for messages)."""
    return list(_modules)


def forget() -> None:
    """Stop looking names up in the sources imported so far (a process about to load another model)."""
    _modules.clear()


def _import(source: str) -> types.ModuleType:
    """Import a module by name, or a ``.py`` file under its stem; any failure is a ``ModelLoadError``."""
    try:
        if source.endswith(".py") or "/" in source or "\\" in source:
            path = Path(source).expanduser().resolve()
            if not path.is_file():
                raise ModelLoadError(f"{CODE_SETTING} names {source}, which is not a file")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ModelLoadError(f"{CODE_SETTING} names {source}, which Python cannot import")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[path.stem]
                raise
            return module
        return importlib.import_module(source)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code may fail in any way; say where and how
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelLoadError(f"could not import {source} (named in {CODE_SETTING}): "
                             f"{type(exc).__name__}: {first}") from None


class _Unpickler(pickle.Unpickler):
    """Resolve ``__main__.<name>`` from the user's modules (first that defines it), else refuse clearly."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            for code in _modules.values():
                if hasattr(code, name):
                    return getattr(code, name)
            main = sys.modules.get("__main__")
            if main is not None and hasattr(main, name):  # a script that defines it and loads in-process
                return getattr(main, name)
            raise MissingCode(name)
        return super().find_class(module, name)


def pickle_module() -> Any:
    """Return a stand-in for the ``pickle`` module whose ``Unpickler`` is ours (for ``torch.load``)."""
    stand_in = types.ModuleType("snakes_web_pickle")
    stand_in.__dict__.update({key: getattr(pickle, key) for key in dir(pickle) if not key.startswith("__")})
    stand_in.Unpickler = _Unpickler  # type: ignore[attr-defined]
    stand_in.__name__ = "pickle"
    return stand_in
