from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.errors import InvalidRequestError
from bot.core.pricing import PriceList
from bot.core.requests import MAX_SEED, ImagineOptions, ModelId, VaryOptions
from bot.core.sizes import ASPECT_RATIOS, nearest_aspect_ratio, output_size

TABLE = {
    "1:1": ((1024, 1024), (512, 512)),
    "16:9": ((1344, 768), (672, 384)),
    "21:9": ((1536, 640), (768, 320)),
    "3:2": ((1216, 832), (608, 416)),
    "2:3": ((832, 1216), (416, 608)),
    "4:5": ((896, 1088), (448, 544)),
    "5:4": ((1088, 896), (544, 448)),
    "3:4": ((896, 1152), (448, 576)),
    "4:3": ((1152, 896), (576, 448)),
    "9:16": ((768, 1344), (384, 672)),
    "9:21": ((640, 1536), (320, 768)),
}


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_size_table_matches_the_model(ratio: str) -> None:
    one, quarter = TABLE[ratio]
    assert output_size(ratio, "1") == one  # type: ignore[arg-type]
    assert output_size(ratio, "0.25") == quarter  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1000, 1000), "1:1"),
        ((1920, 1080), "16:9"),
        ((1080, 1920), "9:16"),
        ((3000, 2000), "3:2"),
        ((2560, 1080), "21:9"),
        ((800, 1000), "4:5"),
        ((1, 50), "9:21"),
        ((5000, 1), "21:9"),
    ],
)
def test_auto_aspect_ratio_is_the_nearest(size: tuple[int, int], expected: str) -> None:
    assert nearest_aspect_ratio(*size) == expected


@given(st.integers(1, 20000), st.integers(1, 20000))
def test_auto_aspect_ratio_is_symmetric(width: int, height: int) -> None:
    ratio = nearest_aspect_ratio(width, height)
    w, h = ratio.split(":")
    assert nearest_aspect_ratio(height, width) == f"{h}:{w}"


def test_vary_defaults() -> None:
    spec = VaryOptions.parse().resolve((1600, 900))
    assert spec.model is ModelId.REDUX_SCHNELL
    assert (spec.aspect_ratio, spec.megapixels, spec.count, spec.steps) == ("16:9", "1", 1, 4)
    assert spec.guidance is None and spec.output_format == "webp" and spec.quality == 80 and spec.safety
    assert 1 <= spec.seed <= MAX_SEED
    dev = VaryOptions.parse(model="dev").resolve((10, 10))
    assert (dev.model, dev.steps, dev.guidance) == (ModelId.REDUX_DEV, 28, 3.0)


def test_a_chosen_seed_is_recorded_and_random_seeds_differ() -> None:
    options = VaryOptions.parse()
    seeds = {options.resolve((10, 10)).seed for _ in range(20)}
    assert len(seeds) > 15
    assert VaryOptions.parse(seed=123).resolve((10, 10)).seed == 123
    assert VaryOptions.parse(seed=0).resolve((10, 10)).seed == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "pro"}, "`model` must be one of schnell, dev"),
        ({"count": 0}, "`count` must be between 1 and 4"),
        ({"count": "two"}, "`count` must be a whole number"),
        ({"steps": 5}, "`steps` must be between 1 and 4 for FLUX.1 Redux schnell"),
        ({"model": "dev", "steps": 51}, "`steps` must be between 1 and 50 for FLUX.1 Redux dev"),
        ({"guidance": 3}, "`guidance` only applies to the dev model"),
        ({"model": "dev", "guidance": 10.5}, "`guidance` must be between 0 and 10"),
        ({"seed": -1}, "`seed` must be between 0 and 4294967295"),
        ({"seed": 2**32}, "`seed` must be between 0 and 4294967295"),
        ({"aspect_ratio": "2:1"}, "`aspect_ratio` must be one of auto, 1:1"),
        ({"megapixels": "2"}, "`megapixels` must be one of 1, 0.25"),
        ({"output_format": "gif"}, "`format` must be one of webp, jpg, png"),
        ({"quality": 101}, "`quality` must be between 0 and 100"),
        ({"safety": "maybe"}, "`safety` must be one of on, off"),
    ],
)
def test_bad_vary_options_get_one_sentence(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        VaryOptions.parse(**options)  # type: ignore[arg-type]
    assert caught.value.message.startswith(message)
    assert caught.value.message.endswith(".") and "\n" not in caught.value.message


def test_imagine_options() -> None:
    spec = ImagineOptions.parse(prompt="  a fox  ", count=2, steps=3, output_format="jpeg").resolve()
    assert (spec.prompt, spec.count, spec.steps, spec.aspect_ratio, spec.output_format) == ("a fox", 2, 3, "1:1", "jpg")
    for bad, message in [
        ({"prompt": "   "}, "`prompt` must not be empty."),
        ({"prompt": "x" * 1001}, "`prompt` must be at most 1000 characters"),
        ({"prompt": "x", "aspect_ratio": "auto"}, "`aspect_ratio` must be one of 1:1"),
        ({"prompt": "x", "steps": 5}, "`steps` must be between 1 and 4 for FLUX.1 schnell"),
    ]:
        with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(")):
            ImagineOptions.parse(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "megapixels", "count", "price"),
    [
        ("schnell", "1", 1, 1),
        ("schnell", "0.25", 4, 4),
        ("dev", "1", 1, 8),
        ("dev", "0.25", 3, 6),
        ("dev", "1", 4, 32),
    ],
)
def test_redux_prices(model: str, megapixels: str, count: int, price: int) -> None:
    spec = VaryOptions.parse(model=model, megapixels=megapixels, count=count).resolve((10, 10))
    assert PriceList().price(spec) == price


def test_schnell_prices_and_the_one_credit_floor() -> None:
    assert PriceList().price(ImagineOptions.parse(prompt="x", count=3).resolve()) == 6
    assert PriceList().price(ImagineOptions.parse(prompt="x", megapixels="0.25").resolve()) == 1
    cheap = PriceList(redux_schnell=1, redux_dev=3, schnell=1)
    assert cheap.price(VaryOptions.parse(model="dev", megapixels="0.25").resolve((1, 1))) == 1
