from __future__ import annotations

from pathlib import Path

import pytest

import silenttax
from silenttax import errors
from silenttax._deps import imported, is_installed, optional_import


def test_hierarchy() -> None:
    assert silenttax.SilentTaxError is errors.SilentTaxError
    assert issubclass(errors.InputError, errors.SilentTaxError)
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.SchemaMismatchError, errors.InputError)
    assert issubclass(errors.NotFittedError, errors.SilentTaxError)
    assert issubclass(errors.MissingDependencyError, errors.SilentTaxError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.StateError, errors.SilentTaxError)
    assert sorted(errors.__all__) == errors.__all__
    # The tree in the module docstring names every class.
    for name in errors.__all__:
        assert name in (errors.__doc__ or "")


def test_missing_dependency_message_has_exact_install_line() -> None:
    err = errors.MissingDependencyError("torch", extra="torch", purpose="profile_torch")
    assert "pip install 'silenttax[torch]'" in str(err)
    assert err.name == "torch" and err.extra == "torch"
    plain = errors.MissingDependencyError("foo")
    assert plain.install_command == "pip install 'foo'"


def test_optional_import_translates_only_absent_packages() -> None:
    with pytest.raises(errors.MissingDependencyError, match=r"pip install 'foo_absent_pkg'"):
        optional_import("foo_absent_pkg")
    assert optional_import("json.decoder").__name__ == "json.decoder"
    with pytest.raises(errors.MissingDependencyError, match=r"'json\.no_such_submodule'"):
        optional_import("json.no_such_submodule")


def test_optional_import_reraises_a_broken_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_pkg_for_test.py").write_text("import another_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        optional_import("broken_pkg_for_test")
    assert not isinstance(info.value, errors.MissingDependencyError)
    assert info.value.name == "another_absent_dependency"


def test_optional_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Make `import pynvml` fail as it does where nvidia-ml-py is not installed.
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(errors.MissingDependencyError, match=r"silenttax\[gpu\]"):
        optional_import("pynvml", purpose="gpu_snapshot")


def test_is_installed_and_imported_do_not_import() -> None:
    import sys

    assert is_installed("numpy")
    assert not is_installed("foo_absent_pkg")
    assert imported("foo_absent_pkg") is None
    assert "foo_absent_pkg" not in sys.modules
