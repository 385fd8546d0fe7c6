import torch_brain


def test_version_is_a_string():
    assert isinstance(torch_brain.__version__, str) and torch_brain.__version__[0].isdigit()
