"""The rule of conftest.py: a skipped, xfailed or xpassed test fails the run; a skipped test marked
``gpu`` does not, and the summary counts it. Proven by running pytest, in a fresh process, on
generated test files with this repository's conftest.py and pytest settings."""
import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
UNMARKED = '''
import pytest

def test_passes():
    pass

def test_skips():
    pytest.skip("no reason at all")

def test_imports_what_is_not_there():
    pytest.importorskip("a_module_that_does_not_exist")

@pytest.mark.xfail(reason="known bug")
def test_expected_to_fail():
    assert False

@pytest.mark.xfail(reason="was a bug")
def test_unexpectedly_passes():
    pass
'''
GPU_ONLY = '''
import pytest

def test_passes():
    pass

@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("no GPU on this machine")

@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 2])
def test_needs_a_gpu_too(n):
    pytest.skip("no GPU on this machine")
'''


@pytest.fixture
def project(pytester):
    """pytester's folder with this repository's conftest.py and pytest settings (markers included)."""
    shutil.copyfile(TESTS / "conftest.py", pytester.path / "conftest.py")
    shutil.copyfile(TESTS.parent / "pyproject.toml", pytester.path / "pyproject.toml")
    return pytester


def test_a_skip_without_the_gpu_marker_fails_the_run(project):
    project.makepyfile(test_generated=UNMARKED)
    result = project.runpytest_subprocess("test_generated.py")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, skipped=2, xfailed=1, xpassed=1)
    result.stdout.fnmatch_lines(["0 GPU tests skipped*", "FAILED: 4 tests skipped or xfailed without the gpu marker*"])
    for name in ("test_skips", "test_imports_what_is_not_there", "test_expected_to_fail", "test_unexpectedly_passes"):
        result.stdout.fnmatch_lines([f"  test_generated.py::{name} (*"])


def test_a_module_skipped_at_collection_fails_the_run(project):
    project.makepyfile(test_generated='import pytest\npytest.importorskip("a_module_that_does_not_exist")\n'
                                      "def test_never_runs():\n    pass\n")
    result = project.runpytest_subprocess("test_generated.py")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAILED: 1 tests skipped*", "*skipped at collection*"])


def test_gpu_tests_may_skip_and_are_counted(project):
    project.makepyfile(test_generated=GPU_ONLY)
    result = project.runpytest_subprocess("test_generated.py")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(["3 GPU tests skipped (marked gpu*"])
    result.stdout.no_fnmatch_line("FAILED*")


def test_a_misspelt_marker_is_an_error(project):
    project.makepyfile(test_generated="import pytest\n@pytest.mark.gpuu\ndef test_x():\n    pytest.skip('x')\n")
    result = project.runpytest_subprocess("test_generated.py")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*'gpuu' not found in `markers` configuration option*"])
