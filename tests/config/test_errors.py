"""equivox.config.errors: a bad setting is a ConfigError, which is both a UserError (one line, exit code 2 on the
command line) and a ValueError (code catching ValueError keeps working); a UserError itself is not a ValueError."""
from __future__ import annotations

import pytest

from equivox.config import ConfigError, TrainConfig, UserError


def test_config_errors_are_user_errors_and_value_errors():
    with pytest.raises(ConfigError) as info:
        TrainConfig(augment="flip")
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert "augment must be one of none, grid, so3, got 'flip'" in str(info.value)


def test_user_error_is_not_a_value_error():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    assert not issubclass(UserError, ValueError)  # a library ValueError is a bug unless the CLI marks it as input
