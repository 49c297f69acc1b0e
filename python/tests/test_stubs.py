"""The type stubs (python/tms/_tms.pyi) describe the compiled module, and `help()` explains every
parameter of every function."""

import ast
import inspect
from pathlib import Path

import tms
import tms._tms as compiled

STUBS = Path(tms.__file__).with_name("_tms.pyi")


def stub_tree():
    return ast.parse(STUBS.read_text())


def public(names):
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def stub_parameters(fn):
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    if a.vararg:
        names.append(a.vararg.arg)
    if a.kwarg:
        names.append(a.kwarg.arg)
    return [n for n in names if n != "self"]


def test_stub_names_are_the_modules():
    tree = stub_tree()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    names.discard("Config")  # a type alias of the stubs only
    assert public(names) == public(dir(compiled)) - {"Config"}
    assert set(tms.__all__) == public(dir(compiled))


def test_stub_signatures_and_members_are_the_modules():
    for node in stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            real = inspect.signature(getattr(compiled, node.name))
            assert stub_parameters(node) == list(real.parameters), node.name
            kinds = {p.name: p.kind for p in real.parameters.values()}
            for p in node.args.kwonlyargs:
                assert kinds[p.arg] == inspect.Parameter.KEYWORD_ONLY, (node.name, p.arg)
        elif isinstance(node, ast.ClassDef):
            cls = getattr(compiled, node.name)
            stubbed = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            if issubclass(cls, BaseException):
                bases = [b.id for b in node.bases]
                assert [b.__name__ for b in cls.__bases__] == bases, node.name
                continue
            real = {n for n in vars(cls) if not n.startswith("_")}
            real |= {n for n in ("__getitem__", "__len__") if n in vars(cls)}
            assert stubbed == real, node.name
            for n in node.body:
                if isinstance(n, ast.FunctionDef) and not any(
                    isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list
                ) and not n.name.startswith("__"):
                    real_sig = inspect.signature(getattr(cls, n.name))
                    assert stub_parameters(n) == [p for p in real_sig.parameters if p != "self"], n.name


def test_help_explains_every_parameter():
    for name in ["train", "load", "sweep", "reproduce"]:
        fn = getattr(tms, name)
        doc = inspect.getdoc(fn)
        for p in inspect.signature(fn).parameters.values():
            label = f"**{p.name}" if p.kind == inspect.Parameter.VAR_KEYWORD else p.name
            assert f"    {label}:" in doc, (name, p.name)
    for cls in [tms.Run, tms.History, tms.SweepResult, tms.ConfigError]:
        assert inspect.getdoc(cls)
