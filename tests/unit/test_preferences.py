"""Options a member left out: given, then the preset's, then the member's defaults, then the command's."""

from __future__ import annotations

import re

import pytest

from bot.core.errors import InvalidRequestError
from bot.core.preferences import OptionSet, Preset, check_preset_name, check_template, imagine_options, vary_options
from bot.core.requests import ModelId


def test_given_beats_preset_beats_defaults_beats_the_command() -> None:
    defaults = OptionSet(model="dev", count=3, aspect_ratio="4:3", output_format="png", megapixels="0.25")
    preset = Preset("wide", options=OptionSet(aspect_ratio="16:9", count=2))
    options = vary_options({"count": 1, "seed": 5}, preset=preset, defaults=defaults)
    assert (options.count, options.aspect_ratio, options.model, options.output_format) == (
        1,
        "16:9",
        ModelId.REDUX_DEV,
        "png",
    )
    assert vary_options({}, preset=None, defaults=OptionSet()).count == 1


def test_imagine_skips_vary_only_choices_and_wraps_the_prompt() -> None:
    defaults = OptionSet(model="dev", aspect_ratio="auto")
    preset = Preset("studio", template="{prompt}, studio lighting")
    options = imagine_options({"prompt": " a teapot "}, preset=preset, defaults=defaults)
    assert (options.prompt, options.aspect_ratio) == ("a teapot, studio lighting", "1:1")
    with pytest.raises(InvalidRequestError, match="the limit is 1000"):
        imagine_options({"prompt": "x" * 990}, preset=preset, defaults=OptionSet())


def test_a_stale_default_gets_the_sentence_a_typo_would() -> None:
    with pytest.raises(InvalidRequestError, match="`count` must be between 1 and 4"):
        vary_options({}, preset=None, defaults=OptionSet(count=9))


def test_names_and_templates_are_checked() -> None:
    assert check_preset_name("  Studio   Light ") == "studio light"
    with pytest.raises(InvalidRequestError):
        check_preset_name("no/slashes")
    assert check_template("  ") is None
    with pytest.raises(InvalidRequestError, match=re.escape("must contain `{prompt}`")):
        check_template("studio lighting")
    # The template is the admin's text, never a format string: other braces stay as they are.
    assert Preset("x", template="{prompt} {0} {other}").prompt("cat") == "cat {0} {other}"
